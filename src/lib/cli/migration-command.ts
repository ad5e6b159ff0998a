/**
 * The base for verbs that move slots (reshard, rebalance, apply, del-node --drain): the
 * shared flags, the safety preconditions, confirmation, the run lock, the journal,
 * progress, Ctrl-C handling and the result. Verbs only build a plan and call runPlan().
 */
import {writeFile} from 'node:fs/promises'

import {Command, Flags} from '@oclif/core'

import {BaseCommand} from './base-command.js'
import {BLOCKS_MIGRATION, runChecks} from '../check/checks.js'
import {type ClusterSnapshot, loadCluster} from '../cluster/loader.js'
import {parseAddress} from '../cluster/address.js'
import {delay} from '../cluster/connection.js'
import {ExitCode, SlotctlError, usageError} from '../errors.js'
import {type ExecuteResult, type ExecuteWarning, type MigrationEvent, executePlan} from '../migrate/executor.js'
import {Journal, type JournalState, type RunSettings, defaultJournalPath} from '../migrate/journal.js'
import {LegacyMover} from '../migrate/legacy-mover.js'
import {Throttle} from '../migrate/throttle.js'
import type {MigrationPlan} from '../plan/types.js'
import {ProgressReporter} from './progress.js'
import {formatBytes, formatDuration, paint, table} from './render.js'
import {formatSlots} from '../cluster/slots.js'
import {type ClusterNode, mastersOf, openSlotsOf, slotOwners} from '../cluster/topology.js'

export const DEFAULT_MIGRATE_TIMEOUT_MS = 60_000

/** The admin pool must wait longer than MIGRATE may take, big-key retries (4x) included. */
export function adminTimeoutMs(migrateTimeoutMs: number): number {
  return migrateTimeoutMs * 4 + 5000
}

/** How long the views of every node may take to agree on the moved slots after a run. */
const AGREEMENT_WAIT_MS = 15_000

export interface MigrationResult extends Partial<Omit<ExecuteResult, 'warnings'>> {
  status: 'done' | 'failed' | 'interrupted' | 'nothing-to-do' | 'planned'
  plan: MigrationPlan
  journal?: string
  planFile?: string
  resumeCommand?: string
  warnings?: ExecuteWarning[]
}

export interface RunPlanOptions {
  /** A resumed journal: its done slots are skipped, its open slots are allowed. */
  resume?: {path: string; state: JournalState}
  /** The verb and arguments that continue the run, given its journal ("reshard HOST:PORT --resume J"). */
  resumeArgs: (journal: string) => string
}

const SETTING_FLAGS: Record<keyof RunSettings, string> = {
  maxBytesPerSec: 'max-bytes-per-sec',
  maxKeysPerSec: 'max-keys-per-sec',
  parallel: 'parallel',
  pipeline: 'pipeline',
  replace: 'replace',
  timeoutMs: 'timeout',
}

export abstract class MigrationCommand<T extends typeof Command> extends BaseCommand<T> {
  static migrationFlags = {
    pipeline: Flags.integer({default: 1000, description: 'keys per MIGRATE batch', helpGroup: 'MIGRATION', min: 1}),
    timeout: Flags.integer({default: DEFAULT_MIGRATE_TIMEOUT_MS, description: 'MIGRATE timeout in ms (big keys are retried alone with 4x this)', helpGroup: 'MIGRATION', min: 100}),
    parallel: Flags.integer({default: 6, description: 'groups of up to 128 slots of one source/target pair moved at once', helpGroup: 'MIGRATION', min: 1}),
    'max-keys-per-sec': Flags.integer({description: 'limit the migration to this many keys per second', helpGroup: 'MIGRATION', min: 1}),
    'max-bytes-per-sec': Flags.integer({description: 'limit the migration to about this many bytes per second (sampled MEMORY USAGE)', helpGroup: 'MIGRATION', min: 1}),
    replace: Flags.boolean({description: 'overwrite keys that already exist at the target with different values', helpGroup: 'MIGRATION'}),
    journal: Flags.string({description: 'journal file (default: under ~/.local/state/slotctl/journals); must not exist yet', helpGroup: 'MIGRATION'}),
    force: Flags.boolean({description: 'go on even if another slotctl run seems to be changing the cluster', helpGroup: 'MIGRATION'}),
    'dry-run': Flags.boolean({description: 'show the plan and change nothing'}),
    out: Flags.string({description: 'write the plan as JSON to this file (run it later with slotctl apply)'}),
  }

