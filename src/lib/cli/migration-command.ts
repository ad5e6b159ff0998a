/**
 * The base for verbs that move slots (reshard, rebalance, apply, del-node --drain): the
 * shared flags, confirmation, the run lock, progress, Ctrl-C handling and the rendered
 * result. The run itself (safety, protocols, movers, journal, agreement) is the engine's,
 * migrate/run.ts; verbs only build a plan and call runPlan().
 */
import path from 'node:path'

import {Command, Flags} from '@oclif/core'

import {BaseCommand, ignoreLockFlag, retiredForceFlag} from './base-command.js'
import {refuseUnsafeCluster} from '../check/gate.js'
import type {ClusterSnapshot} from '../cluster/loader.js'
import {ExitCode, SlotctlError, usageError} from '../core/errors.js'
import {refuseExistingOutput, refuseKernelPath, writeOutputFile} from '../files.js'
import type {PhaseTimes} from '../phases.js'
import type {ExecuteResult, ExecuteWarning} from '../migrate/executor.js'
import {type JournalState, type RunSettings, defaultJournalPath, journalDir} from '../migrate/journal.js'
import {
  DEFAULT_MIGRATE_TIMEOUT_MS,
  DEFAULT_REPLICA_WAIT_MS,
  type EngineSettings,
  type RunContext,
  type RunEvent,
  SETTING_FLAGS,
  adminTimeoutMs,
  checkPlan,
  countPlannedKeys,
  definedSettings,
  executeRun,
  openJournal,
  preflight,
  settledSnapshot,
  verifyRun,
  type RunOutcome,
} from '../migrate/run.js'
import type {MigrationPlan} from '../plan/types.js'
import {planFileText, toPlanFile} from '../plan/plan-file.js'
import {clusterIdOf} from '../history/audit-log.js'
import {interactive} from './prompt.js'
import {type MapLines, ProgressReporter} from './progress.js'
import {colourOn, describePhases, formatBytes, formatDuration, paint, planTable} from './render.js'
import {applyMoves, buildSlotMap, renderSlotMap} from './slot-map.js'
import {type Issue, type VerbResult, issue, slotSet} from '../core/result.js'
import {durationFlag} from './duration.js'
import {sizeFlag} from './size.js'
import {DEFAULT_BIG_KEY_BYTES, DEFAULT_MIGRATE_RATE} from '../migrate/big-keys.js'
import {type SlotRange, formatSlots} from '../core/slots.js'

// the engine's; re-exported for the verbs and branches that import them from here
export {DEFAULT_MIGRATE_TIMEOUT_MS, DEFAULT_REPLICA_WAIT_MS, adminTimeoutMs}

/** Exit codes of the verbs that move slots (their help lists them). */
export const MIGRATION_EXIT_CODES: Record<number, string> = {
  0: 'moved (or nothing to move, or --dry-run)',
  1: 'refused (unsafe cluster, stale plan), cancelled, or a slot failed',
  4: 'a confirmation was needed, but there is no terminal and no --yes',
  130: 'interrupted: slots in flight finished, none open; --resume goes on',
}

/** The slots one source gives one target, in the contract's vocabulary. */
export interface PairMoves {
  sourceId: string
  sourceAddress: string
  targetId: string
  targetAddress: string
  slots: SlotRange[]
  slotCount: number
}

export interface MigrationResult extends VerbResult {
  status: 'done' | 'failed' | 'interrupted' | 'nothing-to-do' | 'planned'
  kind: MigrationPlan['kind']
  /** What this run moves (slots already done in a resumed journal left out), per source/target pair. */
  moves: PairMoves[]
  slotsPlanned: number
  /** slots this run moved */
  slotsMoved: number
  /** slots whose keys an earlier run (or fix) had moved already: this run only closed them */
  slotsFinished: number
  keysMoved: number
  bytesMoved: number
  elapsedMs: number
  journal?: string
  planFile?: string
  resumeCommand?: string
  /** durable moves: per target, the replicas that acknowledged every key moved to it */
  heldBy?: Array<{target: string; replicas: number}>
  /** where the time went, per phase (start-up, load, settle, lock, preflight, confirm, moving, verification) */
  phasesMs?: PhaseTimes
}

