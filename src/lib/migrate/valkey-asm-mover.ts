/**
 * The slot mover for Valkey >= 9: atomic slot migration. One CLUSTER MIGRATESLOTS on the
 * source per wave (every slot of the pair, as ranges); the servers snapshot, stream, pause
 * writes briefly and hand ownership over in one step, or roll back on failure, so there is
 * no open-slot window for slotctl to close. slotctl watches the job (CLUSTER
 * GETSLOTMIGRATIONS on the source), cancels it on Ctrl-C (CANCELSLOTMIGRATIONS), and reads
 * ownership back in both nodes' views before it counts a slot as moved.
 */
import {type NodePool, delay, pipelineCalls} from '../cluster/connection.js'
import {toRanges} from '../core/slots.js'
import {type SlotMigrationJob, isTerminal, parseSlotMigrations} from '../cluster/slot-migrations.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import type {SlotMover, WaveReport, WaveRequest} from './mover.js'
import {type DurabilitySettings, waitForReplicasOf} from './durable.js'
import {awaitReplicaViews, requireHealthyReplicas} from './replicas.js'

const POLL_MS = 100
import {type SlotEndpoint, verifyClose} from './slot-protocol.js'

/** The ranges as the server prints them in slot_ranges ("0-10 20-29"). */
function rangesText(slots: readonly number[]): string {
  return toRanges(slots)
    .map(([start, end]) => `${start}-${end}`)
    .join(' ')
}

export interface AsmProgress {
  source: SlotEndpoint
  target: SlotEndpoint
  slots: number
  state: string
}

export class ValkeyAsmMover implements SlotMover {
  readonly protocol = 'CLUSTER MIGRATESLOTS (atomic slot migration)'

  constructor(
    private readonly pool: NodePool,
    private readonly options: {signal?: AbortSignal; onState?: (progress: AsmProgress) => void; durability?: DurabilitySettings} = {},
  ) {}

  /** A job carries every slot of its pair: one snapshot, one handoff. */
  waveSize(): number {
    return 16_384
  }

  async moveWave(wave: WaveRequest): Promise<WaveReport> {
    const report: WaveReport = {cancelled: [], closed: [], failed: [], fewerAtTarget: []}
    const {source, target} = wave.moves[0]
    const slots = wave.moves.map((move) => move.slot)
    // already owned by the target (a resumed run): only the verification is left
    const toMove = slots.filter((slot) => !wave.closeOnly.has(slot))
    const durability = this.options.durability
    // the servers stream the slots to the target and its replicas: they must be there first
    const gate = durability ? await requireHealthyReplicas(this.pool, target, durability.minReplicaAcks, durability.waitMs, durability.signal) : undefined
    const keysBefore = await this.countKeys(source, toMove)
    if (toMove.length > 0) {
      const job = await this.start(source, target, toMove)
      const final = await this.watch(source, target, job, toMove.length)
      if (final.state === 'cancelled' && this.options.signal?.aborted) {
        // rolled back by the servers: every slot is where it was (close-only ones are verified next run)
        report.cancelled.push(...slots)
        return report
      }
      if (final.state !== 'success') {
        const error = new SlotctlError(`atomic slot migration ${source.address} → ${target.address} ended ${final.state}${final.message ? `: ${final.message}` : ''}; the servers roll a failed job back, but one that failed during its handoff may have applied part of it: see where the slots and their keys are with slotctl check`, {code: 'E_MIGRATION'})
        for (const slot of slots) report.failed.push({error, slot})
        return report
      }
    }
    const atTarget = await verifyClose(this.pool, source, target, slots)
    if (gate && durability && gate.acks > 0) {
      const unprotected = await this.awaitReplicas(target, slots, gate, durability.waitMs).catch((error: Error) => error)
      if (unprotected) {
        for (const slot of slots) report.failed.push({error: unprotected, slot})
        return report
      }
      report.held = {acks: gate.acks, target: target.address}
    } else if (gate) report.held = {acks: 0, target: target.address}
    for (const slot of slots) {
      const keys = keysBefore.get(slot) ?? 0
      report.closed.push({bytes: 0, keys, slot, unannounced: true})
      const there = atTarget.get(slot)
      if (there !== undefined && there < keys) report.fewerAtTarget.push({atTarget: there, moved: keys, slot})
    }
    return report
  }

