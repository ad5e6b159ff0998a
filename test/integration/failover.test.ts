import {expect} from 'chai'

import type {FailoverResult} from '../../src/commands/failover.js'
import {type ClusterNode, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'

async function nodesSeenBy(cluster: TestCluster, address: string): Promise<ClusterNode[]> {
  return parseClusterNodes(String(await cluster.client(address).call('CLUSTER', 'NODES')))
}

async function clusterState(cluster: TestCluster, address: string): Promise<string> {
  return /cluster_state:(\w+)/.exec(String(await cluster.client(address).call('CLUSTER', 'INFO')))?.[1] ?? '?'
}

describe('failover on a real 3+3 cluster', function () {
  this.timeout(120_000)
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 1})
  })

  after(async () => {
    await cluster?.stop()
  })

  const mastersWithSlots = async () => (await nodesSeenBy(cluster, cluster.seed)).filter((n) => n.role === 'master' && n.slots.length > 0 && !n.failed)

  it('rejects bad input with one clean line each', async () => {
    const nodes = await nodesSeenBy(cluster, cluster.seed)
    const replica = nodes.find((n) => n.role === 'replica') as ClusterNode
    const master = nodes.find((n) => n.role === 'master') as ClusterNode
    expectOneCleanLine(await runCli(['failover', cluster.seed, '--master', replica.id]), 2, /is a replica, not a master/)
    expectOneCleanLine(await runCli(['failover', cluster.seed, '--master', 'abcdef0123']), 2, /unknown node id/)
    expectOneCleanLine(await runCli(['failover', cluster.seed]), 2, /--master ID, --replica ID or --from-host/)
    const unreachable = await runCli(['failover', '127.0.0.1:1', '--master', master.id])
    expect(unreachable.exitCode).to.equal(1)
    expect(unreachable.stderr).to.match(/^slotctl: error: /)
    expect(unreachable.stderr).to.not.match(/\n\s+at /)
  })

  it('--replica naming a node that is master already (the cluster promoted it itself): exit 0, "already master", nothing changed', async () => {
    const [master] = await mastersWithSlots()
    const before = await nodesSeenBy(cluster, cluster.seed)
    for (const mode of [[], ['--force']]) {
      const human = await runCli(['failover', cluster.seed, '--replica', master.id.slice(0, 10), ...mode])
      expect(human.exitCode, human.stderr).to.equal(0)
      expect(human.stdout).to.include(`${master.address} (${master.id.slice(0, 8)}) is already master of ${master.slots.reduce((sum, [start, end]) => sum + end - start + 1, 0)} slots`)
    }
    const {exitCode, json} = await runCliJson<FailoverResult>(['failover', cluster.seed, '--replica', master.id, '--force'])
    expect(exitCode).to.equal(0)
    expect(json.status).to.equal('done')
    expect(json.alreadyMaster).to.include({address: master.address, id: master.id})
    expect(json.done).to.deep.equal([])
    const after = await nodesSeenBy(cluster, cluster.seed)
    expect(after.map((n) => `${n.id} ${n.role} ${n.masterId ?? ''}`).sort()).to.deep.equal(before.map((n) => `${n.id} ${n.role} ${n.masterId ?? ''}`).sort())
  })

  it('graceful: waits (bounded by --timeout) for a replica whose link is down while it catches up, showing it, rather than refusing at once', async () => {
    const [master] = await mastersWithSlots()
    const replica = (await nodesSeenBy(cluster, cluster.seed)).find((n) => n.masterId === master.id) as ClusterNode
    const replicaClient = cluster.client(replica.address)
    const linkStatus = async () => /master_link_status:(\w+)/.exec(String(await replicaClient.call('INFO', 'replication')))?.[1]
    // the replica's link goes down and stays down: its handshake sends a password the master refuses
    await replicaClient.call('CONFIG', 'SET', 'masterauth', 'refused-by-master')
    await replicaClient.call('CLIENT', 'KILL', 'TYPE', 'master')
    for (let i = 0; i < 100 && (await linkStatus()) !== 'down'; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    expect(await linkStatus()).to.equal('down')
    try {
      const started = Date.now()
      const refused = await runCli(['failover', cluster.seed, '--master', master.id, '--timeout', '2s'])
      expect(refused.exitCode, refused.stderr).to.equal(1)
      expect(refused.stderr).to.match(/\nslotctl: error: no replica of .* can be promoted: .*link down.*; waited 2\.00 s for a replica to catch up\n/)
      expect(Date.now() - started).to.be.at.least(2000)
      expect(refused.stderr).to.include(`waiting for a replica to catch up with its master: ${replica.address} (link down`)
      expect((await nodesSeenBy(cluster, master.address)).find((n) => n.myself)?.role).to.equal('master')
      // the link comes back while the failover waits: it goes on
      const running = runCli(['failover', cluster.seed, '--master', master.id, '--timeout', '60s'])
      await new Promise((resolve) => setTimeout(resolve, 2500))
      await replicaClient.call('CONFIG', 'SET', 'masterauth', '')
      const done = await running
      expect(done.exitCode, done.stderr).to.equal(0)
      expect(done.stderr).to.include(`waiting for a replica to catch up with its master: ${replica.address} (link down`)
      expect(done.stdout).to.include(`${replica.address} is now master`)
    } finally {
      await replicaClient.call('CONFIG', 'SET', 'masterauth', '')
    }
    // the old master, now its replica, syncs before the next test
    const oldMaster = cluster.client(master.address)
    for (let i = 0; i < 200 && !/master_link_status:up/.test(String(await oldMaster.call('INFO', 'replication'))); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  })

  it('dry-run names the replica it would promote and changes nothing', async () => {
    const [master] = await mastersWithSlots()
    const before = await nodesSeenBy(cluster, cluster.seed)
    const {exitCode, json} = await runCliJson<FailoverResult>(['failover', cluster.seed, '--master', master.id, '--dry-run'])
    expect(exitCode).to.equal(0)
    const replica = before.find((n) => n.masterId === master.id) as ClusterNode
    expect(json.steps[0].replicaId).to.equal(replica.id)
    expect(json.done).to.deep.equal([])
    expect((await nodesSeenBy(cluster, master.address)).find((n) => n.myself)?.role).to.equal('master')
  })

  it('graceful failover under continuous writes loses no acknowledged write and swaps roles', async () => {
    const [master] = await mastersWithSlots()
    const replica = (await nodesSeenBy(cluster, cluster.seed)).find((n) => n.masterId === master.id) as ClusterNode
    const client = cluster.clusterClient()
    const acknowledged = new Map<string, string>()
    let writing = true
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const key = `fo:${i}`
        try {
          await client.set(key, `v${i}`)
          acknowledged.set(key, `v${i}`)
        } catch {
          // A write refused during the switch was not acknowledged, so it need not survive.
        }
      }
    })()
    await new Promise((resolve) => setTimeout(resolve, 300))
    const result = await runCli(['failover', cluster.seed, '--master', master.id])
    await new Promise((resolve) => setTimeout(resolve, 300))
    writing = false
    await writer
    expect(result.exitCode, result.stderr).to.equal(0)
    expect(result.stdout).to.match(/agreed after/)
    expect(acknowledged.size).to.be.greaterThan(10)
    for (const [key, value] of acknowledged) expect(await client.get(key), key).to.equal(value)
    const promoted = (await nodesSeenBy(cluster, replica.address)).find((n) => n.myself) as ClusterNode
    expect(promoted.role).to.equal('master')
    const old = (await nodesSeenBy(cluster, master.address)).find((n) => n.myself) as ClusterNode
    expect(old.role).to.equal('replica')
    expect(old.masterId).to.equal(replica.id)
    for (const address of cluster.addresses) expect(await clusterState(cluster, address), address).to.equal('ok')
  })

  it('--force promotes the replica of a killed master; check reports the dead node', async () => {
    const masters = await mastersWithSlots()
    const victim = masters.find((m) => m.address !== cluster.seed) as ClusterNode
    const replica = (await nodesSeenBy(cluster, cluster.seed)).find((n) => n.masterId === victim.id) as ClusterNode
    cluster.kill(victim.address)
    const {exitCode, json, stderr, stdout} = await runCliJson<FailoverResult>(['failover', cluster.seed, '--master', victim.id, '--force'])
    expect(exitCode, stderr + stdout).to.equal(0)
    // on a loaded machine the cluster may promote the replica itself before the run reads it:
    // then the goal already holds (nothing done, a success), and the replica is master
    if (json.done.length > 0) expect(json.done[0].replicaId).to.equal(replica.id)
    else expect((await nodesSeenBy(cluster, replica.address)).find((n) => n.myself)?.role).to.equal('master')
    const alive = cluster.addresses.filter((a) => a !== victim.address)
    for (let i = 0; i < 100 && (await Promise.all(alive.map((a) => clusterState(cluster, a)))).some((s) => s !== 'ok'); i++) await new Promise((r) => setTimeout(r, 100))
    for (const address of alive) expect(await clusterState(cluster, address), address).to.equal('ok')
    const check = await runCliJson<{errors: Array<{code: string; message?: string}>}>(['check', cluster.seed])
    expect(check.exitCode, JSON.stringify(check.json.errors)).to.equal(3)
    expect(JSON.stringify(check.json)).to.include(victim.address)
    // the promoted master's only former partner is dead: it has no replica to promote
    expectOneCleanLine(await runCli(['failover', cluster.seed, '--master', replica.id]), 1, /has no replica to promote/)
  })

  it('--master naming a dead master whose replica the cluster promoted already: exit 0, nothing to fail over', async function () {
    this.timeout(120_000)
    const view = await nodesSeenBy(cluster, cluster.seed)
    const masters = await mastersWithSlots()
    // a master other than the seed with a live replica (the test before killed one already)
    const victim = masters.find((m) => m.address !== cluster.seed && view.some((n) => n.masterId === m.id && !n.failed)) as ClusterNode
    const replica = view.find((n) => n.masterId === victim.id && !n.failed) as ClusterNode
    cluster.kill(victim.address)
    const seedView = async () => (await nodesSeenBy(cluster, cluster.seed)).find((n) => n.id === victim.id)
    for (let i = 0; i < 600 && ((await seedView())?.slots.length ?? 0) > 0; i++) await new Promise((r) => setTimeout(r, 100))
    expect((await nodesSeenBy(cluster, replica.address)).find((n) => n.myself)?.role).to.equal('master')
    const {exitCode, json, stdout} = await runCliJson<FailoverResult>(['failover', cluster.seed, '--master', victim.id, '--force'])
    expect(exitCode, stdout).to.equal(0)
    expect(json.done).to.deep.equal([])
    const text = await runCli(['failover', cluster.seed, '--master', victim.id, '--force'])
    expect(text.stdout).to.match(/owns no slots any more: nothing to fail over/)
  })
})

