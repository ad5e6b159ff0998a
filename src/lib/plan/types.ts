/**
 * The plan format shared by every planner that moves slots (reshard, rebalance, drain, fix)
 * and by the one executor that runs them. Plans are plain JSON: `--dry-run --out plan.json`
 * writes one, `slotctl apply plan.json` runs it, and the journal records one.
 */

export interface SlotMove {
  slot: number
  /** Node id that owns the slot when the plan is made (apply refuses if that changed). */
  sourceId: string
  targetId: string
}

export interface PlanNode {
  id: string
  address: string
}

/** A key found above --big-key-bytes in a slot to move, and how long moving it would block its master. */
export interface BigKey {
  slot: number
  /** UTF-8 when it is, else 0x-hex */
  key: string
  bytes: number
  /** TYPE and element count (HLEN, LLEN, ...), when the server told them */
  type?: string
  elements?: number
  estimatedBlockMs: number
  /** half of the source's cluster-node-timeout */
  blockLimitMs: number
}

export interface MigrationPlan {
  version: 1
  kind: 'drain' | 'fix' | 'rebalance' | 'reshard'
  createdAt: string
  /** Every node a move names, with its address at plan time. */
  nodes: PlanNode[]
  moves: SlotMove[]
  /** Big keys in the slots to move, found when the plan was shown (informational). */
  bigKeys?: BigKey[]
}

/** The ids of every node a plan's moves name (as source or target). */
export function movedNodeIds(moves: readonly SlotMove[]): Set<string> {
  const ids = new Set<string>()
  for (const move of moves) ids.add(move.sourceId).add(move.targetId)
  return ids
}
