/**
 * Moves (or copies) the keys of one standalone server into a cluster: SCAN pages of the
 * source, keys grouped by the master that owns their slot, and per master batched
 * `MIGRATE ... KEYS` run by the source straight into that master. The batches of a page go
 * to every master at once and several pages are in flight, all pipelined on the source's
 * connection, so the source always has the next MIGRATE queued. Keys stay Buffers end to end.
 *
 * A key already in the cluster: equal values are skipped (in a move, the source copy is then
 * dropped as if moved), different values are reported and left alone unless `replace`.
 * Progress is checkpointed by SCAN cursor, in order, for the journal and --resume.
 */
import type {Redis} from 'ioredis'

import {parseAddress} from '../cluster/address.js'
import type {NodePool} from '../cluster/connection.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {keySlot} from '../core/slots.js'
import {migrateAuthArgs} from '../migrate/key-mover.js'
import type {Throttle} from '../migrate/throttle.js'
import {fingerprints, sameValue, typeOfDump} from '../keys/digest.js'
import type {NodeRef} from '../core/result.js'
import {ScanGuard} from './scan-guard.js'

export interface TransferOptions {
  /** keep the source's keys (MIGRATE COPY) */
  copy: boolean
  /** overwrite keys the cluster already has with different values */
  replace: boolean
  /** SCAN MATCH pattern */
  match?: string
  /** keys per MIGRATE */
  batchKeys: number
  /** MIGRATE timeout, ms; a batch that times out is retried key by key with 4x this */
  timeoutMs: number
  /**
   * The source is a server slotctl started itself (restore): it may be given the cluster's
   * credentials inside MIGRATE. Any other source never sees them: with a password-protected
   * cluster, slotctl relays the keys itself (DUMP at the source, RESTORE at the owner).
   */
  sourceOwnedBySlotctl?: boolean
  throttle?: Throttle
  /** aborted: scan no further, finish the pages in flight */
  signal?: AbortSignal
  /** SCAN cursor to continue from (resume) */
  cursor?: string
  /** the source as named in messages, and the keys it reports: what bounds its SCAN */
  sourceAddress?: string
  sourceKeys?: number
  onBatch?: (keys: number) => void
  /** Every key of the pages before `cursor` is handled; called in SCAN order. */
  onCheckpoint?: (checkpoint: Checkpoint) => void
}

export interface Checkpoint {
  cursor: string
  /** keys handled since the previous checkpoint */
  keys: number
  conflicts: Conflict[]
}

export interface Conflict {
  key: Buffer
  owner: NodeRef
}

export interface TransferResult {
  /** keys now in the cluster with the source's value (moved, copied, or found equal) */
  keys: number
  conflicts: Conflict[]
  perOwner: Map<string, number>
  /** the last checkpoint's cursor; '0' with complete=true when the SCAN went all the way */
  cursor: string
  complete: boolean
  interrupted: boolean
  failure?: SlotctlError
  elapsedMs: number
}

/** Pages whose keys may be moving at once: the source never waits for slotctl to scan. */
const PAGES_IN_FLIGHT = 4
const MAX_SCAN_COUNT = 10_000

interface MigrateReply {
  error: Error | null
  /** keys that existed at the source right before the MIGRATE */
  existing: number
}

interface BatchOutcome {
  keys: number
  conflicts: Buffer[]
}

/** Keys of a batch looked up at the target after its MIGRATE. */
const ARRIVAL_SAMPLE = 16

/** Up to ARRIVAL_SAMPLE keys spread evenly over the batch, first and last included. */
function sampleOf(keys: readonly Buffer[]): Buffer[] {
  if (keys.length <= ARRIVAL_SAMPLE) return [...keys]
  const step = (keys.length - 1) / (ARRIVAL_SAMPLE - 1)
  return Array.from({length: ARRIVAL_SAMPLE}, (_, i) => keys[Math.round(i * step)])
}

function isBusyKey(error: unknown): boolean {
  return /BUSYKEY/.test(errorMessage(error))
}

function isTransferFailure(error: unknown): boolean {
  return /IOERR|timed? ?out|timeout/i.test(errorMessage(error))
}

export function printableKey(key: Buffer): string {
  const text = key.toString('utf8')
  return Buffer.from(text, 'utf8').equals(key) ? text : `0x${key.toString('hex')}`
}

