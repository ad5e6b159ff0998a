/**
 * Moving a slot's keys with batched MIGRATE ... KEYS: through slotctl (GETKEYSINSLOT, then
 * MIGRATE) or, for a whole wave of slots of one source/target pair, inside the source as a
 * small script. Keys stay Buffers end to end: key names need not be UTF-8.
 *
 * Every listing and every MIGRATE either succeeds or fails its slot: a slot counts as
 * emptied only after a GETKEYSINSLOT that succeeded and returned fewer keys than asked for.
 * (The close then counts the source's keys once more before it gives the slot away.)
 */
import {createHash} from 'node:crypto'

import type {Redis} from 'ioredis'

import {parseAddress} from '../cluster/address.js'
import {type ConnectionSettings, type NodePool, delay} from '../cluster/connection.js'
import {SlotctlError, errorMessage, isConnectionLost, isScriptRefused, nodeFailure} from '../core/errors.js'
import {fingerprints, sameValue} from '../keys/digest.js'
import {printableKey} from './big-keys.js'
import {type CopyGroup, type Durability, copyWaitDelete} from './durable.js'
import {IN_SOURCE_MAX_BATCH, type InSourceResult, type QuietLedger, copyWaitDeleteInSource, copyWaitDeleteQuiet, quietLedger} from './durable-in-source.js'
import type {SlotMoveTarget} from './slot-protocol.js'
import type {Throttle} from './throttle.js'

export interface MoveKeysOptions {
  /** keys per GETKEYSINSLOT / MIGRATE batch */
  pipeline: number
  /** MIGRATE timeout, ms */
  timeoutMs: number
  replace: boolean
  /**
   * The source does not own the slot (fix moving keys stored on a non-owner): it serves the
   * slot's keys only to a client that sent ASKING while it is importing the slot.
   */
  asking?: boolean
  throttle?: Throttle
  /** slots whose target may hold older copies of ours (a resumed durable run): copied with REPLACE */
  replaceSlots?: ReadonlySet<number>
  onBatch?: (keys: number, bytes: number, slot: number) => void
}

export interface MovedKeys {
  keys: number
  bytes: number
}

/** Passed inside MIGRATE so the source can authenticate at the target. Never logged. */
export function migrateAuthArgs(settings: ConnectionSettings): string[] {
  if (!settings.password) return []
  return settings.username ? ['AUTH2', settings.username, settings.password] : ['AUTH', settings.password]
}

/** How long a target may take to answer PING before a failed MIGRATE is blamed on it. */
const TARGET_PING_MS = 2000

function keyError(move: SlotMoveTarget, what: string, error: unknown): SlotctlError {
  return new SlotctlError(`slot ${move.slot}: ${nodeFailure(move.source.address, what, error)}; the slot is left migrating/importing`, {code: isConnectionLost(error) ? 'E_UNREACHABLE' : 'E_MIGRATION'})
}

function isBusyKey(error: unknown): boolean {
  // MIGRATE relays it as 'ERR Target instance replied with error: BUSYKEY ...'
  return /BUSYKEY/.test(errorMessage(error))
}

function isTransferFailure(error: unknown): boolean {
  return /IOERR|timed? ?out|timeout/i.test(errorMessage(error))
}


/** Runs one keyed command on the source, preceded by ASKING in the same pipeline when needed. */
async function onSource(source: Redis, asking: boolean, command: string, ...args: Array<Buffer | number | string>): Promise<unknown> {
  if (!asking) return source.callBuffer(command, ...args)
  const replies = (await source.pipeline().call('ASKING').callBuffer(command, ...args).exec()) ?? []
  const [error, value] = replies[1] ?? [new Error('no reply'), null]
  if (error) throw error
  return value
}

async function estimateBytes(source: Redis, keys: Buffer[], asking: boolean): Promise<number> {
  // Sampling one key per batch keeps the cost at one round trip; batches are similar keys.
  const sample = (await onSource(source, asking, 'MEMORY', 'USAGE', keys[0]).catch(() => 0)) as null | number
  return Number(sample ?? 0) * keys.length
}

interface BusyKeyReport {
  /** still on the source (MIGRATE stops at the first busy key; keys before it already moved) */
  remaining: Buffer[]
  /** on both sides with different values */
  conflicting: Buffer[]
}

