/**
 * Pure reshard planner: which slots move from which sources to one target. Sources give in
 * proportion to what they own, largest first, lowest-numbered slots first (as redis-cli),
 * but the total always equals the request when the sources own enough.
 */
import {usageError} from '../core/errors.js'
import {SLOT_COUNT, expandRanges} from '../core/slots.js'
import {type ClusterNode, slotCount as countSlotsOf} from '../cluster/topology.js'
import {type MigrationPlan, type SlotMove, movedNodeIds} from './types.js'
import {compareText} from '../core/compare.js'

export interface ReshardRequest {
  /** Source node ids, or 'all' for every master but the target. */
  from: string[] | 'all'
  to: string
  /** How many slots to move (with `from`). */
  slots?: number
  /** Exact slots to move to the target, from whoever owns them. */
  exactSlots?: number[]
}

function planNodes(masters: readonly ClusterNode[], moves: SlotMove[]): MigrationPlan['nodes'] {
  const ids = movedNodeIds(moves)
  return masters.filter((node) => ids.has(node.id)).map((node) => ({address: node.address, id: node.id}))
}

function exactMoves(masters: readonly ClusterNode[], target: ClusterNode, slots: number[]): SlotMove[] {
  const owner = new Map<number, string>()
  for (const node of masters) for (const slot of expandRanges(node.slots)) owner.set(slot, node.id)
  return slots.map((slot) => {
    const sourceId = owner.get(slot)
    if (!sourceId) throw usageError(`slot ${slot} has no owner: cover it first (CLUSTER ADDSLOTS on the master that holds its keys)`)
    if (sourceId === target.id) throw usageError(`slot ${slot} already belongs to the target ${target.address}`)
    return {slot, sourceId, targetId: target.id}
  })
}

/** Shares proportional to ownership; the rounding remainder goes to the largest sources. */
function shares(sources: readonly ClusterNode[], wanted: number): number[] {
  const owned = sources.map((node) => countSlotsOf(node))
  const total = owned.reduce((a, b) => a + b, 0)
  const result = owned.map((count) => Math.floor((wanted * count) / total))
  let remainder = wanted - result.reduce((a, b) => a + b, 0)
  for (let i = 0; remainder > 0; i = (i + 1) % sources.length) {
    if (result[i] < owned[i]) {
      result[i]++
      remainder--
    }
  }
  return result
}

export function planReshard(masters: readonly ClusterNode[], request: ReshardRequest, now = new Date()): MigrationPlan {
  const target = masters.find((node) => node.id === request.to)
  if (!target) throw usageError(`the target ${request.to} is not a master of this cluster`)
  let moves: SlotMove[]
  if (request.exactSlots) {
    moves = exactMoves(masters, target, request.exactSlots)
  } else {
    const wanted = request.slots ?? 0
    if (!Number.isInteger(wanted) || wanted < 1 || wanted > SLOT_COUNT) throw usageError(`--slots must be a whole number from 1 to ${SLOT_COUNT}`)
    // each source once: a repeated one would be planned twice and its slots counted twice
    const fromIds = request.from === 'all' ? masters.filter((node) => node.id !== target.id).map((node) => node.id) : [...new Set(request.from)]
    if (fromIds.includes(target.id)) throw usageError('the target is also listed as a source')
    const byId = new Map(masters.map((node) => [node.id, node]))
    const owned = new Map(masters.map((node) => [node.id, countSlotsOf(node)]))
    const sources = fromIds
      .map((id) => byId.get(id) ?? (() => { throw usageError(`source ${id} is not a master of this cluster`) })())
      .filter((node) => (owned.get(node.id) as number) > 0)
      .sort((a, b) => (owned.get(b.id) as number) - (owned.get(a.id) as number) || compareText(a.id, b.id))
    const available = sources.reduce((sum, node) => sum + (owned.get(node.id) as number), 0)
    if (wanted > available) throw usageError(`the sources own only ${available} slots, fewer than the ${wanted} asked for`)
    const counts = shares(sources, wanted)
    moves = sources.flatMap((node, i) => expandRanges(node.slots).slice(0, counts[i]).map((slot) => ({slot, sourceId: node.id, targetId: target.id})))
  }
  return {createdAt: now.toISOString(), kind: 'reshard', moves, nodes: planNodes(masters, moves), version: 1}
}
