/**
 * The slot mover for every server: CLUSTER SETSLOT IMPORTING/MIGRATING, batched MIGRATE,
 * and the verified close of slot-protocol.ts.
 */
import {type NodePool, mapLimit} from '../cluster/connection.js'
import {type Durability, type DurabilitySettings, waitForReplicasOf} from './durable.js'
import {type MoveKeysOptions, type MovedKeys, type WaveOutcome, moveKeyAlone, moveKeysDurably, moveSlotKeys, moveWaveKeys} from './key-mover.js'
import type {SlotMover, WaveReport, WaveRequest} from './mover.js'
import {awaitReplicaViews, awaitReplicasKnowEpoch, requireHealthyReplicas} from './replicas.js'
import {type Lanes, type SlotMoveTarget, closeSlots, openSlots} from './slot-protocol.js'

const DEFAULT_WAVE_SIZE = 128

/**
 * The wave size of a throttled run: about one second of the rate for all parallel waves
 * together, so a stop (which finishes the open slots) takes about a second, not minutes.
 */
export function throttledWaveSize(keysPerSec: number, keysPerSlot: number, parallel: number): number {
  return Math.max(1, Math.min(DEFAULT_WAVE_SIZE, Math.floor(keysPerSec / Math.max(keysPerSlot, 1) / Math.max(parallel, 1))))
}

/** Key moves within a throttled wave that run at once: overlaps round trips, the source stays responsive. */
const KEY_MOVES_PER_WAVE = 8

export class LegacyMover implements SlotMover {
  readonly protocol = 'MIGRATE (CLUSTER SETSLOT)'

  constructor(
    private readonly pool: NodePool,
    private readonly keyOptions: MoveKeysOptions,
    private readonly maxWave = DEFAULT_WAVE_SIZE,
    private readonly lanes: Lanes = () => 1,
    /** big keys the operator allowed: moved alone, each with its own timeout, before their slot */
    private readonly bigKeys: ReadonlyMap<number, ReadonlyArray<{key: Buffer; bytes: number; timeoutMs: number}>> = new Map(),
    private readonly durability?: DurabilitySettings,
    /** targets that take the herald's SETSLOT NODE inside the claim's transaction (Redis: closeSlots says why) */
    private readonly heraldInsideClaim: (id: string) => boolean = () => false,
  ) {}

  /** Slots of one pair opened and closed together: one nodes.conf save and one broadcast per wave. */
  waveSize(): number {
    return this.maxWave
  }

  async moveWave(wave: WaveRequest): Promise<WaveReport> {
    const report: WaveReport = {cancelled: [], closed: [], failed: [], fewerAtTarget: []}
    const toMove = wave.moves.filter((move) => !wave.closeOnly.has(move.slot))
    const {target} = wave.moves[0]
    // before anything opens: the replicas every batch will wait for must be there
    const gate = this.durability ? await requireHealthyReplicas(this.pool, target, this.durability.minReplicaAcks, this.durability.waitMs, this.durability.signal) : undefined
    const durability: Durability | undefined = gate && this.durability ? {acks: gate.acks, replicas: gate.replicas, waitMs: this.durability.waitMs} : undefined
    if (gate) report.held = {acks: gate.acks, target: target.address}
    // a resumed slot already open between the same pair needs no SETSLOT again
    await openSlots(this.pool, toMove.filter((move) => !wave.alreadyOpen.has(move.slot)), this.lanes)
    const alone = await this.moveBigKeys(toMove, durability)
    const moved = await this.moveKeys(toMove.filter((move) => !(alone.get(move.slot) instanceof Error)), durability, wave.alreadyOpen)
    for (const [slot, outcome] of alone) {
      const rest = moved.get(slot)
      if (outcome instanceof Error || rest === undefined) moved.set(slot, outcome)
      else if (!(rest instanceof Error)) moved.set(slot, {bytes: rest.bytes + outcome.bytes, keys: rest.keys + outcome.keys})
    }
    const ready = wave.moves.filter((move) => {
      const outcome = moved.get(move.slot)
      if (outcome instanceof Error) report.failed.push({error: outcome, slot: move.slot})
      return !(outcome instanceof Error)
    })
    const unprotected = ready.length > 0 && durability && durability.acks > 0 ? await this.replicasAnswer(ready, durability) : undefined
    if (unprotected) {
      for (const move of ready) report.failed.push({error: unprotected, slot: move.slot})
      return report
    }
    // Valkey hands SETSLOT to the replicas first (lanes > 1 where SETSLOT is replicated)
    const handsDown = this.lanes(target.id) > 1
    const replicated = gate && gate.replicas.length > 0 && this.durability && handsDown
    const beforeClaim = replicated ? (epoch: number) => awaitReplicasKnowEpoch(this.pool, target, gate.replicas, epoch, this.durability!.waitMs) : undefined
    const closing = await closeSlots(this.pool, ready, this.lanes, beforeClaim, handsDown, this.heraldInsideClaim(target.id))
    for (const {error, slot} of closing.open) report.failed.push({error: new Error(error), slot})
    // a wave counts as moved once the replicas that hold its keys also give its slots to the
    // target; until then its slots stay in flight in the journal (a resume verifies them again)
    const unseen = gate && gate.replicas.length > 0 && this.durability ? await awaitReplicaViews(this.pool, target, gate.replicas, closing.closed, this.durability.waitMs).catch((error: Error) => error) : undefined
    if (unseen) {
      for (const slot of closing.closed) report.failed.push({error: unseen, slot})
      return report
    }
    for (const slot of closing.closed) {
      const {bytes, keys} = (moved.get(slot) as MovedKeys | undefined) ?? {bytes: 0, keys: 0}
      report.closed.push({bytes, keys, slot})
      const atTarget = closing.targetKeys.get(slot)
      if (atTarget !== undefined && atTarget < keys) report.fewerAtTarget.push({atTarget, moved: keys, slot})
    }
    return report
  }