/** Compares values (DUMP payloads first); the target is read with ASKING because the slot is importing there. */
async function compareWithTarget(source: Redis, target: Redis, keys: Buffer[], asking: boolean): Promise<BusyKeyReport> {
  const sourcePipeline = source.pipeline()
  for (const key of keys) (asking ? sourcePipeline.call('ASKING') : sourcePipeline).dumpBuffer(key)
  const stride = asking ? 2 : 1
  const sourceReplies = (await sourcePipeline.exec()) ?? []
  const sourceDumps = keys.map((_, i) => {
    const [error, value] = sourceReplies[i * stride + stride - 1] ?? [null, null]
    // A migrating source answers ASK for a key it no longer has: that key already moved.
    if (error && /^ASK /.test(error.message)) return null
    if (error) throw error
    return value as Buffer | null
  })
  const targetPipeline = target.pipeline()
  for (const key of keys) targetPipeline.call('ASKING').dumpBuffer(key)
  const targetReplies = (await targetPipeline.exec()) ?? []
  const report: BusyKeyReport = {conflicting: [], remaining: []}
  const payloadsDiffer: Buffer[] = []
  for (const [i, key] of keys.entries()) {
    const atSource = sourceDumps[i]
    if (!atSource) continue
    report.remaining.push(key)
    const [error, atTarget] = targetReplies[i * 2 + 1] ?? [null, null]
    if (error) report.conflicting.push(key)
    else if (atTarget && !atSource.equals(atTarget as Buffer)) payloadsDiffer.push(key)
  }
  report.conflicting.push(...(await differentValues(source, target, payloadsDiffer, asking)))
  return report
}

/**
 * DUMP payloads are not canonical: a set or hash restored from one lists its members in
 * another order (and a server may pick another encoding), so equal values can have different
 * payloads. Keys whose payloads differ are compared by their canonical value digest; a key
 * that cannot be read on both sides counts as different (its slot stays open, reported).
 */
async function differentValues(source: Redis, target: Redis, keys: Buffer[], asking: boolean): Promise<Buffer[]> {
  if (keys.length === 0) return []
  try {
    const [atSource, atTarget] = await Promise.all([fingerprints(source, keys, [], asking), fingerprints(target, keys, [], true)])
    return keys.filter((_, i) => !sameValue(atSource[i], atTarget[i]))
  } catch {
    return keys
  }
}

class KeyMover {
  private readonly host: string
  private readonly port: number

  constructor(
    private readonly source: Redis,
    private readonly target: Redis,
    private readonly move: SlotMoveTarget,
    private readonly auth: string[],
    private readonly options: MoveKeysOptions,
  ) {
    const address = parseAddress(move.target.address)
    this.host = address.host
    this.port = address.port
  }

  async migrate(keys: Buffer[], replace: boolean, timeoutMs = this.options.timeoutMs): Promise<void> {
    await onSource(this.source, Boolean(this.options.asking), 'MIGRATE', this.host, this.port, '', 0, timeoutMs, ...(replace ? ['REPLACE'] : []), ...this.auth, 'KEYS', ...keys)
  }

  async moveBatch(keys: Buffer[]): Promise<void> {
    try {
      await this.migrate(keys, this.options.replace)
    } catch (error) {
      if (isBusyKey(error)) return this.resolveBusyKeys(keys)
      if (isTransferFailure(error)) {
        // a dead target fails every batch the same way: say so, instead of blaming each key
        await this.requireTargetAnswers(error)
        return this.moveOneByOne(keys)
      }
      throw keyError(this.move, 'MIGRATE', error)
    }
  }

  async requireTargetAnswers(cause: unknown): Promise<void> {
    const answers = await Promise.race([this.target.ping().then(() => true, () => false), delay(TARGET_PING_MS).then(() => false)])
    if (answers) return
    throw new SlotctlError(`slot ${this.move.slot}: the target ${this.move.target.address} does not answer (MIGRATE: ${errorMessage(cause)}); the slot is left migrating/importing`, {
      code: 'E_TARGET_DOWN',
      suggestions: ['bring the target back (or let its replica take over), then finish with fix or --resume'],
    })
  }

