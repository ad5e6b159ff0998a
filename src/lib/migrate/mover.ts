/**
 * One slot-mover interface, one implementation per protocol. The executor schedules waves
 * (slots of one source/target pair) and journals them; a mover carries a wave out and says,
 * per slot, whether it now belongs to the target (verified) or was left open and why.
 */
import type {SlotEndpoint, SlotMoveTarget} from './slot-protocol.js'

export interface WaveRequest {
  /** slots of one source/target pair, with live addresses */
  moves: SlotMoveTarget[]
  /** slots of the wave whose keys are already at the target: only closing is left (resume) */
  closeOnly: ReadonlySet<number>
  /** every other master, told about the new owner */
  others: readonly SlotEndpoint[]
}

export interface WaveReport {
  /** slots the target now owns in its own and the source's view, with the keys moved for each */
  closed: Array<{slot: number; keys: number; bytes: number}>
  /** slots left open (or never opened), with the reason */
  failed: Array<{slot: number; error: Error}>
  /** slots whose target holds fewer keys right after the close than were moved into it */
  fewerAtTarget: Array<{slot: number; moved: number; atTarget: number}>
}

export interface SlotMover {
  /** What the operator is told ("MIGRATE (legacy)", "CLUSTER MIGRATESLOTS (atomic)"). */
  readonly protocol: string
  moveWave(wave: WaveRequest): Promise<WaveReport>
}