/** The result of a run that moved nothing (yet): dry runs, nothing to do, balanced. */
export function unmovedResult(plan: MigrationPlan, skip: ReadonlySet<number> = new Set()): Omit<MigrationResult, 'status'> {
  const moves = pairMoves(plan, skip)
  return {bytesMoved: 0, elapsedMs: 0, errors: [], keysMoved: 0, kind: plan.kind, moves, slotsFinished: 0, slotsMoved: 0, slotsPlanned: moves.reduce((sum, pair) => sum + pair.slotCount, 0), warnings: []}
}

/** Groups a plan's moves by source/target pair, in plan order. */
export function pairMoves(plan: MigrationPlan, skip: ReadonlySet<number> = new Set()): PairMoves[] {
  const addressOf = new Map(plan.nodes.map((node) => [node.id, node.address]))
  const pairs = new Map<string, {sourceId: string; targetId: string; slots: number[]}>()
  for (const move of plan.moves) {
    if (skip.has(move.slot)) continue
    const key = `${move.sourceId} ${move.targetId}`
    const pair = pairs.get(key) ?? {slots: [], sourceId: move.sourceId, targetId: move.targetId}
    pair.slots.push(move.slot)
    pairs.set(key, pair)
  }
  return [...pairs.values()].map(({slots, sourceId, targetId}) => ({sourceAddress: addressOf.get(sourceId) ?? '', sourceId, targetAddress: addressOf.get(targetId) ?? '', targetId, ...slotSet(slots)}))
}

export interface RunPlanOptions {
  /** A resumed journal: its done slots are skipped, its open slots are allowed. */
  resume?: {path: string; state: JournalState}
  /** The verb and arguments that continue the run, given its journal ("reshard HOST:PORT --resume J"). */
  resumeArgs: (journal: string) => string
}


/**
 * --progress map: the slot map of the cluster as this run read it, with the slots closed so
 * far drawn as their target's and the ones moving marked open.
 */
function migrationMap(snapshot: ClusterSnapshot, plan: MigrationPlan, closed: ReadonlySet<number>, moving: ReadonlySet<number>): MapLines {
  const base = buildSlotMap(snapshot.nodes)
  const addressOf = new Map(plan.nodes.map((node) => [node.id, node.address]))
  const moveOf = new Map(plan.moves.map((move) => [move.slot, {slot: move.slot, sourceId: move.sourceId, targetAddress: addressOf.get(move.targetId) ?? '', targetId: move.targetId}]))
  const movesIn = (slots: ReadonlySet<number>) => [...slots].flatMap((slot) => moveOf.get(slot) ?? [])
  return (width) => renderSlotMap(applyMoves(base, movesIn(closed), movesIn(moving)), {colour: colourOn(), listOpen: false, width})
}

