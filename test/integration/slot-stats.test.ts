import {expect} from 'chai'

import type {InfoResult} from '../../src/commands/info.js'
import type {RebalanceCommandResult} from '../../src/commands/rebalance.js'
import {NodePool} from '../../src/lib/cluster/connection.js'
import {readServerFeatures} from '../../src/lib/cluster/server-info.js'
import {keySlot} from '../../src/lib/core/slots.js'
import {type ClusterNode, mastersOf, parseClusterNodes, parseInfo} from '../../src/lib/cluster/topology.js'
import {TestCluster, isValkeyAtLeast, serverUnderTest} from '../helpers/cluster-harness.js'
import {runCli, runCliJson} from '../helpers/cli.js'

/** How often each master ran a command since the last CONFIG RESETSTAT. */
async function callsOf(cluster: TestCluster, masters: readonly ClusterNode[], command: string): Promise<number> {
  let calls = 0
  for (const master of masters) {
    const stats = parseInfo(String(await cluster.client(master.address).info('commandstats')))
    calls += Number(/calls=(\d+)/.exec(stats[`cmdstat_${command}`] ?? '')?.[1] ?? 0)
  }
  return calls
}

/**
 * Per-slot key counts for info and rebalance --by keys: one CLUSTER SLOT-STATS per master on
 * Valkey ≥ 8 (no COUNTKEYSINSLOT at all), COUNTKEYSINSLOT per slot elsewhere; same numbers.
 */
describe('per-slot key counts: CLUSTER SLOT-STATS where the server has it (any server)', () => {
  let cluster: TestCluster
  let masters: ClusterNode[]
  /** the slot with most keys on each master, and its key count */
  const largest = new Map<string, {keys: number; slot: number}>()

  before(async function () {
    this.timeout(120_000)
    cluster = await TestCluster.start({masters: 3, replicas: 0})
    masters = mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))
    const writer = cluster.clusterClient()
    // a little everywhere, and one tagged heap per master of a different size
    await Promise.all(Array.from({length: 600}, (_, i) => writer.set(`spread:${i}`, 'v')))
    for (const [index, tag] of ['{alpha}', '{bravo}', '{charlie}'].entries()) {
      const count = 50 * (index + 2)
      await Promise.all(Array.from({length: count}, (_, i) => writer.set(`${tag}:${i}`, 'v')))
      const slot = keySlot(tag)
      const owner = masters.find((master) => master.slots.some(([a, b]) => slot >= a && slot <= b))!
      const keys = Number(await cluster.client(owner.address).call('CLUSTER', 'COUNTKEYSINSLOT', slot))
      if (keys > (largest.get(owner.id)?.keys ?? 0)) largest.set(owner.id, {keys, slot})
    }
  })

  after(async () => {
    await cluster?.stop()
  })

  it('the server under test is detected per node as it is (name, version, slot-stats)', async () => {
    const pool = new NodePool()
    try {
      const features = await readServerFeatures(pool, cluster.seed)
      const binary = serverUnderTest()
      expect(features).to.include({name: binary.product, version: binary.version})
      expect(features.slotStats).to.equal(isValkeyAtLeast(8))
      expect(features.replicatedSetslot).to.equal(isValkeyAtLeast(8))
      expect(features.atomicSlotMigration).to.equal(isValkeyAtLeast(9) ? 'valkey-migrateslots' : null)
    } finally {
      await pool.closeAll()
    }
  })

  const resetStats = async () => {
    for (const master of masters) await cluster.client(master.address).call('CONFIG', 'RESETSTAT')
  }

  it('info names each master\'s largest slot: one SLOT-STATS per master on Valkey >= 8, else COUNTKEYSINSLOT per slot', async () => {
    await resetStats()
    const info = await runCliJson<InfoResult>(['info', cluster.seed])
    expect(info.exitCode, info.stderr).to.equal(0)
    for (const master of info.json.masters) {
      const dbsize = Number(await cluster.client(master.address).dbsize())
      expect(master.keys).to.equal(dbsize)
      if (largest.has(master.id)) expect(master.largestSlot, master.address).to.deep.equal(largest.get(master.id))
    }
    const slotStats = await callsOf(cluster, masters, 'cluster|slot-stats')
    const countKeys = await callsOf(cluster, masters, 'cluster|countkeysinslot')
    expect({countKeys, slotStats}).to.deep.equal(isValkeyAtLeast(8) ? {countKeys: 0, slotStats: masters.length} : {countKeys: 16_384, slotStats: 0})

    const human = await runCli(['info', cluster.seed])
    const [id, top] = [...largest].sort((a, b) => b[1].keys - a[1].keys)[0]
    expect(human.stdout).to.include(`most keys in one slot: ${top.keys} (slot ${top.slot} on ${info.json.masters.find((m) => m.id === id)!.address})`)
  })

  it('rebalance --by keys counts every master\'s keys the same way', async () => {
    await resetStats()
    const plan = await runCliJson<RebalanceCommandResult>(['rebalance', cluster.seed, '--by', 'keys', '--threshold', '1', '--dry-run'])
    expect(plan.exitCode, plan.stderr).to.be.oneOf([0, 3])
    for (const node of plan.json.nodes) expect(node.loadBefore, node.address).to.equal(Number(await cluster.client(node.address).dbsize()))
    const slotStats = await callsOf(cluster, masters, 'cluster|slot-stats')
    const countKeys = await callsOf(cluster, masters, 'cluster|countkeysinslot')
    if (isValkeyAtLeast(8)) {
      expect(slotStats).to.equal(masters.length)
      // at most the slots the plan moves are counted again (to measure progress), never all of them
      expect(countKeys).to.be.at.most(plan.json.slotsToMove)
    } else {
      expect(slotStats).to.equal(0)
      expect(countKeys).to.be.at.least(16_384)
    }
  })
})