  /** Equal values at the target are safe to replace; different ones stop the slot. */
  private async resolveBusyKeys(keys: Buffer[]): Promise<void> {
    const {conflicting: different, remaining} = await compareWithTarget(this.source, this.target, keys, Boolean(this.options.asking))
    if (different.length > 0) {
      const names = different.slice(0, 10).map(printableKey).join(', ')
      throw new SlotctlError(
        `slot ${this.move.slot}: ${different.length} key(s) exist on ${this.move.target.address} with different values (${names}${different.length > 10 ? ', ...' : ''}); the slot is left migrating/importing`,
        {code: 'E_BUSYKEY', suggestions: ['compare the values, then resume the run with --replace to overwrite the target copies']},
      )
    }
    if (remaining.length > 0) await this.migrate(remaining, true)
  }

  /** A batch that timed out likely holds a big key: move keys alone with a longer timeout. */
  private async moveOneByOne(keys: Buffer[]): Promise<void> {
    for (const key of keys) {
      try {
        await this.migrate([key], this.options.replace, this.options.timeoutMs * 4)
      } catch (error) {
        if (isBusyKey(error)) {
          await this.resolveBusyKeys([key])
          continue
        }
        const size = await onSource(this.source, Boolean(this.options.asking), 'MEMORY', 'USAGE', key).catch(() => null)
        throw new SlotctlError(
          `slot ${this.move.slot}: key ${printableKey(key)} (${size ?? '?'} bytes) could not be moved: ${errorMessage(error)}; the slot is left migrating/importing`,
          {code: 'E_LARGE_KEY', suggestions: ['raise --timeout for big keys, then resume the run (--resume JOURNAL)']},
        )
      }
    }
  }
}

/** How often a batch's size is sampled with MEMORY USAGE when no byte limit needs every batch. */
const BYTE_SAMPLE_EVERY = 16

/** A slot's next keys; a refused or failed listing fails the slot, it never reads as "empty". */
async function listKeys(source: Redis, move: SlotMoveTarget, count: number): Promise<Buffer[]> {
  try {
    return (await source.callBuffer('CLUSTER', 'GETKEYSINSLOT', move.slot, count)) as Buffer[]
  } catch (error) {
    throw keyError(move, 'CLUSTER GETKEYSINSLOT', error)
  }
}

export async function moveSlotKeys(pool: NodePool, move: SlotMoveTarget, options: MoveKeysOptions): Promise<MovedKeys> {
  const source = await pool.client(move.source.address)
  const target = await pool.client(move.target.address)
  const mover = new KeyMover(source, target, move, migrateAuthArgs(pool.settings), options)
  const moved: MovedKeys = {bytes: 0, keys: 0}
  let bytesPerKey = 0
  for (let batch = 0; ; batch++) {
    const keys = await listKeys(source, move, options.pipeline)
    if (keys.length === 0) return moved
    if (options.throttle?.measuresBytes || batch % BYTE_SAMPLE_EVERY === 0) bytesPerKey = (await estimateBytes(source, keys, Boolean(options.asking))) / keys.length
    const bytes = Math.round(bytesPerKey * keys.length)
    await options.throttle?.take(keys.length, bytes)
    await mover.moveBatch(keys)
    moved.keys += keys.length
    moved.bytes += bytes
    options.onBatch?.(keys.length, bytes, move.slot)
    // A short batch was the rest of the slot: while it is migrating, new keys go to the target.
    if (keys.length < options.pipeline) return moved
  }
}

export type WaveOutcome = Map<number, Error | MovedKeys>

/**
 * One batch of one slot, run inside the source: list up to ARGV[2] keys of slot ARGV[1],
 * sample the first key's size, MIGRATE them with the arguments in ARGV[3..]. The key names
 * never travel to slotctl and back, which on a small machine is where the time went.
 */
const MOVE_BATCH_SCRIPT = `
local keys = redis.call('CLUSTER', 'GETKEYSINSLOT', tonumber(ARGV[1]), tonumber(ARGV[2]))
if #keys == 0 then return {0, 0} end
local size = redis.call('MEMORY', 'USAGE', keys[1]) or 0
local args = {}
for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
args[#args + 1] = 'KEYS'
for i = 1, #keys do args[#args + 1] = keys[i] end
redis.call('MIGRATE', unpack(args))
return {#keys, size}`

