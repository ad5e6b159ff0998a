/**
 * A migration run, from a plan to its outcome, for every verb that moves slots (reshard,
 * rebalance, apply, del-node --drain): is the cluster safe, does the plan still hold, which
 * protocol moves each pair, may this user do it, are there keys outside their owners or keys
 * too big to move, then the movers, the journal, the waves and the check that every node
 * agrees. It prints nothing and reads no flag: it says what it notices as events and returns
 * typed results; the command (cli/migration-command.ts) wires flags, asks and renders.
 *
 * In three steps, because the command shows and asks in between:
 *   checkPlan   the cluster is safe and the plan still fits it (then the plan is shown)
 *   preflight   protocol, permissions, stray keys, big keys (then the operator is asked)
 *   openJournal, executeRun, verifyRun   journal; mover and waves; agreement
 */
import {migrationNeeds, refuseMissingPermissions} from '../acl/preflight.js'
import {refuseUnsafeCluster, unsafeProblems} from '../check/gate.js'
import {compareNatural, compareText} from '../core/compare.js'
import {escapeControl} from '../core/escape.js'
import {type KeyCountsByMaster, refuseKeysOutsideOwners} from '../check/scan.js'
import {parseAddress} from '../cluster/address.js'
import type {NodePool} from '../cluster/connection.js'
import {type ClusterSnapshot, reloadUntil} from '../cluster/loader.js'
import {type ServerFeatures, describeServer, handsBackTakenSlots, readServerFeaturesOf} from '../cluster/server-info.js'
import {countKeysInSlots} from '../cluster/slot-stats.js'
import {type ClusterNode, shortId, slotOwners} from '../cluster/topology.js'
import {SlotctlError} from '../core/errors.js'
import {formatSlots} from '../core/slots.js'
import {formatBytes, formatDuration} from '../core/units.js'
import type {BigKey, MigrationPlan} from '../plan/types.js'
import {blockingKeys, findBigKeys, keyFromPrintable} from './big-keys.js'
import {type ExecuteResult, type ExecuteWarning, type MigrationEvent, executePlan} from './executor.js'
import {Journal, type JournalState, type RunSettings} from './journal.js'
import {LegacyMover, throttledWaveSize} from './legacy-mover.js'
import {RoutingMover, type SlotMover} from './mover.js'
import {Throttle} from './throttle.js'
import {ValkeyAsmMover} from './valkey-asm-mover.js'

export const DEFAULT_MIGRATE_TIMEOUT_MS = 60_000
export const DEFAULT_REPLICA_WAIT_MS = 10_000

/** The admin pool must wait longer than MIGRATE may take, big-key retries (4x) included. */
export function adminTimeoutMs(migrateTimeoutMs: number): number {
  return migrateTimeoutMs * 4 + 5000
}

/** Connections per node for SETSLOTs that wait for replica acknowledgements (Valkey >= 8). */
const SETSLOT_LANES = 8

/** How long the views of every node may take to agree on the moved slots after a run. */
const AGREEMENT_WAIT_MS = 15_000

/** How long views that only disagree on the slot map get to settle before a run is refused. */
const SETTLE_VIEWS_MS = 10_000

/** The run's settings, resolved once (flags, then a resumed journal's, then defaults). */
export type EngineSettings = Required<Omit<RunSettings, 'maxBytesPerSec' | 'maxKeysPerSec' | 'minReplicaAcks'>> & RunSettings

/** What the engine says while it works: progress of the moves, and notes for the operator. */
export type RunEvent = MigrationEvent | {type: 'note'; message: string; warn?: boolean}

export interface RunContext {
  pool: NodePool
  settings: EngineSettings
  /** aborted by the first Ctrl-C: no new wave starts, the waves in flight finish */
  signal: AbortSignal
  onEvent: (event: RunEvent) => void
  /** times a phase of the run (settle, preflight, moving, verification) */
  time?: <T>(phase: 'moving' | 'preflight' | 'settle' | 'verification', work: () => Promise<T>) => Promise<T>
  /** how the command names another run of slotctl in a hint ("slotctl check HOST:PORT") */
  commandHint: (args: string) => string
}

