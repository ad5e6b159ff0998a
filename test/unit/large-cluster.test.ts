/**
 * Loaders, planners and renderers on large, fully fragmented clusters (issue 15, section 4).
 * No timed assertions (those live in bench/large-cluster.bench.js): the planners are checked
 * for correct plans on 500 masters, and for how their work grows, counted in reads of the
 * per-slot load, from 250 to 500 masters.
 */
import {expect} from 'chai'

import {runChecks} from '../../src/lib/check/checks.js'
import {orderedNodes, summarizeNode} from '../../src/lib/check/summary.js'
import {planTable, stripAnsi} from '../../src/lib/cli/render.js'
import type {ClusterSnapshot, NodeView} from '../../src/lib/cluster/loader.js'
import {SLOT_COUNT, countSlots, expandRanges, mergeRanges, splitEvenly, toRanges} from '../../src/lib/core/slots.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {type RebalanceMaster, planRebalance} from '../../src/lib/plan/rebalance.js'
import {planReshard} from '../../src/lib/plan/reshard.js'
import type {MigrationPlan} from '../../src/lib/plan/types.js'
import {fragmentedClusterNodes, masterId, seededRandom} from '../fixtures/large-cluster.js'

const MASTERS = 500

/** Owner of every slot after applying a plan, checking each move against the owners before it. */
function applyPlan(masters: readonly RebalanceMaster[], plan: MigrationPlan): Map<string, number> {
  const owner = new Map<number, string>()
  for (const master of masters) for (const slot of expandRanges(master.slots)) owner.set(slot, master.id)
  const moved = new Set<number>()
  for (const move of plan.moves) {
    // plain checks: a chai assertion per move makes 10k-move plans slow to verify
    if (moved.has(move.slot)) expect.fail(`slot ${move.slot} moves twice`)
    if (owner.get(move.slot) !== move.sourceId) expect.fail(`slot ${move.slot} does not belong to its planned source`)
    if (move.sourceId === move.targetId) expect.fail(`slot ${move.slot} moves to its own source`)
    moved.add(move.slot)
    owner.set(move.slot, move.targetId)
  }
  const counts = new Map(masters.map((master) => [master.id, 0]))
  for (const id of owner.values()) counts.set(id, (counts.get(id) ?? 0) + 1)
  return counts
}

/** A per-slot load that counts how often the planner reads it: the planner's work. */
function countingLoad(values: number[]): {load: number[]; reads: () => number} {
  let reads = 0
  const load = new Proxy(values, {
    get(target, property, receiver) {
      if (typeof property === 'string' && property.charCodeAt(0) <= 57) reads++
      return Reflect.get(target, property, receiver)
    },
  })
  return {load, reads: () => reads}
}

function randomLoad(seed: number): number[] {
  const random = seededRandom(seed)
  return Array.from({length: SLOT_COUNT}, () => Math.floor(random() * 100))
}

function mastersFor(count: number, seed = 1): ClusterNode[] {
  return mastersOf(parseClusterNodes(fragmentedClusterNodes(count, seed).text))
}