const MOVE_BATCH_SHA = createHash('sha1').update(MOVE_BATCH_SCRIPT).digest('hex')

/** Lua's unpack() has a stack limit; larger batches go through slotctl instead. */
const SCRIPT_MAX_BATCH = 5000

type BatchReply = {error: Error} | {keys: number; bytes: number}

interface WaveRound {
  /** the moves these replies belong to, in order */
  moves: SlotMoveTarget[]
  replies: BatchReply[]
}

/** One round in the source: a pipeline of one script call per slot. */
async function scriptRound(source: Redis, moves: readonly SlotMoveTarget[], migrateArgs: Array<number | string>, options: MoveKeysOptions): Promise<WaveRound> {
  // EVALSHA: the script text is sent once per round, not once per slot
  const pipeline = source.pipeline().call('SCRIPT', 'LOAD', MOVE_BATCH_SCRIPT)
  for (const move of moves) pipeline.call('EVALSHA', MOVE_BATCH_SHA, 0, move.slot, options.pipeline, ...migrateArgs)
  const [loaded, ...results] = (await pipeline.exec()) ?? []
  // refused (e.g. an ACL without scripting): every slot reports it, and the wave goes through slotctl
  if (loaded?.[0]) return {moves: [...moves], replies: moves.map(() => ({error: loaded[0] as Error}))}
  const replies = results.map(([error, value]): BatchReply => {
    if (error) return {error}
    const [keys, sample] = value as [number, number]
    return {bytes: Number(keys) * Number(sample), keys: Number(keys)}
  })
  return {moves: [...moves], replies}
}

/** One round through slotctl: a pipeline of GETKEYSINSLOT, then a pipeline of MIGRATE. */
async function clientRound(source: Redis, moves: readonly SlotMoveTarget[], migrateArgs: Array<number | string>, options: MoveKeysOptions): Promise<WaveRound> {
  const listing = source.pipeline()
  for (const move of moves) listing.callBuffer('CLUSTER', 'GETKEYSINSLOT', move.slot, options.pipeline)
  const listed = (await listing.exec()) ?? []
  // a listing that failed is that slot's error (the one-slot path retries and reports it)
  const failed = moves.flatMap((move, i) => (listed[i]?.[0] || !listed[i] ? [{move, reply: {error: listed[i]?.[0] ?? new Error('no reply')} as BatchReply}] : []))
  const batches = moves.flatMap((move, i) => (listed[i] && !listed[i][0] && (listed[i][1] as Buffer[]).length > 0 ? [{keys: listed[i][1] as Buffer[], move}] : []))
  if (batches.length === 0) return {moves: failed.map((f) => f.move), replies: failed.map((f) => f.reply)}
  // one key's size, sampled in the same pipeline, estimates the bytes (for progress only)
  const migrations = source.pipeline().callBuffer('MEMORY', 'USAGE', batches[0].keys[0])
  for (const {keys} of batches) migrations.callBuffer('MIGRATE', ...migrateArgs, 'KEYS', ...keys)
  const [[, sample], ...replies] = (await migrations.exec()) ?? [[null, 0]]
  return {
    moves: [...failed.map((f) => f.move), ...batches.map((batch) => batch.move)],
    replies: [
      ...failed.map((f) => f.reply),
      ...batches.map(({keys}, i): BatchReply => (replies[i]?.[0] || !replies[i] ? {error: (replies[i]?.[0] as Error) ?? new Error('no reply')} : {bytes: Number(sample ?? 0) * keys.length, keys: keys.length})),
    ],
  }
}

/**
 * Moves the keys of a wave of slots (one source/target pair) with few round trips: per
 * round, one pipeline that moves one batch of every slot still holding keys. Inside the
 * source (a script) when allowed; through slotctl when the connection carries a password
 * (script arguments are not redacted from MONITOR and SLOWLOG, MIGRATE's AUTH is), when the
 * batch is too large for the script, or when scripts are refused. A slot whose batch fails
 * falls back to the one-slot path (BUSYKEY comparison, big-key retry); its error, if any,
 * is returned for that slot alone.
 */
