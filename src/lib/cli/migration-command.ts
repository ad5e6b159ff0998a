/**
 * The base for verbs that move slots (reshard, rebalance, apply, del-node --drain): the
 * shared flags, the safety preconditions, confirmation, the run lock, the journal,
 * progress, Ctrl-C handling and the result. Verbs only build a plan and call runPlan().
 */
import {Command, Flags} from '@oclif/core'

import {migrationNeeds, refuseMissingPermissions} from '../acl/preflight.js'
import {BaseCommand, ignoreLockFlag, retiredForceFlag, shownText} from './base-command.js'
import {escapeControl} from './escape.js'
import {BLOCKS_MIGRATION, runChecks} from '../check/checks.js'
import {type KeyCountsByMaster, refuseKeysOutsideOwners} from '../check/scan.js'
import {type ClusterSnapshot, reloadUntil} from '../cluster/loader.js'
import {parseAddress} from '../cluster/address.js'
import {ExitCode, SlotctlError, usageError} from '../errors.js'
import {refuseExistingOutput, refuseKernelPath, writeOutputFile} from '../files.js'
import type {PhaseTimes} from '../phases.js'
import {type ExecuteResult, type ExecuteWarning, type MigrationEvent, executePlan} from '../migrate/executor.js'
import {Journal, type JournalState, type RunSettings, defaultJournalPath, journalDir} from '../migrate/journal.js'
import {LegacyMover, throttledWaveSize} from '../migrate/legacy-mover.js'
import {RoutingMover, type SlotMover} from '../migrate/mover.js'
import {ValkeyAsmMover} from '../migrate/valkey-asm-mover.js'
import {type ServerFeatures, readServerFeaturesOf} from '../cluster/server-info.js'
import {Throttle} from '../migrate/throttle.js'
import type {BigKey, MigrationPlan} from '../plan/types.js'
import {type MapLines, ProgressReporter} from './progress.js'
import {colourOn, describePhases, formatBytes, formatDuration, paint, planTable} from './render.js'
import {applyMoves, buildSlotMap, renderSlotMap} from './slot-map.js'
import {type Issue, type VerbResult, issue, slotSet} from './result.js'
import {durationFlag} from './duration.js'
import {sizeFlag} from './size.js'
import {DEFAULT_BIG_KEY_BYTES, DEFAULT_MIGRATE_RATE, blockingKeys, findBigKeys, keyFromPrintable} from '../migrate/big-keys.js'
import {type SlotRange, formatSlots} from '../cluster/slots.js'
import {type ClusterNode, mastersOf, openSlotsOf, slotOwners} from '../cluster/topology.js'
import {countKeysInSlots} from '../cluster/slot-stats.js'

export const DEFAULT_MIGRATE_TIMEOUT_MS = 60_000
export const DEFAULT_REPLICA_WAIT_MS = 10_000

/** Exit codes of the verbs that move slots (their help lists them). */
export const MIGRATION_EXIT_CODES: Record<number, string> = {
  0: 'moved (or nothing to move, or --dry-run)',
  1: 'refused (unsafe cluster, stale plan), cancelled, or a slot failed',
  4: 'a confirmation was needed, but there is no terminal and no --yes',
  130: 'interrupted: slots in flight finished, none open; --resume goes on',
}

/** The admin pool must wait longer than MIGRATE may take, big-key retries (4x) included. */
export function adminTimeoutMs(migrateTimeoutMs: number): number {
  return migrateTimeoutMs * 4 + 5000
}

/** Connections per node for SETSLOTs that wait for replica acknowledgements (Valkey >= 8). */
const SETSLOT_LANES = 8

/** How long the views of every node may take to agree on the moved slots after a run. */
const AGREEMENT_WAIT_MS = 15_000

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