function migrateFailure(owner: NodeRef, error: unknown): SlotctlError {
  const message = errorMessage(error)
  if (/MOVED|ASK /.test(message)) {
    return new SlotctlError(`the cluster's slot map changed while keys were moving (${owner.address} answered: ${message.replace(/^ERR Target instance replied with error: /, '')})`, {
      code: 'E_SLOT_MAP_CHANGED',
      suggestions: ['wait until slotctl check is clean, then continue with --resume JOURNAL'],
    })
  }
  if (/payload version|checksum are wrong/i.test(message)) {
    return new SlotctlError(`${owner.address} cannot read the source's serialization: ${message}`, {
      code: 'E_VERSION_MISMATCH',
      suggestions: ['the cluster runs an older server version than the source; upgrade the cluster first'],
    })
  }
  return new SlotctlError(`MIGRATE into ${owner.address} failed: ${message}`, {code: 'E_MIGRATION'})
}

/**
 * Moves batches of one source into their owners; all through the source's one connection.
 * Optimistic first (MIGRATE, and compare only what it reports busy); once an owner already
 * holds most keys of a batch (a second pass), its next batches are compared first and only
 * what is missing or must be replaced is sent, until most keys are missing again.
 */
class BatchMover {
  private readonly auth: string[]
  private readonly compareFirst = new Set<string>()
  /** The cluster needs credentials the source must not see: keys go through slotctl. */
  private readonly relay: boolean

  constructor(private readonly source: Redis, private readonly cluster: NodePool, private readonly options: TransferOptions) {
    this.auth = migrateAuthArgs(cluster.settings)
    this.relay = this.auth.length > 0 && !options.sourceOwnedBySlotctl
  }

  async move(owner: NodeRef, keys: Buffer[]): Promise<BatchOutcome> {
    if (this.compareFirst.has(owner.id)) return this.settleByValue(owner, keys)
    const {error, existing} = await this.migrate(owner, keys, this.options.replace)
    if (!error) return {conflicts: [], keys: existing}
    if (isBusyKey(error)) return this.resolveBusyKeys(owner, keys, existing)
    if (isTransferFailure(error)) return this.moveOneByOne(owner, keys, this.options.replace)
    throw migrateFailure(owner, error)
  }

  /**
   * MIGRATE preceded, in the same pipeline, by an EXISTS of its keys: MIGRATE skips keys that
   * are gone (SCAN may return a key twice, after it moved) and does not say how many it took.
   */
  private async migrate(owner: NodeRef, keys: Buffer[], replace: boolean, timeoutMs = this.options.timeoutMs): Promise<MigrateReply> {
    if (this.relay) return relayKeys(this.source, await this.cluster.client(owner.address), keys, {copy: this.options.copy, replace})
    const {host, port} = parseAddress(owner.address)
    const flags = [...(this.options.copy ? ['COPY'] : []), ...(replace ? ['REPLACE'] : [])]
    const sample = sampleOf(keys)
    const pipeline = this.source.pipeline().callBuffer('EXISTS', ...keys)
    for (const key of sample) pipeline.callBuffer('EXISTS', key)
    const replies = (await pipeline.callBuffer('MIGRATE', host, port, '', 0, timeoutMs, ...flags, ...this.auth, 'KEYS', ...keys).exec()) ?? []
    const failed = replies.length !== sample.length + 2 ? new Error('no reply') : replies.find(([error]) => error)?.[0]
    const existing = Number(replies[0]?.[1] ?? 0)
    if (!failed) await this.confirmArrived(owner, sample.filter((_, i) => Number(replies[i + 1][1]) > 0), existing)
    return {error: failed ?? null, existing}
  }

