import {expect} from 'chai'

import {type RebalanceMaster, type RebalanceResult, deviationPct, planDrain, planRebalance} from '../../src/lib/plan/rebalance.js'
import type {MigrationPlan} from '../../src/lib/plan/types.js'
import {parseWeights} from '../../src/lib/plan/weights.js'
import {datasetBytes, estimateSlotBytes} from '../../src/lib/cluster/slot-stats.js'
import {SLOT_COUNT, type SlotRange, countSlots, expandRanges, splitEvenly, toRanges} from '../../src/lib/core/slots.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {A, B, C, healthy} from '../fixtures/cluster-nodes.js'

const D = 'd0'.padEnd(40, '0')
const E = 'e0'.padEnd(40, '0')
const NOW = new Date('2026-01-01T00:00:00Z')

function master(id: string, slots: SlotRange[]): RebalanceMaster {
  return {address: `10.0.0.${id.charCodeAt(0) % 50}:7000`, id, slots}
}

/** n masters with an even redis-cli style layout, plus any slotless masters. */
function evenCluster(ids: string[], empty: string[] = []): RebalanceMaster[] {
  const ranges = splitEvenly(ids.length)
  return [...ids.map((id, i) => master(id, [ranges[i]])), ...empty.map((id) => master(id, []))]
}

/** Slot counts after applying a plan, checking the plan against the starting owners. */
function applyPlan(masters: RebalanceMaster[], plan: MigrationPlan): Map<string, number[]> {
  const owned = new Map(masters.map((m) => [m.id, new Set(expandRanges(m.slots))]))
  const seen = new Set<number>()
  // Plain checks in the loop: a chai assertion per move makes 16k-move plans slow to verify.
  for (const move of plan.moves) {
    if (seen.has(move.slot)) expect.fail(`slot ${move.slot} moved twice`)
    seen.add(move.slot)
    if (move.sourceId === move.targetId) expect.fail(`slot ${move.slot} moves to its own source`)
    if (!owned.get(move.sourceId)!.has(move.slot)) expect.fail(`source ${move.sourceId.slice(0, 2)} does not own ${move.slot}`)
    owned.get(move.sourceId)!.delete(move.slot)
    owned.get(move.targetId)!.add(move.slot)
  }
  const total = [...owned.values()].reduce((sum, set) => sum + set.size, 0)
  expect(total).to.equal(masters.reduce((sum, m) => sum + countSlots(m.slots), 0))
  const named = new Set(plan.nodes.map((node) => node.id))
  for (const move of plan.moves) expect(named.has(move.sourceId) && named.has(move.targetId)).to.equal(true)
  return new Map([...owned].map(([id, set]) => [id, [...set].sort((a, b) => a - b)]))
}

function counts(after: Map<string, number[]>): Record<string, number> {
  return Object.fromEntries([...after].map(([id, slots]) => [id.slice(0, 2), slots.length]))
}

function node(result: RebalanceResult, id: string) {
  return result.nodes.find((n) => n.id === id)!
}