  /**
   * Right before the close, the target's replicas must still acknowledge. Valkey >= 8 sends
   * SETSLOT to the replicas before it applies it, and a replica that stalled gets it anyway
   * once it catches up, even though its primary answered NOREPLICAS and never applied it
   * (seen: a stalled replica applied `SETSLOT s NODE target` 50 s later, was then promoted and
   * deleted the slot's keys). An open slot is safe on a promoted replica (it still imports it,
   * and keeps its keys): closing only with replicas that answer keeps the slots open otherwise.
   */
  private async replicasAnswer(ready: SlotMoveTarget[], durability: Durability): Promise<Error | undefined> {
    const error = await waitForReplicasOf(this.pool, ready[0].target.address, ready[0].slot, durability).then(() => undefined, (error: unknown) => error)
    return error === undefined || error instanceof Error ? error : new Error(String(error))
  }

  private async moveBigKeys(targets: SlotMoveTarget[], durability?: Durability): Promise<Map<number, Error | MovedKeys>> {
    const outcomes = new Map<number, Error | MovedKeys>()
    for (const target of targets) {
      for (const big of this.bigKeys.get(target.slot) ?? []) {
        const before = outcomes.get(target.slot)
        if (before instanceof Error) break
        const moved = await moveKeyAlone(this.pool, target, big.key, big.bytes, big.timeoutMs, this.keyOptions, durability).catch((error: Error) => error)
        outcomes.set(target.slot, moved instanceof Error ? moved : {bytes: (before?.bytes ?? 0) + moved.bytes, keys: (before?.keys ?? 0) + moved.keys})
      }
    }
    return outcomes
  }

  /**
   * Per slot, the keys moved, or the error that stopped them. Throttled runs go slot by slot
   * so the limiter sees every batch; others pipeline the whole wave.
   */
  private async moveKeys(targets: SlotMoveTarget[], durability: Durability | undefined, resumed: ReadonlySet<number>): Promise<WaveOutcome> {
    if (durability && durability.acks > 0) {
      // slots a crashed run left open may have our copies at the target already
      const options = {...this.keyOptions, replaceSlots: resumed}
      if (!options.throttle) return moveKeysDurably(this.pool, targets, options, durability)
      const outcomes = await mapLimit(targets, KEY_MOVES_PER_WAVE, async (target) => (await moveKeysDurably(this.pool, [target], options, durability)).get(target.slot) as Error | MovedKeys)
      return new Map(targets.map((target, i) => [target.slot, outcomes[i]]))
    }
    if (!this.keyOptions.throttle) return moveWaveKeys(this.pool, targets, this.keyOptions)
    const outcomes = await mapLimit(targets, KEY_MOVES_PER_WAVE, (target) => moveSlotKeys(this.pool, target, this.keyOptions).catch((error: Error) => error))
    return new Map(targets.map((target, i) => [target.slot, outcomes[i]]))
  }
}