/** The cluster and the plan, checked against each other. */
export interface CheckedPlan {
  snapshot: ClusterSnapshot
  plan: MigrationPlan
  /** the live address of every node the plan names */
  addresses: Map<string, string>
  /** slots a resumed run had finished */
  done: ReadonlySet<number>
  /** slots whose target owns them already (resume): only the close is left */
  closeOnly: Set<number>
  /** the moves this run makes (done slots left out) */
  remaining: MigrationPlan['moves']
  warnings: ExecuteWarning[]
  resume?: JournalState
}

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

export interface PreflightOptions {
  /** a plan only: permissions and stray keys are left to the run, a big-key refusal is a note */
  dryRun: boolean
  bigKeys: {minBytes: number; rate: number; allow: boolean}
}

export interface PreparedRun extends CheckedPlan {
  choice: ProtocolChoice
  /** keys per slot the stray-key check counted on each source (not counted again) */
  counted: KeyCountsByMaster
  /** big keys in the slots MIGRATE moves (those found now, else the plan file's) */
  bigKeys: BigKey[]
  /** the plan as a file keeps it: with the big keys found now */
  planToSave: MigrationPlan
  /** warnings for the operator to read before saying yes (also in `warnings`, for the result) */
  cautions: ExecuteWarning[]
}

export interface JournalRequest {
  path: string
  /** a resumed run appends to its journal; a new run creates one (never over an existing file) */
  reopen: boolean
  header: {command: string; verb?: string; settings: RunSettings}
}

export interface ExecuteRunOptions {
  journal: Journal
  /** keys in the remaining slots (sizes throttled waves) */
  plannedKeys: number
  /** flags the operator gave that atomic migration does not use ('pipeline', 'replace') */
  keyFlagsGiven: readonly string[]
}

export interface RunOutcome extends ExecuteResult {
  /** slots this run closed */
  closed: Set<number>
}

const note = (context: RunContext, message: string, warn = false) => context.onEvent({message, type: 'note', ...(warn ? {warn} : {})})
const timed = <T>(context: RunContext, phase: Parameters<NonNullable<RunContext['time']>>[0], work: () => Promise<T>): Promise<T> => (context.time ? context.time(phase, work) : work())

/**
 * The cluster is safe to move slots in (views that only disagree get a few seconds to settle),
 * every node the plan names is a reachable master of it, and the plan's sources still own their
 * slots. Nothing changes.
 */
export async function checkPlan(context: RunContext, loaded: ClusterSnapshot, plan: MigrationPlan, resume?: JournalState): Promise<CheckedPlan> {
  const snapshot = await timed(context, 'settle', () => settledSnapshot(context, loaded, resume?.inFlight))
  const warnings: ExecuteWarning[] = []
  const addresses = liveAddresses(context, snapshot, plan, warnings)
  const closeOnly = refuseStalePlan(snapshot, plan, resume)
  const done = resume?.doneSlots ?? new Set<number>()
  const remaining = plan.moves.filter((move) => !done.has(move.slot))
  return {addresses, closeOnly, done, plan, remaining, resume, snapshot, warnings}
}

/**
 * A run interrupted in the middle of a close (kill -9, a lost terminal) can leave some nodes
 * not yet told a slot's new owner; the cluster bus carries the owner's higher epoch to them
 * within a few pings. Views that only disagree are read again for a few seconds before the
 * run is refused; anything else is refused at once.
 */
export async function settledSnapshot(context: Pick<RunContext, 'commandHint' | 'pool'>, snapshot: ClusterSnapshot, allowedOpenSlots: ReadonlySet<number> = new Set()): Promise<ClusterSnapshot> {
  const onlyDisagreement = (current: ClusterSnapshot) => {
    const problems = unsafeProblems(current, allowedOpenSlots)
    return problems.length > 0 && problems.every((finding) => finding.code === 'SLOTS_DISAGREE')
  }
  const current = await reloadUntil(context.pool, parseAddress(snapshot.seedAddress), SETTLE_VIEWS_MS, (candidate) => !onlyDisagreement(candidate), snapshot)
  refuseUnsafeCluster(current, 'move slots', context.commandHint, {allowedOpenSlots, resumable: true})
  return current
}

