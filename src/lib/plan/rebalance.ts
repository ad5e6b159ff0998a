/**
 * Rebalance and drain planners: pure functions from a master list (and, for --by keys|memory,
 * a per-slot load) to a MigrationPlan. No I/O here.
 *
 * Semantics follow `redis-cli --cluster rebalance`:
 * - participants are the masters that own slots; slotless masters join only with
 *   useEmptyMasters; a weight of 0 drains a master;
 * - a node is "over the threshold" when it is off its target by more than threshold percent of
 *   the target (redis-cli measures against the current count instead, which makes an
 *   over-full master look closer than it is; an empty node counts when its target is above 1);
 *   when no node is, nothing moves and the cluster is balanced;
 * - otherwise every participant is brought to its weight-proportional target.
 *
 * Where slotctl differs on purpose: targets are rounded by largest remainder (redis-cli floors
 * and then trims receivers), so exactly Σ|surplus| slots move, each at most once, and the
 * result is the same for the same input whatever the input order.
 */
import {type SlotRange, countSlots, expandRanges} from '../core/slots.js'
import {type MigrationPlan, type SlotMove, movedNodeIds} from './types.js'
import type {Issue} from '../core/result.js'
import {Heap} from './heap.js'

export type BalanceBy = 'keys' | 'memory' | 'slots'

export interface RebalanceMaster {
  id: string
  address: string
  slots: readonly SlotRange[]
}

export interface RebalanceOptions {
  /** node id → weight (default 1). Ids must be full ids of masters in the list. */
  weights?: ReadonlyMap<string, number>
  /** Percent; default 2. */
  thresholdPct?: number
  useEmptyMasters?: boolean
  by?: BalanceBy
  /** For by keys|memory: load of each slot (index = slot), in keys or estimated bytes. */
  slotLoad?: ArrayLike<number>
  /** Plan timestamp; injectable so plans are reproducible in tests. */
  now?: Date
}

export interface RebalanceNodeReport {
  id: string
  address: string
  weight: number
  participating: boolean
  slotsBefore: number
  slotsAfter: number
  /** Load in the balanced unit (slots, keys or bytes) before and after, and the target. */
  loadBefore: number
  loadAfter: number
  target: number
  /** Before the moves: current − target, in the balanced unit (negative: below its share). */
  offBy: number
  /** offBy as a percentage of the target; null for a weight-0 master that still holds load. */
  offByPct: number | null
}

export interface RebalanceResult {
  plan: MigrationPlan
  by: BalanceBy
  thresholdPct: number
  /** True when no participant was over the threshold, so nothing moves. */
  balanced: boolean
  nodes: RebalanceNodeReport[]
  warnings: Issue[]
}

export const DEFAULT_THRESHOLD_PCT = 2

interface Participant {
  id: string
  address: string
  weight: number
  /** Slots still owned, ascending. */
  slots: number[]
  load: number
  target: number
}

const byId = (a: {id: string}, b: {id: string}) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

/** How far `current` is from `target`, in percent of the target (the threshold's measure). */
export function deviationPct(current: number, target: number): number {
  // an empty node that should hold at most one slot is not worth a rebalance
  if (current === 0) return target > 1 ? 100 : 0
  if (target === 0) return Number.POSITIVE_INFINITY
  return (100 * Math.abs(current - target)) / target
}

function offByPct(current: number, target: number): number | null {
  if (target === 0) return current === 0 ? 0 : null
  return (100 * (current - target)) / target
}

function slotLoadOf(by: BalanceBy, slotLoad: ArrayLike<number> | undefined): (slot: number) => number {
  if (by === 'slots') return () => 1
  if (!slotLoad) throw new Error(`planRebalance: --by ${by} needs a per-slot load`)
  return (slot) => slotLoad[slot] ?? 0
}

/**
 * Integer targets summing exactly to `total`, proportional to weight. The leftover units go
 * to the largest fractional remainders; ties go to the node that already holds more, so
 * fewer slots move.
 */
function integerTargets(participants: Participant[], total: number): number[] {
  const weightSum = participants.reduce((sum, p) => sum + p.weight, 0)
  const exact = participants.map((p) => (total * p.weight) / weightSum)
  const targets = exact.map((value) => Math.floor(value))
  let left = total - targets.reduce((sum, value) => sum + value, 0)
  const order = participants
    .map((p, index) => ({index, p, remainder: exact[index] - targets[index]}))
    .filter(({p}) => p.weight > 0)
    .sort((a, b) => b.remainder - a.remainder || b.p.load - a.p.load || byId(a.p, b.p))
  for (const {index} of order) {
    if (left <= 0) break
    targets[index]++
    left--
  }
  return targets
}

