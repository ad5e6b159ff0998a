/**
 * The one gate before a verb changes where keys live (reshard, rebalance, apply, del-node
 * --drain, import, restore, backup): open slots, failed or unreachable masters, uncovered
 * slots, nodes that disagree, cluster_state not ok refuse the run.
 */
import {BLOCKS_MIGRATION, type Finding, runChecks} from './checks.js'
import type {ClusterSnapshot} from '../cluster/loader.js'
import {openSlotsOf} from '../cluster/topology.js'
import {SlotctlError} from '../core/errors.js'

export interface GateOptions {
  /** slots a resumed run left open itself: not a reason to refuse */
  allowedOpenSlots?: ReadonlySet<number>
  /** the verb continues interrupted runs (--resume), so the hint names that before fix */
  resumable?: boolean
}

/** The findings that stop the run; OPEN_SLOT only when a slot other than the allowed ones is open. */
export function unsafeProblems(snapshot: ClusterSnapshot, allowedOpenSlots: ReadonlySet<number> = new Set()): Finding[] {
  const blocking = runChecks(snapshot).filter((finding) => BLOCKS_MIGRATION.has(finding.code))
  const unexpectedOpen = snapshot.nodes.flatMap((node) => openSlotsOf(node)).filter((slot) => !allowedOpenSlots.has(slot))
  return blocking.filter((finding) => finding.code !== 'OPEN_SLOT' || unexpectedOpen.length > 0)
}

/** Throws E_UNSAFE_CLUSTER ("refusing to VERB: ...") naming the first problem and how many more. */
export function refuseUnsafeCluster(snapshot: ClusterSnapshot, verb: string, commandHint: (args: string) => string, options: GateOptions = {}): void {
  const problems = unsafeProblems(snapshot, options.allowedOpenSlots)
  if (problems.length === 0) return
  const repair = options.resumable
    ? `an interrupted slotctl run continues with its --resume JOURNAL; anything else: ${commandHint(`fix ${snapshot.seedAddress} --dry-run`)}`
    : `repair it first: ${commandHint(`fix ${snapshot.seedAddress} --dry-run`)}`
  throw new SlotctlError(`refusing to ${verb}: ${problems[0].message}${problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : ''}`, {
    code: 'E_UNSAFE_CLUSTER',
    suggestions: [`see: ${commandHint(`check ${snapshot.seedAddress}`)}`, repair],
  })
}