export async function moveWaveKeys(pool: NodePool, moves: readonly SlotMoveTarget[], options: MoveKeysOptions): Promise<WaveOutcome> {
  const outcome: WaveOutcome = new Map(moves.map((move) => [move.slot, {bytes: 0, keys: 0}]))
  if (moves.length === 0) return outcome
  const source = await pool.client(moves[0].source.address)
  const {host, port} = parseAddress(moves[0].target.address)
  const auth = migrateAuthArgs(pool.settings)
  const migrateArgs = [host, port, '', 0, options.timeoutMs, ...(options.replace ? ['REPLACE'] : []), ...auth]
  let inScript = auth.length === 0 && options.pipeline <= SCRIPT_MAX_BATCH
  let remaining = [...moves]
  while (remaining.length > 0) {
    let round: WaveRound
    try {
      round = await (inScript ? scriptRound : clientRound)(source, remaining, migrateArgs, options)
    } catch (error) {
      // the round's pipeline failed whole: the source's connection is gone
      for (const move of remaining) outcome.set(move.slot, keyError(move, 'MIGRATE', error))
      break
    }
    if (inScript && round.replies.some((reply) => 'error' in reply && isScriptRefused(reply.error))) {
      inScript = false
      continue
    }
    const next: SlotMoveTarget[] = []
    for (const [i, move] of round.moves.entries()) {
      const reply = round.replies[i]
      const moved = outcome.get(move.slot) as MovedKeys
      if ('error' in reply) {
        // the one-slot path lists the slot again: keys this batch moved before failing go uncounted
        const rest = await moveSlotKeys(pool, move, options).catch((error: Error) => error)
        outcome.set(move.slot, rest instanceof Error ? rest : {bytes: moved.bytes + rest.bytes, keys: moved.keys + rest.keys})
        continue
      }
      if (reply.keys === 0) continue
      moved.keys += reply.keys
      moved.bytes += reply.bytes
      options.onBatch?.(reply.keys, reply.bytes, move.slot)
      if (reply.keys === options.pipeline) next.push(move)
    }
    remaining = next
  }
  return outcome
}

/**
 * Moves one (big) key alone with its own MIGRATE timeout, before the rest of its slot. A key
 * gone since it was found (expired, deleted) has nothing to move.
 */
export async function moveKeyAlone(pool: NodePool, move: SlotMoveTarget, key: Buffer, bytes: number, timeoutMs: number, options: MoveKeysOptions, durability?: Durability): Promise<MovedKeys> {
  if (durability && durability.acks > 0) {
    const moved = (await moveKeysDurably(pool, [move], {...options, timeoutMs}, durability, [key])).get(move.slot)
    if (moved instanceof Error) throw moved
    return {bytes: moved?.keys ? bytes : 0, keys: moved?.keys ?? 0}
  }
  const source = await pool.client(move.source.address)
  const target = await pool.client(move.target.address)
  // a failed check is the slot's error ("not there" must be an answer, not a guess); a
  // migrating source answers ASK for a key it no longer has
  const present = await source.exists(key).catch((error: unknown) => {
    if (/^ASK /.test(errorMessage(error))) return 0
    throw keyError(move, 'EXISTS', error)
  })
  if (!present) return {bytes: 0, keys: 0}
  await options.throttle?.take(1, bytes)
  await new KeyMover(source, target, move, migrateAuthArgs(pool.settings), {...options, timeoutMs}).moveBatch([key])
  options.onBatch?.(1, bytes, move.slot)
  return {bytes, keys: 1}
}

/** What a slot of a durable wave needs in its next round. */
interface SlotState {
  move: SlotMoveTarget
  /** copy with REPLACE: the target may hold an older copy of ours (an earlier round, a resumed run) or --replace */
  replace: boolean
  /** keys per round; halved after a round whose keys clients kept changing */
  batch: number
  /** a batch timed out: keys go one at a time with four times the MIGRATE timeout */
  slow: boolean
  /** the slot holds a key too big to fingerprint inside the source: it goes on through slotctl (WATCH) */
  viaClient?: boolean
  aborts: number
}