/**
 * A plan names nodes by id; the live cluster says where they are. Every id must be a
 * reachable master of this cluster; slotctl never connects to an address read from a file.
 */
function liveAddresses(context: RunContext, snapshot: ClusterSnapshot, plan: MigrationPlan, warnings: ExecuteWarning[]): Map<string, string> {
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
      note(context, `note: ${message}`)
    }
  }
  return addresses
}

/**
 * Refuses a plan whose sources no longer own their slots (the cluster changed since).
 * When resuming, returns the slots whose target already owns them: only closing is left.
 */
export function refuseStalePlan(snapshot: ClusterSnapshot, plan: MigrationPlan, resume?: JournalState): Set<number> {
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

/**
 * Everything checked before the question: the protocol per pair, the user's permissions,
 * keys outside their owners, big keys. Nothing changes.
 */
export async function preflight(context: RunContext, checked: CheckedPlan, options: PreflightOptions): Promise<PreparedRun> {
  return timed(context, 'preflight', async () => {
    const {addresses, plan, remaining, snapshot} = checked
    const choice = await chooseProtocol(context.pool, plan, addresses, context.settings)
    const legacy = legacyMoves(choice, remaining)
    const cautions = slotBugWarnings(choice.features, addresses, legacy)
    const legacySet = new Set(legacy)
    const atomicMoves = remaining.filter((move) => !legacySet.has(move))
    if (!options.dryRun) await refuseMissingPermissions(context.pool, migrationNeeds(snapshot, plan, {capableIds: choice.atomicIds, moves: atomicMoves}, context.settings.durability !== 'none'))
    // exact, so it counts every slot of every master: a plan (--dry-run) leaves it to the run
    const counted: KeyCountsByMaster = options.dryRun ? new Map() : await refuseKeysOutsideOwners(context.pool, snapshot, legacy)
    const found = await preflightBigKeys(context, legacy, addresses, options)
    // the caller's plan stays as it was: the big keys found now go with the prepared run
    const planToSave = found.length > 0 ? {...plan, bigKeys: found} : plan
    return {...checked, bigKeys: planToSave.bigKeys ?? [], choice, counted, planToSave, cautions, warnings: [...checked.warnings, ...cautions]}
  })
}

/**
 * SERVER_SLOT_BUG: nodes of the moves that run a Redis with redis#12564, where a target can
 * give a slot it just took back to its source and delete the keys moved into it. A caution:
 * said before the question (and by --dry-run), and again in the result; upgrading is the
 * operator's fix.
 */
function slotBugWarnings(features: ReadonlyMap<string, ServerFeatures>, addresses: ReadonlyMap<string, string>, moves: MigrationPlan['moves']): ExecuteWarning[] {
  const addressesOfMoves = new Set(moves.flatMap((move) => [addresses.get(move.sourceId) ?? '', addresses.get(move.targetId) ?? '']))
  const affected = [...addressesOfMoves].flatMap((address): Array<[string, ServerFeatures]> => {
    const found = features.get(address)
    return found && handsBackTakenSlots(found) ? [[address, found]] : []
  })
  if (affected.length === 0) return []
  const versions = [...new Set(affected.map(([, found]) => describeServer(found)))].sort(compareText)
  const names = affected.map(([address]) => address).sort(compareNatural)
  const shown = names.slice(0, 3).join(', ') + (names.length > 3 ? ` and ${names.length - 3} more` : '')
  return [{
    code: 'SERVER_SLOT_BUG',
    message: `${versions.join(', ')} on ${shown}: a node that just took a slot can hand it back and delete the keys moved into it (redis/redis#12564, fixed in 7.2.4); slotctl keeps that window short, upgrading closes it`,
  }]
}

/**
 * Keys in the slots about to move, on their sources: the measure of progress. Counted once:
 * sources the pre-flight already counted are not asked again.
 */
export async function countPlannedKeys(pool: NodePool, moves: MigrationPlan['moves'], addresses: ReadonlyMap<string, string>, counted: KeyCountsByMaster = new Map()): Promise<number> {
  const bySource = new Map<string, number[]>()
  for (const move of moves) {
    const slots = bySource.get(move.sourceId) ?? []
    slots.push(move.slot)
    bySource.set(move.sourceId, slots)
  }
  const counts = await Promise.all(
    [...bySource].map(async ([id, slots]) => {
      const known = counted.get(id)
      return known ? slots.map((slot) => known.get(slot) ?? 0) : countKeysInSlots(pool, addresses.get(id) as string, slots)
    }),
  )
  return counts.flat().reduce((sum, count) => sum + count, 0)
}

/**
 * Atomic slot migration where both ends of a pair offer it (Valkey >= 9), unless the
 * operator turned it off or asked for a throttle (the servers move at their own pace);
 * the legacy SETSLOT + MIGRATE protocol everywhere else.
 */
async function chooseProtocol(pool: NodePool, plan: MigrationPlan, addresses: ReadonlyMap<string, string>, settings: RunSettings): Promise<ProtocolChoice> {
  const features = await readServerFeaturesOf(pool, [...addresses.values()])
  const atomicIds = new Set([...addresses].filter(([, address]) => features.get(address)?.atomicSlotMigration === 'valkey-migrateslots').map(([id]) => id))
  const throttled = Boolean(settings.maxKeysPerSec || settings.maxBytesPerSec)
  const offered = plan.moves.some((move) => atomicIds.has(move.sourceId) && atomicIds.has(move.targetId))
  // the servers' handoff does not wait for the target's replicas: only when the operator says so
  const durableOnly = (settings.durability ?? 'replicas') === 'replicas'
  const atomic = offered && !settings.legacyMigrate && !throttled && !durableOnly
  return {atomic, atomicIds, durableOnly, features, offered, throttled}
}

/** Moves that go through MIGRATE (every move unless both ends migrate atomically). */
function legacyMoves(choice: ProtocolChoice, moves: MigrationPlan['moves']): MigrationPlan['moves'] {
  return moves.filter((move) => !(choice.atomic && choice.atomicIds.has(move.sourceId) && choice.atomicIds.has(move.targetId)))
}

function describeBigKey(key: BigKey): string {
  return `${escapeControl(key.key)} in slot ${key.slot} (${key.type ? `${key.type}${key.elements === undefined ? '' : ` of ${key.elements} element(s)`}, ` : ''}${formatBytes(key.bytes)}, about ${formatDuration(key.estimatedBlockMs)} blocked; limit ${formatDuration(key.blockLimitMs)})`
}

/**
 * Big keys in the slots MIGRATE will move: listed; those that would block their master longer
 * than half its node timeout stop the run before anything moves, unless allowed (then each
 * moves alone, with a timeout of its own).
 */
async function preflightBigKeys(context: RunContext, moves: MigrationPlan['moves'], addresses: ReadonlyMap<string, string>, options: PreflightOptions): Promise<BigKey[]> {
  const {allow, minBytes, rate} = options.bigKeys
  const found = await findBigKeys(context.pool, moves, addresses, {minBytes, rate})
  if (found.length === 0) return found
  const blocking = blockingKeys(found)
  const refusing = blocking.length > 0 && !allow && !options.dryRun
  if (!refusing) for (const key of found.slice(0, 10)) note(context, `big key: ${describeBigKey(key)}`)
  if (blocking.length === 0) return found
  if (allow) {
    note(context, `${blocking.length} big key(s) will block their master longer than half of cluster-node-timeout: each moves alone with its own timeout (--allow-big-keys)`, true)
    return found
  }
  const message = `${blocking.length} key(s) would block their master longer than half of cluster-node-timeout while MIGRATE moves them: ${blocking.slice(0, 3).map(describeBigKey).join('; ')}${blocking.length > 3 ? '; ...' : ''}`
  if (options.dryRun) {
    note(context, `the run would refuse: ${message}`, true)
    return found
  }
  throw new SlotctlError(`refusing to move slots: ${message}; nothing was changed`, {
    code: 'E_BIG_KEY',
    suggestions: ['move them off-peak with --allow-big-keys (each alone, with its own timeout), split them, or raise cluster-node-timeout for the move'],
  })
}

/** Each target's replicas as the run found them (see JournalHeader.replicas). */
export function targetReplicas(snapshot: Pick<ClusterSnapshot, 'nodes'>, plan: MigrationPlan): Record<string, string[]> {
  const targets = new Set(plan.moves.map((move) => move.targetId))
  const replicas: Record<string, string[]> = {}
  for (const node of snapshot.nodes) {
    if (node.role !== 'replica' || !node.masterId || !targets.has(node.masterId)) continue
    replicas[node.masterId] = [...(replicas[node.masterId] ?? []), node.id]
  }
  return replicas
}

/** Creates the run's journal (or reopens a resumed one) before anything moves. */
export function openJournal(context: RunContext, prepared: PreparedRun, request: JournalRequest): Journal {
  const header = {...request.header, replicas: targetReplicas(prepared.snapshot, prepared.planToSave)}
  const journal = request.reopen ? Journal.reopen(request.path) : Journal.create(request.path, prepared.planToSave, header)
  note(context, `journal: ${request.path}`)
  if (prepared.resume && Object.keys(prepared.resume.settings).length > 0) note(context, `resuming with the run's settings: ${describeSettings(context.settings)}`)
  return journal
}

/**
 * The run itself: builds the movers and moves the remaining slots in waves (verifyRun then
 * checks that every node's view gives each closed slot to its target).
 * Failures are in the outcome (the slots stay open and journaled), not thrown.
 */
export async function executeRun(context: RunContext, prepared: PreparedRun, options: ExecuteRunOptions): Promise<RunOutcome> {
  const {settings} = context
  const {snapshot, plan, remaining} = prepared
  const {journal} = options
  const closed = new Set<number>()
  const onEvent = (event: MigrationEvent) => {
    if (event.type === 'slot-done') closed.add(event.slot)
    context.onEvent(event)
  }
  const mover = await timed(context, 'preflight', async () => chooseMover(context, prepared, options, onEvent))
  if (settings.durability !== 'none') noteUnreplicatedTargets(context, snapshot, remaining)
  const result = await timed(context, 'moving', () =>
    executePlan(mover, plan, {
      addresses: prepared.addresses,
      closeOnlySlots: prepared.closeOnly,
      journal,
      onEvent,
      openSlots: prepared.resume ? alreadyOpen(snapshot, plan) : undefined,
      parallel: settings.parallel,
      perNodeLimit: settings.parallel,
      signal: context.signal,
      skipSlots: prepared.done,
    }),
  )
  result.warnings.unshift(...prepared.warnings)
  return {...result, closed}
}

/**
 * After the moves (and their progress display): every node's view must give each closed slot
 * to its target; a view that does not within a few seconds is a failure of the run.
 */
export async function verifyRun(context: RunContext, prepared: PreparedRun, outcome: RunOutcome): Promise<void> {
  if (outcome.closed.size === 0 || outcome.failures.length > 0) return
  const now = await timed(context, 'verification', () => verifyAgreement(context.pool, prepared.snapshot, prepared.plan, outcome.closed, outcome))
  outcome.warnings.push(...turnedReplicas(prepared.snapshot, now, prepared.plan))
}

/**
 * Sources of the plan that were masters with slots and are replicas now: Redis (7+) and Valkey
 * make a master that loses its last slot a replica of the node that took it
 * (cluster-allow-replica-migration). An operator who drained a master expects an empty
 * master; the change of role is said, not left to be found later.
 */
function turnedReplicas(before: ClusterSnapshot, after: ClusterSnapshot, plan: MigrationPlan): ExecuteWarning[] {
  const sources = new Set(plan.moves.map((move) => move.sourceId))
  return before.nodes
    .filter((node) => sources.has(node.id) && node.role === 'master' && node.slots.length > 0)
    .flatMap((node): ExecuteWarning[] => {
      const now = after.nodes.find((candidate) => candidate.id === node.id)
      if (!now || now.role !== 'replica' || !after.views[node.id]?.reachable) return []
      const master = after.nodes.find((candidate) => candidate.id === now.masterId)
      const masterName = master ? `${master.address} (${shortId(master.id)})` : shortId(now.masterId ?? '')
      return [
        {
          code: 'MASTER_TURNED_REPLICA',
          message: `${node.address} (${shortId(node.id)}) lost its last slot and is now a replica of ${masterName}: the server makes an emptied master a replica of the node that took its last slot (cluster-allow-replica-migration)`,
        },
      ]
    })
}

function chooseMover(context: RunContext, prepared: PreparedRun, options: ExecuteRunOptions, onEvent: (event: MigrationEvent) => void): SlotMover {
  const {pool, settings, signal} = context
  const {addresses, choice, plan, remaining} = prepared
  const {features, throttled} = choice
  const keyOptions = {
    onBatch: (keys: number, bytes: number, slot: number) => onEvent({bytes, keys, slot, type: 'batch'}),
    pipeline: settings.pipeline,
    replace: settings.replace,
    throttle: throttled ? new Throttle(settings) : undefined,
    timeoutMs: settings.timeoutMs,
  }
  const keysPerSlot = options.plannedKeys / remaining.length
  // with a throttle, open only about a second's worth of slots at a time: a stop is then quick
  const waveSize = settings.maxKeysPerSec ? throttledWaveSize(settings.maxKeysPerSec, keysPerSlot, settings.parallel) : settings.maxBytesPerSec ? 16 : undefined
  // Valkey holds each SETSLOT until the replicas acknowledge it: spread them over connections
  const featuresOf = (id: string) => features.get(addresses.get(id) ?? '')
  const lanes = (id: string) => (featuresOf(id)?.replicatedSetslot ? SETSLOT_LANES : 1)
  const durability = settings.durability === 'none' ? undefined : {minReplicaAcks: settings.minReplicaAcks, signal, waitMs: settings.replicaWaitMs ?? DEFAULT_REPLICA_WAIT_MS}
  // only Redis runs a SETSLOT inside a transaction safely (Valkey 9.1.2 crashes on one that waits for replicas)
  const heraldInsideClaim = (id: string) => featuresOf(id)?.name === 'redis'
  const legacy = new LegacyMover(pool, keyOptions, waveSize, lanes, bigKeysAlone(prepared.bigKeys, settings.timeoutMs, pool.settings.commandTimeoutMs), durability, heraldInsideClaim)
  const {atomicIds} = choice
  const atomicPairs = plan.moves.filter((move) => atomicIds.has(move.sourceId) && atomicIds.has(move.targetId)).length
  if (!choice.atomic) {
    if (choice.offered && throttled) note(context, "note: a throttle needs the legacy protocol (atomic slot migration moves at the servers' pace): moving with SETSLOT + MIGRATE")
    else if (choice.offered && choice.durableOnly && !settings.legacyMigrate) note(context, "note: atomic slot migration is not used: its handoff does not wait for the target's replicas (--durability server uses it)")
    note(context, `moving with ${legacy.protocol}`)
    return legacy
  }
  const atomic = new ValkeyAsmMover(pool, {durability: settings.durability === 'server' ? durability : undefined, onState: (progress) => onEvent({...progress, type: 'job'}), signal})
  if (options.keyFlagsGiven.length > 0) note(context, `note: ${options.keyFlagsGiven.map((flag) => `--${flag}`).join(' and ')} do not apply to atomic slot migration`)
  note(context, `moving with ${atomicPairs === plan.moves.length ? atomic.protocol : `${atomic.protocol} for ${atomicPairs} of ${plan.moves.length} slot(s), ${legacy.protocol} for the rest`}`)
  return new RoutingMover(legacy, atomic, (id) => atomicIds.has(id))
}

/** Durable moves wait for the target's replicas: a target without any has nothing to wait for, said once. */
function noteUnreplicatedTargets(context: RunContext, snapshot: ClusterSnapshot, moves: MigrationPlan['moves']): void {
  const targets = new Set(moves.map((move) => move.targetId))
  const alone = snapshot.nodes.filter((node) => targets.has(node.id) && !snapshot.nodes.some((other) => other.masterId === node.id))
  if (alone.length === 0) return
  const names = alone.map((node) => node.address || node.id.slice(0, 8))
  note(context, `note: ${names.join(', ')} ${alone.length === 1 ? 'has' : 'have'} no replicas: nothing to wait for, a key moved there is held by that node alone`)
}

/**
 * After the run, every reachable node's own view must give each moved slot to its target
 * (gossip carries the close to replicas within moments). A view that still disagrees after
 * the wait is a failure: something handed a slot back, or a node is partitioned.
 */
async function verifyAgreement(pool: NodePool, snapshot: ClusterSnapshot, plan: MigrationPlan, closed: ReadonlySet<number>, result: ExecuteResult): Promise<ClusterSnapshot> {
  const moved = plan.moves.filter((move) => closed.has(move.slot))
  const now = await reloadUntil(pool, parseAddress(snapshot.seedAddress), AGREEMENT_WAIT_MS, (candidate) => disagreements(candidate, moved).length === 0)
  const disagreeing = disagreements(now, moved)
  if (disagreeing.length === 0) return now
  const [first] = disagreeing
  result.failures.push({
    code: 'E_VERIFY',
    error: `verification failed: ${disagreeing.length} node view(s) do not give the moved slots to their targets after ${AGREEMENT_WAIT_MS / 1000} s (${first.address}: slot ${first.slot} → ${first.owner ?? 'no owner'})`,
    slot: first.slot,
  })
  return now
}

/** Planned slots the snapshot shows open between their own source and target. */
function alreadyOpen(snapshot: ClusterSnapshot, plan: MigrationPlan): Set<number> {
  const byId = new Map(snapshot.nodes.map((node) => [node.id, node]))
  return new Set(plan.moves.filter((move) => byId.get(move.sourceId)?.migrating[move.slot] === move.targetId && byId.get(move.targetId)?.importing[move.slot] === move.sourceId).map((move) => move.slot))
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

/** Views (of reachable nodes) that give a moved slot to anyone but its target. */
export function disagreements(snapshot: ClusterSnapshot, moves: MigrationPlan['moves']): Array<{address: string; slot: number; owner?: string}> {
  const found: Array<{address: string; slot: number; owner?: string}> = []
  for (const view of Object.values(snapshot.views)) {
    if (!view.reachable || !view.nodes) continue
    const owners = slotOwners(view.nodes)
    const wrong = moves.find((move) => owners.get(move.slot) !== move.targetId)
    if (wrong) found.push({address: view.address, owner: owners.get(wrong.slot)?.slice(0, 8), slot: wrong.slot})
  }
  return found
}

/** The flag each setting comes from (journals record settings; a resume names them as flags). */
export const SETTING_FLAGS: Record<keyof RunSettings, string> = {
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

/** The settings the journal records, so that a resume runs the same way. */
export function definedSettings(settings: RunSettings): RunSettings {
  return Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined && value !== false)) as RunSettings
}

function describeSettings(settings: RunSettings): string {
  return Object.entries(settings)
    .filter(([, value]) => value !== undefined && value !== false)
    .map(([key, value]) => `--${SETTING_FLAGS[key as keyof RunSettings]} ${value === true ? '' : value}`.trim())
    .join(' ')
}