class MoveList {
  readonly moves: SlotMove[] = []
  private readonly moved = new Set<number>()

  has(slot: number): boolean {
    return this.moved.has(slot)
  }

  add(slot: number, source: Participant, target: Participant, load: number): void {
    if (this.moved.has(slot)) throw new Error(`planner bug: slot ${slot} moved twice`)
    this.moved.add(slot)
    this.moves.push({slot, sourceId: source.id, targetId: target.id})
    source.load -= load
    target.load += load
  }
}

/** Slot-count balancing: donors give their lowest-numbered slots, largest surplus first. */
function balanceSlots(participants: Participant[], moves: MoveList): void {
  const surplus = new Map(participants.map((p) => [p.id, p.slots.length - p.target]))
  const donors = participants.filter((p) => surplus.get(p.id)! > 0).sort((a, b) => surplus.get(b.id)! - surplus.get(a.id)! || byId(a, b))
  const receivers = participants.filter((p) => surplus.get(p.id)! < 0).sort((a, b) => surplus.get(a.id)! - surplus.get(b.id)! || byId(a, b))
  let d = 0
  let r = 0
  while (d < donors.length && r < receivers.length) {
    const donor = donors[d]
    const receiver = receivers[r]
    const count = Math.min(surplus.get(donor.id)!, -surplus.get(receiver.id)!)
    for (const slot of donor.slots.splice(0, count)) {
      moves.add(slot, donor, receiver, 1)
      receiver.slots.push(slot)
    }
    surplus.set(donor.id, surplus.get(donor.id)! - count)
    surplus.set(receiver.id, surplus.get(receiver.id)! + count)
    if (surplus.get(donor.id) === 0) d++
    if (surplus.get(receiver.id) === 0) r++
  }
}

/** Index of the largest value ≤ limit in an ascending array, or -1. */
function largestAtMost(sorted: number[], loadOf: (slot: number) => number, limit: number): number {
  let lo = 0
  let hi = sorted.length - 1
  let found = -1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (loadOf(sorted[mid]) <= limit) {
      found = mid
      lo = mid + 1
    } else hi = mid - 1
  }
  return found
}

/**
 * A weight-0 master gives every slot it owns. Loaded slots go heaviest first to whichever
 * receiver is furthest below its target; empty slots are dealt to the receivers with the
 * fewest slots so the slot map stays even. Each pick pops a heap (only the receiver just
 * served changes), rather than sorting every receiver for every slot.
 */
function drainZeroWeight(donor: Participant, receivers: Participant[], loadOf: (slot: number) => number, moves: MoveList): void {
  const slots = [...donor.slots].sort((a, b) => loadOf(b) - loadOf(a) || a - b)
  donor.slots.length = 0
  const furthestBelow = new Heap<Participant>((a, b) => b.target - b.load - (a.target - a.load) || byId(a, b), receivers)
  let fewestSlots: Heap<Participant> | undefined
  for (const slot of slots) {
    const load = loadOf(slot)
    // the loaded slots all come first: the other heap is built once they are dealt
    const heap = load > 0 ? furthestBelow : (fewestSlots ??= new Heap<Participant>((a, b) => a.slots.length - b.slots.length || byId(a, b), receivers))
    const receiver = heap.pop() as Participant
    moves.add(slot, donor, receiver, load)
    receiver.slots.push(slot)
    heap.push(receiver)
  }
}

/**
 * The receivers (in plan order) by how far each is below its target, as a max segment tree:
 * the largest deficit, and the first receiver whose deficit reaches a value, in O(log n).
 */
class Deficits {
  private readonly width: number
  private readonly tree: Float64Array
  private readonly position = new Map<Participant, number>()

  constructor(private readonly receivers: readonly Participant[]) {
    this.width = 2 ** Math.ceil(Math.log2(Math.max(1, receivers.length)))
    this.tree = new Float64Array(2 * this.width).fill(Number.NEGATIVE_INFINITY)
    for (const [index, receiver] of receivers.entries()) {
      this.position.set(receiver, index)
      this.tree[this.width + index] = receiver.target - receiver.load
    }
    for (let node = this.width - 1; node >= 1; node--) this.tree[node] = Math.max(this.tree[2 * node], this.tree[2 * node + 1])
  }

  largest(): number {
    return this.tree[1]
  }

  /** The first receiver (in plan order) at least `amount` below its target. */
  firstAtLeast(amount: number): Participant | undefined {
    if (!(this.tree[1] >= amount)) return undefined
    let node = 1
    while (node < this.width) node = this.tree[2 * node] >= amount ? 2 * node : 2 * node + 1
    return this.receivers[node - this.width]
  }