export abstract class MigrationCommand<T extends typeof Command> extends BaseCommand<T> {
  static migrationFlags = {
    pipeline: Flags.integer({default: 1000, description: 'keys per MIGRATE batch', helpGroup: 'MIGRATION', min: 1}),
    timeout: durationFlag({defaultMs: DEFAULT_MIGRATE_TIMEOUT_MS, description: 'MIGRATE timeout (big keys are retried alone with 4x this)', helpGroup: 'MIGRATION', minMs: 100, plainUnit: 'ms'}),
    parallel: Flags.integer({default: 6, description: 'groups of up to 128 slots of one source/target pair moved at once', helpGroup: 'MIGRATION', min: 1}),
    'max-keys-per-sec': Flags.integer({description: 'limit the migration to this many keys per second', helpGroup: 'MIGRATION', min: 1}),
    'max-bytes-per-sec': Flags.integer({description: 'limit the migration to about this many bytes per second (sampled MEMORY USAGE)', helpGroup: 'MIGRATION', min: 1}),
    replace: Flags.boolean({description: 'overwrite keys that already exist at the target with different values', helpGroup: 'MIGRATION'}),
    journal: Flags.string({description: 'journal file (default: under ~/.local/state/slotctl/journals); must not exist yet', helpGroup: 'MIGRATION'}),
    'ignore-lock': ignoreLockFlag,
    force: retiredForceFlag,
    'big-key-bytes': sizeFlag({defaultBytes: DEFAULT_BIG_KEY_BYTES, defaultHelp: '64mb', description: 'keys at least this big are listed before moving; any key (of any size) whose move would block its master longer than half of cluster-node-timeout refuses the run (0: do not look)', helpGroup: 'MIGRATION'}),
    'allow-big-keys': Flags.boolean({description: 'move big keys that would block their master for long anyway: each alone, with its own timeout', helpGroup: 'MIGRATION'}),
    'assumed-migrate-rate': sizeFlag({defaultBytes: DEFAULT_MIGRATE_RATE, defaultHelp: '100mb', description: 'per-byte MIGRATE throughput assumed when estimating how long a big key blocks its master (a cost per element of hashes, sets and sorted sets comes on top)', helpGroup: 'MIGRATION'}),
    durability: Flags.option({
      default: 'replicas',
      description: "when a key may leave its source. replicas: once the target's replicas acknowledged its copy (copy, WAIT, delete). server: where both ends migrate atomically (Valkey >= 9), when the servers hand the slots over, which does not wait for the target's replicas (slotctl checks them before each job and waits for them after); replicas elsewhere. none: as soon as the target has it (plain MIGRATE, or atomic migration where offered); a target that dies before its replicas catch up loses those keys",
      helpGroup: 'MIGRATION',
      options: ['replicas', 'server', 'none'] as const,
    })(),
    'min-replica-acks': Flags.integer({description: "replica acknowledgements each batch waits for (default: every replica the target has)", helpGroup: 'MIGRATION', min: 0}),
    'replica-wait': durationFlag({defaultMs: DEFAULT_REPLICA_WAIT_MS, description: "how long a batch waits for the target's replicas to acknowledge, and a wave for unhealthy replicas to recover, before the run stops", helpGroup: 'MIGRATION', minMs: 100, plainUnit: 'ms'}),
    'legacy-migrate': Flags.boolean({description: 'use SETSLOT + MIGRATE even where both nodes offer atomic slot migration (Valkey >= 9)', helpGroup: 'MIGRATION'}),
    progress: Flags.option({default: 'auto', description: 'progress on stderr: a bar on a terminal, a line every few seconds elsewhere (auto), the slot map filling in above the bar (map, a terminal), NDJSON events (json), or none', helpGroup: 'MIGRATION', options: ['auto', 'bar', 'lines', 'map', 'json', 'none'] as const})(),
    'dry-run': Flags.boolean({description: 'show the plan and change nothing'}),
    out: Flags.string({description: 'write the plan as JSON to this new file (run it later with slotctl apply)'}),
    overwrite: Flags.boolean({dependsOn: ['out'], description: 'replace the --out file if it exists (a symlink is never written through)'}),
  }

  protected override finishInFlightOnInterrupt = true
  /** slots opened and not closed yet: what a second Ctrl-C leaves behind */
  private readonly openSlots = new Set<number>()
  private resumeHint?: string

  protected override firstInterruptMessage(signal: NodeJS.Signals): string {
    if (!this.progress) return super.firstInterruptMessage(signal)
    return `slotctl: ${signal}: finishing the ${this.openSlots.size} slot(s) in flight, then stopping; no new slot is started (Ctrl-C again exits at once and leaves them open)`
  }

  protected override lastInterruptMessage(signal: NodeJS.Signals): string {
    if (!this.progress || this.openSlots.size === 0) return super.lastInterruptMessage(signal)
    return `slotctl: ${signal} again: exiting now; ${this.openSlots.size} slot(s) are left open (migrating/importing). Finish them with: ${this.resumeHint}`
  }

  /** The run's settings: flags given now win, then what the resumed journal recorded, then defaults. */
  protected runSettings(recorded: RunSettings = {}): EngineSettings {
    const f = this.flags as Record<string, unknown>
    const pick = <K extends keyof RunSettings>(key: K): RunSettings[K] => {
      const flag = SETTING_FLAGS[key]
      return (this.flagsGiven.has(flag) || recorded[key] === undefined ? (flag === 'timeout' ? f.timeout : f[flag]) : recorded[key]) as RunSettings[K]
    }
    return {
      durability: pick('durability') as string,
      legacyMigrate: Boolean(pick('legacyMigrate')),
      maxBytesPerSec: pick('maxBytesPerSec'),
      maxKeysPerSec: pick('maxKeysPerSec'),
      minReplicaAcks: pick('minReplicaAcks'),
      parallel: pick('parallel') as number,
      pipeline: pick('pipeline') as number,
      replace: Boolean(pick('replace')),
      replicaWaitMs: pick('replicaWaitMs') as number,
      timeoutMs: pick('timeoutMs') as number,
    }
  }