  /**
   * What the source says it sent is counted only once the target holds it: a sample of the
   * batch's keys that existed at the source right before the MIGRATE is looked up at the
   * target. A source that answers OK without sending (a fake, a broken proxy) is caught at its
   * first batch, one that sends part of a batch almost surely; looking up every key would
   * double the cost of an import.
   */
  private async confirmArrived(owner: NodeRef, sent: Buffer[], reported: number): Promise<void> {
    if (sent.length === 0) return
    const target = await this.cluster.client(owner.address)
    // one EXISTS per key: a batch spans many slots, and a cluster node refuses CROSSSLOT
    const pipeline = target.pipeline()
    for (const key of sent) pipeline.exists(key)
    const present = ((await pipeline.exec()) ?? []).filter(([error, found]) => !error && Number(found) > 0).length
    if (present === sent.length) return
    throw new SlotctlError(`the source reported ${reported} key(s) migrated into ${owner.address}, which holds ${present} of the ${sent.length} looked up: the source did not send what it says`, {
      code: 'E_KEYS_MISSING',
      suggestions: ['check that --from is a Redis or Valkey server (a proxy that answers MIGRATE with OK sends nothing); a key with a TTL may also have expired just then: continue with --resume JOURNAL'],
    })
  }

  /**
   * MIGRATE tries every key and reports the first busy one; keys that were not busy went
   * through. What is left is settled by value.
   */
  private async resolveBusyKeys(owner: NodeRef, keys: Buffer[], existing: number): Promise<BatchOutcome> {
    const settled = await this.settleByValue(owner, keys)
    if (settled.present * 2 > keys.length) this.compareFirst.add(owner.id)
    return {conflicts: settled.conflicts, keys: existing - settled.conflicts.length}
  }

  /**
   * Compares each key with the owner's copy: missing there, it is sent; equal, it stays (a
   * move sends it with REPLACE, which drops the source copy); different, it is a conflict.
   */
  private async settleByValue(owner: NodeRef, keys: Buffer[]): Promise<BatchOutcome & {present: number}> {
    const target = await this.cluster.client(owner.address)
    const verdicts = await compareValues(this.source, target, keys)
    const pick = (verdict: Verdict) => keys.filter((_, i) => verdicts[i] === verdict)
    const [equal, missing, different] = [pick('equal'), pick('missing-at-target'), pick('different')]
    const conflicts = this.options.replace ? [] : different
    const overwrite = [...(this.options.copy ? [] : equal), ...(this.options.replace ? different : [])]
    let handled = this.options.copy ? equal.length : 0
    if (overwrite.length > 0) handled += await this.migrateOrThrow(owner, overwrite, true)
    if (missing.length > 0) handled += await this.migrateOrThrow(owner, missing, this.options.replace)
    if (missing.length * 2 > keys.length) this.compareFirst.delete(owner.id)
    return {conflicts, keys: handled, present: equal.length + different.length}
  }

  private async migrateOrThrow(owner: NodeRef, keys: Buffer[], replace: boolean): Promise<number> {
    const {error, existing} = await this.migrate(owner, keys, replace)
    if (!error) return existing
    if (isTransferFailure(error)) return (await this.moveOneByOne(owner, keys, replace)).keys
    throw migrateFailure(owner, error)
  }

  /** A batch that timed out likely holds a big key: each key alone, with a longer timeout. */
  private async moveOneByOne(owner: NodeRef, keys: Buffer[], replace: boolean): Promise<BatchOutcome> {
    const outcome: BatchOutcome = {conflicts: [], keys: 0}
    for (const key of keys) {
      const {error, existing} = await this.migrate(owner, [key], replace, this.options.timeoutMs * 4)
      if (!error) {
        outcome.keys += existing
      } else if (isBusyKey(error)) {
        const resolved = await this.resolveBusyKeys(owner, [key], existing)
        outcome.keys += resolved.keys
        outcome.conflicts.push(...resolved.conflicts)
      } else if (isTransferFailure(error)) {
        const size = await this.source.call('MEMORY', 'USAGE', key).catch(() => null)
        throw new SlotctlError(`key ${printableKey(key)} (${size ?? '?'} bytes) could not be moved into ${owner.address}: ${errorMessage(error)}`, {
          code: 'E_LARGE_KEY',
          suggestions: ['raise --timeout for big keys, then continue with --resume JOURNAL'],
        })
      } else {
        throw migrateFailure(owner, error)
      }
    }
    return outcome
  }
}

/**
 * Deletes each key at the source only while it still has the value that was relayed (its
 * DUMP is unchanged), atomically: a write that landed meanwhile is never thrown away.
 */
const DELETE_IF_UNCHANGED = `local deleted = 0
for i, key in ipairs(KEYS) do
  if redis.call('DUMP', key) == ARGV[i] then
    redis.call('DEL', key)
    deleted = deleted + 1
  end
end
return deleted`