  protected finishInFlightOnInterrupt = true

  /** The run's settings: flags given now win, then what the resumed journal recorded, then defaults. */
  protected runSettings(recorded: RunSettings = {}): Required<Omit<RunSettings, 'maxBytesPerSec' | 'maxKeysPerSec'>> & RunSettings {
    const f = this.flags as Record<string, unknown>
    const pick = <K extends keyof RunSettings>(key: K): RunSettings[K] => {
      const flag = SETTING_FLAGS[key]
      return (this.flagsGiven.has(flag) || recorded[key] === undefined ? (flag === 'timeout' ? f.timeout : f[flag]) : recorded[key]) as RunSettings[K]
    }
    return {
      maxBytesPerSec: pick('maxBytesPerSec'),
      maxKeysPerSec: pick('maxKeysPerSec'),
      parallel: pick('parallel') as number,
      pipeline: pick('pipeline') as number,
      replace: Boolean(pick('replace')),
      timeoutMs: pick('timeoutMs') as number,
    }
  }

  /** The admin connections' timeout for this run (a resumed run uses its recorded MIGRATE timeout). */
  protected migrationCommandTimeoutMs(recorded?: RunSettings): number {
    return adminTimeoutMs(this.runSettings(recorded).timeoutMs)
  }

  protected refuseUnsafeCluster(snapshot: ClusterSnapshot, allowedOpenSlots: ReadonlySet<number> = new Set()): void {
    const blocking = runChecks(snapshot).filter((finding) => BLOCKS_MIGRATION.has(finding.code))
    const unexpectedOpen = snapshot.nodes.flatMap((node) => openSlotsOf(node)).filter((slot) => !allowedOpenSlots.has(slot))
    const problems = blocking.filter((finding) => finding.code !== 'OPEN_SLOT' || unexpectedOpen.length > 0)
    if (problems.length === 0) return
    throw new SlotctlError(`refusing to move slots: ${problems[0].message}${problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : ''}`, {
      code: 'E_UNSAFE_CLUSTER',
      suggestions: [`see: ${this.commandHint(`check ${snapshot.seedAddress}`)}`, `an interrupted slotctl run continues with its --resume JOURNAL; anything else: ${this.commandHint(`fix ${snapshot.seedAddress} --dry-run`)}`],
    })
  }