/** Source connections of a durable wave: one slot's batch in flight on each (durable.ts). */
const DURABLE_LANES = 64

/** A single key that clients change faster than it can be copied and acknowledged. */
const MAX_ABORTS_PER_SLOT = 12

/** Slots per round when the round runs inside the source (durable-in-source.ts): one connection serves them all. */
const IN_SOURCE_SLOTS_PER_ROUND = 128

/**
 * Moves the keys of a wave (or of one slot) durably: rounds of copy, WAIT for the target's
 * replicas, then delete at the source, until each slot is empty at the source. Per slot, the
 * keys moved or the error that stopped the slot (its keys stay at the source). Rounds run
 * inside the source where they may (durable-in-source.ts); otherwise up to DURABLE_LANES
 * slots go per round, each on a connection of its own (durable.ts). A slot whose batch a
 * client's write interrupted deletes nothing of it and goes again with half the batch, so a
 * hot key slows its own slot only.
 */
export async function moveKeysDurably(pool: NodePool, moves: readonly SlotMoveTarget[], options: MoveKeysOptions, durability: Durability, onlyKeys?: Buffer[]): Promise<WaveOutcome> {
  const outcome: WaveOutcome = new Map(moves.map((move) => [move.slot, {bytes: 0, keys: 0}]))
  if (moves.length === 0) return outcome
  const {source, target} = moves[0]
  const leases: Array<Awaited<ReturnType<NodePool['lease']>>> = []
  const lease = async (address: string) => {
    const leased = await pool.lease(address)
    leases.push(leased)
    return leased.client
  }
  let clean = false
  try {
    const targetClient = await lease(target.address)
    const sources = [await lease(source.address)]
    // the WATCH path needs a connection per slot of a round: leased when it is first taken
    const lanes = Math.min(DURABLE_LANES, moves.length)
    const allLanes = async () => {
      while (sources.length < lanes) sources.push(await lease(source.address))
      return sources
    }
    const states = moves.map((move): SlotState => ({aborts: 0, batch: options.pipeline, move, replace: options.replace || Boolean(options.replaceSlots?.has(move.slot)), slow: false}))
    const inSource = migrateAuthArgs(pool.settings).length === 0 && !options.throttle && !onlyKeys && options.pipeline <= IN_SOURCE_MAX_BATCH
    const mover = new DurableRound(pool, sources, allLanes, targetClient, moves[0], options, durability, outcome, inSource, onlyKeys)
    let remaining = states
    while (remaining.length > 0) {
      // a batch that timed out goes alone, key by key, with the longer timeout
      const slow = remaining.find((state) => state.slow)
      const viaClient = remaining.filter((state) => state.viaClient)
      const round = slow ? [slow] : viaClient.length > 0 ? viaClient.slice(0, lanes) : remaining.slice(0, mover.inSource ? IN_SOURCE_SLOTS_PER_ROUND : lanes)
      remaining = await mover.run(round, remaining)
    }
    clean = true
  } finally {
    for (const leased of leases) leased.release(clean)
  }
  return outcome
}

class DurableRound {
  /** listings, size samples and comparisons: never while a batch of its is between copy and delete */
  private readonly source: Redis
  private readonly target: {host: string; port: number; address: string}
  private readonly auth: string[]
  private readonly ledger: QuietLedger
  /** rounds in the source skip the fingerprints until a client's write is seen (durable-in-source.ts, the quiet path) */
  private quiet = true

  constructor(
    pool: NodePool,
    /** the first source connection; the WATCH path leases the rest with allLanes() */
    private readonly sources: Redis[],
    private readonly allLanes: () => Promise<Redis[]>,
    private readonly targetClient: Redis,
    pair: SlotMoveTarget,
    private readonly options: MoveKeysOptions,
    private readonly durability: Durability,
    private readonly outcome: WaveOutcome,
    /** rounds run inside the source (durable-in-source.ts) until the source refuses scripts */
    public inSource: boolean,
    /** a big key moved alone: these keys of the (single) slot, not a listing of it */
    private readonly onlyKeys?: Buffer[],
  ) {
    this.source = sources[0]
    this.ledger = quietLedger(pool, pair.source.address)
    this.target = {...parseAddress(pair.target.address), address: pair.target.address}
    this.auth = migrateAuthArgs(pool.settings)
  }

