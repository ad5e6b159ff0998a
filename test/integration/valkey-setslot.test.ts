import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {FixResult} from '../../src/commands/fix.js'
import {delay} from '../../src/lib/cluster/connection.js'
import {type ClusterNode, myselfOf, parseClusterNodes, replicasOf} from '../../src/lib/cluster/topology.js'
import {TestCluster, skipUnlessValkey} from '../helpers/cluster-harness.js'
import {runCli, runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

/**
 * Valkey ≥ 8 sends CLUSTER SETSLOT to the replicas first and runs it on the primary only
 * once they acknowledge: replicas show their primary's open-slot markers, and a replica can
 * keep a marker its primary never set (the primary answered NOREPLICAS and did not run it).
 */
describe('Valkey replicated SETSLOT: check and fix (real valkey-server >= 8)', () => {
  let cluster: TestCluster
  let original: {digest: string; keys: number}

  const topology = async (): Promise<ClusterNode[]> => parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
  const ownView = async (node: ClusterNode): Promise<ClusterNode> => myselfOf(parseClusterNodes(String(await cluster.client(node.address).call('CLUSTER', 'NODES'))))!
  const ownerOf = async (slot: number) => (await topology()).find((node) => node.role === 'master' && node.slots.some(([a, b]) => slot >= a && slot <= b))!
  const otherMaster = async (owner: ClusterNode) => (await topology()).find((node) => node.role === 'master' && node.id !== owner.id)!
  const replicaOf = async (master: ClusterNode) => replicasOf(await topology(), master.id)[0]

  const waitForMarker = async (node: ClusterNode, slot: number, present: boolean) => {
    for (let i = 0; i < 200; i++) {
      const self = await ownView(node)
      if (Boolean(self.migrating[slot] ?? self.importing[slot]) === present) return
      await delay(25)
    }
    throw new Error(`${node.address} never ${present ? 'showed' : 'dropped'} the marker of slot ${slot}`)
  }

  before(async function () {
    skipUnlessValkey(this, 8)
    this.timeout(120_000)
    cluster = await TestCluster.start({masters: 3, replicas: 1})
    await writeDataset(cluster.clusterClient(), {keys: 5000})
    original = await clusterDigest(cluster)
  })

  after(async () => {
    await cluster?.stop()
  })

  it('check reports an open slot once, on the masters, though their replicas show the markers too', async () => {
    const slot = 42
    const source = await ownerOf(slot)
    const target = await otherMaster(source)
    await cluster.client(target.address).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
    await cluster.client(source.address).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
    try {
      // the premise: Valkey's replicas carry the markers
      await waitForMarker(await replicaOf(source), slot, true)
      await waitForMarker(await replicaOf(target), slot, true)
      const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed])
      expect(exitCode).to.equal(3)
      const open = json.errors.filter((finding) => finding.code === 'OPEN_SLOT')
      expect(open.map((finding) => finding.slots)).to.deep.equal([[[42, 42]], [[42, 42]]])
      expect(open.flatMap((finding) => finding.nodes?.map((node) => node.id))).to.have.members([source.id, target.id])
    } finally {
      for (const node of [source, target]) await cluster.client(node.address).call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    }
    await waitForMarker(await replicaOf(source), slot, false)
    expect((await runCli(['check', cluster.seed])).exitCode).to.equal(0)
  })

  it('fix clears a marker only a replica kept (its primary answered NOREPLICAS), with SETSLOT STABLE on the primary', async () => {
    const slot = 300
    const primary = await ownerOf(slot)
    const other = await otherMaster(primary)
    const replica = await replicaOf(primary)
    const replicaProcess = cluster.server(replica.address)
    // The replica cannot acknowledge while stopped: the primary sends it the SETSLOT, times
    // out waiting and answers NOREPLICAS without running it. The replica runs it on resume.
    process.kill(replicaProcess.pid, 'SIGSTOP')
    try {
      const refused = await cluster.client(primary.address).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', other.id, 'TIMEOUT', 300).then(() => 'OK', (error: Error) => error.message)
      expect(refused).to.match(/NOREPLICAS/)
    } finally {
      process.kill(replicaProcess.pid, 'SIGCONT')
    }
    await waitForMarker(replica, slot, true)
    expect(Object.keys((await ownView(primary)).migrating)).to.deep.equal([])

    const check = await runCliJson<CheckResult>(['check', cluster.seed])
    expect(check.exitCode).to.equal(3)
    const open = check.json.errors.filter((finding) => finding.code === 'OPEN_SLOT')
    expect(open).to.have.length(1)
    expect(open[0].nodes?.map((node) => node.id)).to.deep.equal([replica.id])
    expect(open[0].message).to.match(/only the replica/)

    const dry = await runCliJson<FixResult>(['fix', cluster.seed, '--dry-run'])
    expect(dry.json.fixes).to.have.length(1)
    expect(dry.json.fixes[0]).to.deep.include({action: 'clear-replica-marker', problem: 'replica-marker', slots: [[slot, slot]], targetId: primary.id})

    const {exitCode, json, stderr} = await runCliJson<FixResult>(['fix', cluster.seed, '--yes'])
    expect(exitCode, stderr).to.equal(0)
    expect(json.status).to.equal('fixed')
    expect(json.keysMoved).to.equal(0)
    expect(json.after?.healthy).to.equal(true)
    expect(Object.keys((await ownView(replica)).migrating)).to.deep.equal([])
    expect((await ownerOf(slot)).id).to.equal(primary.id)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })
})
