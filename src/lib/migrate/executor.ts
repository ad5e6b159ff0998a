/**
 * The one executor for slot-migration plans (reshard, rebalance, apply, drain, resume).
 * Moves several waves (slots of one source/target pair) at once with a cap per node,
 * journals every slot, honours rate limits, and on abort finishes the waves in flight.
 * A slot counts as moved only when its mover verified it (see slot-protocol.ts); any
 * failure stops the run, and the failed slots stay open and in flight in the journal.
 */
import {SlotctlError, errorMessage} from '../core/errors.js'
import type {Journal} from './journal.js'
import type {SlotMover} from './mover.js'
import type {AsmProgress} from './valkey-asm-mover.js'
import type {SlotMoveTarget} from './slot-protocol.js'
import type {MigrationPlan, SlotMove} from '../plan/types.js'

export interface ExecuteOptions {
  /** waves in flight at once */
  parallel: number
  /** waves in flight at once that involve the same node */
  perNodeLimit: number
  /** every wave's slots are journaled as started before they open and as done once closed */
  journal?: Pick<Journal, 'slotsDone' | 'slotsStarted'>
  /** Slots already done (resume). */
  skipSlots?: ReadonlySet<number>
  /** Slots whose target already owns them: only the closing step is left (resume). */
  closeOnlySlots?: ReadonlySet<number>
  /** Slots open between their source and target already (resume): no SETSLOT to open them again. */
  openSlots?: ReadonlySet<number>
  /** The live address of every node the plan names: resolved against the cluster, never read from a file. */
  addresses: ReadonlyMap<string, string>
  signal?: AbortSignal
  onEvent?: (event: MigrationEvent) => void
}

export type MigrationEvent =
  | {type: 'batch'; slot: number; keys: number; bytes: number}
  /** `unreported`: the keys were not announced batch by batch (atomic migration) */
  | {type: 'slot-done'; slot: number; keys: number; unreported?: boolean}
  | {type: 'slot-failed'; slot: number; error: string}
  | {type: 'slot-start'; slot: number}
  | ({type: 'job'} & AsmProgress)

export interface ExecuteWarning {
  code: string
  message: string
}

export interface ExecuteResult {
  slotsPlanned: number
  /** slots this run moved */
  slotsMoved: number
  /** slots whose keys an earlier run (or fix) had moved already: this run only closed them */
  slotsFinished: number
  keysMoved: number
  bytesMoved: number
  seconds: number
  interrupted: boolean
  failures: Array<{slot: number; error: string; code: string}>
  warnings: ExecuteWarning[]
  /** durable moves: per target address, the replicas that acknowledged its keys (the fewest over its waves) */
  held: Map<string, number>
}

/**
 * Waves in flight per node and role. A node is never a source and a target at once: a
 * source's config epoch must not rise while its wave closes (slot-protocol.ts), and two
 * sources MIGRATE-ing into each other would block each other until their timeouts.
 */
class InFlight {
  private readonly asSource = new Map<string, number>()
  private readonly asTarget = new Map<string, number>()

  constructor(private readonly limit: number) {}

  load(id: string): number {
    return (this.asSource.get(id) ?? 0) + (this.asTarget.get(id) ?? 0)
  }

  fits(move: SlotMove): boolean {
    if (this.load(move.sourceId) >= this.limit || this.load(move.targetId) >= this.limit) return false
    return !this.asTarget.get(move.sourceId) && !this.asSource.get(move.targetId)
  }

  add(move: SlotMove, delta: number): void {
    this.asSource.set(move.sourceId, (this.asSource.get(move.sourceId) ?? 0) + delta)
    this.asTarget.set(move.targetId, (this.asTarget.get(move.targetId) ?? 0) + delta)
  }
}

/**
 * Takes the next wave: pending moves of the least busy source/target pair that fits. A
 * source runs its MIGRATEs one at a time, so waves spread over sources move in parallel,
 * while waves of one source only queue behind each other.
 */
function takeWave(pending: SlotMove[], inFlight: InFlight, size: (sourceId: string, targetId: string) => number): SlotMove[] | undefined {
  // waves in flight on the source, then on the target: negative when a's pair is less busy
  const compareLoad = (a: SlotMove, b: SlotMove) => inFlight.load(a.sourceId) - inFlight.load(b.sourceId) || inFlight.load(a.targetId) - inFlight.load(b.targetId)
  let best: SlotMove | undefined
  const seen = new Set<string>()
  let previous: SlotMove | undefined
  for (const move of pending) {
    // plans list a pair's moves together: this runs after every wave, over every pending move
    if (previous && previous.sourceId === move.sourceId && previous.targetId === move.targetId) continue
    previous = move
    const pair = `${move.sourceId} ${move.targetId}`
    if (seen.has(pair) || !inFlight.fits(move)) continue
    seen.add(pair)
    if (!best || compareLoad(move, best) < 0) best = move
  }
  if (!best) return undefined
  const {sourceId, targetId} = best
  const wave: SlotMove[] = []
  const limit = size(sourceId, targetId)
  let kept = 0
  for (const move of pending) {
    if (wave.length < limit && move.sourceId === sourceId && move.targetId === targetId) wave.push(move)
    else pending[kept++] = move
  }
  pending.length = kept
  return wave
}