  /** One round over `round`; returns the slots of `all` that still have keys to move. */
  async run(round: SlotState[], all: SlotState[]): Promise<SlotState[]> {
    const done = new Set<SlotState>()
    if (this.inSource && !round.some((state) => state.slow || state.viaClient)) {
      await this.runInSource(round, done)
      return all.filter((state) => !done.has(state))
    }
    await this.allLanes()
    const listed = await this.list(round)
    const groups: Array<{state: SlotState; keys: Buffer[]}> = []
    for (const [i, state] of round.entries()) {
      const keys = listed[i]
      if (keys instanceof Error) {
        this.outcome.set(state.move.slot, keyError(state.move, 'CLUSTER GETKEYSINSLOT', keys))
        done.add(state)
      } else if (keys.length === 0) done.add(state)
      else groups.push({keys, state})
    }
    if (groups.length > 0) await this.copyRound(groups, done)
    return all.filter((state) => !done.has(state))
  }

  private async runInSource(round: SlotState[], done: Set<SlotState>): Promise<void> {
    const migrateArgs = [this.target.host, this.target.port, '', 0, this.options.timeoutMs]
    const batches = round.map((state) => ({count: state.batch, replace: state.replace, slot: state.move.slot}))
    const result = this.quiet
      ? await copyWaitDeleteQuiet(this.source, this.targetClient, this.target.address, migrateArgs, batches, this.durability, this.ledger)
      : await copyWaitDeleteInSource(this.source, this.targetClient, this.target.address, migrateArgs, batches, this.durability)
    // a client writes to this source: the rest of the wave compares fingerprints
    if (result.written) this.quiet = false
    if (result.unavailable) {
      // nothing was copied: the same slots go again through slotctl
      this.inSource = false
      return
    }
    for (const state of round) await this.afterInSource(state, result.results.get(state.move.slot), done)
  }

  private async afterInSource(state: SlotState, result: InSourceResult | undefined, done: Set<SlotState>): Promise<void> {
    if (!result) return
    if (result.retry) {
      // copied, nothing deleted: the copies at the target are ours, replaced next round
      state.replace = true
      return
    }
    if (result.big) {
      state.viaClient = true
      return
    }
    if (result.error) {
      if (result.keys.length > 0) await this.onCopyFailure(state, result.keys, result.error, done)
      else {
        this.outcome.set(state.move.slot, keyError(state.move, 'MIGRATE', result.error))
        done.add(state)
      }
      return
    }
    if (result.copied > 0 && result.deleted === undefined) {
      this.onAbort(state, done)
      return
    }
    if (result.copied > 0) this.counted(state, result.deleted ?? 0, result.bytes)
    // a short listing was the rest of the slot: while it is migrating, new keys go to the target
    if (result.listed < state.batch) done.add(state)
  }

  /** A batch copied, acknowledged and deleted at the source. */
  private counted(state: SlotState, deleted: number, bytes: number): void {
    // a copied round may repeat: from now on the target can hold our older copy
    state.replace = true
    state.aborts = 0
    const moved = this.outcome.get(state.move.slot) as MovedKeys
    moved.keys += deleted
    moved.bytes += bytes
    this.options.onBatch?.(deleted, bytes, state.move.slot)
  }

  private async list(round: SlotState[]): Promise<Array<Buffer[] | Error>> {
    if (this.onlyKeys) return [await this.presentKeys(this.onlyKeys)]
    const listing = this.source.pipeline()
    for (const state of round) listing.callBuffer('CLUSTER', 'GETKEYSINSLOT', state.move.slot, state.slow ? 1 : state.batch)
    const replies = (await listing.exec()) ?? []
    return round.map((_, i) => (replies[i]?.[0] ?? (replies[i] ? (replies[i][1] as Buffer[]) : new Error('no reply'))) as Buffer[] | Error)
  }

  /** The keys still at the source (a migrating source answers ASK for a key it lacks). */
  private async presentKeys(keys: Buffer[]): Promise<Buffer[] | Error> {
    const checking = this.source.pipeline()
    for (const key of keys) checking.callBuffer('EXISTS', key)
    const replies = (await checking.exec()) ?? []
    const present: Buffer[] = []
    for (const [i, key] of keys.entries()) {
      const [error, value] = replies[i] ?? [new Error('no reply'), 0]
      if (error && !/^ASK /.test(error.message)) return error
      if (!error && Number(value) > 0) present.push(key)
    }
    return present
  }