  /** The admin connections' timeout for this run (a resumed run uses its recorded MIGRATE timeout). */
  protected migrationCommandTimeoutMs(recorded?: RunSettings): number {
    return adminTimeoutMs(this.runSettings(recorded).timeoutMs)
  }

  protected async settledSnapshot(snapshot: ClusterSnapshot, allowedOpenSlots: ReadonlySet<number> = new Set()): Promise<ClusterSnapshot> {
    return settledSnapshot({commandHint: (args) => this.commandHint(args), pool: this.pool()}, snapshot, allowedOpenSlots)
  }

  protected refuseUnsafeCluster(snapshot: ClusterSnapshot, allowedOpenSlots: ReadonlySet<number> = new Set()): void {
    refuseUnsafeCluster(snapshot, 'move slots', (args) => this.commandHint(args), {allowedOpenSlots, resumable: true})
  }

  /** The engine's view of this command: its pool, settings, Ctrl-C, phases and notes. */
  private runContext(settings: EngineSettings, onEvent: (event: RunEvent) => void): RunContext {
    return {
      commandHint: (args) => this.commandHint(args),
      onEvent,
      pool: this.pool(),
      settings,
      signal: this.stopRequest.signal,
      time: (phase, work) => this.phases.time(phase, work),
    }
  }

  /** Notes of the engine go to stderr (warnings coloured, and kept under --quiet); progress events to the display. */
  private renderEvent(event: RunEvent): void {
    if (event.type === 'note') {
      if (event.warn) this.warnLine(paint.warn(event.message))
      else this.note(event.message)
    } else this.progress?.onEvent(event)
  }

  /** Warning lines on stderr: the cautions before the question, the result's warnings after the run. */
  private showWarnings(warnings: readonly ExecuteWarning[]): void {
    for (const warning of warnings) this.warnLine(paint.warn(`warning: ${warning.message}`))
  }

  /** the plan being run is the reverse of the one given (apply --reverse): so marked in an --out file */
  protected planInverted = false

