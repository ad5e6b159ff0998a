/**
 * Issue 22 #1: a source dies mid-reshard and the cluster promotes its replica itself. The
 * hints must be right whatever seed is asked, the reshard's target (whose view is stale while
 * it imports) as much as another master: no step that loses data while the promoted replica
 * holds the keys, and a failover hint that still works after the automatic promotion.
 */
import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {FixResult} from '../../src/commands/fix.js'
import {expandRanges} from '../../src/lib/core/slots.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCli, runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'
import {halfMoveSlots} from '../helpers/moves.js'

const delay = (ms: number) =>
  new Promise((resolve) => {
    setTimeout(resolve, ms)
  })

/** The words of the first `slotctl failover ...` command in a hint. */
function failoverCommand(hint: string): string[] | undefined {
  const match = /slotctl (failover \S+ --replica [0-9a-f]+ --force)/.exec(hint)
  return match ? match[1].split(' ') : undefined
}

describe('incident hints: a dead source mid-reshard, asked from two seeds', function () {
  this.timeout(240_000)
  let cluster: TestCluster

  const viewOf = async (address: string): Promise<ClusterNode[]> => parseClusterNodes(String(await cluster.client(address).call('CLUSTER', 'NODES')))

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 1})
    await writeDataset(cluster.clusterClient(), {keys: 3000})
  })

  after(async () => {
    await cluster?.stop()
  })

  /** Every hint check gives about `dead` from `seed`. */
  const checkHints = async (seed: string, dead: ClusterNode): Promise<string[]> => {
    const {json} = await runCliJson<CheckResult>(['check', seed])
    return [...json.errors, ...json.warnings].filter((finding) => finding.nodes?.some((node) => node.id === dead.id)).map((finding) => finding.hint ?? '')
  }

  it('before and after the automatic promotion: no data-losing step while the replica holds the keys, and the failover hint still works', async () => {
    const [source, target, other] = mastersOf(await viewOf(cluster.seed)).filter((node) => node.slots.length > 0)
    const replica = (await viewOf(cluster.seed)).find((node) => node.masterId === source.id)!
    await halfMoveSlots(cluster, source, target, expandRanges(source.slots).slice(0, 3))
    const before = await clusterDigest(cluster)
    cluster.kill(source.address)

    // at once, from the target: the replica is named for promotion, nothing else
    const early = await checkHints(target.address, source)
    expect(early.join(' | ')).to.not.match(/accept-data-loss|exist only there/)
    const hinted = early.map((hint) => failoverCommand(hint)).find(Boolean)
    expect(hinted, early.join(' | ')).to.not.equal(undefined)
    expect(hinted).to.include(replica.id)

    // the cluster promotes the replica by itself before the operator runs the hint
    await cluster.waitForPromotion(replica.address)
    const late = await runCli(hinted!)
    expect(late.exitCode, late.stderr).to.equal(0)
    expect(late.stdout).to.include(`${replica.address} (${replica.id.slice(0, 8)}) is already master`)

    // from the target (importing: its view may still give the dead source the slots) and from another master
    for (let i = 0; i < 100; i++) {
      const views = await Promise.all([target.address, other.address].map(async (address) => viewOf(address)))
      if (views.every((view) => view.find((node) => node.id === source.id)?.failed)) break
      await delay(100)
    }
    for (const seed of [target.address, other.address]) {
      const hints = await checkHints(seed, source)
      expect(hints.length, `check from ${seed}`).to.be.greaterThan(0)
      expect(hints.join(' | '), `check from ${seed}`).to.not.match(/accept-data-loss|exist only there|come back empty/)
      // a seed whose view is current: not the importing target while it still gives the source slots
      for (const hint of hints) {
        for (const [, named] of hint.matchAll(/slotctl (?!add-node)\S+ (127\.0\.0\.1:\d+)/g)) {
          const view = await viewOf(named)
          expect(view.find((node) => node.id === source.id)?.slots ?? [], `${named} named in: ${hint}`).to.deep.equal([])
        }
      }
      const dry = await runCliJson<FixResult>(['fix', seed, '--dry-run'])
      expect(dry.stdout, `fix --dry-run from ${seed}`).to.not.match(/accept-data-loss|exist only there|come back empty/)
    }

    // fix (from the target) settles the slots from the promoted replica: nothing lost
    const fixed = await runCliJson<FixResult>(['fix', target.address, '--yes'])
    // what remains is the dead node itself, which fix does not remove
    expect(fixed.json.fixes.map((group) => group.action), fixed.stdout).to.deep.equal(['roll-forward'])
    expect(fixed.json.errors.every((finding) => finding.nodes?.every((node) => node.id === source.id)), JSON.stringify(fixed.json.errors)).to.equal(true)
    expect(await clusterDigest(cluster)).to.deep.equal(before)
    // the dead node goes as its hint says now: without losing anything, and nothing reported uncovered
    const hint = (await checkHints(other.address, source)).join(' ')
    expect(hint).to.match(/slotctl del-node \S+ [0-9a-f]{40}(?! --accept-data-loss)/)
    const removed = await runCli(['del-node', other.address, source.id, '--yes'])
    expect(removed.exitCode, removed.stderr).to.equal(0)
    expect(removed.stderr).to.not.include('uncovered')
    const {exitCode, json} = await runCliJson<CheckResult>(['check', other.address])
    expect(exitCode, JSON.stringify(json.errors)).to.equal(0)
    expect(await clusterDigest(cluster)).to.deep.equal(before)
  })

  it('del-node --accept-data-loss from the importing target, while the promoted replica serves the slots: nothing reported uncovered, and fix loses nothing', async () => {
    const masters = mastersOf(await viewOf(cluster.seed)).filter((node) => node.slots.length > 0 && !node.failed)
    const live = await viewOf(cluster.seed)
    // a source that still has a replica, and another master as the target
    const replicated = masters.filter((node) => live.some((other) => other.masterId === node.id && !other.failed))
    const [source, target] = replicated
    const replica = live.find((node) => node.masterId === source.id && !node.failed)!
    await halfMoveSlots(cluster, source, target, expandRanges(source.slots).slice(10, 13))
    const before = await clusterDigest(cluster)
    cluster.kill(source.address)
    await cluster.waitForPromotion(replica.address)
    const removed = await runCli(['del-node', target.address, source.id, '--accept-data-loss', '--yes'])
    expect(removed.exitCode, removed.stderr).to.equal(0)
    expect(removed.stderr).to.not.include('uncovered')
    const fixed = await runCliJson<FixResult>(['fix', replica.address, '--yes'])
    expect(fixed.exitCode, fixed.stdout + fixed.stderr).to.equal(0)
    const {exitCode, json} = await runCliJson<CheckResult>(['check', target.address])
    expect(exitCode, JSON.stringify(json.errors)).to.equal(0)
    expect(await clusterDigest(cluster)).to.deep.equal(before)
  })
})