  private async copyRound(groups: Array<{state: SlotState; keys: Buffer[]}>, done: Set<SlotState>): Promise<void> {
    const total = groups.reduce((sum, group) => sum + group.keys.length, 0)
    const sample = Number((await this.source.callBuffer('MEMORY', 'USAGE', groups[0].keys[0]).catch(() => 0)) ?? 0)
    await this.options.throttle?.take(total, sample * total)
    const slow = groups.some((group) => group.state.slow)
    const migrateArgs = [this.target.host, this.target.port, '', 0, this.options.timeoutMs * (slow ? 4 : 1), ...this.auth]
    const copyGroups = groups.map(({keys, state}): CopyGroup => ({keys, replace: state.replace, slot: state.move.slot}))
    const result = await copyWaitDelete(this.sources, this.targetClient, this.target.address, migrateArgs, copyGroups, this.durability)
    for (const {keys, state} of groups) {
      const error = result.failed.get(state.move.slot)
      if (error) {
        await this.onCopyFailure(state, keys, error, done)
        continue
      }
      const deleted = result.deleted.get(state.move.slot)
      if (deleted === undefined) {
        if (result.aborted.has(state.move.slot)) this.onAbort(state, done)
        continue
      }
      this.counted(state, deleted, sample * deleted)
      // a short batch was the rest of the slot: while it is migrating, new keys go to the target
      if (!state.slow && keys.length < state.batch) done.add(state)
    }
  }

  private onAbort(state: SlotState, done: Set<SlotState>): void {
    // the copies may be at the target now: later copies of these keys replace them
    state.replace = true
    state.batch = Math.max(1, Math.floor(state.batch / 2))
    if (++state.aborts < MAX_ABORTS_PER_SLOT) return
    this.outcome.set(state.move.slot, new SlotctlError(`slot ${state.move.slot}: clients changed its keys during every one of ${MAX_ABORTS_PER_SLOT} copies; nothing of those keys was deleted at the source; the slot is left migrating/importing`, {
      code: 'E_HOT_KEYS',
      suggestions: ['resume the run when the writes to that slot calm down (--resume JOURNAL)'],
    }))
    done.add(state)
  }

  private async onCopyFailure(state: SlotState, keys: Buffer[], error: Error, done: Set<SlotState>): Promise<void> {
    const move = state.move
    if (isBusyKey(error) && !state.replace) {
      const {conflicting} = await compareWithTarget(this.source, this.targetClient, keys, false)
      if (conflicting.length === 0) {
        state.replace = true
        return
      }
      const names = conflicting.slice(0, 10).map(printableKey).join(', ')
      this.outcome.set(move.slot, new SlotctlError(`slot ${move.slot}: ${conflicting.length} key(s) exist on ${move.target.address} with different values (${names}${conflicting.length > 10 ? ', ...' : ''}); the slot is left migrating/importing`, {
        code: 'E_BUSYKEY',
        suggestions: ['compare the values, then resume the run with --replace to overwrite the target copies'],
      }))
    } else if (isTransferFailure(error) && !state.slow) {
      // a dead target fails every batch the same way: say so, instead of blaming each key
      await new KeyMover(this.source, this.targetClient, move, this.auth, this.options).requireTargetAnswers(error)
      state.slow = true
      return
    } else {
      const size = state.slow ? await this.source.callBuffer('MEMORY', 'USAGE', keys[0]).catch(() => null) : null
      this.outcome.set(
        move.slot,
        state.slow
          ? new SlotctlError(`slot ${move.slot}: key ${printableKey(keys[0])} (${size ?? '?'} bytes) could not be moved: ${errorMessage(error)}; the slot is left migrating/importing`, {code: 'E_LARGE_KEY', suggestions: ['raise --timeout for big keys, then resume the run (--resume JOURNAL)']})
          : keyError(move, 'MIGRATE', error),
      )
    }
    done.add(state)
  }
}
