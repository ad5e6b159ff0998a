/**
 * The base for verbs that move slots (reshard, rebalance, apply): the shared flags, the
 * safety preconditions, confirmation, journal, progress, Ctrl-C handling and the result.
 * Verbs only build a plan and call runPlan().
 */
import {writeFile} from 'node:fs/promises'

import {Command, Flags} from '@oclif/core'

import {BaseCommand} from './base-command.js'
import {BLOCKS_MIGRATION, runChecks} from '../check/checks.js'
import type {ClusterSnapshot} from '../cluster/loader.js'
import {ExitCode, SlotctlError, usageError} from '../errors.js'
import {type ExecuteResult, executePlan} from '../migrate/executor.js'
import {Journal, type JournalState, defaultJournalPath} from '../migrate/journal.js'
import type {MigrationPlan} from '../plan/types.js'
import {ProgressReporter} from './progress.js'
import {formatBytes, formatDuration, paint, table} from './render.js'
import {formatSlots} from '../cluster/slots.js'
import {mastersOf, openSlotsOf, slotOwners} from '../cluster/topology.js'

export const DEFAULT_MIGRATE_TIMEOUT_MS = 60_000

/** The admin pool must wait longer than MIGRATE may take, big-key retries (4x) included. */
export function adminTimeoutMs(migrateTimeoutMs: number): number {
  return migrateTimeoutMs * 4 + 5000
}

export interface MigrationResult extends Partial<ExecuteResult> {
  status: 'done' | 'failed' | 'interrupted' | 'nothing-to-do' | 'planned'
  plan: MigrationPlan
  journal?: string
  planFile?: string
  resumeCommand?: string
}

export interface RunPlanOptions {
  /** A resumed journal: its done slots are skipped, its open slots are allowed. */
  resume?: {path: string; state: JournalState}
  /** What to tell the operator to run to continue after an interruption. */
  resumeCommand: (journal: string) => string
}

export abstract class MigrationCommand<T extends typeof Command> extends BaseCommand<T> {
  static migrationFlags = {
    pipeline: Flags.integer({default: 1000, description: 'keys per MIGRATE batch', helpGroup: 'MIGRATION', min: 1}),
    timeout: Flags.integer({default: DEFAULT_MIGRATE_TIMEOUT_MS, description: 'MIGRATE timeout in ms (big keys are retried alone with 4x this)', helpGroup: 'MIGRATION', min: 100}),
    parallel: Flags.integer({default: 6, description: 'groups of up to 128 slots of one source/target pair moved at once', helpGroup: 'MIGRATION', min: 1}),
    'max-keys-per-sec': Flags.integer({description: 'limit the migration to this many keys per second', helpGroup: 'MIGRATION', min: 1}),
    'max-bytes-per-sec': Flags.integer({description: 'limit the migration to about this many bytes per second (sampled MEMORY USAGE)', helpGroup: 'MIGRATION', min: 1}),
    replace: Flags.boolean({description: 'overwrite keys that already exist at the target with different values', helpGroup: 'MIGRATION'}),
    journal: Flags.string({description: 'journal file (default: under ~/.local/state/slotctl/journals)', helpGroup: 'MIGRATION'}),
    'dry-run': Flags.boolean({description: 'show the plan and change nothing'}),
    out: Flags.string({description: 'write the plan as JSON to this file (run it later with slotctl apply)'}),
  }

  protected finishInFlightOnInterrupt = true

  protected migrationOptions() {
    const f = this.flags as Record<string, unknown>
    return {
      maxBytesPerSec: f['max-bytes-per-sec'] as number | undefined,
      maxKeysPerSec: f['max-keys-per-sec'] as number | undefined,
      parallel: f.parallel as number,
      pipeline: f.pipeline as number,
      replace: Boolean(f.replace),
      timeoutMs: f.timeout as number,
    }
  }

  protected migrationCommandTimeoutMs(): number {
    return adminTimeoutMs((this.flags as Record<string, unknown>).timeout as number)
  }

  protected refuseUnsafeCluster(snapshot: ClusterSnapshot, allowedOpenSlots: ReadonlySet<number> = new Set()): void {
    const blocking = runChecks(snapshot).filter((finding) => BLOCKS_MIGRATION.has(finding.code))
    const unexpectedOpen = snapshot.nodes.flatMap((node) => openSlotsOf(node)).filter((slot) => !allowedOpenSlots.has(slot))
    const problems = blocking.filter((finding) => finding.code !== 'OPEN_SLOT' || unexpectedOpen.length > 0)
    if (problems.length === 0) return
    throw new SlotctlError(`refusing to move slots: ${problems[0].message}${problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : ''}`, {
      code: 'E_UNSAFE_CLUSTER',
      suggestions: [`see: slotctl check ${snapshot.seedAddress}`, `an interrupted slotctl run continues with its --resume JOURNAL; anything else: slotctl fix ${snapshot.seedAddress} --dry-run`],
    })
  }