describe('planRebalance (by slots)', () => {
  it('moves exactly 4096 slots to a new empty master when going from 3 to 4 masters', () => {
    const masters = evenCluster([A, B, C], [D])
    const result = planRebalance(masters, {now: NOW, useEmptyMasters: true})
    expect(result.balanced).to.equal(false)
    expect(result.plan.kind).to.equal('rebalance')
    expect(result.plan.moves).to.have.length(4096)
    expect(result.plan.moves.every((move) => move.targetId === D)).to.equal(true)
    const after = applyPlan(masters, result.plan)
    expect(Object.values(counts(after))).to.deep.equal([4096, 4096, 4096, 4096])
  })

  it('reports the receiving master\'s counts before and after, and how far off each master is from its target', () => {
    const masters = evenCluster([A, B, C], [D])
    const result = planRebalance(masters, {now: NOW, useEmptyMasters: true})
    const after = counts(applyPlan(masters, result.plan))
    for (const report of result.nodes) expect(report.slotsAfter, report.id.slice(0, 2)).to.equal(after[report.id.slice(0, 2)])
    expect(node(result, D)).to.include({loadAfter: 4096, offBy: -4096, offByPct: -100, slotsAfter: 4096, slotsBefore: 0, target: 4096})
    // measured against the target (4096), not against the current count (5461): +33.3%, not 25%
    expect(node(result, A)).to.include({offBy: 5461 - 4096, slotsAfter: 4096, slotsBefore: 5461})
    expect(node(result, A).offByPct).to.be.closeTo((100 * (5461 - 4096)) / 4096, 1e-9)
  })

  it('says that --use-empty-masters would use the masters without slots it leaves out', () => {
    const result = planRebalance(evenCluster([A, B, C], [D]), {now: NOW})
    expect(result.warnings.map((warning) => warning.code)).to.deep.equal(['EMPTY_MASTERS_SKIPPED'])
    expect(result.warnings[0].message).to.match(/1 master\(s\) without slots take no part \(10\.0\.0\.\d+:7000\): --use-empty-masters would give them their share/)
    expect(planRebalance(evenCluster([A, B, C], [D]), {now: NOW, useEmptyMasters: true}).warnings).to.deep.equal([])
  })

  it('leaves a slotless master out unless --use-empty-masters is set', () => {
    const masters = evenCluster([A, B, C], [D])
    const result = planRebalance(masters, {now: NOW})
    expect(result.balanced).to.equal(true)
    expect(result.plan.moves).to.have.length(0)
    expect(node(result, D).participating).to.equal(false)
  })

  it('warns when a weight is given to a slotless master that does not participate', () => {
    const result = planRebalance(evenCluster([A, B, C], [D]), {weights: new Map([[D, 2]])})
    expect(result.warnings.map((warning) => warning.message).join(' ')).to.match(/use-empty-masters/)
    expect(result.plan.moves).to.have.length(0)
  })

  it('reports balanced and moves nothing when every master is within the threshold', () => {
    // 5561 / 5461 / 5362: the first is 1.8% over its target of 5461.33, the last 1.85% under
    const masters = [master(A, [[0, 5560]]), master(B, [[5561, 11021]]), master(C, [[11022, 16383]])]
    const result = planRebalance(masters, {now: NOW})
    expect(result.balanced).to.equal(true)
    expect(result.plan.moves).to.deep.equal([])
  })

  it('balances fully once one master is over the threshold', () => {
    // 5661 slots: ~3.5% over target
    const masters = [master(A, [[0, 5660]]), master(B, [[5661, 11021]]), master(C, [[11022, 16383]])]
    const result = planRebalance(masters, {now: NOW})
    expect(result.balanced).to.equal(false)
    const after = counts(applyPlan(masters, result.plan))
    expect(Object.values(after).sort()).to.deep.equal([5461, 5461, 5462])
    // minimal: exactly the surplus moves (5661 − 5462 or 5461), and only from the donor
    expect(result.plan.moves.every((move) => move.sourceId === A)).to.equal(true)
    expect(result.plan.moves).to.have.length(5661 - after[A.slice(0, 2)])
  })

  it('honours a higher threshold, and a threshold of 0 balances any difference', () => {
    const masters = [master(A, [[0, 5660]]), master(B, [[5661, 11021]]), master(C, [[11022, 16383]])]
    expect(planRebalance(masters, {thresholdPct: 5}).balanced).to.equal(true)
    const strict = [master(A, [[0, 5470]]), master(B, [[5471, 10922]]), master(C, [[10923, 16383]])]
    expect(planRebalance(strict).balanced).to.equal(true)
    expect(planRebalance(strict, {thresholdPct: 0}).plan.moves.length).to.be.greaterThan(0)
  })

  it('gives weighted masters proportionally more slots', () => {
    const masters = evenCluster([A, B, C, D])
    const result = planRebalance(masters, {weights: new Map([[A, 2]])})
    const after = counts(applyPlan(masters, result.plan))
    // 16384 · 2/5 = 6553.6 and 3276.8 each: largest remainders round to 6554 + 3 × 3277 − 1
    expect(after[A.slice(0, 2)]).to.be.within(6553, 6554)
    expect(Object.values(after).reduce((a, b) => a + b, 0)).to.equal(SLOT_COUNT)
    for (const id of [B, C, D]) expect(after[id.slice(0, 2)]).to.be.within(3276, 3277)
  })

  it('drains a master given weight 0 and spreads its slots over the others', () => {
    const masters = evenCluster([A, B, C, D])
    const result = planRebalance(masters, {now: NOW, weights: new Map([[B, 0]])})
    const after = applyPlan(masters, result.plan)
    expect(after.get(B)).to.deep.equal([])
    expect(result.plan.moves).to.have.length(4096)
    expect(result.plan.moves.every((move) => move.sourceId === B)).to.equal(true)
    const others = [A, C, D].map((id) => after.get(id)!.length)
    expect(Math.max(...others) - Math.min(...others)).to.be.at.most(1)
  })

  it('rounds when 16384 does not divide: 16384 over 3 and over 5 and 7 masters', () => {
    for (const n of [3, 5, 7]) {
      const ids = [A, B, C, D, E, 'f0'.padEnd(40, '0'), '70'.padEnd(40, '0')].slice(0, n)
      // start from everything on one master
      const masters = ids.map((id, i) => master(id, i === 0 ? [[0, 16_383]] : []))
      const result = planRebalance(masters, {useEmptyMasters: true})
      const after = [...applyPlan(masters, result.plan).values()].map((slots) => slots.length)
      expect(after.reduce((a, b) => a + b, 0)).to.equal(SLOT_COUNT)
      expect(Math.max(...after) - Math.min(...after)).to.be.at.most(1)
      expect(result.plan.moves).to.have.length(SLOT_COUNT - Math.max(...after.slice(0, 1)))
    }
  })

  it('is deterministic and independent of input order', () => {
    const masters = [master(A, [[0, 9000]]), master(B, [[9001, 12000]]), master(C, [[12001, 16383]]), master(D, [])]
    const one = planRebalance(masters, {now: NOW, useEmptyMasters: true})
    const two = planRebalance([...masters].reverse(), {now: NOW, useEmptyMasters: true})
    expect(JSON.stringify(two)).to.equal(JSON.stringify(one))
  })

  it('keeps every master within the threshold after an uneven start (invariants)', () => {
    const masters = [master(A, [[0, 100], [200, 9000]]), master(B, [[101, 199], [9001, 9100]]), master(C, [[9101, 16383]]), master(D, []), master(E, [])]
    const weights = new Map([[C, 1.5], [E, 0.5]])
    const result = planRebalance(masters, {useEmptyMasters: true, weights})
    const after = applyPlan(masters, result.plan)
    const weightSum = 1 + 1 + 1.5 + 1 + 0.5
    for (const m of masters) {
      const target = (SLOT_COUNT * (weights.get(m.id) ?? 1)) / weightSum
      expect(deviationPct(after.get(m.id)!.length, target)).to.be.below(2)
    }
    const moved = result.plan.moves.length
    const surplus = masters.reduce((sum, m) => sum + Math.max(0, countSlots(m.slots) - after.get(m.id)!.length), 0)
    expect(moved).to.equal(surplus)
  })

  it('rejects a negative threshold and all-zero weights', () => {
    const masters = evenCluster([A, B])
    expect(() => planRebalance(masters, {thresholdPct: -1})).to.throw(/threshold/)
    expect(() => planRebalance(masters, {weights: new Map([[A, 0], [B, 0]])})).to.throw(/weight 0/)
  })
})