  update(receiver: Participant): void {
    let node = this.width + (this.position.get(receiver) as number)
    this.tree[node] = receiver.target - receiver.load
    for (node >>= 1; node >= 1; node >>= 1) this.tree[node] = Math.max(this.tree[2 * node], this.tree[2 * node + 1])
  }
}

/**
 * Load balancing (keys or bytes): whole slots move from above-target to below-target masters.
 * Each step moves the heaviest slot that fits the smaller of the donor's surplus and the
 * receiver's deficit, so nobody overshoots: donors stay donors, receivers stay receivers,
 * and no slot moves twice. It stops when no slot fits any pair. Ties go to the first donor,
 * then the first receiver, in plan order.
 *
 * The heaviest slot a donor can give is its largest that fits min(its surplus, the largest
 * deficit), and the receiver is then the first whose deficit reaches it. Surpluses and
 * deficits only shrink, so a donor's best only shrinks too: donors wait in a heap under
 * their last known best (an upper bound), re-checked when on top. Each move thus costs a
 * few logarithmic steps instead of a scan of every donor × receiver pair.
 */
function balanceLoad(participants: Participant[], loadOf: (slot: number) => number, moves: MoveList): void {
  const drained = participants.filter((p) => p.weight === 0 && p.slots.length > 0)
  const live = participants.filter((p) => p.weight > 0)
  for (const donor of drained) drainZeroWeight(donor, live, loadOf, moves)

  const donors = live.filter((p) => p.load > p.target)
  const deficits = new Deficits(live.filter((p) => p.load < p.target))
  // Per donor, its non-empty slots sorted by load (then slot number) for a best-fit search;
  // a slot it received from a drained master has moved once already
  const available = donors.map((p) => p.slots.filter((slot) => loadOf(slot) > 0 && !moves.has(slot)).sort((a, b) => loadOf(a) - loadOf(b) || a - b))
  const bestOf = (donor: number): {index: number; load: number} | undefined => {
    const room = Math.min(donors[donor].load - donors[donor].target, deficits.largest())
    const index = largestAtMost(available[donor], loadOf, room)
    return index === -1 ? undefined : {index, load: loadOf(available[donor][index])}
  }
  const waiting = new Heap<{donor: number; load: number}>((a, b) => b.load - a.load || a.donor - b.donor)
  for (const donor of donors.keys()) {
    const best = bestOf(donor)
    if (best) waiting.push({donor, load: best.load})
  }
  const given = new Set<number>()
  for (let top = waiting.pop(); top; top = waiting.pop()) {
    const best = bestOf(top.donor)
    if (!best) continue
    if (best.load < top.load) {
      waiting.push({donor: top.donor, load: best.load})
      continue
    }
    const donor = donors[top.donor]
    const receiver = deficits.firstAtLeast(best.load) as Participant
    const [slot] = available[top.donor].splice(best.index, 1)
    given.add(slot)
    receiver.slots.push(slot)
    moves.add(slot, donor, receiver, best.load)
    deficits.update(receiver)
    const next = bestOf(top.donor)
    if (next) waiting.push({donor: top.donor, load: next.load})
  }
  for (const donor of donors) donor.slots = donor.slots.filter((slot) => !given.has(slot))
}

/** Groups moves by (source, target) pair and orders slots within a pair, for readable plans. */
function orderMoves(moves: SlotMove[]): SlotMove[] {
  return [...moves].sort((a, b) => (a.sourceId === b.sourceId ? (a.targetId === b.targetId ? a.slot - b.slot : a.targetId < b.targetId ? -1 : 1) : a.sourceId < b.sourceId ? -1 : 1))
}

function planNodes(moves: SlotMove[], masters: readonly RebalanceMaster[]): MigrationPlan['nodes'] {
  const ids = movedNodeIds(moves)
  return masters
    .filter((master) => ids.has(master.id))
    .map((master) => ({address: master.address, id: master.id}))
    .sort(byId)
}