describe('large, fragmented clusters (500 masters)', () => {
  const {layout, text} = fragmentedClusterNodes(MASTERS)
  const nodes = parseClusterNodes(text)
  const masters = mastersOf(nodes)

  it('parses every master\'s dozens of mostly single-slot ranges exactly, each slot owned once', () => {
    expect(nodes).to.have.length(MASTERS * 2)
    expect(masters.map((master) => master.slots)).to.deep.equal(layout)
    expect(masters.reduce((sum, master) => sum + countSlots(master.slots), 0)).to.equal(SLOT_COUNT)
    expect(toRanges(masters.flatMap((master) => expandRanges(master.slots)))).to.deep.equal([[0, SLOT_COUNT - 1]])
    const ranges = masters.reduce((sum, master) => sum + master.slots.length, 0)
    expect(ranges).to.be.above(SLOT_COUNT * 0.9)
  })

  it('plans a slot rebalance that leaves every master within one slot of its share, each slot moved once', () => {
    const result = planRebalance(masters, {thresholdPct: 2})
    expect(result.balanced).to.equal(false)
    const counts = applyPlan(masters, result.plan)
    const share = SLOT_COUNT / MASTERS
    for (const count of counts.values()) expect(Math.abs(count - share)).to.be.below(1)
    expect(result.plan.moves).to.have.length(result.nodes.reduce((sum, node) => sum + Math.max(0, node.slotsBefore - node.slotsAfter), 0))
  })

  it('plans a by-keys rebalance that drains 100 weight-0 masters and narrows the key spread of the others', () => {
    const load = randomLoad(7)
    const drained = new Set(masters.slice(0, 100).map((master) => master.id))
    const result = planRebalance(masters, {by: 'keys', slotLoad: load, weights: new Map([...drained].map((id) => [id, 0]))})
    const counts = applyPlan(masters, result.plan)
    for (const id of drained) expect(counts.get(id)).to.equal(0)
    const live = result.nodes.filter((node) => !drained.has(node.id))
    const spread = (key: 'loadAfter' | 'loadBefore') => Math.max(...live.map((node) => node[key])) - Math.min(...live.map((node) => node[key]))
    expect(spread('loadAfter')).to.be.below(spread('loadBefore') / 2)
  })

  it('drains several weight-0 masters by keys without moving a slot twice (slots they hand out stay where they land)', () => {
    // 4 even masters, 2 drained, load rising with the slot number: before the fix, a master
    // that received a drained slot and overshot its target gave that same slot on
    const even = splitEvenly(4).map((range, index) => ({address: `10.0.0.${index}:7000`, id: masterId(index), slots: [range]}))
    const load = Array.from({length: SLOT_COUNT}, (_, slot) => Math.floor(slot / 100))
    const result = planRebalance(even, {by: 'keys', slotLoad: load, weights: new Map([[masterId(0), 0], [masterId(1), 0]])})
    const counts = applyPlan(even, result.plan)
    expect(counts.get(masterId(0))).to.equal(0)
    expect(counts.get(masterId(1))).to.equal(0)
    expect((counts.get(masterId(2)) ?? 0) + (counts.get(masterId(3)) ?? 0)).to.equal(SLOT_COUNT)
  })

  it('does by-keys planning work that does not grow with the number of masters (counted reads of the per-slot load, 250 vs 500)', () => {
    const work = (count: number) => {
      const many = mastersFor(count, 3)
      const {load, reads} = countingLoad(randomLoad(11))
      const result = planRebalance(many, {by: 'keys', slotLoad: load, weights: new Map([[many[1].id, 0]])})
      expect(result.plan.moves.length).to.be.above(500)
      return reads()
    }
    const at250 = work(250)
    const at500 = work(500)
    // every slot's load is read a few dozen times at most (sorting, best-fit searches); the
    // scan of every donor × receiver pair it replaces read it ~570 million times at 500 masters
    expect(at500).to.be.below(40 * SLOT_COUNT)
    expect(at500).to.be.below(2 * at250)
  })

  it('plans a reshard of 8192 slots from the 499 other masters, in proportion to what each owns', () => {
    const plan = planReshard(masters, {from: 'all', slots: SLOT_COUNT / 2, to: masters[0].id})
    expect(plan.moves).to.have.length(SLOT_COUNT / 2)
    const counts = applyPlan(masters, plan)
    expect(counts.get(masters[0].id)).to.equal(countSlots(masters[0].slots) + SLOT_COUNT / 2)
    const given = new Map<string, number>()
    for (const move of plan.moves) given.set(move.sourceId, (given.get(move.sourceId) ?? 0) + 1)
    const others = SLOT_COUNT - countSlots(masters[0].slots)
    for (const master of masters.slice(1)) {
      const fair = (countSlots(master.slots) * (SLOT_COUNT / 2)) / others
      expect(Math.abs((given.get(master.id) ?? 0) - fair)).to.be.below(2)
    }
  })

  it('renders the plan table of a 500-master rebalance: one row per source → target pair, the counts adding up', () => {
    const result = planRebalance(masters, {thresholdPct: 2})
    const addressOf = new Map(masters.map((master) => [master.id, master.address]))
    const lines = stripAnsi(planTable(result.plan, (id) => addressOf.get(id) ?? id)).split('\n')
    const rows = lines.filter((line) => /^│ 10\./.test(line))
    const pairs = new Set(result.plan.moves.map((move) => `${move.sourceId} ${move.targetId}`))
    expect(rows).to.have.length(pairs.size)
    const total = rows.reduce((sum, row) => sum + Number(row.split('│')[3].trim()), 0)
    expect(total).to.equal(result.plan.moves.length)
  })

  it('checks and summarizes a 1000-node cluster: no errors, each master listed before its replica', () => {
    const own = nodes.map((node) => ({...node, myself: false}))
    // every node's view is the same text: a few parsed views stand for all (1000 × 1000 lines is the loader's job)
    const view = (node: ClusterNode): NodeView => ({address: node.address, clusterInfo: {cluster_state: 'ok'}, id: node.id, nodes: own, reachable: true})
    const snapshot: ClusterSnapshot = {nodes: own, seedAddress: own[0].address, seedId: own[0].id, views: Object.fromEntries(own.map((node) => [node.id, view(node)]))}
    const findings = runChecks(snapshot)
    expect(findings.filter((finding) => finding.severity === 'error')).to.deep.equal([])
    const ordered = orderedNodes(snapshot)
    expect(ordered).to.have.length(MASTERS * 2)
    expect(ordered[0].role).to.equal('master')
    expect(ordered[1].masterId).to.equal(ordered[0].id)
    const summaries = ordered.map((node) => summarizeNode(snapshot, node))
    expect(summaries.filter((summary) => summary.role === 'master').every((summary) => summary.replicaCount === 1)).to.equal(true)
  })

  it('merges ranges given in any order, overlapping or touching, and keeps ranges already apart as they are', () => {
    const apart: Array<[number, number]> = [[0, 3], [5, 5], [9, 12]]
    expect(mergeRanges(apart)).to.equal(apart)
    expect(mergeRanges([[9, 12], [0, 3], [4, 4], [2, 6], [20, 20]])).to.deep.equal([[0, 6], [9, 12], [20, 20]])
    expect(toRanges([5, 3, 4, 4, 10, 0])).to.deep.equal([[0, 0], [3, 5], [10, 10]])
  })
})