/** Slot loads where the first `hot` slots of the map carry `heavy` keys and the rest `light`. */
function skewedLoad(hot: number, heavy: number, light: number): number[] {
  return Array.from({length: SLOT_COUNT}, (_, slot) => (slot < hot ? heavy : light))
}

function loads(after: Map<string, number[]>, load: number[]): number[] {
  return [...after.values()].map((slots) => slots.reduce((sum, slot) => sum + load[slot], 0))
}

const spread = (values: number[]) => Math.max(...values) - Math.min(...values)

describe('planRebalance (by keys / memory)', () => {
  it('reduces the key spread of a skewed dataset that is balanced by slot count', () => {
    const masters = evenCluster([A, B, C])
    const load = skewedLoad(3000, 100, 10) // A holds most keys
    const bySlots = planRebalance(masters, {slotLoad: load})
    expect(bySlots.balanced).to.equal(true)
    const result = planRebalance(masters, {by: 'keys', slotLoad: load})
    expect(result.balanced).to.equal(false)
    const before = loads(new Map(masters.map((m) => [m.id, expandRanges(m.slots)])), load)
    const after = loads(applyPlan(masters, result.plan), load)
    expect(spread(after)).to.be.below(spread(before) / 10)
    const total = load.reduce((a, b) => a + b, 0)
    for (const keys of after) expect(deviationPct(keys, total / 3)).to.be.below(2)
    // loads reported match what the plan does
    expect(result.nodes.map((n) => n.loadAfter)).to.deep.equal(after)
  })

  it('moves only from the overloaded master, heavy slots first, fewer slots than a by-count split', () => {
    const masters = evenCluster([A, B, C], [D])
    const load = skewedLoad(2000, 50, 5)
    const result = planRebalance(masters, {by: 'keys', slotLoad: load, useEmptyMasters: true})
    const after = loads(applyPlan(masters, result.plan), load)
    const total = load.reduce((a, b) => a + b, 0)
    for (const keys of after) expect(deviationPct(keys, total / 4)).to.be.below(2)
    expect(result.plan.moves.length).to.be.below(4096)
    expect(result.plan.moves.every((move) => move.sourceId === A)).to.equal(true)
  })

  it('moves nothing when key counts are within the threshold, and nothing when there are no keys', () => {
    const masters = evenCluster([A, B, C])
    expect(planRebalance(masters, {by: 'keys', slotLoad: skewedLoad(0, 0, 7)}).balanced).to.equal(true)
    expect(planRebalance(masters, {by: 'keys', slotLoad: skewedLoad(0, 0, 0)}).balanced).to.equal(true)
  })

  it('still drains a weight-0 master by keys, including its empty slots', () => {
    const masters = evenCluster([A, B, C])
    const load = skewedLoad(100, 40, 0)
    const result = planRebalance(masters, {by: 'keys', slotLoad: load, weights: new Map([[A, 0]])})
    const after = applyPlan(masters, result.plan)
    expect(after.get(A)).to.deep.equal([])
    expect(after.get(B)!.length + after.get(C)!.length).to.equal(SLOT_COUNT)
  })

  it('balances bytes with --by memory the same way (fractional loads)', () => {
    const masters = evenCluster([A, B])
    const load = Array.from({length: SLOT_COUNT}, (_, slot) => (slot < 8192 ? 1.75 : 0.25) * ((slot % 7) + 1))
    const result = planRebalance(masters, {by: 'memory', slotLoad: load})
    const after = loads(applyPlan(masters, result.plan), load)
    const total = load.reduce((a, b) => a + b, 0)
    for (const bytes of after) expect(deviationPct(bytes, total / 2)).to.be.below(2)
  })

  it('needs a per-slot load for --by keys', () => {
    expect(() => planRebalance(evenCluster([A, B]), {by: 'keys'})).to.throw(/per-slot load/)
  })
})