/**
 * MIGRATE done by slotctl, with MIGRATE's outcome: DUMP and PTTL at the source, RESTORE at
 * the owner (with the cluster's credentials, which stay here), and for a move the source
 * copies deleted. Keys gone from the source are skipped; the first refusal (BUSYKEY, a
 * payload the owner cannot read) is the error, and the keys it did not concern went through.
 */
export async function relayKeys(source: Redis, owner: Redis, keys: readonly Buffer[], options: {copy: boolean; replace: boolean}): Promise<MigrateReply> {
  const reads = source.pipeline()
  for (const key of keys) reads.pttl(key).dumpBuffer(key)
  const replies = (await reads.exec()) ?? []
  const failed = replies.find(([error]) => error)
  if (failed) return {error: failed[0], existing: 0}
  const present = keys.flatMap((key, i) => {
    const ttl = Number(replies[2 * i][1])
    const payload = replies[2 * i + 1][1] as Buffer | null
    return payload && ttl !== -2 ? [{key, payload, ttl: Math.max(ttl, 0)}] : []
  })
  if (present.length === 0) return {error: null, existing: 0}
  const writes = owner.pipeline()
  for (const {key, payload, ttl} of present) writes.callBuffer('RESTORE', key, ttl, payload, ...(options.replace ? ['REPLACE'] : []))
  const restored = (await writes.exec()) ?? []
  const error = restored.find(([restoreError]) => restoreError)?.[0] ?? null
  if (options.copy) return {error, existing: present.length}
  const done = present.filter((_, i) => restored[i] && !restored[i][0])
  const deleted = done.length > 0 ? Number(await source.callBuffer('EVAL', DELETE_IF_UNCHANGED, done.length, ...done.map(({key}) => key), ...done.map(({payload}) => payload))) : 0
  // A move counts what it took from the source, as MIGRATE's EXISTS does: a key SCAN returned
  // twice may be relayed by two batches at once, and only the one whose delete took it counts;
  // a refused key counts while the source still has it (the caller settles it by value).
  const refused = present.filter((_, i) => !restored[i] || restored[i][0])
  const stillThere = refused.length > 0 ? Number(await source.callBuffer('EXISTS', ...refused.map(({key}) => key))) : 0
  return {error, existing: deleted + stillThere}
}

type Verdict = 'different' | 'equal' | 'gone-from-source' | 'missing-at-target'

async function dumps(client: Redis, keys: readonly Buffer[]): Promise<Array<Buffer | null>> {
  const pipeline = client.pipeline()
  for (const key of keys) pipeline.dumpBuffer(key)
  return ((await pipeline.exec()) ?? []).map(([error, value]) => {
    if (error) throw error
    return value as Buffer | null
  })
}

/**
 * Equal serializations mean equal values; different ones may still be equal values (a hash
 * table restored elsewhere iterates in another order), so those are compared canonically.
 */
export async function compareValues(source: Redis, target: Redis, keys: readonly Buffer[]): Promise<Verdict[]> {
  const [atSource, atTarget] = await Promise.all([dumps(source, keys), dumps(target, keys)])
  const verdicts: Verdict[] = keys.map((_, i) => {
    if (!atSource[i]) return 'gone-from-source'
    if (!atTarget[i]) return 'missing-at-target'
    return (atSource[i] as Buffer).equals(atTarget[i] as Buffer) ? 'equal' : 'different'
  })
  const unsure = keys.flatMap((_, i) => (verdicts[i] === 'different' ? [i] : []))
  if (unsure.length === 0) return verdicts
  // the payload names the type: the values are read at once, without asking TYPE first
  const types = unsure.map((i) => typeOfDump(atSource[i] as Buffer))
  const unsureKeys = unsure.map((i) => keys[i])
  const [sourceValues, targetValues] = await Promise.all([fingerprints(source, unsureKeys, types), fingerprints(target, unsureKeys, types)])
  let next = 0
  return verdicts.map((verdict) => {
    if (verdict !== 'different') return verdict
    const i = next++
    if (!sourceValues[i]) return 'gone-from-source'
    if (!targetValues[i]) return 'missing-at-target'
    return sameValue(sourceValues[i], targetValues[i]) ? 'equal' : 'different'
  })
}

