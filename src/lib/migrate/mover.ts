/**
 * One slot-mover interface, one implementation per protocol. The executor schedules waves
 * (slots of one source/target pair) and journals them; a mover carries a wave out and says,
 * per slot, whether it now belongs to the target (verified) or was left open and why.
 */
import type {SlotMoveTarget} from './slot-protocol.js'

export interface WaveRequest {
  /** slots of one source/target pair, with live addresses */
  moves: SlotMoveTarget[]
  /** slots of the wave whose keys are already at the target: only closing is left (resume) */
  closeOnly: ReadonlySet<number>
  /** slots already importing at the target from the source and migrating at the source to it (resume) */
  alreadyOpen: ReadonlySet<number>
}

export interface WaveReport {
  /**
   * slots the target now owns in its own and the source's view, with the keys moved for each;
   * `unannounced` when those keys were not reported batch by batch (atomic migration)
   */
  closed: Array<{slot: number; keys: number; bytes: number; unannounced?: boolean}>
  /** slots left open (or never opened), with the reason */
  failed: Array<{slot: number; error: Error}>
  /** slots whose target holds fewer keys right after the close than were moved into it */
  fewerAtTarget: Array<{slot: number; moved: number; atTarget: number}>
  /** slots left as they were because the run was interrupted (a cancelled atomic migration) */
  cancelled: number[]
  /** durable moves: the replicas of the target that acknowledged every moved key */
  held?: {target: string; acks: number}
}

export interface SlotMover {
  /** What the operator is told ("MIGRATE (legacy)", "CLUSTER MIGRATESLOTS (atomic)"). */
  readonly protocol: string
  /** the most slots of one pair this mover takes in one wave */
  waveSize(sourceId: string, targetId: string): number
  moveWave(wave: WaveRequest): Promise<WaveReport>
}

/**
 * Picks the mover per source/target pair: the atomic one where both ends have it (and it
 * was not turned off), the legacy one everywhere else.
 */
export class RoutingMover implements SlotMover {
  constructor(
    private readonly legacy: SlotMover,
    private readonly atomic: SlotMover | undefined,
    private readonly hasAtomic: (nodeId: string) => boolean,
  ) {}

  get protocol(): string {
    return this.atomic ? `${this.atomic.protocol} where both ends have it, else ${this.legacy.protocol}` : this.legacy.protocol
  }

  moverFor(sourceId: string, targetId: string): SlotMover {
    return this.atomic && this.hasAtomic(sourceId) && this.hasAtomic(targetId) ? this.atomic : this.legacy
  }

  waveSize(sourceId: string, targetId: string): number {
    return this.moverFor(sourceId, targetId).waveSize(sourceId, targetId)
  }

  /**
   * Slots a legacy run left open (importing/migrating) can only be finished by the legacy
   * protocol: the servers refuse to migrate them atomically.
   */
  async moveWave(wave: WaveRequest): Promise<WaveReport> {
    const {source, target} = wave.moves[0]
    const mover = this.moverFor(source.id, target.id)
    const open = wave.moves.filter((move) => wave.alreadyOpen.has(move.slot))
    if (mover === this.legacy || open.length === 0) return mover.moveWave(wave)
    const rest = wave.moves.filter((move) => !wave.alreadyOpen.has(move.slot))
    const reports = await Promise.all([this.legacy.moveWave({...wave, moves: open}), ...(rest.length > 0 ? [mover.moveWave({...wave, moves: rest})] : [])])
    return {
      cancelled: reports.flatMap((report) => report.cancelled),
      closed: reports.flatMap((report) => report.closed),
      failed: reports.flatMap((report) => report.failed),
      fewerAtTarget: reports.flatMap((report) => report.fewerAtTarget),
      held: reports.find((report) => report.held)?.held,
    }
  }
}