function endpointsOf(addresses: ReadonlyMap<string, string>, move: SlotMove): SlotMoveTarget {
  const address = (id: string) => {
    const found = addresses.get(id)
    if (!found) throw new SlotctlError(`the cluster has no node ${id}`, {code: 'E_PLAN', exitCode: 2})
    return found
  }
  return {slot: move.slot, source: {address: address(move.sourceId), id: move.sourceId}, target: {address: address(move.targetId), id: move.targetId}}
}

function fewerKeysWarning(slots: Array<{slot: number; moved: number; atTarget: number}>): ExecuteWarning {
  const missing = slots.reduce((sum, entry) => sum + entry.moved - entry.atTarget, 0)
  const first = slots[0]
  return {
    code: 'FEWER_KEYS_AT_TARGET',
    message: `${slots.length} slot(s) held ${missing} key(s) fewer at the target right after the close than were moved into them (slot ${first.slot}: ${first.moved} moved, ${first.atTarget} there); keys that expire or that clients delete during the move explain this`,
  }
}

export async function executePlan(mover: SlotMover, plan: MigrationPlan, options: ExecuteOptions): Promise<ExecuteResult> {
  const started = Date.now()
  const pending = plan.moves.filter((move) => !options.skipSlots?.has(move.slot))
  const result: ExecuteResult = {bytesMoved: 0, failures: [], interrupted: false, keysMoved: 0, seconds: 0, slotsFinished: 0, slotsMoved: 0, slotsPlanned: plan.moves.length, warnings: [], held: new Map()}
  const fewer: Array<{slot: number; moved: number; atTarget: number}> = []
  const inFlight = new InFlight(options.perNodeLimit)
  const running = new Set<Promise<void>>()
  let stopTaking = false
  let cancelled = false

  const fail = (slot: number, error: unknown) => {
    // One failed slot stops the run: moving on could spread the same problem.
    stopTaking = true
    result.failures.push({code: error instanceof SlotctlError ? error.code : 'E_MIGRATION', error: errorMessage(error), slot})
    options.onEvent?.({error: errorMessage(error), slot, type: 'slot-failed'})
  }

  const moveWave = async (wave: SlotMove[]) => {
    const moves = wave.map((move) => endpointsOf(options.addresses, move))
    options.journal?.slotsStarted(wave.map((move) => move.slot))
    for (const move of wave) options.onEvent?.({slot: move.slot, type: 'slot-start'})
    const report = await mover.moveWave({alreadyOpen: options.openSlots ?? new Set(), closeOnly: options.closeOnlySlots ?? new Set(), moves})
    options.journal?.slotsDone(report.closed)
    for (const {bytes, keys, slot, unannounced} of report.closed) {
      if (options.closeOnlySlots?.has(slot)) result.slotsFinished++
      else result.slotsMoved++
      result.keysMoved += keys
      result.bytesMoved += bytes
      options.onEvent?.({keys, slot, type: 'slot-done', unreported: unannounced})
    }
    if (report.held && report.closed.length > 0) result.held.set(report.held.target, Math.min(report.held.acks, result.held.get(report.held.target) ?? Infinity))
    fewer.push(...report.fewerAtTarget)
    if (report.cancelled.length > 0) cancelled = true
    for (const {error, slot} of report.failed) fail(slot, error)
  }

  const launch = (wave: SlotMove[]) => {
    inFlight.add(wave[0], 1)
    // a wave that failed as a whole may have left every one of its slots open: name them all
    const task = moveWave(wave)
      .catch((error: unknown) => {
        for (const move of wave) fail(move.slot, error)
      })
      .finally(() => {
        inFlight.add(wave[0], -1)
        running.delete(task)
      })
    running.add(task)
  }

  while (pending.length > 0 && !stopTaking) {
    if (options.signal?.aborted) break
    const wave = running.size < options.parallel ? takeWave(pending, inFlight, (source, target) => mover.waveSize(source, target)) : undefined
    if (!wave) {
      await Promise.race(running)
      continue
    }
    launch(wave)
  }
  await Promise.all(running)
  if (options.signal?.aborted && (pending.length > 0 || cancelled)) result.interrupted = true
  if (fewer.length > 0) result.warnings.push(fewerKeysWarning(fewer))
  result.seconds = (Date.now() - started) / 1000
  return result
}