  /**
   * Wires the flags into the engine (migrate/run.ts) and renders what it finds: the plan,
   * the question, progress, and the result with its exit code.
   */
  protected async runPlan(loaded: ClusterSnapshot, plan: MigrationPlan, options: RunPlanOptions): Promise<MigrationResult> {
    const f = this.flags as Record<string, unknown>
    const dryRun = Boolean(f['dry-run'])
    const resume = options.resume?.state
    // before any work: a plan file that cannot be written is bad input
    if (f.out) refuseExistingOutput(f.out as string, {overwrite: Boolean(f.overwrite), overwriteFlag: '--overwrite'})
    await this.refuseIfOtherRun(loaded)
    const settings = this.runSettings(resume?.settings)
    const closed = new Set<number>()
    const context = this.runContext(settings, (event) => {
      // slots opened and not closed: what a second Ctrl-C leaves behind (and --progress map draws)
      if (event.type === 'slot-start') this.openSlots.add(event.slot)
      if (event.type === 'slot-done') {
        closed.add(event.slot)
        this.openSlots.delete(event.slot)
      }
      this.renderEvent(event)
    })
    const checked = await checkPlan(context, loaded, plan, resume)
    this.showPlan(checked.snapshot, plan, checked.done)
    const prepared = await preflight(context, checked, {
      bigKeys: {allow: Boolean(f['allow-big-keys']), minBytes: f['big-key-bytes'] as number, rate: f['assumed-migrate-rate'] as number},
      dryRun,
    })
    const {remaining, snapshot} = prepared
    const unmoved = {...unmovedResult(plan, checked.done), warnings: prepared.warnings.map((warning) => issue(warning.code, warning.message))}
    if (dryRun) {
      const keys = remaining.length > 0 ? await this.phases.time('preflight', () => countPlannedKeys(this.pool(), remaining, prepared.addresses)) : 0
      if (remaining.length > 0) this.log(`${remaining.length} slot(s) holding ${keys} key(s) would move${this.throttleEstimate(-1)}`)
      if (f.out) await this.writePlan(prepared.planToSave, f.out as string, Boolean(f.overwrite), {clusterId: clusterIdOf(snapshot.nodes), keys})
      // after the plan file: a plan that cannot be written stays one error line
      this.showWarnings(prepared.cautions)
      return {...unmoved, phasesMs: this.reportPhases(), planFile: f.out as string | undefined, status: 'planned'}
    }
    if (remaining.length === 0) {
      if (f.out) await this.writePlan(prepared.planToSave, f.out as string, Boolean(f.overwrite), {clusterId: clusterIdOf(snapshot.nodes), keys: 0})
      this.log('nothing to move')
      return {...unmoved, status: 'nothing-to-do'}
    }
    // before the question: a journal that cannot be created must not wait for a yes
    if (!options.resume) refuseKernelPath((f.journal as string | undefined) ?? journalDir())
    const plannedKeys = await this.phases.time('preflight', () => countPlannedKeys(this.pool(), remaining, prepared.addresses, prepared.counted))
    if (f.out) await this.writePlan(prepared.planToSave, f.out as string, Boolean(f.overwrite), {clusterId: clusterIdOf(snapshot.nodes), keys: plannedKeys})
    // before the question, where it can change the answer; a run refused for want of --yes stays one line
    if (this.assumeYes || interactive()) this.showWarnings(prepared.cautions)
    if (!(await this.confirm(`Move ${remaining.length} slot(s) holding ${plannedKeys} key(s) now${this.throttleEstimate(plannedKeys)}?`))) throw new SlotctlError('cancelled: nothing was changed', {code: 'E_CANCELLED'})

    // the plan was checked on a read taken before the lock: it holds only if the cluster is still that one
    await this.lockUnchanged(snapshot)
    const journalPath = options.resume?.path ?? (f.journal as string | undefined) ?? defaultJournalPath(plan.kind)
    this.historyJournal = path.resolve(journalPath)
    const resumeCommand = this.commandHint(options.resumeArgs(journalPath))
    const journal = openJournal(context, prepared, {header: {command: resumeCommand, settings: definedSettings(settings), verb: this.id}, path: journalPath, reopen: Boolean(options.resume)})
    this.resumeHint = resumeCommand
    const mode = ProgressReporter.modeFor(f.progress as string, Boolean(f.quiet))
    const mapLines = mode === 'map' ? migrationMap(snapshot, plan, closed, this.openSlots) : undefined
    this.progress = new ProgressReporter({keys: plannedKeys, slots: remaining.length}, mode, undefined, undefined, mapLines)
    let result: RunOutcome
    try {
      result = await executeRun(context, prepared, {journal, keyFlagsGiven: ['pipeline', 'replace'].filter((flag) => this.flagsGiven.has(flag)), plannedKeys})
    } finally {
      this.progress.stop()
      this.progress = undefined
    }
    await verifyRun(context, prepared, result)
    return this.finish(snapshot, plan, result, journalPath, resumeCommand, unmoved.moves)
  }

  /** Each phase's time: printed with --verbose, returned for --json. */
  private reportPhases(): PhaseTimes {
    const times = this.phases.times()
    if ((this.flags as Record<string, unknown>).verbose) this.note(`time: ${describePhases(times)}`)
    return times
  }

  /** ", about 5m at 20000 keys/s" when a throttle is set (keys < 0: only the limits). */
  private throttleEstimate(keys: number): string {
    const f = this.flags as Record<string, unknown>
    const maxKeysPerSec = f['max-keys-per-sec'] as number | undefined
    const maxBytesPerSec = f['max-bytes-per-sec'] as number | undefined
    const parts: string[] = []
    if (maxKeysPerSec) parts.push(keys >= 0 ? `about ${formatDuration((keys / maxKeysPerSec) * 1000)} at ${maxKeysPerSec} keys/s` : `at most ${maxKeysPerSec} keys/s`)
    if (maxBytesPerSec) parts.push(`${maxKeysPerSec ? 'and ' : ''}at most ${formatBytes(maxBytesPerSec)}/s`)
    return parts.length > 0 ? `, ${parts.join(' ')}` : ''
  }