  /**
   * Refuses a plan whose sources no longer own their slots (the cluster changed since).
   * When resuming, returns the slots whose target already owns them: only closing is left.
   */
  private refuseStalePlan(snapshot: ClusterSnapshot, plan: MigrationPlan, resume?: JournalState): Set<number> {
    const owners = slotOwners(snapshot.nodes)
    const closeOnly = new Set<number>()
    const stale: number[] = []
    for (const move of plan.moves) {
      if (resume?.doneSlots.has(move.slot)) continue
      const owner = owners.get(move.slot)
      if (owner === move.sourceId) continue
      // after a crash the target may already own the slot: only the closing step is left
      if (owner === move.targetId && resume) closeOnly.add(move.slot)
      else stale.push(move.slot)
    }
    if (stale.length > 0) {
      throw new SlotctlError(`the cluster changed since the plan was made: slot(s) ${formatSlots(stale)} no longer belong to their planned source`, {
        code: 'E_STALE_PLAN',
        suggestions: ['make a new plan (reshard/rebalance --dry-run --out plan.json)'],
      })
    }
    return closeOnly
  }

  protected async runPlan(snapshot: ClusterSnapshot, plan: MigrationPlan, options: RunPlanOptions): Promise<MigrationResult> {
    const f = this.flags as Record<string, unknown>
    const done = options.resume?.state.doneSlots ?? new Set<number>()
    this.refuseUnsafeCluster(snapshot, options.resume?.state.inFlight)
    const closeOnly = this.refuseStalePlan(snapshot, plan, options.resume?.state)
    this.showPlan(snapshot, plan, done)
    if (f.out) await this.writePlan(plan, f.out as string)
    if (f['dry-run']) return {plan, planFile: f.out as string | undefined, status: 'planned'}
    const remaining = plan.moves.filter((move) => !done.has(move.slot))
    if (remaining.length === 0) {
      this.log('nothing to move')
      return {plan, status: 'nothing-to-do'}
    }
    if (!(await this.confirm(`Move ${remaining.length} slot(s) now?`))) throw new SlotctlError('cancelled: nothing was changed', {code: 'E_CANCELLED'})

    const journalPath = options.resume?.path ?? (f.journal as string | undefined) ?? defaultJournalPath(plan.kind)
    const journal = options.resume ? Journal.reopen(journalPath) : Journal.create(journalPath, plan, options.resumeCommand(journalPath))
    this.note(`journal: ${journalPath}`)
    const progress = ProgressReporter.forOutput(remaining.length, this.jsonEnabled())
    let result: ExecuteResult
    try {
      result = await executePlan(this.pool(), plan, {
        ...this.migrationOptions(),
        closeOnlySlots: closeOnly,
        journal,
        masters: mastersOf(snapshot.nodes).filter((node) => node.address).map((node) => ({address: node.address, id: node.id})),
        onEvent: progress.onEvent,
        perNodeLimit: f.parallel as number,
        signal: this.stopRequest.signal,
        skipSlots: done,
      })
    } finally {
      progress.stop()
    }
    return this.finish(plan, result, journalPath, options.resumeCommand(journalPath))
  }

  private finish(plan: MigrationPlan, result: ExecuteResult, journal: string, resumeCommand: string): MigrationResult {
    const rate = result.seconds > 0 ? Math.round(result.keysMoved / result.seconds) : result.keysMoved
    this.log(`${result.slotsMoved} slot(s) and ${result.keysMoved} key(s) (${formatBytes(result.bytesMoved)}) moved in ${formatDuration(result.seconds * 1000)} (${rate} keys/s)`)
    if (result.failures.length > 0) {
      for (const failure of result.failures) process.stderr.write(`slotctl: error: ${failure.error}\n`)
      this.note(`after resolving it, continue with: ${resumeCommand}`)
      this.resultExitCode = ExitCode.failed
      return {...result, journal, plan, resumeCommand, status: 'failed'}
    }
    if (result.interrupted) {
      this.note(paint.warn(`interrupted: ${result.slotsPlanned - result.slotsMoved} slot(s) not moved; no slot was left open. Continue with: ${resumeCommand}`))
      this.resultExitCode = ExitCode.interrupted
      return {...result, journal, plan, resumeCommand, status: 'interrupted'}
    }
    return {...result, journal, plan, status: 'done'}
  }

  private showPlan(snapshot: ClusterSnapshot, plan: MigrationPlan, done: ReadonlySet<number>): void {
    const address = (id: string) => snapshot.nodes.find((node) => node.id === id)?.address ?? id.slice(0, 8)
    const pairs = new Map<string, number[]>()
    for (const move of plan.moves) {
      if (done.has(move.slot)) continue
      const key = `${move.sourceId} ${move.targetId}`
      pairs.set(key, [...(pairs.get(key) ?? []), move.slot])
    }
    const rows = [...pairs.entries()].map(([key, slots]) => {
      const [source, target] = key.split(' ')
      return [address(source), address(target), slots.length, formatSlots(slots).slice(0, 60)]
    })
    this.log(table(['from', 'to', 'slots', 'which'], rows, ['left', 'left', 'right', 'left']))
  }

  private async writePlan(plan: MigrationPlan, file: string): Promise<void> {
    try {
      await writeFile(file, `${JSON.stringify(plan, null, 2)}\n`)
    } catch (error) {
      throw usageError(`cannot write the plan to '${file}': ${(error as Error).message}`)
    }
    this.note(`plan written to ${file}`)
  }
}
