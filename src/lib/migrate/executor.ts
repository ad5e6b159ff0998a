/**
 * The one executor for slot-migration plans (reshard, rebalance, apply, drain, resume).
 * Moves several slots at once across different source/target pairs, with a cap per node,
 * journals every slot, honours rate limits, and on abort finishes the slots in flight so
 * none is left open.
 */
import {type NodePool, mapLimit} from '../cluster/connection.js'
import {SlotctlError, errorMessage} from '../errors.js'
import type {Journal} from './journal.js'
import {type MoveKeysOptions, type MovedKeys, type SlotEndpoint, type SlotMoveTarget, closeSlots, moveSlotKeys, moveWaveKeys, openSlots} from './slot-protocol.js'
import type {MigrationPlan, SlotMove} from '../plan/types.js'
import {Throttle, type ThrottleLimits} from './throttle.js'

export interface ExecuteOptions extends ThrottleLimits {
  pipeline: number
  timeoutMs: number
  replace: boolean
  /** waves (groups of slots of one source/target pair) in flight at once */
  parallel: number
  /** waves in flight at once that involve the same node */
  perNodeLimit: number
  /** slots of one source/target pair opened and closed together (one nodes.conf save) */
  waveSize?: number
  journal?: Journal
  /** Slots already done (resume). */
  skipSlots?: ReadonlySet<number>
  /** Slots whose target already owns them: only the closing step is left (resume). */
  closeOnlySlots?: ReadonlySet<number>
  /** All masters at plan time, told about each new owner. */
  masters: readonly SlotEndpoint[]
  signal?: AbortSignal
  onEvent?: (event: MigrationEvent) => void
}

export type MigrationEvent =
  | {type: 'batch'; slot: number; keys: number; bytes: number}
  | {type: 'slot-done'; slot: number; keys: number}
  | {type: 'slot-failed'; slot: number; error: string}
  | {type: 'slot-start'; slot: number}

export interface ExecuteResult {
  slotsPlanned: number
  slotsMoved: number
  keysMoved: number
  bytesMoved: number
  seconds: number
  interrupted: boolean
  failures: Array<{slot: number; error: string; code: string}>
}

const DEFAULT_WAVE_SIZE = 128
/** Key moves within a wave that run at once: overlaps round trips, the source stays responsive. */
const KEY_MOVES_PER_WAVE = 8

class InFlight {
  private readonly perNode = new Map<string, number>()

  constructor(private readonly limit: number) {}

  load(id: string): number {
    return this.perNode.get(id) ?? 0
  }

  fits(move: SlotMove): boolean {
    return this.load(move.sourceId) < this.limit && this.load(move.targetId) < this.limit
  }

  add(move: SlotMove, delta: number): void {
    for (const id of [move.sourceId, move.targetId]) this.perNode.set(id, this.load(id) + delta)
  }
}

/**
 * Takes the next wave: pending moves of the least busy source/target pair that fits. A
 * source runs its MIGRATEs one at a time, so waves spread over sources move in parallel,
 * while waves of one source only queue behind each other.
 */
function takeWave(pending: SlotMove[], inFlight: InFlight, size: number): SlotMove[] | undefined {
  // waves in flight on the source, then on the target: negative when a's pair is less busy
  const compareLoad = (a: SlotMove, b: SlotMove) => inFlight.load(a.sourceId) - inFlight.load(b.sourceId) || inFlight.load(a.targetId) - inFlight.load(b.targetId)
  let best: SlotMove | undefined
  const seen = new Set<string>()
  for (const move of pending) {
    const pair = `${move.sourceId} ${move.targetId}`
    if (seen.has(pair) || !inFlight.fits(move)) continue
    seen.add(pair)
    if (!best || compareLoad(move, best) < 0) best = move
  }
  if (!best) return undefined
  const {sourceId, targetId} = best
  const wave: SlotMove[] = []
  for (let i = 0; i < pending.length && wave.length < size; ) {
    if (pending[i].sourceId === sourceId && pending[i].targetId === targetId) wave.push(...pending.splice(i, 1))
    else i++
  }
  return wave
}

function endpoints(plan: MigrationPlan, move: SlotMove): SlotMoveTarget {
  const address = (id: string) => {
    const node = plan.nodes.find((candidate) => candidate.id === id)
    if (!node) throw new SlotctlError(`the plan names node ${id} without an address`, {code: 'E_PLAN', exitCode: 2})
    return node.address
  }
  return {slot: move.slot, source: {address: address(move.sourceId), id: move.sourceId}, target: {address: address(move.targetId), id: move.targetId}}
}