interface Page {
  keys: Buffer[]
  /** the cursor that continues after this page */
  next: string
  done: boolean
  handled: number
  conflicts: Conflict[]
}

function groupByOwner(keys: readonly Buffer[], owners: readonly NodeRef[]): Map<NodeRef, Buffer[]> {
  const groups = new Map<NodeRef, Buffer[]>()
  for (const key of keys) {
    const owner = owners[keySlot(key)]
    let group = groups.get(owner)
    if (!group) groups.set(owner, (group = []))
    group.push(key)
  }
  return groups
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const result: T[][] = []
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size))
  return result
}

/**
 * Moves every key of `source`'s selected db (or those matching) into the masters of `owners`.
 * Never rejects: a failed batch stops the scan, the pages in flight finish, and the failure is
 * in the result with the last checkpoint to resume from.
 */
export async function transferKeys(source: Redis, cluster: NodePool, owners: readonly NodeRef[], options: TransferOptions): Promise<TransferResult> {
  const started = Date.now()
  const mover = new BatchMover(source, cluster, options)
  const ownerCount = new Set(owners).size
  const scanCount = Math.min(MAX_SCAN_COUNT, options.batchKeys * ownerCount)
  const match = options.match ? ['MATCH', options.match] : []
  const guard = new ScanGuard(source, options.sourceAddress ?? 'the source', options.sourceKeys ?? 0, scanCount)
  const result: TransferResult = {complete: false, conflicts: [], cursor: options.cursor ?? '0', elapsedMs: 0, interrupted: false, keys: 0, perOwner: new Map()}
  const pages: Page[] = []
  const running = new Set<Promise<void>>()

  const checkpoint = () => {
    while (pages.length > 0 && pages[0].done) {
      const page = pages.shift() as Page
      result.cursor = page.next
      result.keys += page.handled
      result.conflicts.push(...page.conflicts)
      options.onCheckpoint?.({conflicts: page.conflicts, cursor: page.next, keys: page.handled})
    }
  }

  const moveGroup = async (page: Page, owner: NodeRef, keys: Buffer[]) => {
    for (const batch of chunks(keys, options.batchKeys)) {
      if (result.failure) return
      await options.throttle?.take(batch.length, 0)
      const outcome = await mover.move(owner, batch)
      page.handled += outcome.keys
      page.conflicts.push(...outcome.conflicts.map((key) => ({key, owner})))
      result.perOwner.set(owner.id, (result.perOwner.get(owner.id) ?? 0) + outcome.keys)
      options.onBatch?.(outcome.keys)
    }
  }

  const launch = (page: Page) => {
    const work = Promise.all([...groupByOwner(page.keys, owners)].map(([owner, keys]) => moveGroup(page, owner, keys)))
    const task = work
      .then(() => {
        if (result.failure) return
        page.done = true
        checkpoint()
      })
      .catch((error: unknown) => {
        result.failure ??= error instanceof SlotctlError ? error : new SlotctlError(errorMessage(error), {code: 'E_MIGRATION'})
      })
      .finally(() => running.delete(task))
    running.add(task)
  }

  let cursor = options.cursor ?? '0'
  let scanned = false
  try {
    while (!result.failure && !(scanned && cursor === '0')) {
      if (options.signal?.aborted) {
        result.interrupted = true
        break
      }
      if (running.size >= PAGES_IN_FLIGHT) {
        await Promise.race(running)
        continue
      }
      const [next, keys] = (await source.callBuffer('SCAN', cursor, ...match, 'COUNT', scanCount)) as [Buffer, Buffer[]]
      scanned = true
      cursor = next.toString()
      await guard.step(cursor)
      const page: Page = {conflicts: [], done: false, handled: 0, keys, next: cursor}
      pages.push(page)
      launch(page)
    }
  } catch (error) {
    result.failure ??= error instanceof SlotctlError ? error : new SlotctlError(`cannot SCAN the source: ${errorMessage(error)}`, {code: 'E_SOURCE'})
  }
  await Promise.all(running)
  result.complete = !result.failure && !result.interrupted && pages.length === 0 && result.cursor === '0' && scanned
  result.elapsedMs = Date.now() - started
  return result
}
