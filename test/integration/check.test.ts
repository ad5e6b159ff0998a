import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import {formatRanges, keySlot} from '../../src/lib/core/slots.js'
import {type ClusterNode, parseClusterNodes, slotOwners} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCli, runCliJson} from '../helpers/cli.js'

const codesOf = (result: CheckResult) => [...result.errors, ...result.warnings].map((finding) => finding.code)

/** A key name that hashes to `slot`. */
function keyInSlot(slot: number): string {
  for (let i = 0; ; i++) if (keySlot(`stray:${i}`) === slot) return `stray:${i}`
}

describe('check on a real 3+3 cluster', () => {
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 1})
  })

  after(async () => {
    await cluster?.stop()
  })

  const topology = async (): Promise<ClusterNode[]> => parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))

  const ownerOf = async (slot: number): Promise<ClusterNode> => {
    const nodes = await topology()
    const id = slotOwners(nodes).get(slot)
    const owner = nodes.find((node) => node.id === id)
    if (!owner) throw new Error(`no owner for slot ${slot}`)
    return owner
  }

  const otherMaster = async (than: ClusterNode): Promise<ClusterNode> => {
    const other = (await topology()).find((node) => node.role === 'master' && node.id !== than.id && node.address !== cluster.seed)
    if (!other) throw new Error('no other master')
    return other
  }

  it('a healthy cluster exits 0, lists every master with its slots and replicas, and --json says healthy', async () => {
    const human = await runCli(['check', cluster.seed])
    expect(human.exitCode, human.stderr).to.equal(0)
    expect(human.stdout).to.include('[OK] all 16384 slots covered')
    expect(human.stdout).to.not.include('Errors')
    const [host, port] = cluster.seed.split(':')
    const {exitCode, json} = await runCliJson<CheckResult>(['check', host, port])
    expect(exitCode).to.equal(0)
    expect(json).to.include({healthy: true})
    expect(json.errors).to.deep.equal([])
    const masters = json.nodes.filter((node) => node.role === 'master')
    expect(masters).to.have.length(3)
    expect(masters.reduce((sum, master) => sum + master.slotCount, 0)).to.equal(16_384)
    for (const master of masters) {
      expect(master.replicaCount).to.equal(1)
      expect(human.stdout).to.include(`M ${master.address} ${master.id.slice(0, 8)}  slots ${formatRanges(master.slots)}`)
    }
    expect(json.nodes.filter((node) => node.role === 'replica')).to.have.length(3)
    expect(json.nodes.every((node) => node.reachable && node.clusterState === 'ok')).to.equal(true)
  })

  it('warnings alone exit 0, and 3 with --strict (replicas share their master host here)', async () => {
    const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed, '--strict'])
    expect(exitCode).to.equal(3)
    expect(json.healthy).to.equal(true)
    expect(json.status).to.equal('warnings')
    expect(codesOf(json)).to.deep.equal(['REPLICA_SAME_HOST', 'REPLICA_SAME_HOST', 'REPLICA_SAME_HOST'])
    // identical warnings read as one line (each with its next step under --verbose)
    const human = await runCli(['check', cluster.seed])
    expect(human.stdout).to.match(/Warnings \(3\):\n {2}\[WARN\] 3 replicas share a host with their master: 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+\n/)
    const verbose = await runCli(['check', cluster.seed, '--verbose'])
    expect(verbose.stdout.match(/\[WARN\] replica .* is on the same host as its master/g)).to.have.length(3)
    expect(verbose.stdout.match(/ {4}hint: add a replica on another host \(slotctl add-node NEW_HOST:PORT .* --replica --master-id [0-9a-f]{40}\), then slotctl del-node /g)).to.have.length(3)
  })

  it('--search-multiple-owners finds a key stored on a master that does not own its slot', async () => {
    const slot = 777
    const key = keyInSlot(slot)
    const owner = await ownerOf(slot)
    const stranger = await otherMaster(owner)
    const client = cluster.client(stranger.address)
    // IMPORTING + ASKING is the one way to write into a slot a node does not own
    const withAsking = async (command: string) => {
      await client.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
      await client.pipeline().call('ASKING').call(command, key, ...(command === 'SET' ? ['v'] : [])).exec()
      await client.call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    }
    await withAsking('SET')
    try {
      expect(Number(await client.call('CLUSTER', 'COUNTKEYSINSLOT', slot))).to.equal(1)
      // without the flag the cheap scan finds it too: the stranger's key total does not add up
      const {exitCode: cheapExit, json: cheap} = await runCliJson<CheckResult>(['check', cluster.seed])
      expect(cheapExit).to.equal(3)
      expect(cheap.errors.find((f) => f.code === 'MULTIPLE_OWNERS')).to.deep.include({slotCount: 1, slots: [[slot, slot]]})
      const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed, '--search-multiple-owners'])
      expect(exitCode).to.equal(3)
      const finding = json.errors.find((f) => f.code === 'MULTIPLE_OWNERS')
      expect(finding).to.deep.include({slotCount: 1, slots: [[slot, slot]]})
      expect(finding?.nodes?.map((node) => node.id)).to.deep.equal([stranger.id])
    } finally {
      await withAsking('DEL')
    }
    const clean = await runCli(['check', cluster.seed, '--search-multiple-owners'])
    expect(clean.exitCode).to.equal(0)
    expect(clean.stdout).to.include('no keys outside their owner')
  })

  it('an open slot (IMPORTING/MIGRATING set by hand) exits 3 and names the slot on both nodes', async () => {
    const slot = 42
    const source = await ownerOf(slot)
    const target = await otherMaster(source)
    await cluster.client(target.address).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
    await cluster.client(source.address).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
    try {
      const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed])
      expect(exitCode).to.equal(3)
      expect(json.healthy).to.equal(false)
      const open = json.errors.filter((f) => f.code === 'OPEN_SLOT')
      expect(open.map((f) => f.slots)).to.deep.equal([[[42, 42]], [[42, 42]]])
      expect(open.flatMap((f) => f.nodes?.map((node) => node.id))).to.have.members([source.id, target.id])
      const human = await runCli(['check', cluster.seed])
      expect(human.exitCode).to.equal(3)
      expect(human.stdout).to.match(/Errors \(2\):\n {2}\[ERR\] .*(migrating|importing) state: 42\n {4}hint: .*\n {2}\[ERR\] .*(migrating|importing) state: 42\n/)
      expect(human.stdout.indexOf('Errors')).to.be.lessThan(human.stdout.indexOf('Warnings'))
    } finally {
      for (const node of [source, target]) await cluster.client(node.address).call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    }
    expect((await runCli(['check', cluster.seed])).exitCode).to.equal(0)
  })

  it('an uncovered slot (DELSLOTS) exits 3 and lists it', async () => {
    const slot = 16_000
    const owner = await ownerOf(slot)
    // every node must forget the owner, or gossip would bring the slot back
    for (const address of cluster.addresses) await cluster.client(address).call('CLUSTER', 'DELSLOTS', slot).catch(() => {})
    try {
      const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed])
      expect(exitCode).to.equal(3)
      expect(json.errors.find((f) => f.code === 'SLOTS_UNCOVERED')).to.deep.include({slotCount: 1, slots: [[16_000, 16_000]]})
    } finally {
      await cluster.client(owner.address).call('CLUSTER', 'ADDSLOTS', slot)
    }
  })

  it('a killed master: check exits 3 and reports it unreachable; info exits 1 naming it', async () => {
    const victim = await ownerOf(100)
    const seed = cluster.addresses.find((address) => address !== victim.address) as string
    cluster.kill(victim.address)
    const {exitCode, json} = await runCliJson<CheckResult>(['check', seed])
    expect(exitCode).to.equal(3)
    expect(json.errors.find((f) => f.code === 'MASTER_UNREACHABLE')?.nodes).to.deep.equal([{address: victim.address, id: victim.id}])
    expect(json.nodes.find((node) => node.id === victim.id)?.reachable).to.equal(false)
    // the next step is named: promote its replica (or, once the cluster did that, settle and remove it);
    // never "restart it: its keys exist only there" while its replica holds them
    const check = await runCli(['check', seed])
    expect(check.stdout).to.match(new RegExp(`hint: (promote its replica: slotctl failover 127\\.0\\.0\\.1:\\d+ --replica [0-9a-f]{40} --force|its slots are served by .* \\(its replica, promoted|remove it: slotctl del-node)`))
    expect(check.stdout).to.not.match(/exist only there|accept-data-loss/)
    const human = await runCli(['info', seed])
    expect(human.exitCode).to.equal(1)
    expect(human.stderr).to.include(`could not read ${victim.address}`)
    expect(human.stderr).to.not.match(/\n\s+at /)
  })
})

