/**
 * fix after a master of a slot migration fails over in the middle of the move (CLUSTER
 * FAILOVER on its replica, not a kill), after a killed source comes back as a replica of the
 * node that replaced it, and after a source dies with no replica left to take over. Each case leaves a slot migrating on one side and importing on
 * the other, with half its keys moved; fix --dry-run must decide alike from every master,
 * and fix must leave every slot covered, none open, no key outside its owner, and the key
 * count and every value as before. One cluster serves the cases in turn: each leaves it
 * healthy, with roles swapped.
 */
import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {FixResult} from '../../src/commands/fix.js'
import {versionAtLeast} from '../../src/lib/cluster/server-info.js'
import {expandRanges} from '../../src/lib/core/slots.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {TestCluster, serverUnderTest} from '../helpers/cluster-harness.js'
import {runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'
import {halfMoveSlots} from '../helpers/moves.js'

const delay = (ms: number) =>
  new Promise((resolve) => {
    setTimeout(resolve, ms)
  })

/**
 * What the importing target's cluster_state is once the migrating source has failed over, as
 * seen per server: Redis 7.0 ignores the promoted replica's claim on a slot it imports and is
 * left with no owner (fail); Redis 8.0 and Valkey 8/9 take the claim and stay ok. Undefined
 * for versions not yet seen (7.2, 7.4): nothing is assumed about them.
 */
function stateAfterSourceFailover(): 'fail' | 'ok' | undefined {
  const {product, version} = serverUnderTest()
  if (product === 'valkey') return 'ok'
  if (version.startsWith('7.0.')) return 'fail'
  return versionAtLeast(version, 8, 0) ? 'ok' : undefined
}

const SLOTS_PER_CASE = 3

describe('fix after a failover in the middle of a slot migration', () => {
  let cluster: TestCluster

  const viewOf = async (address: string): Promise<ClusterNode[]> => parseClusterNodes(String(await cluster.client(address).call('CLUSTER', 'NODES')))
  const liveMasters = async (): Promise<ClusterNode[]> => mastersOf(await viewOf(cluster.seed)).filter((node) => !node.failed)
  const replicaOf = async (master: ClusterNode): Promise<ClusterNode> => (await viewOf(cluster.seed)).find((node) => node.masterId === master.id && !node.failed)!

  /** Until `check` passes: each case starts from a settled, healthy cluster. */
  const waitUntilHealthy = async () => {
    for (let i = 0; i < 200; i++) {
      const {json} = await runCliJson<CheckResult>(['check', cluster.seed])
      if (json.errors.length === 0) return
      await delay(250)
    }
    throw new Error('the cluster did not settle')
  }

  /** Slots `master` owns, away from those earlier cases moved. */
  const slotsOf = (master: ClusterNode, offset: number): number[] => {
    const owned = expandRanges(master.slots)
    return Array.from({length: SLOTS_PER_CASE}, (_, i) => owned[offset + i * 100])
  }

  /** Until every node that answers sees `promoted` as a master and `demoted` (if it answers) calls itself a replica. */
  const waitForRoles = async (promoted: ClusterNode, demoted: ClusterNode) => {
    for (let i = 0; i < 300; i++) {
      const views = await Promise.all(cluster.addresses.map(async (address) => viewOf(address).catch(() => undefined)))
      const settled = views.every((view) => !view || (view.find((node) => node.id === promoted.id)?.role === 'master' && view.find((node) => node.id === demoted.id)?.role === 'replica'))
      if (settled) return
      await delay(100)
    }
    throw new Error(`${promoted.address} did not take over from ${demoted.address} in every view`)
  }

  const failover = async (master: ClusterNode): Promise<ClusterNode> => {
    const replica = await replicaOf(master)
    await cluster.client(replica.address).call('CLUSTER', 'FAILOVER')
    await waitForRoles(replica, master)
    return replica
  }

  /** fix --dry-run from every live master decides the same per slot; then fix repairs it all, losing nothing. */
  const expectFixedFromAnySeed = async (before: {digest: string; keys: number}) => {
    const seeds = (await liveMasters()).map((node) => node.address)
    const plans = await Promise.all(
      seeds.map(async (seed) => {
        const {json} = await runCliJson<FixResult>(['fix', seed, '--dry-run'])
        return JSON.stringify(json.fixes.flatMap((group) => group.slots.flatMap(([start, end]) => Array.from({length: end - start + 1}, (_, i) => `${start + i} ${group.problem} ${group.action} ${group.targetId}`))).sort())
      }),
    )
    expect(plans[0]).to.not.equal('[]')
    for (const [i, plan] of plans.entries()) expect(plan, `fix --dry-run from ${seeds[i]}`).to.equal(plans[0])
    const fixed = await runCliJson<FixResult>(['fix', seeds.at(-1)!, '--yes'])
    expect(fixed.exitCode, fixed.stdout + fixed.stderr).to.equal(0)
    expect(fixed.json.status).to.equal('fixed')
    const {json} = await runCliJson<CheckResult>(['check', seeds[0], '--search-multiple-owners'])
    expect(json.errors, JSON.stringify(json.errors)).to.deep.equal([])
    expect(await clusterDigest(cluster)).to.deep.equal(before)
  }

  before(async function () {
    this.timeout(120_000)
    // an append-only file lets a killed node come back with its keys (the last case)
    cluster = await TestCluster.start({extraArgs: ['--appendonly', 'yes'], masters: 3, replicas: 1})
    await writeDataset(cluster.clusterClient(), {keys: 5000})
  })

  after(async () => {
    await cluster?.stop()
  })

  beforeEach(async function () {
    this.timeout(60_000)
    await waitUntilHealthy()
  })

  it('the target fails over mid-move: the slot is repaired from any seed, nothing lost', async function () {
    this.timeout(180_000)
    const [source, target] = await liveMasters()
    await halfMoveSlots(cluster, source, target, slotsOf(source, 10))
    const before = await clusterDigest(cluster)
    await failover(target)
    await expectFixedFromAnySeed(before)
  })

  it('the source fails over mid-move (Redis 7.0: the importing target goes cluster_state:fail; Redis 8 and Valkey stay ok): repaired from any seed, nothing lost', async function () {
    this.timeout(180_000)
    const [, source, target] = await liveMasters()
    await halfMoveSlots(cluster, source, target, slotsOf(source, 20))
    const before = await clusterDigest(cluster)
    await failover(source)
    // the state of the issue differs per server; what must hold everywhere is the repair below
    const expected = stateAfterSourceFailover()
    if (expected) expect(String(await cluster.client(target.address).call('CLUSTER', 'INFO')), `${serverUnderTest().product} ${serverUnderTest().version}`).to.include(`cluster_state:${expected}`)
    await expectFixedFromAnySeed(before)
  })

  it('the source is killed mid-move, its replica takes over, and it comes back as a replica: repaired from any seed, nothing lost', async function () {
    this.timeout(180_000)
    const [target, , source] = await liveMasters()
    await halfMoveSlots(cluster, source, target, slotsOf(source, 30))
    const before = await clusterDigest(cluster)
    const replica = await replicaOf(source)
    cluster.kill(source.address)
    await cluster.waitForPromotion(replica.address)
    await cluster.restart(source.address)
    await waitForRoles(replica, source)
    await expectFixedFromAnySeed(before)
  })

  it('the target fails over mid-move and the owner is closed by hand (STABLE): fix still finds the keys on the promoted replica', async function () {
    this.timeout(180_000)
    const [source, target] = await liveMasters()
    const slots = slotsOf(source, 40)
    await halfMoveSlots(cluster, source, target, slots)
    const before = await clusterDigest(cluster)
    await failover(target)
    for (const slot of slots) await cluster.client(source.address).call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    await expectFixedFromAnySeed(before)
  })

  it('the source dies mid-move with no replica left: every seed names the next command, fix changes nothing, and once it is back fix completes', async function () {
    this.timeout(180_000)
    const [source, target] = await liveMasters()
    const replica = await replicaOf(source)
    await halfMoveSlots(cluster, source, target, slotsOf(source, 50))
    const before = await clusterDigest(cluster)
    cluster.kill(replica.address)
    cluster.kill(source.address)
    const seeds = (await liveMasters()).filter((node) => node.id !== source.id).map((node) => node.address)
    for (let i = 0; i < 300; i++) {
      const views = await Promise.all(seeds.map(async (seed) => viewOf(seed)))
      if (views.every((view) => view.find((node) => node.id === source.id)?.failed)) break
      await delay(100)
    }
    const plans = await Promise.all(seeds.map(async (seed) => (await runCliJson<FixResult>(['fix', seed, '--dry-run', '--force'])).json.fixes))
    for (const [i, fixes] of plans.entries()) {
      expect(fixes.map((group) => [group.action, group.slotCount]), `fix --dry-run from ${seeds[i]}`).to.deep.equal([['skip', SLOTS_PER_CASE]])
      // restart it, or remove it knowing its keys are lost: the command is spelled out
      expect(fixes[0].reason).to.include(`slotctl del-node ${seeds[i]} ${source.id} --accept-data-loss`)
    }
    // nothing it may do: exit 3, the dead master among the problems, nothing changed
    const refused = await runCliJson<FixResult>(['fix', seeds[0], '--yes'])
    expect(refused.exitCode, refused.stderr).to.equal(3)
    expect(refused.json.status).to.equal('partial')
    expect(refused.json.keysMoved).to.equal(0)
    expect(refused.json.errors.some((finding) => finding.nodes?.some((node) => node.id === source.id))).to.equal(true)
    await cluster.restart(source.address)
    await cluster.restart(replica.address)
    await waitForRoles(source, replica)
    await expectFixedFromAnySeed(before)
  })
})