describe('planDrain', () => {
  it('splits a master evenly over the others as contiguous runs', () => {
    const masters = evenCluster([A, B, C, D])
    const plan = planDrain(masters, C, NOW)
    expect(plan.kind).to.equal('drain')
    const after = applyPlan(masters, plan)
    expect(after.get(C)).to.deep.equal([])
    expect([A, B, D].map((id) => after.get(id)!.length).sort()).to.deep.equal([5461, 5461, 5462])
    for (const id of [A, B, D]) {
      const received = plan.moves.filter((move) => move.targetId === id).map((move) => move.slot)
      expect(toRanges(received)).to.have.length(1)
    }
  })

  it('gives the larger shares to the masters that own fewer slots', () => {
    const masters = [master(A, [[0, 9]]), master(B, [[10, 8000]]), master(C, [[8001, 16383]]), master(D, [])]
    const plan = planDrain(masters, A, NOW)
    const shares = [D, B, C].map((id) => plan.moves.filter((move) => move.targetId === id).length)
    expect(shares).to.deep.equal([4, 3, 3])
  })

  it('plans nothing for a master without slots', () => {
    expect(planDrain(evenCluster([A, B], [D]), D, NOW).moves).to.deep.equal([])
  })
})

describe('parseWeights', () => {
  const nodes = parseClusterNodes(healthy)

  it('resolves id prefixes and accepts 0 and decimals', () => {
    const weights = parseWeights(['a111=0', `${B}=2.5`], nodes)
    expect([...weights]).to.deep.equal([
      [A, 0],
      [B, 2.5],
    ])
  })

  it('rejects unknown ids, negative or non-numeric weights, replicas and malformed specs with usage errors', () => {
    for (const spec of ['ff=1', 'a1=-1', 'a1=abc', 'a1=', '=3', 'a1', 'd4=1']) {
      expect(() => parseWeights([spec], nodes), spec).to.throw().with.property('exitCode', 2)
    }
  })
})

describe('slot byte estimates (--by memory)', () => {
  it('shares each master\'s dataset bytes over its slots by key count', () => {
    const masters = [master(A, [[0, 1]]), master(B, [[2, 3]])]
    const keys = Array.from({length: SLOT_COUNT}, () => 0)
    keys[0] = 30
    keys[1] = 10
    keys[3] = 5
    const bytes = estimateSlotBytes(masters, keys, new Map([[A, 4000], [B, 500]]))
    expect(bytes.slice(0, 4)).to.deep.equal([3000, 1000, 0, 500])
    expect(bytes.reduce((a, b) => a + b, 0)).to.equal(4500)
  })

  it('reads the dataset size from INFO memory, falling back to used_memory minus startup', () => {
    expect(datasetBytes({used_memory: '9000', used_memory_dataset: '4000', used_memory_startup: '1000'})).to.equal(4000)
    expect(datasetBytes({used_memory: '9000', used_memory_startup: '1000'})).to.equal(8000)
  })
})