describe('check with a password the cluster does not need', function () {
  this.timeout(120_000)
  let cluster: TestCluster

  before(async () => {
    // replicas on the other loopback host: a cluster with no warning of its own
    cluster = await TestCluster.start({extraArgs: ['--protected-mode', 'no'], hosts: ['127.0.0.1', '127.0.0.2'], masters: 2, replicas: 1})
  })

  after(async () => {
    await cluster?.stop()
  })

  it('warns (redis-cli says AUTH failed), and --strict fails on it', async () => {
    const clean = await runCliJson<CheckResult>(['check', cluster.seed, '--strict'])
    expect(clean.exitCode, JSON.stringify(clean.json.warnings)).to.equal(0)
    expect(clean.json.status).to.equal('ok')
    const env = {REDISCLI_AUTH: 'not-needed-here'}
    const warned = await runCliJson<CheckResult>(['check', cluster.seed], {env})
    expect(warned.exitCode).to.equal(0)
    expect(codesOf(warned.json)).to.deep.equal(['PASSWORD_NOT_NEEDED'])
    expect(warned.json.warnings[0].message).to.match(/a password was given, but .* need none/)
    expect(warned.json.warnings[0].message).to.include(cluster.seed)
    const human = await runCli(['check', cluster.seed], {env})
    expect(human.exitCode).to.equal(0)
    expect(human.stdout).to.match(/\[WARN\] a password was given, but 127\.0\.0\.\d:\d+, .* need none/)
    // the warning is given once: not again on stderr
    expect(human.stderr).to.not.include('password was given')
    const strict = await runCliJson<CheckResult>(['check', cluster.seed, '--strict'], {env})
    expect(strict.exitCode).to.equal(3)
    expect(strict.stdout).to.not.include('not-needed-here')
    // another verb says it on stderr
    const info = await runCli(['info', cluster.seed], {env})
    expect(info.exitCode, info.stderr).to.equal(0)
    expect(info.stderr).to.match(/^slotctl: warning: a password was given, but .* need none \(redis-cli would report AUTH failed\); leave out the password/m)
  })
})