  /**
   * A plan names nodes by id; the live cluster says where they are. Every id must be a
   * reachable master of this cluster; slotctl never connects to an address read from a file.
   */
  private liveAddresses(snapshot: ClusterSnapshot, plan: MigrationPlan, warnings: ExecuteWarning[]): Map<string, string> {
    const byId = new Map(snapshot.nodes.map((node): [string, ClusterNode] => [node.id, node]))
    const addresses = new Map<string, string>()
    for (const id of new Set(plan.moves.flatMap((move) => [move.sourceId, move.targetId]))) {
      const node = byId.get(id)
      if (!node) throw new SlotctlError(`the plan names node ${id}, which this cluster does not have; nothing was changed`, {code: 'E_STALE_PLAN', suggestions: ['make a new plan for this cluster (reshard/rebalance --dry-run --out plan.json)']})
      if (node.role !== 'master' || !snapshot.views[id]?.reachable) {
        throw new SlotctlError(`the plan moves slots to or from ${node.address || id} (${id.slice(0, 8)}), which is ${node.role !== 'master' ? 'not a master' : 'unreachable'} now; nothing was changed`, {code: 'E_STALE_PLAN', suggestions: ['make a new plan (reshard/rebalance --dry-run --out plan.json)']})
      }
      addresses.set(id, node.address)
      const written = plan.nodes.find((entry) => entry.id === id)?.address
      if (written && written !== node.address) {
        const message = `the plan says ${id.slice(0, 8)} is at ${written}; the cluster has it at ${node.address}, which is used`
        warnings.push({code: 'PLAN_ADDRESS_CHANGED', message})
        this.note(`note: ${message}`)
      }
    }
    return addresses
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
      throw new SlotctlError(`the cluster changed since the plan was made: slot(s) ${formatSlots(stale)} no longer belong to their planned source; nothing was changed`, {
        code: 'E_STALE_PLAN',
        suggestions: ['make a new plan (reshard/rebalance --dry-run --out plan.json)'],
      })
    }
    return closeOnly
  }

  protected async runPlan(snapshot: ClusterSnapshot, plan: MigrationPlan, options: RunPlanOptions): Promise<MigrationResult> {
    const f = this.flags as Record<string, unknown>
    const done = options.resume?.state.doneSlots ?? new Set<number>()
    await this.refuseIfOtherRun(snapshot, Boolean(f.force))
    this.refuseUnsafeCluster(snapshot, options.resume?.state.inFlight)
    const warnings: ExecuteWarning[] = []
    const addresses = this.liveAddresses(snapshot, plan, warnings)
    const closeOnly = this.refuseStalePlan(snapshot, plan, options.resume?.state)
    this.showPlan(snapshot, plan, done)
    if (f.out) await this.writePlan(plan, f.out as string)
    if (f['dry-run']) return {plan, planFile: f.out as string | undefined, status: 'planned', warnings}
    const remaining = plan.moves.filter((move) => !done.has(move.slot))
    if (remaining.length === 0) {
      this.log('nothing to move')
      return {plan, status: 'nothing-to-do'}
    }
    if (!(await this.confirm(`Move ${remaining.length} slot(s) now?`))) throw new SlotctlError('cancelled: nothing was changed', {code: 'E_CANCELLED'})

    const settings = this.runSettings(options.resume?.state.settings)
    await this.lockCluster(snapshot, Boolean(f.force))
    const masters = mastersOf(snapshot.nodes).filter((node) => node.address && snapshot.views[node.id]?.reachable)
    const journalPath = options.resume?.path ?? (f.journal as string | undefined) ?? defaultJournalPath(plan.kind)
    const resumeCommand = this.commandHint(options.resumeArgs(journalPath))
    const journal = options.resume ? Journal.reopen(journalPath) : Journal.create(journalPath, plan, {command: resumeCommand, settings: definedSettings(settings), verb: this.id})
    this.note(`journal: ${journalPath}`)
    if (options.resume && Object.keys(options.resume.state.settings).length > 0) this.note(`resuming with the run's settings: ${describeSettings(settings)}`)
    const progress = ProgressReporter.forOutput(remaining.length, this.jsonEnabled())
    const closed = new Set<number>()
    const onEvent = (event: MigrationEvent) => {
      if (event.type === 'slot-done') closed.add(event.slot)
      progress.onEvent(event)
    }
    let result: ExecuteResult
    try {
      const throttle = settings.maxKeysPerSec || settings.maxBytesPerSec ? new Throttle(settings) : undefined
      const mover = new LegacyMover(this.pool(), {
        onBatch: (keys, bytes, slot) => progress.onEvent({bytes, keys, slot, type: 'batch'}),
        pipeline: settings.pipeline,
        replace: settings.replace,
        throttle,
        timeoutMs: settings.timeoutMs,
      })
      result = await executePlan(mover, plan, {
        addresses,
        closeOnlySlots: closeOnly,
        journal,
        masters: masters.map((node) => ({address: node.address, id: node.id})),
        onEvent,
        parallel: settings.parallel,
        perNodeLimit: settings.parallel,
        signal: this.stopRequest.signal,
        skipSlots: done,
      })
    } finally {
      progress.stop()
    }
    if (closed.size > 0 && result.failures.length === 0) await this.verifyAgreement(snapshot, plan, closed, result)
    result.warnings.unshift(...warnings)
    return this.finish(snapshot, plan, result, journalPath, resumeCommand)
  }

  /**
   * After the run, every reachable node's own view must give each moved slot to its target
   * (gossip carries the close to replicas within moments). A view that still disagrees after
   * the wait is a failure: something handed a slot back, or a node is partitioned.
   */
  private async verifyAgreement(snapshot: ClusterSnapshot, plan: MigrationPlan, closed: ReadonlySet<number>, result: ExecuteResult): Promise<void> {
    const moved = plan.moves.filter((move) => closed.has(move.slot))
    const deadline = Date.now() + AGREEMENT_WAIT_MS
    for (;;) {
      const now = await loadCluster(this.pool(), parseAddress(snapshot.seedAddress))
      const disagreeing = disagreements(now, moved)
      if (disagreeing.length === 0) return
      if (Date.now() >= deadline) {
        const [first] = disagreeing
        result.failures.push({
          code: 'E_VERIFY',
          error: `verification failed: ${disagreeing.length} node view(s) do not give the moved slots to their targets after ${AGREEMENT_WAIT_MS / 1000} s (${first.address}: slot ${first.slot} → ${first.owner ?? 'no owner'})`,
          slot: first.slot,
        })
        return
      }
      await delay(250)
    }
  }

  private finish(snapshot: ClusterSnapshot, plan: MigrationPlan, result: ExecuteResult, journal: string, resumeCommand: string): MigrationResult {
    const rate = result.seconds > 0 ? Math.round(result.keysMoved / result.seconds) : result.keysMoved
    this.log(`${result.slotsMoved} slot(s) and ${result.keysMoved} key(s) (${formatBytes(result.bytesMoved)}) moved in ${formatDuration(result.seconds * 1000)} (${rate} keys/s)`)
    for (const warning of result.warnings) this.note(paint.warn(`warning: ${warning.message}`))
    if (result.failures.length > 0) {
      for (const failure of result.failures) process.stderr.write(`slotctl: error: ${failure.error}\n`)
      this.note(`the failed slot(s) are left open and journaled; after resolving the cause, continue with: ${resumeCommand}`)
      this.note(`or let fix finish them: ${this.commandHint(`fix ${snapshot.seedAddress} --journal ${journal}`)}`)
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
      await writeFile(file, `${JSON.stringify(plan, null, 2)}\n`, {mode: 0o600})
    } catch (error) {
      throw usageError(`cannot write the plan to '${file}': ${(error as Error).message}`)
    }
    this.note(`plan written to ${file}`)
  }
}

/** Views (of reachable nodes) that give a moved slot to anyone but its target. */
function disagreements(snapshot: ClusterSnapshot, moves: MigrationPlan['moves']): Array<{address: string; slot: number; owner?: string}> {
  const found: Array<{address: string; slot: number; owner?: string}> = []
  for (const view of Object.values(snapshot.views)) {
    if (!view.reachable || !view.nodes) continue
    const owners = slotOwners(view.nodes)
    const wrong = moves.find((move) => owners.get(move.slot) !== move.targetId)
    if (wrong) found.push({address: view.address, owner: owners.get(wrong.slot)?.slice(0, 8), slot: wrong.slot})
  }
  return found
}

/** The settings the journal records, so that a resume runs the same way. */
function definedSettings(settings: RunSettings): RunSettings {
  return Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined && value !== false)) as RunSettings
}

function describeSettings(settings: RunSettings): string {
  return Object.entries(settings)
    .filter(([, value]) => value !== undefined && value !== false)
    .map(([key, value]) => `--${SETTING_FLAGS[key as keyof RunSettings]} ${value === true ? '' : value}`.trim())
    .join(' ')
}