export function planRebalance(masters: readonly RebalanceMaster[], options: RebalanceOptions = {}): RebalanceResult {
  const by = options.by ?? 'slots'
  const thresholdPct = options.thresholdPct ?? DEFAULT_THRESHOLD_PCT
  if (!(thresholdPct >= 0)) throw new Error('planRebalance: threshold must be ≥ 0')
  const weights = options.weights ?? new Map<string, number>()
  const loadOf = slotLoadOf(by, options.slotLoad)
  const warnings: Issue[] = []

  const sorted = [...masters].sort(byId)
  const participants: Participant[] = []
  const skipped: RebalanceMaster[] = []
  for (const master of sorted) {
    const slots = expandRanges(master.slots)
    const weight = weights.get(master.id) ?? 1
    if (!(weight >= 0) || !Number.isFinite(weight)) throw new Error(`planRebalance: bad weight ${weight} for ${master.id}`)
    if (slots.length === 0 && !options.useEmptyMasters) {
      if (weights.has(master.id) && weight > 0) warnings.push({code: 'WEIGHT_IGNORED', message: `${master.address} owns no slots and takes part only with --use-empty-masters; its weight is ignored`})
      else if (weight > 0) skipped.push(master)
      continue
    }
    participants.push({address: master.address, id: master.id, load: slots.reduce((sum, slot) => sum + loadOf(slot), 0), slots, target: 0, weight})
  }

  const before = new Map(participants.map((p) => [p.id, {load: p.load, slots: p.slots.length}]))
  const live = participants.filter((p) => p.weight > 0)
  if (live.length === 0 && participants.length > 0) throw new Error('planRebalance: every participating master has weight 0')

  const total = participants.reduce((sum, p) => sum + p.load, 0)
  const weightSum = participants.reduce((sum, p) => sum + p.weight, 0)
  const targets = by === 'slots' ? integerTargets(participants, total) : participants.map((p) => (total * p.weight) / weightSum)
  for (const [index, p] of participants.entries()) p.target = targets[index]

  if (skipped.length > 0) {
    const names = skipped.map((master) => master.address).join(', ')
    warnings.push({code: 'EMPTY_MASTERS_SKIPPED', message: `${skipped.length} master(s) without slots take no part (${names}): --use-empty-masters would give them their share`})
  }

  const deviations = new Map(participants.map((p) => [p.id, deviationPct(p.load, p.target)]))
  const anyOver = participants.some((p) => deviations.get(p.id)! > thresholdPct)
  // A weight-0 master is emptied even when it holds no load (by keys on an empty node).
  const mustDrain = participants.some((p) => p.weight === 0 && p.slots.length > 0)
  const balanced = !anyOver && !mustDrain

  const moves = new MoveList()
  if (!balanced) {
    if (by === 'slots') balanceSlots(participants, moves)
    else balanceLoad(participants, loadOf, moves)
  }

  const participantById = new Map(participants.map((p) => [p.id, p]))
  const nodes: RebalanceNodeReport[] = sorted.map((master) => {
    const p = participantById.get(master.id)
    const slots = countSlots(master.slots)
    if (!p) return {address: master.address, id: master.id, loadAfter: 0, loadBefore: 0, offBy: 0, offByPct: 0, participating: false, slotsAfter: slots, slotsBefore: slots, target: 0, weight: weights.get(master.id) ?? 1}
    const loadBefore = before.get(p.id)!.load
    return {
      address: p.address,
      id: p.id,
      offBy: loadBefore - p.target,
      offByPct: offByPct(loadBefore, p.target),
      loadAfter: p.load,
      loadBefore,
      participating: true,
      slotsAfter: p.slots.length,
      slotsBefore: before.get(p.id)!.slots,
      target: p.target,
      weight: p.weight,
    }
  })

  const ordered = orderMoves(moves.moves)
  return {
    balanced,
    by,
    nodes,
    plan: {createdAt: (options.now ?? new Date()).toISOString(), kind: 'rebalance', moves: ordered, nodes: planNodes(ordered, masters), version: 1},
    thresholdPct,
    warnings,
  }
}

/**
 * Empties one master: its slots are split into contiguous runs, one per other master, sized
 * so the receivers end as even as possible (the runs differ by at most one slot; the larger
 * runs go to the receivers that own fewer slots).
 */
export function planDrain(masters: readonly RebalanceMaster[], nodeId: string, now: Date = new Date()): MigrationPlan {
  const node = masters.find((master) => master.id === nodeId)
  if (!node) throw new Error(`planDrain: ${nodeId} is not in the master list`)
  const receivers = masters.filter((master) => master.id !== nodeId).sort((a, b) => countSlots(a.slots) - countSlots(b.slots) || byId(a, b))
  const slots = expandRanges(node.slots)
  if (slots.length > 0 && receivers.length === 0) throw new Error('planDrain: no other master to receive the slots')
  const moves: SlotMove[] = []
  let next = 0
  for (const [index, receiver] of receivers.entries()) {
    const share = Math.floor(slots.length / receivers.length) + (index < slots.length % receivers.length ? 1 : 0)
    for (const slot of slots.slice(next, next + share)) moves.push({slot, sourceId: nodeId, targetId: receiver.id})
    next += share
  }
  const ordered = orderMoves(moves)
  return {createdAt: now.toISOString(), kind: 'drain', moves: ordered, nodes: planNodes(ordered, masters), version: 1}
}