  /**
   * After the handoff: the target's replicas must acknowledge everything the target holds
   * (WAIT after a write of our own, see durable.ts) and give the slots to it in their views.
   * The source has already deleted its keys: a shortfall is reported, not undone.
   */
  private async awaitReplicas(target: SlotEndpoint, slots: readonly number[], gate: {acks: number; replicas: string[]}, waitMs: number): Promise<void> {
    await waitForReplicasOf(this.pool, target.address, slots[0], {acks: gate.acks, replicas: gate.replicas, waitMs}).catch((error: Error) => {
      throw new SlotctlError(`the servers moved the slots to ${target.address}, but ${error.message.replace(/; keys not acknowledged stay.*$/, '')}`, {code: 'E_REPLICA_ACK', suggestions: ['look at the replicas (INFO replication on the target); if the target fails now, keys its replicas lack are lost']})
    })
    await awaitReplicaViews(this.pool, target, gate.replicas, slots, waitMs)
  }

  private async countKeys(node: SlotEndpoint, slots: readonly number[]): Promise<Map<number, number>> {
    const replies = await pipelineCalls(this.pool, node.address, slots.map((slot) => ['CLUSTER', 'COUNTKEYSINSLOT', slot]))
    return new Map(slots.map((slot, i) => [slot, replies[i][0] ? 0 : Number(replies[i][1])]))
  }

  private async jobs(node: SlotEndpoint): Promise<SlotMigrationJob[]> {
    const client = await this.pool.client(node.address)
    return parseSlotMigrations(await client.call('CLUSTER', 'GETSLOTMIGRATIONS'))
  }

  /** Starts the job and finds its name: the newest EXPORT to the target with exactly these ranges, not there before. */
  private async start(source: SlotEndpoint, target: SlotEndpoint, slots: readonly number[]): Promise<string> {
    const ranges = rangesText(slots)
    const before = new Set((await this.jobs(source)).map((job) => job.name))
    const client = await this.pool.client(source.address)
    const args = toRanges(slots).flatMap(([start, end]) => [start, end])
    try {
      await client.call('CLUSTER', 'MIGRATESLOTS', 'SLOTSRANGE', ...args, 'NODE', target.id)
    } catch (error) {
      throw new SlotctlError(`${source.address} refused CLUSTER MIGRATESLOTS to ${target.address}: ${errorMessage(error)}`, {code: 'E_MIGRATION'})
    }
    const job = (await this.jobs(source)).find((entry) => !before.has(entry.name) && entry.operation === 'EXPORT' && entry.targetNode === target.id && entry.slotRanges === ranges)
    if (!job) throw new SlotctlError(`${source.address} accepted CLUSTER MIGRATESLOTS but lists no such job`, {code: 'E_MIGRATION'})
    return job.name
  }

  /**
   * Source and target list a job under the same name. A source that gave away its last slot
   * becomes a replica of the node that took it (cluster-allow-replica-migration, a drain) and
   * forgets its jobs then; the target's import entry still says how the job ended.
   */
  private async jobOnTarget(target: SlotEndpoint, name: string): Promise<SlotMigrationJob | undefined> {
    return (await this.jobs(target).catch(() => [])).find((entry) => entry.name === name)
  }

  /** Polls the job until it ends; Ctrl-C cancels it (the servers roll back) and waits for that. */
  private async watch(source: SlotEndpoint, target: SlotEndpoint, name: string, slots: number): Promise<SlotMigrationJob> {
    let cancelling = false
    let lastState = ''
    for (;;) {
      const job = (await this.jobs(source)).find((entry) => entry.name === name) ?? (await this.jobOnTarget(target, name))
      if (!job) throw new SlotctlError(`the slot migration job ${name} on ${source.address} disappeared`, {code: 'E_MIGRATION'})
      if (job.state !== lastState) {
        lastState = job.state
        this.options.onState?.({slots, source, state: job.state, target})
      }
      if (isTerminal(job)) return job
      if (this.options.signal?.aborted && !cancelling) {
        cancelling = true
        const client = await this.pool.client(source.address)
        // "No migrations ongoing": it ended between the poll and the cancel
        await client.call('CLUSTER', 'CANCELSLOTMIGRATIONS').catch(() => undefined)
      }
      await delay(POLL_MS)
    }
  }
}