const SETTING_FLAGS: Record<keyof RunSettings, string> = {
  durability: 'durability',
  legacyMigrate: 'legacy-migrate',
  maxBytesPerSec: 'max-bytes-per-sec',
  maxKeysPerSec: 'max-keys-per-sec',
  minReplicaAcks: 'min-replica-acks',
  parallel: 'parallel',
  pipeline: 'pipeline',
  replace: 'replace',
  replicaWaitMs: 'replica-wait',
  timeoutMs: 'timeout',
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

  protected finishInFlightOnInterrupt = true
  /** slots opened and not closed yet: what a second Ctrl-C leaves behind */
  private readonly openSlots = new Set<number>()
  private resumeHint?: string

  protected firstInterruptMessage(signal: NodeJS.Signals): string {
    if (!this.progress) return super.firstInterruptMessage(signal)
    return `slotctl: ${signal}: finishing the ${this.openSlots.size} slot(s) in flight, then stopping; no new slot is started (Ctrl-C again exits at once and leaves them open)`
  }

  protected lastInterruptMessage(signal: NodeJS.Signals): string {
    if (!this.progress || this.openSlots.size === 0) return super.lastInterruptMessage(signal)
    return `slotctl: ${signal} again: exiting now; ${this.openSlots.size} slot(s) are left open (migrating/importing). Finish them with: ${this.resumeHint}`
  }

  /**
   * Keys in the slots about to move, on their sources: the measure of progress. Counted once:
   * sources the pre-flight already counted are not asked again.
   */
  private async countPlannedKeys(moves: MigrationPlan['moves'], addresses: ReadonlyMap<string, string>, counted: KeyCountsByMaster = new Map()): Promise<number> {
    const bySource = new Map<string, number[]>()
    for (const move of moves) {
      const slots = bySource.get(move.sourceId) ?? []
      slots.push(move.slot)
      bySource.set(move.sourceId, slots)
    }
    const counts = await Promise.all(
      [...bySource].map(async ([id, slots]) => {
        const known = counted.get(id)
        return known ? slots.map((slot) => known.get(slot) ?? 0) : countKeysInSlots(this.pool(), addresses.get(id) as string, slots)
      }),
    )
    return counts.flat().reduce((sum, count) => sum + count, 0)
  }

  /** The run's settings: flags given now win, then what the resumed journal recorded, then defaults. */
  protected runSettings(recorded: RunSettings = {}): Required<Omit<RunSettings, 'maxBytesPerSec' | 'maxKeysPerSec' | 'minReplicaAcks'>> & RunSettings {
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

  private unsafeProblems(snapshot: ClusterSnapshot, allowedOpenSlots: ReadonlySet<number>) {
    const blocking = runChecks(snapshot).filter((finding) => BLOCKS_MIGRATION.has(finding.code))
    const unexpectedOpen = snapshot.nodes.flatMap((node) => openSlotsOf(node)).filter((slot) => !allowedOpenSlots.has(slot))
    return blocking.filter((finding) => finding.code !== 'OPEN_SLOT' || unexpectedOpen.length > 0)
  }

  /**
   * A run interrupted in the middle of a close (kill -9, a lost terminal) can leave some nodes
   * not yet told a slot's new owner; the cluster bus carries the owner's higher epoch to them
   * within a few pings. Views that only disagree are read again for a few seconds before the
   * run is refused; anything else is refused at once.
   */
  protected async settledSnapshot(snapshot: ClusterSnapshot, allowedOpenSlots: ReadonlySet<number> = new Set()): Promise<ClusterSnapshot> {
    const onlyDisagreement = (current: ClusterSnapshot) => {
      const problems = this.unsafeProblems(current, allowedOpenSlots)
      return problems.length > 0 && problems.every((finding) => finding.code === 'SLOTS_DISAGREE')
    }
    const current = await reloadUntil(this.pool(), parseAddress(snapshot.seedAddress), SETTLE_VIEWS_MS, (candidate) => !onlyDisagreement(candidate), snapshot)
    this.refuseUnsafeCluster(current, allowedOpenSlots)
    return current
  }

  protected refuseUnsafeCluster(snapshot: ClusterSnapshot, allowedOpenSlots: ReadonlySet<number> = new Set()): void {
    const problems = this.unsafeProblems(snapshot, allowedOpenSlots)
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

  protected async runPlan(loaded: ClusterSnapshot, plan: MigrationPlan, options: RunPlanOptions): Promise<MigrationResult> {
    const f = this.flags as Record<string, unknown>
    const done = options.resume?.state.doneSlots ?? new Set<number>()
    // before any work: a plan file that cannot be written is bad input
    if (f.out) refuseExistingOutput(f.out as string, {overwrite: Boolean(f.overwrite), overwriteFlag: '--overwrite'})
    await this.refuseIfOtherRun(loaded)
    const snapshot = await this.phases.time('settle', () => this.settledSnapshot(loaded, options.resume?.state.inFlight))
    const warnings: ExecuteWarning[] = []
    const addresses = this.liveAddresses(snapshot, plan, warnings)
    const closeOnly = this.refuseStalePlan(snapshot, plan, options.resume?.state)
    this.showPlan(snapshot, plan, done)
    const remainingMoves = plan.moves.filter((move) => !done.has(move.slot))
    const {choice, counted, legacyMoves} = await this.phases.time('preflight', () => this.preflight(snapshot, plan, remainingMoves, addresses, options))
    if (f.out) await this.writePlan(plan, f.out as string, Boolean(f.overwrite))
    const unmoved = {...unmovedResult(plan, done), warnings: warnings.map((warning) => issue(warning.code, warning.message))}
    const remaining = plan.moves.filter((move) => !done.has(move.slot))
    if (f['dry-run']) {
      if (remaining.length > 0) this.log(`${remaining.length} slot(s) holding ${await this.phases.time('preflight', () => this.countPlannedKeys(remaining, addresses))} key(s) would move${this.throttleEstimate(-1)}`)
      return {...unmoved, phasesMs: this.reportPhases(), planFile: f.out as string | undefined, status: 'planned'}
    }
    if (remaining.length === 0) {
      this.log('nothing to move')
      return {...unmoved, status: 'nothing-to-do'}
    }
    // before the question: a journal that cannot be created must not wait for a yes
    if (!options.resume) refuseKernelPath((f.journal as string | undefined) ?? journalDir())
    const plannedKeys = await this.phases.time('preflight', () => this.countPlannedKeys(remaining, addresses, counted))
    if (!(await this.confirm(`Move ${remaining.length} slot(s) holding ${plannedKeys} key(s) now${this.throttleEstimate(plannedKeys)}?`))) throw new SlotctlError('cancelled: nothing was changed', {code: 'E_CANCELLED'})

    const settings = this.runSettings(options.resume?.state.settings)
    // the plan was checked on a read taken before the lock: it holds only if the cluster is still that one
    await this.lockUnchanged(snapshot)
    const masters = mastersOf(snapshot.nodes).filter((node) => node.address && snapshot.views[node.id]?.reachable)
    const journalPath = options.resume?.path ?? (f.journal as string | undefined) ?? defaultJournalPath(plan.kind)
    const resumeCommand = this.commandHint(options.resumeArgs(journalPath))
    const journal = options.resume ? Journal.reopen(journalPath) : Journal.create(journalPath, plan, {command: resumeCommand, settings: definedSettings(settings), verb: this.id})
    this.note(`journal: ${journalPath}`)
    if (options.resume && Object.keys(options.resume.state.settings).length > 0) this.note(`resuming with the run's settings: ${describeSettings(settings)}`)
    const closed = new Set<number>()
    const mode = ProgressReporter.modeFor(f.progress as string, Boolean(f.quiet))
    const mapLines = mode === 'map' ? migrationMap(snapshot, plan, closed, this.openSlots) : undefined
    const progress = new ProgressReporter({keys: plannedKeys, slots: remaining.length}, mode, process.stderr, undefined, mapLines)
    this.progress = progress
    const onEvent = (event: MigrationEvent) => {
      if (event.type === 'slot-start') this.openSlots.add(event.slot)
      if (event.type === 'slot-done') {
        closed.add(event.slot)
        this.openSlots.delete(event.slot)
      }
      progress.onEvent(event)
    }
    this.resumeHint = resumeCommand
    let result: ExecuteResult
    try {
      const mover = await this.phases.time('preflight', () => this.chooseMover(plan, addresses, settings, plannedKeys / remaining.length, choice, onEvent))
      if (settings.durability !== 'none') this.noteUnreplicatedTargets(snapshot, remaining)
      result = await this.phases.time('moving', () => executePlan(mover, plan, {
        addresses,
        closeOnlySlots: closeOnly,
        openSlots: options.resume ? alreadyOpen(snapshot, plan) : undefined,
        journal,
        masters: masters.map((node) => ({address: node.address, id: node.id})),
        onEvent,
        parallel: settings.parallel,
        perNodeLimit: settings.parallel,
        signal: this.stopRequest.signal,
        skipSlots: done,
      }))
    } finally {
      progress.stop()
      this.progress = undefined
    }
    if (closed.size > 0 && result.failures.length === 0) await this.phases.time('verification', () => this.verifyAgreement(snapshot, plan, closed, result))
    result.warnings.unshift(...warnings)
    return this.finish(snapshot, plan, result, journalPath, resumeCommand, unmoved.moves)
  }

  /**
   * Everything checked before the question: the protocol per pair, the user's permissions,
   * keys outside their owners, big keys. Returns the protocol choice and the MIGRATE moves.
   */
  private async preflight(snapshot: ClusterSnapshot, plan: MigrationPlan, remainingMoves: MigrationPlan['moves'], addresses: ReadonlyMap<string, string>, options: RunPlanOptions): Promise<{choice: ProtocolChoice; counted: KeyCountsByMaster; legacyMoves: MigrationPlan['moves']}> {
    const dryRun = Boolean((this.flags as Record<string, unknown>)['dry-run'])
    const settings = this.runSettings(options.resume?.state.settings)
    const choice = await this.chooseProtocol(plan, addresses, settings)
    const legacyMoves = this.legacyMoves(choice, remainingMoves)
    const legacySet = new Set(legacyMoves)
    const atomicMoves = remainingMoves.filter((move) => !legacySet.has(move))
    if (!dryRun) await refuseMissingPermissions(this.pool(), migrationNeeds(snapshot, plan, {capableIds: choice.atomicIds, moves: atomicMoves}, settings.durability !== 'none'))
    // exact, so it counts every slot of every master: a plan (--dry-run) leaves it to the run
    const counted = dryRun ? new Map() : await refuseKeysOutsideOwners(this.pool(), snapshot, legacyMoves)
    await this.preflightBigKeys(plan, legacyMoves, addresses, dryRun)
    return {choice, counted, legacyMoves}
  }

  /** Each phase's time: printed with --verbose, returned for --json. */
  private reportPhases(): PhaseTimes {
    const times = this.phases.times()
    if ((this.flags as Record<string, unknown>).verbose) this.note(`time: ${describePhases(times)}`)
    return times
  }

  /** Durable moves wait for the target's replicas: a target without any has nothing to wait for, said once. */
  private noteUnreplicatedTargets(snapshot: ClusterSnapshot, moves: MigrationPlan['moves']): void {
    const targets = new Set(moves.map((move) => move.targetId))
    const alone = snapshot.nodes.filter((node) => targets.has(node.id) && !snapshot.nodes.some((other) => other.masterId === node.id))
    if (alone.length === 0) return
    const names = alone.map((node) => node.address || node.id.slice(0, 8))
    this.note(`note: ${names.join(', ')} ${alone.length === 1 ? 'has' : 'have'} no replicas: nothing to wait for, a key moved there is held by that node alone`)
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

  /**
   * Atomic slot migration where both ends of a pair offer it (Valkey >= 9), unless the
   * operator turned it off or asked for a throttle (the servers move at their own pace);
   * the legacy SETSLOT + MIGRATE protocol everywhere else. Says which, and why.
   */
  private async chooseProtocol(plan: MigrationPlan, addresses: ReadonlyMap<string, string>, settings: RunSettings): Promise<ProtocolChoice> {
    const features = await readServerFeaturesOf(this.pool(), [...addresses.values()])
    const atomicIds = new Set([...addresses].filter(([, address]) => features.get(address)?.atomicSlotMigration === 'valkey-migrateslots').map(([id]) => id))
    const throttled = Boolean(settings.maxKeysPerSec || settings.maxBytesPerSec)
    const offered = plan.moves.some((move) => atomicIds.has(move.sourceId) && atomicIds.has(move.targetId))
    // the servers' handoff does not wait for the target's replicas: only when the operator says so
    const durableOnly = (settings.durability ?? 'replicas') === 'replicas'
    const atomic = offered && !settings.legacyMigrate && !throttled && !durableOnly
    return {atomic, atomicIds, durableOnly, features, offered, throttled}
  }

  /** Moves that go through MIGRATE (every move unless both ends migrate atomically). */
  private legacyMoves(choice: ProtocolChoice, moves: MigrationPlan['moves']): MigrationPlan['moves'] {
    return moves.filter((move) => !(choice.atomic && choice.atomicIds.has(move.sourceId) && choice.atomicIds.has(move.targetId)))
  }

  /**
   * Big keys in the slots MIGRATE will move: listed (and kept in the plan file); those that
   * would block their master longer than half its node timeout stop the run before anything
   * moves, unless --allow-big-keys (then each moves alone, with a timeout of its own).
   */
  private async preflightBigKeys(plan: MigrationPlan, moves: MigrationPlan['moves'], addresses: ReadonlyMap<string, string>, dryRun: boolean): Promise<BigKey[]> {
    const f = this.flags as Record<string, unknown>
    const found = await findBigKeys(this.pool(), moves, addresses, {minBytes: f['big-key-bytes'] as number, rate: f['assumed-migrate-rate'] as number})
    if (found.length === 0) return found
    plan.bigKeys = found
    const describe = (key: BigKey) => `${escapeControl(key.key)} in slot ${key.slot} (${key.type ? `${key.type}${key.elements === undefined ? '' : ` of ${key.elements} element(s)`}, ` : ''}${formatBytes(key.bytes)}, about ${formatDuration(key.estimatedBlockMs)} blocked; limit ${formatDuration(key.blockLimitMs)})`
    const blocking = blockingKeys(found)
    const refusing = blocking.length > 0 && !f['allow-big-keys'] && !dryRun
    if (!refusing) for (const key of found.slice(0, 10)) this.note(`big key: ${describe(key)}`)
    if (blocking.length === 0) return found
    if (f['allow-big-keys']) {
      this.note(paint.warn(`${blocking.length} big key(s) will block their master longer than half of cluster-node-timeout: each moves alone with its own timeout (--allow-big-keys)`))
      return found
    }
    const message = `${blocking.length} key(s) would block their master longer than half of cluster-node-timeout while MIGRATE moves them: ${blocking.slice(0, 3).map(describe).join('; ')}${blocking.length > 3 ? '; ...' : ''}`
    if (dryRun) {
      this.note(paint.warn(`the run would refuse: ${message}`))
      return found
    }
    throw new SlotctlError(`refusing to move slots: ${message}; nothing was changed`, {
      code: 'E_BIG_KEY',
      suggestions: ['move them off-peak with --allow-big-keys (each alone, with its own timeout), split them, or raise cluster-node-timeout for the move'],
    })
  }

  private async chooseMover(plan: MigrationPlan, addresses: ReadonlyMap<string, string>, settings: RunSettings & {parallel: number; pipeline: number; timeoutMs: number; replace: boolean; durability: string}, keysPerSlot: number, choice: ProtocolChoice, onEvent: (event: MigrationEvent) => void): Promise<SlotMover> {
    const {features, throttled} = choice
    const keyOptions = {
      onBatch: (keys: number, bytes: number, slot: number) => onEvent({bytes, keys, slot, type: 'batch'}),
      pipeline: settings.pipeline,
      replace: settings.replace,
      throttle: throttled ? new Throttle(settings) : undefined,
      timeoutMs: settings.timeoutMs,
    }
    // with a throttle, open only about a second's worth of slots at a time: a stop is then quick
    const waveSize = settings.maxKeysPerSec ? throttledWaveSize(settings.maxKeysPerSec, keysPerSlot, settings.parallel) : settings.maxBytesPerSec ? 16 : undefined
    // Valkey holds each SETSLOT until the replicas acknowledge it: spread them over connections
    const lanes = (id: string) => (features.get(addresses.get(id) ?? '')?.replicatedSetslot ? SETSLOT_LANES : 1)
    const durability = settings.durability === 'none' ? undefined : {minReplicaAcks: settings.minReplicaAcks, signal: this.stopRequest.signal, waitMs: settings.replicaWaitMs ?? DEFAULT_REPLICA_WAIT_MS}
    const legacy = new LegacyMover(this.pool(), keyOptions, waveSize, lanes, bigKeysAlone(plan.bigKeys ?? [], settings.timeoutMs, this.pool().settings.commandTimeoutMs), durability)
    const {atomicIds} = choice
    const atomicPairs = plan.moves.filter((move) => atomicIds.has(move.sourceId) && atomicIds.has(move.targetId)).length
    if (!choice.atomic) {
      if (choice.offered && throttled) this.note('note: a throttle needs the legacy protocol (atomic slot migration moves at the servers\' pace): moving with SETSLOT + MIGRATE')
      else if (choice.offered && choice.durableOnly && !settings.legacyMigrate) this.note("note: atomic slot migration is not used: its handoff does not wait for the target's replicas (--durability server uses it)")
      this.note(`moving with ${legacy.protocol}`)
      return legacy
    }
    const atomic = new ValkeyAsmMover(this.pool(), {durability: settings.durability === 'server' ? durability : undefined, onState: (progress) => onEvent({...progress, type: 'job'}), signal: this.stopRequest.signal})
    const unused = ['pipeline', 'replace'].filter((flag) => this.flagsGiven.has(flag))
    if (unused.length > 0) this.note(`note: ${unused.map((flag) => `--${flag}`).join(' and ')} do not apply to atomic slot migration`)
    this.note(`moving with ${atomicPairs === plan.moves.length ? atomic.protocol : `${atomic.protocol} for ${atomicPairs} of ${plan.moves.length} slot(s), ${legacy.protocol} for the rest`}`)
    return new RoutingMover(legacy, atomic, (id) => atomicIds.has(id))
  }

  /**
   * After the run, every reachable node's own view must give each moved slot to its target
   * (gossip carries the close to replicas within moments). A view that still disagrees after
   * the wait is a failure: something handed a slot back, or a node is partitioned.
   */
  private async verifyAgreement(snapshot: ClusterSnapshot, plan: MigrationPlan, closed: ReadonlySet<number>, result: ExecuteResult): Promise<void> {
    const moved = plan.moves.filter((move) => closed.has(move.slot))
    const now = await reloadUntil(this.pool(), parseAddress(snapshot.seedAddress), AGREEMENT_WAIT_MS, (candidate) => disagreements(candidate, moved).length === 0)
    const disagreeing = disagreements(now, moved)
    if (disagreeing.length === 0) return
    const [first] = disagreeing
    result.failures.push({
      code: 'E_VERIFY',
      error: `verification failed: ${disagreeing.length} node view(s) do not give the moved slots to their targets after ${AGREEMENT_WAIT_MS / 1000} s (${first.address}: slot ${first.slot} → ${first.owner ?? 'no owner'})`,
      slot: first.slot,
    })
  }

  private finish(snapshot: ClusterSnapshot, plan: MigrationPlan, result: ExecuteResult, journal: string, resumeCommand: string, moves: PairMoves[]): MigrationResult {
    const rate = result.seconds > 0 ? Math.round(result.keysMoved / result.seconds) : result.keysMoved
    this.log(`${result.slotsMoved} slot(s) and ${result.keysMoved} key(s) (${formatBytes(result.bytesMoved)}) moved in ${formatDuration(result.seconds * 1000)} (${rate} keys/s)${describeHeld(result.held)}`)
    for (const warning of result.warnings) this.note(paint.warn(`warning: ${warning.message}`))
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
      for (const line of groupFailures(result.failures)) process.stderr.write(`slotctl: error: ${shownText(line)}\n`)
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

  private async writePlan(plan: MigrationPlan, file: string, overwrite: boolean): Promise<void> {
    try {
      await writeOutputFile(file, `${JSON.stringify(plan, null, 2)}\n`, {overwrite, overwriteFlag: '--overwrite'})
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

/** Planned slots the snapshot shows open between their own source and target. */
function alreadyOpen(snapshot: ClusterSnapshot, plan: MigrationPlan): Set<number> {
  const byId = new Map(snapshot.nodes.map((node) => [node.id, node]))
  return new Set(plan.moves.filter((move) => byId.get(move.sourceId)?.migrating[move.slot] === move.targetId && byId.get(move.targetId)?.importing[move.slot] === move.sourceId).map((move) => move.slot))
}

/** How long views that only disagree on the slot map get to settle before a run is refused. */
const SETTLE_VIEWS_MS = 10_000

interface ProtocolChoice {
  features: Map<string, ServerFeatures>
  /** nodes that offer atomic slot migration */
  atomicIds: Set<string>
  /** some pair could migrate atomically */
  offered: boolean
  /** ... and will (not turned off, no throttle) */
  atomic: boolean
  /** --durability replicas: every key waits for the target's replicas, which atomic migration cannot promise */
  durableOnly: boolean
  throttled: boolean
}

/**
 * Big keys the operator allowed, per slot, each with a MIGRATE timeout of three times its
 * estimate (at least the run's), within what the admin connection waits for a reply.
 */
function bigKeysAlone(keys: readonly BigKey[], timeoutMs: number, commandTimeoutMs: number): Map<number, Array<{key: Buffer; bytes: number; timeoutMs: number}>> {
  const bySlot = new Map<number, Array<{key: Buffer; bytes: number; timeoutMs: number}>>()
  for (const big of keys) {
    const own = Math.min(Math.max(timeoutMs, big.estimatedBlockMs * 3), commandTimeoutMs - 1000)
    bySlot.set(big.slot, [...(bySlot.get(big.slot) ?? []), {bytes: big.bytes, key: keyFromPrintable(big.key), timeoutMs: own}])
  }
  return bySlot
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