describe('failover --takeover and --from-host across two loopback hosts', function () {
  this.timeout(120_000)
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({extraArgs: ['--protected-mode', 'no'], hosts: ['127.0.0.1', '127.0.0.2'], masters: 2, replicas: 1})
  })

  after(async () => {
    await cluster?.stop()
  })

  const self = async (address: string) => (await nodesSeenBy(cluster, address)).find((n) => n.myself) as ClusterNode

  it('--takeover needs --yes without a terminal, then promotes', async () => {
    const nodes = await nodesSeenBy(cluster, cluster.seed)
    const replica = nodes.find((n) => n.role === 'replica') as ClusterNode
    const refused = await runCli(['failover', cluster.seed, '--replica', replica.id, '--takeover'])
    expect(refused.exitCode).to.equal(4)
    expect((await self(replica.address)).role).to.equal('replica')
    const result = await runCli(['failover', cluster.seed, '--replica', replica.id, '--takeover', '--yes'])
    expect(result.exitCode, result.stderr).to.equal(0)
    expect((await self(replica.address)).role).to.equal('master')
  })

  it('--from-host moves every master off that host, one at a time', async () => {
    const nodes = await nodesSeenBy(cluster, cluster.seed)
    // the takeover test may have moved masters between hosts: empty a host that has one now
    const host = (nodes.find((n) => n.role === 'master' && n.slots.length > 0) as ClusterNode).host
    const before = nodes.filter((n) => n.role === 'master' && n.host === host && n.slots.length > 0)
    expect(before.length).to.be.greaterThan(0)
    const result = await runCliJson<FailoverResult>(['failover', cluster.seed, '--from-host', host])
    expect(result.exitCode, result.stdout).to.equal(0)
    expect(result.json.done).to.have.length(before.length)
    for (const address of cluster.addresses) {
      const me = await self(address)
      if (me.host === host) expect(me.slots, address).to.deep.equal([])
    }
  })
})