export async function executePlan(pool: NodePool, plan: MigrationPlan, options: ExecuteOptions): Promise<ExecuteResult> {
  const started = Date.now()
  const throttle = options.maxKeysPerSec || options.maxBytesPerSec ? new Throttle(options) : undefined
  const pending = plan.moves.filter((move) => !options.skipSlots?.has(move.slot))
  const result: ExecuteResult = {bytesMoved: 0, failures: [], interrupted: false, keysMoved: 0, seconds: 0, slotsMoved: 0, slotsPlanned: plan.moves.length}
  const inFlight = new InFlight(options.perNodeLimit)
  const running = new Set<Promise<void>>()
  let stopTaking = false

  const fail = (slot: number, error: unknown) => {
    // One failed slot stops the run: moving on could spread the same problem.
    stopTaking = true
    result.failures.push({code: error instanceof SlotctlError ? error.code : 'E_MIGRATION', error: errorMessage(error), slot})
    options.onEvent?.({error: errorMessage(error), slot, type: 'slot-failed'})
  }

  const keyOptions: MoveKeysOptions = {
    onBatch: (keys, bytes, slot) => options.onEvent?.({bytes, keys, slot, type: 'batch'}),
    pipeline: options.pipeline,
    replace: options.replace,
    throttle,
    timeoutMs: options.timeoutMs,
  }

  const record = (slot: number, moved: Error | MovedKeys): number | undefined => {
    if (moved instanceof Error) {
      fail(slot, moved)
      return undefined
    }
    result.keysMoved += moved.keys
    result.bytesMoved += moved.bytes
    return moved.keys
  }

  /**
   * Moves the keys of a wave's slots; per slot, how many moved, or undefined when it failed.
   * Throttled runs go slot by slot so the limiter sees every batch; others pipeline the wave.
   */
  const moveKeys = async (targets: SlotMoveTarget[]): Promise<Array<number | undefined>> => {
    if (throttle) return mapLimit(targets, KEY_MOVES_PER_WAVE, async (target) => record(target.slot, await moveSlotKeys(pool, target, keyOptions).catch((error: Error) => error)))
    const outcome = await moveWaveKeys(pool, targets, keyOptions)
    return targets.map((target) => record(target.slot, outcome.get(target.slot) ?? {bytes: 0, keys: 0}))
  }

  /** Open, move and close one wave; a slot whose keys could not all move is left open. */
  const moveWave = async (wave: SlotMove[]) => {
    const targets = wave.map((move) => endpoints(plan, move))
    const others = options.masters.filter((master) => master.id !== wave[0].sourceId && master.id !== wave[0].targetId)
    options.journal?.slotsStarted(wave.map((move) => move.slot))
    for (const move of wave) options.onEvent?.({slot: move.slot, type: 'slot-start'})
    const toMove = targets.filter((target) => !options.closeOnlySlots?.has(target.slot))
    await openSlots(pool, toMove)
    const moved = await moveKeys(toMove)
    const keysBySlot = new Map(toMove.map((target, i) => [target.slot, moved[i]]))
    // close-only slots are not in the map: they have nothing left to move
    const ready = targets.filter((target) => !keysBySlot.has(target.slot) || keysBySlot.get(target.slot) !== undefined)
    await closeSlots(pool, ready, others)
    const done = ready.map((target) => ({keys: keysBySlot.get(target.slot) ?? 0, slot: target.slot}))
    options.journal?.slotsDone(done)
    for (const {keys, slot} of done) {
      result.slotsMoved++
      options.onEvent?.({keys, slot, type: 'slot-done'})
    }
  }

  const launch = (wave: SlotMove[]) => {
    inFlight.add(wave[0], 1)
    const task = moveWave(wave)
      .catch((error: unknown) => fail(wave[0].slot, error))
      .finally(() => {
        inFlight.add(wave[0], -1)
        running.delete(task)
      })
    running.add(task)
  }

  while (pending.length > 0 && !stopTaking) {
    if (options.signal?.aborted) break
    const wave = running.size < options.parallel ? takeWave(pending, inFlight, options.waveSize ?? DEFAULT_WAVE_SIZE) : undefined
    if (!wave) {
      await Promise.race(running)
      continue
    }
    launch(wave)
  }
  await Promise.all(running)
  if (options.signal?.aborted && pending.length > 0) result.interrupted = true
  result.seconds = (Date.now() - started) / 1000
  return result
}