  private finish(snapshot: ClusterSnapshot, plan: MigrationPlan, result: ExecuteResult, journal: string, resumeCommand: string, moves: PairMoves[]): MigrationResult {
    const rate = result.seconds > 0 ? Math.round(result.keysMoved / result.seconds) : result.keysMoved
    this.log(`${result.slotsMoved} slot(s) and ${result.keysMoved} key(s) (${formatBytes(result.bytesMoved)}) moved in ${formatDuration(result.seconds * 1000)} (${rate} keys/s)${describeHeld(result.held)}`)
    this.showWarnings(result.warnings)
    if (result.slotsFinished > 0) this.log(`${result.slotsFinished} more slot(s) had been moved by an earlier run (or fix); this run only closed them`)
    const base = {
      bytesMoved: result.bytesMoved,
      phasesMs: this.reportPhases(),
      elapsedMs: Math.round(result.seconds * 1000),
      errors: result.failures.map((failure): Issue => issue(failure.code, failure.error, slotSet([failure.slot]))),
      journal,
      keysMoved: result.keysMoved,
      kind: plan.kind,
      moves,
      slotsFinished: result.slotsFinished,
      slotsMoved: result.slotsMoved,
      slotsPlanned: result.slotsPlanned,
      warnings: result.warnings.map((warning) => issue(warning.code, warning.message)),
      ...(result.held.size > 0 ? {heldBy: [...result.held].map(([target, replicas]) => ({replicas, target}))} : {}),
    }
    if (result.failures.length > 0) {
      for (const line of groupFailures(result.failures)) this.errorLine(`slotctl: error: ${line}`)
      this.note(`the failed slot(s) are left open and journaled; after resolving the cause, continue with: ${resumeCommand}`)
      this.note(`or let fix finish them: ${this.commandHint(`fix ${snapshot.seedAddress} --journal ${journal}`)}`)
      this.resultExitCode = ExitCode.failed
      return {...base, resumeCommand, status: 'failed'}
    }
    if (result.interrupted) {
      this.note(paint.warn(`interrupted: ${result.slotsPlanned - result.slotsMoved} slot(s) not moved; no slot was left open. Continue with: ${resumeCommand}`))
      this.resultExitCode = ExitCode.interrupted
      return {...base, resumeCommand, status: 'interrupted'}
    }
    return {...base, status: 'done'}
  }

  private showPlan(snapshot: ClusterSnapshot, plan: MigrationPlan, done: ReadonlySet<number>): void {
    const address = (id: string) => snapshot.nodes.find((node) => node.id === id)?.address ?? id.slice(0, 8)
    this.log(planTable(plan, address, done))
  }

  private async writePlan(plan: MigrationPlan, file: string, overwrite: boolean, meta: {clusterId?: string; keys: number}): Promise<void> {
    try {
      await writeOutputFile(file, planFileText(toPlanFile(plan, {...meta, inverted: this.planInverted})), {overwrite, overwriteFlag: '--overwrite'})
    } catch (error) {
      if (error instanceof SlotctlError) throw error
      throw usageError(`cannot write the plan to '${file}': ${(error as Error).message}`)
    }
    this.note(`plan written to ${file}`)
  }
}

/** "; held by the target and 1 replica" (every target the same), or the fewest over targets. */
function describeHeld(held: ReadonlyMap<string, number>): string {
  if (held.size === 0) return ''
  const counts = new Set(held.values())
  const fewest = Math.min(...counts)
  const replicas = (n: number) => `${n} replica${n === 1 ? '' : 's'}`
  if (fewest === 0 && counts.size === 1) return `; held by the ${held.size === 1 ? 'target' : 'targets'} alone (no replicas)`
  const subject = held.size === 1 ? 'the target' : 'each target'
  return counts.size === 1 ? `; held by ${subject} and ${replicas(fewest)}` : `; held by ${subject} and at least ${replicas(fewest)}`
}

/** One line per distinct cause, naming its slots: a dead target must not print a line per slot. */
export function groupFailures(failures: ReadonlyArray<{slot: number; error: string}>): string[] {
  const bySlots = new Map<string, number[]>()
  for (const {error, slot} of failures) {
    const cause = error.replace(/^slot \d+: /, '')
    bySlots.set(cause, [...(bySlots.get(cause) ?? []), slot])
  }
  return [...bySlots].map(([cause, slots]) => (slots.length === 1 && !/^slot/.test(cause) ? `slot ${slots[0]}: ${cause}` : `slot(s) ${formatSlots(slots)}: ${cause}`))
}
