/**
 * Durable key moves run inside the source: the same guarantee as durable.ts (a key leaves
 * its source only once the target's replicas hold it), with the key names crossing to
 * slotctl once instead of four times (listing, WATCH, MIGRATE, DEL), one source connection
 * instead of one per slot, and one round trip fewer. Per round, for each slot of one
 * source/target pair:
 *
 *   1. source, COPY_SCRIPT: list up to N keys of the slot, take each key's fingerprint (its
 *      state: a string's value, any other type's DUMP; and its PEXPIRETIME), MIGRATE ...
 *      COPY them, and return the keys with one digest of all fingerprints (the batch's token)
 *   2. target: a write of our own, then WAIT, once for the round (durable.ts, waitForReplicas)
 *   3. source, DELETE_SCRIPT(token, keys): take the fingerprints again; only if they give the
 *      same token, DEL the keys
 *
 * Why no acknowledged write is lost (redis 7.0 src/script.c, src/cluster.c; valkey 8.0 the
 * same paths):
 *
 * - A script runs atomically: no client command runs between its reads and its writes. So
 *   the copy is of exactly the state fingerprinted in step 1, and step 3 deletes only if
 *   every key still has exactly that state (value and expiry; a key gone or expired has no
 *   DUMP and fails the comparison). The copies match what is deleted, and the WAIT in between
 *   acknowledged them (its write's replication offset follows the RESTOREs MIGRATE ran,
 *   durable.ts). A key a client changed between 1 and 3 keeps the whole batch at the
 *   source; the next round copies its new value with REPLACE, as the WATCH design does.
 * - Inside a script every command is routed like a client's (scriptVerifyClusterState calls
 *   getNodeByQuery): a key missing at a migrating source answers ASK, which the scripts take
 *   as "gone" (pcall), never as a crash of the script. A script names keys of one slot only.
 * - Equal fingerprints mean an equal state (the same string value, or for other types an
 *   equal DUMP payload, which carries the type and the contents; the prefix keeps a string
 *   apart from a DUMP) and an equal absolute expiry: the copy at the target is the key the
 *   source holds, so deleting the source's key loses nothing. Values longer than 128 bytes
 *   enter as their SHA1; collisions between two states of one key are not a practical concern.
 * - MIGRATE COPY propagates nothing from the source (it writes nothing there); the DELs of
 *   step 3 reach the source's replicas as a script's effects (MULTI/DEL/EXEC).
 * - A crash between the steps leaves keys at the source and copies at the target, as in
 *   durable.ts: the slot stays open, and finishing it copies again with REPLACE.
 *
 * The quiet path (copyWaitDeleteQuiet) skips the fingerprints where no client writes to the
 * source during a round, the usual case off-peak and the costliest part of the round (the
 * sources spent twice the CPU of a plain MIGRATE on them). Its copy script lists the keys,
 * MIGRATE ... COPY them, and returns the source's write stamp and a digest of the sorted key
 * names; one delete script for the round (or per ~10k keys) deletes only if the stamp is
 * still the one the copies returned (or what our own deletes made of it since), and each
 * slot's listing still gives its digest. Why that is as safe as the fingerprints (redis 7.0 src/server.c call(),
 * src/module.c, src/rdb.c; valkey 8.0 the same):
 *
 * - The stamp is INFO persistence's rdb_changes_since_last_save (server.dirty), rdb_saves and
 *   rdb_last_save_time. Every command that changes the dataset adds to server.dirty: call()
 *   propagates a command to replicas and AOF exactly when it did, so a change that did not
 *   would never reach a replica either; module writes add through RM_Replicate and
 *   RM_ReplicateVerbatim. server.dirty only falls when a save completes, which also raises
 *   rdb_saves and sets rdb_last_save_time. MIGRATE ... COPY and the scripts' reads add
 *   nothing. So an equal stamp means no client changed any key of the source in between.
 * - What changes keys without adding to server.dirty is expiry and eviction: they only
 *   remove a key, whose copy at the target then carries the same expiry (or outlives an
 *   eviction), and a key a client re-created afterwards was a write. A removal does change
 *   the slot's listing, which is why the names are compared too: the delete deletes exactly
 *   the keys it copied, or nothing of that slot. Where the copy listed fewer keys than it
 *   asked for, the listing was the whole slot, and with the stamp unchanged no key entered
 *   it since (only a write adds a key): the delete's listing is then some of the copied
 *   keys, all of them copied, and the copy returns COMPLETE instead of a digest. Sorting
 *   and hashing the names cost the source ~30 µs per slot of 61 keys, twice per slot.
 * - A copy stamp that differs from the round's others, or a delete that finds the stamp
 *   changed, deletes nothing: the round goes again through the fingerprints, with REPLACE,
 *   and the fingerprints stay in use for the rest of the wave (a source that is written to
 *   keeps being written to). Waves of one source run side by side, and each one's deletes
 *   change the stamp the others read: the source's deletes run one after another and chain
 *   their stamps (QuietLedger), so a round accepts exactly the changes our own deletes made.
 *
 * Not used when MIGRATE carries a password (script arguments are not redacted from SLOWLOG
 * and MONITOR, MIGRATE's AUTH is), for throttled runs (the throttle is asked before the
 * keys are listed), for keys moved alone or above IN_SOURCE_MAX_KEY_BYTES, or where scripts
 * are refused: durable.ts then.
 */
import {createHash} from 'node:crypto'

import type {Redis} from 'ioredis'

import {isScriptRefused} from '../core/errors.js'
import {type Durability, waitForReplicas} from './durable.js'

/**
 * Lua, the same in both scripts: a key's state (a string's value, any other type's DUMP;
 * nil when the key is gone or not served here; a refused command fails the script) and its
 * fingerprint line. GET costs a string
 * key far less than DUMP (no serialising, no checksum); the type is part of the state.
 */
const STATE_FUNCTIONS = `
local function gone(reply)
  if type(reply) ~= 'table' then return true end
  if string.find(reply.err, 'NOPERM', 1, true) then error(reply) end
  return false
end
local function state(key)
  local value = redis.pcall('GET', key)
  if type(value) == 'string' then return 's' .. value end
  if gone(value) or not string.find(value.err, 'WRONGTYPE', 1, true) then return nil end
  local dump = redis.pcall('DUMP', key)
  if type(dump) == 'string' then return 'd' .. dump end
  gone(dump)
  return nil
end
local function fingerprint(key, value)
  local digest = value
  if string.len(value) > 128 then digest = redis.sha1hex(value) end
  return string.len(key) .. ':' .. key .. string.len(digest) .. ':' .. digest .. ':' .. tostring(redis.call('PEXPIRETIME', key))
end`

/**
 * ARGV: slot, count, the largest key (DUMP bytes) to copy here, MIGRATE's arguments up to
 * KEYS (host port "" 0 timeout COPY [REPLACE]). Returns {'ok', token, bytes, listed, key...},
 * {'err', message, 0, listed, key...}, or {'big', '', 0, listed} (nothing copied).
 */
const COPY_SCRIPT = `${STATE_FUNCTIONS}
local listed = redis.call('CLUSTER', 'GETKEYSINSLOT', tonumber(ARGV[1]), tonumber(ARGV[2]))
local keys, parts, bytes = {}, {}, 0
for i = 1, #listed do
  local key = listed[i]
  local value = state(key)
  if value then
    if string.len(value) > tonumber(ARGV[3]) then return {'big', '', 0, #listed} end
    keys[#keys + 1] = key
    bytes = bytes + string.len(value)
    parts[#parts + 1] = fingerprint(key, value)
  end
end
if #keys == 0 then return {'ok', '', 0, #listed} end
local args = {}
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
args[#args + 1] = 'KEYS'
for i = 1, #keys do args[#args + 1] = keys[i] end
local migrated = redis.pcall('MIGRATE', unpack(args))
local out
if type(migrated) == 'table' and migrated.err then
  out = {'err', migrated.err, 0, #listed}
else
  out = {'ok', redis.sha1hex(table.concat(parts, ',')), bytes, #listed}
end
for i = 1, #keys do out[#out + 1] = keys[i] end
return out`

/** ARGV: token, key... Deletes the keys only if their fingerprints still give the token; -1 if not. */
const DELETE_SCRIPT = `${STATE_FUNCTIONS}
local parts = {}
for i = 2, #ARGV do
  local key = ARGV[i]
  local value = state(key)
  if not value then return -1 end
  parts[#parts + 1] = fingerprint(key, value)
end
if redis.sha1hex(table.concat(parts, ',')) ~= ARGV[1] then return -1 end
local deleted = 0
for i = 2, #ARGV, 1000 do
  deleted = deleted + redis.call('DEL', unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return deleted`

/**
 * Lua, the same in both quiet scripts: the source's write stamp ('' where INFO is refused or
 * lacks a field: the quiet path is then off), and a digest of a listing's names, sorted (a
 * dict that rehashed lists the same keys in another order).
 */
const QUIET_FUNCTIONS = `
local function stamp()
  local info = redis.pcall('INFO', 'persistence')
  if type(info) ~= 'string' then return '' end
  local dirty = string.match(info, 'rdb_changes_since_last_save:(%d+)')
  local saves = string.match(info, 'rdb_saves:(%d+)')
  local last = string.match(info, 'rdb_last_save_time:(%d+)')
  if not dirty or not saves or not last then return '' end
  return dirty .. ':' .. saves .. ':' .. last
end
local COMPLETE = '*'
local function names(listed)
  local sorted = {}
  for i = 1, #listed do sorted[i] = listed[i] end
  table.sort(sorted)
  local parts = {}
  for i = 1, #sorted do parts[i] = string.len(sorted[i]) .. ':' .. sorted[i] end
  return redis.sha1hex(table.concat(parts, ','))
end`

/**
 * ARGV: slot, count, MIGRATE's arguments up to KEYS (host port "" 0 timeout COPY [REPLACE]).
 * Returns {'ok', stamp, names digest, listed, bytes} or {'err', message, '', listed, 0, key...}.
 * Bytes are the first key's MEMORY USAGE times the count (for progress only). A listing
 * shorter than the count was the whole slot: its digest is COMPLETE (see the header).
 */
const QUIET_COPY_SCRIPT = `${QUIET_FUNCTIONS}
local listed = redis.call('CLUSTER', 'GETKEYSINSLOT', tonumber(ARGV[1]), tonumber(ARGV[2]))
if #listed == 0 then return {'ok', stamp(), '', 0, 0} end
local size = redis.pcall('MEMORY', 'USAGE', listed[1])
if type(size) ~= 'number' then size = 0 end
local args = {}
for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
args[#args + 1] = 'KEYS'
for i = 1, #listed do args[#args + 1] = listed[i] end
local migrated = redis.pcall('MIGRATE', unpack(args))
if type(migrated) == 'table' and migrated.err then
  local out = {'err', migrated.err, '', #listed, 0}
  for i = 1, #listed do out[#out + 1] = listed[i] end
  return out
end
local digest = COMPLETE
if #listed >= tonumber(ARGV[2]) then digest = names(listed) end
return {'ok', stamp(), digest, #listed, size * #listed}`

/**
 * ARGV: the round's stamp, then per slot: slot, count, names digest. Returns {'changed'}
 * (nothing deleted) or {'ok', stamp after the deletes, per slot: keys deleted, or -1 where
 * the listing changed (nothing of that slot deleted)}. A key gone since the listing
 * (expired) answers ASK at a migrating source and is skipped; any other refusal fails the
 * script. Keys of many slots: the flag allows it, and every DEL names one slot's keys.
 */
const QUIET_DELETE_SCRIPT = `#!lua flags=allow-cross-slot-keys,allow-oom
${QUIET_FUNCTIONS}
local function del(keys)
  local deleted = redis.pcall('DEL', unpack(keys))
  if type(deleted) == 'number' then return deleted end
  deleted = 0
  for i = 1, #keys do
    local one = redis.pcall('DEL', keys[i])
    if type(one) == 'number' then deleted = deleted + one
    elseif not (string.find(one.err, 'ASK', 1, true) or string.find(one.err, 'TRYAGAIN', 1, true) or string.find(one.err, 'non local key', 1, true)) then error(one) end
  end
  return deleted
end
if ARGV[1] == '' or stamp() ~= ARGV[1] then return {'changed'} end
local out = {'ok', ''}
for t = 2, #ARGV, 3 do
  local listed = redis.call('CLUSTER', 'GETKEYSINSLOT', tonumber(ARGV[t]), tonumber(ARGV[t + 1]))
  if ARGV[t + 2] ~= COMPLETE and (#listed == 0 or names(listed) ~= ARGV[t + 2]) then
    out[#out + 1] = -1
  else
    local deleted = 0
    for i = 1, #listed, 1000 do
      local chunk = {}
      for j = i, math.min(i + 999, #listed) do chunk[#chunk + 1] = listed[j] end
      deleted = deleted + del(chunk)
    end
    out[#out + 1] = deleted
  end
end
out[2] = stamp()
return out`

const sha = (script: string) => createHash('sha1').update(script).digest('hex')
const COPY_SHA = sha(COPY_SCRIPT)
const DELETE_SHA = sha(DELETE_SCRIPT)
const QUIET_COPY_SHA = sha(QUIET_COPY_SCRIPT)
const QUIET_DELETE_SHA = sha(QUIET_DELETE_SCRIPT)

/** Keys one quiet delete script may delete (it blocks the source while it runs): about 10 ms. */
const QUIET_DELETE_MAX_KEYS = 10_000

/** Lua's unpack() has a stack limit: larger batches take the WATCH path. */
export const IN_SOURCE_MAX_BATCH = 5000

/**
 * Keys larger than this (DUMP bytes) take the WATCH path: fingerprinting serialises a key
 * twice more, and a big key's blocking time is estimated (big-keys.ts) for MIGRATE alone.
 */
export const IN_SOURCE_MAX_KEY_BYTES = 1024 * 1024

export interface InSourceBatch {
  slot: number
  count: number
  replace: boolean
}

export interface InSourceResult {
  /** keys the listing returned (fewer than asked: the slot's last batch) */
  listed: number
  /** the keys copied (listed keys that still existed) */
  keys: Buffer[]
  /** their DUMP sizes */
  bytes: number
  /** MIGRATE refused the copy, or the delete failed: nothing of this batch is counted as deleted */
  error?: Error
  /** keys deleted at the source; undefined: a client changed one of them, nothing was deleted */
  deleted?: number
  /** a key above IN_SOURCE_MAX_KEY_BYTES: nothing was copied, the slot goes on through slotctl */
  big?: boolean
  /** keys copied (keys.length, except on the quiet path, which returns no names) */
  copied: number
  /** quiet path: a client wrote to the source during the round; nothing deleted, go again with fingerprints */
  retry?: boolean
}

export interface InSourceRound {
  results: Map<number, InSourceResult>
  /** the scripts are refused here (ACL, scripting off): nothing was copied or deleted */
  unavailable?: Error
  acked: number
  /** the quiet path found a client's write: the wave goes on with the fingerprints */
  written?: boolean
}

/** The copy script's reply: the batch and its token ('' when nothing was copied). */
function copyResult(reply: unknown): {result: InSourceResult; token: string} {
  const [status, detail, bytes, listed, ...keys] = reply as [Buffer, Buffer, number, number, ...Buffer[]]
  if (String(status) === 'err') return {result: {bytes: 0, copied: keys.length, error: new Error(String(detail)), keys, listed: Number(listed)}, token: ''}
  if (String(status) === 'big') return {result: {big: true, bytes: 0, copied: 0, keys: [], listed: Number(listed)}, token: ''}
  return {result: {bytes: Number(bytes), copied: keys.length, keys, listed: Number(listed)}, token: keys.length > 0 ? String(detail) : ''}
}

/**
 * Step 1 for one slot on its own (the round pipelines it): copies up to `count` keys of
 * `slot` and returns them with their token. For tests and single batches.
 */
export async function copyBatchInSource(source: Redis, slot: number, count: number, migrateArgs: ReadonlyArray<number | string>, replace: boolean): Promise<{result: InSourceResult; token: string}> {
  const reply = await source.callBuffer('EVAL', COPY_SCRIPT, 0, slot, count, IN_SOURCE_MAX_KEY_BYTES, ...migrateArgs, 'COPY', ...(replace ? ['REPLACE'] : []))
  return copyResult(reply)
}

/** Step 3 for one batch: the keys deleted, or undefined when a client changed one of them (nothing deleted). */
export async function deleteIfUnchanged(source: Redis, token: string, keys: readonly Buffer[]): Promise<number | undefined> {
  const deleted = Number(await source.callBuffer('EVAL', DELETE_SCRIPT, 0, token, ...keys))
  return deleted >= 0 ? deleted : undefined
}

/**
 * The round's copies, one script per batch in one pipeline, after loading the round's two
 * scripts (EVALSHA: the script text is sent once per round, not once per slot). Each
 * batch's [error, reply]; or the refusal that makes scripts unavailable here (nothing copied).
 */
async function copyAll(source: Redis, scripts: {copy: string; copySha: string; delete: string}, batches: readonly InSourceBatch[], argsAfterCount: (batch: InSourceBatch) => ReadonlyArray<number | string>): Promise<Array<[Error | null, unknown]> | Error> {
  const copying = source.pipeline().call('SCRIPT', 'LOAD', scripts.copy).call('SCRIPT', 'LOAD', scripts.delete)
  for (const batch of batches) copying.callBuffer('EVALSHA', scripts.copySha, 0, batch.slot, batch.count, ...argsAfterCount(batch))
  const [loadedCopy, loadedDelete, ...copied] = (await copying.exec()) ?? []
  const refused = loadedCopy?.[0] ?? loadedDelete?.[0]
  if (refused) return refused
  const replies = batches.map((_, i): [Error | null, unknown] => copied[i] ?? [new Error('no reply'), null])
  return replies.find(([error]) => error && isScriptRefused(error))?.[0] ?? replies
}

/** A batch whose copy script failed: nothing of it was copied or deleted. */
function failedCopy(error: Error): InSourceResult {
  return {bytes: 0, copied: 0, error, keys: [], listed: 0}
}

/**
 * One round (steps 1-3 of the header) for `batches`, each one slot's: copies in one pipeline,
 * one WAIT at the target, deletes in one pipeline. `target` must be a connection no one else
 * uses (WAIT blocks it). `migrateArgs`: MIGRATE's arguments up to COPY (host port "" 0 timeout).
 */
export async function copyWaitDeleteInSource(source: Redis, target: Redis, targetAddress: string, migrateArgs: ReadonlyArray<number | string>, batches: readonly InSourceBatch[], durability: Durability): Promise<InSourceRound> {
  const round: InSourceRound = {acked: 0, results: new Map()}
  const copies = await copyAll(source, {copy: COPY_SCRIPT, copySha: COPY_SHA, delete: DELETE_SCRIPT}, batches, (batch) => [IN_SOURCE_MAX_KEY_BYTES, ...migrateArgs, 'COPY', ...(batch.replace ? ['REPLACE'] : [])])
  if (copies instanceof Error) return {...round, unavailable: copies}
  const tokens = new Map<number, string>()
  for (const [i, batch] of batches.entries()) {
    const [error, reply] = copies[i]
    if (error) {
      round.results.set(batch.slot, failedCopy(error))
      continue
    }
    const {result, token} = copyResult(reply)
    round.results.set(batch.slot, result)
    if (token) tokens.set(batch.slot, token)
  }
  if (tokens.size === 0) return round
  round.acked = durability.acks > 0 ? await waitForReplicas(target, targetAddress, [...tokens.keys()][0], durability) : 0
  const deleting = source.pipeline()
  for (const [slot, token] of tokens) deleting.callBuffer('EVALSHA', DELETE_SHA, 0, token, ...(round.results.get(slot) as InSourceResult).keys)
  const deleted = (await deleting.exec()) ?? []
  for (const [n, slot] of [...tokens.keys()].entries()) {
    const [error, count] = deleted[n] ?? [new Error('no reply'), -1]
    const result = round.results.get(slot) as InSourceResult
    if (error) result.error = error
    else if (Number(count) >= 0) result.deleted = Number(count)
  }
  return round
}

/** A slot the quiet round copied and will delete if nothing changed. */
export interface QuietBatch {
  slot: number
  count: number
  digest: string
  listed: number
}

/** The quiet copy script's reply for one batch, into the round's results; the batch to delete, if any. */
function quietCopied(round: InSourceRound, batch: InSourceBatch, reply: unknown, stamps: Set<string>): QuietBatch | undefined {
  const [status, detail, digest, listed, bytes, ...keys] = reply as [Buffer, Buffer, Buffer, number, number, ...Buffer[]]
  if (String(status) === 'err') {
    round.results.set(batch.slot, {bytes: 0, copied: keys.length, error: new Error(String(detail)), keys, listed: Number(listed)})
    return undefined
  }
  round.results.set(batch.slot, {bytes: Number(bytes), copied: Number(listed), keys: [], listed: Number(listed)})
  stamps.add(String(detail))
  return Number(listed) > 0 ? {count: batch.count, digest: String(digest), listed: Number(listed), slot: batch.slot} : undefined
}

/** Deletes nothing more of `batches`: each goes again (with REPLACE) through the fingerprints. */
function written(round: InSourceRound, batches: readonly QuietBatch[]): InSourceRound {
  for (const batch of batches) (round.results.get(batch.slot) as InSourceResult).retry = true
  return {...round, written: true}
}

/** The round's deletes in scripts of at most QUIET_DELETE_MAX_KEYS listed keys each (one slot may exceed it alone). */
function deleteChunks(batches: readonly QuietBatch[]): QuietBatch[][] {
  const chunks: QuietBatch[][] = [[]]
  let keys = 0
  for (const batch of batches) {
    if (keys + batch.listed > QUIET_DELETE_MAX_KEYS && chunks[chunks.length - 1].length > 0) {
      chunks.push([])
      keys = 0
    }
    chunks[chunks.length - 1].push(batch)
    keys += batch.listed
  }
  return chunks
}

/**
 * The quiet round (see the header) for `batches`, each one slot's: copies in one pipeline,
 * one WAIT at the target, then the deletes, in the source's order (QuietLedger), each script
 * started with the stamp the one before it left. Copies whose stamps the ledger cannot vouch
 * for, a delete that finds the stamp changed, or a slot whose listing changed, delete nothing
 * more and return `written`: the caller goes on with copyWaitDeleteInSource. Arguments as
 * there, and the source's ledger.
 */
export async function copyWaitDeleteQuiet(source: Redis, target: Redis, targetAddress: string, migrateArgs: ReadonlyArray<number | string>, batches: readonly InSourceBatch[], durability: Durability, ledger: QuietLedger): Promise<InSourceRound> {
  const round: InSourceRound = {acked: 0, results: new Map()}
  const copies = await copyAll(source, {copy: QUIET_COPY_SCRIPT, copySha: QUIET_COPY_SHA, delete: QUIET_DELETE_SCRIPT}, batches, (batch) => [...migrateArgs, 'COPY', ...(batch.replace ? ['REPLACE'] : [])])
  if (copies instanceof Error) return {...round, unavailable: copies}
  const stamps = new Set<string>()
  const toDelete: QuietBatch[] = []
  for (const [i, batch] of batches.entries()) {
    const [error, reply] = copies[i]
    if (error) round.results.set(batch.slot, failedCopy(error))
    else {
      const quiet = quietCopied(round, batch, reply, stamps)
      if (quiet) toDelete.push(quiet)
    }
  }
  if (toDelete.length === 0) return round
  if (stamps.has('')) return written(round, toDelete)
  round.acked = durability.acks > 0 ? await waitForReplicas(target, targetAddress, toDelete[0].slot, durability) : 0
  return ledger.serialize(() => deleteQuietRound(source, round, toDelete, stamps, ledger))
}

/**
 * The quiet round's deletes, in scripts of at most QUIET_DELETE_MAX_KEYS keys, each started
 * with the stamp the one before it left; run in the source's order (ledger.serialize).
 */
async function deleteQuietRound(source: Redis, round: InSourceRound, toDelete: readonly QuietBatch[], stamps: ReadonlySet<string>, ledger: QuietLedger): Promise<InSourceRound> {
  const expected = ledger.expected(stamps)
  if (expected === undefined) return written(round, toDelete)
  const chunks = deleteChunks(toDelete)
  let stamp = expected
  for (const [n, chunk] of chunks.entries()) {
    const reply = (await source.callBuffer('EVALSHA', QUIET_DELETE_SHA, 0, stamp, ...chunk.flatMap((batch) => [batch.slot, batch.count, batch.digest])).catch((error: Error) => error)) as Error | Array<Buffer | number>
    if (reply instanceof Error || String(reply[0]) !== 'ok') {
      // a changed stamp was a write not ours, and a script that failed part-way may have deleted some keys: the chain ends
      ledger.broken()
      if (!(reply instanceof Error)) return written(round, chunks.slice(n).flat())
      for (const batch of chunks.slice(n).flat()) (round.results.get(batch.slot) as InSourceResult).error = reply
      return round
    }
    ledger.passed(stamp, String(reply[1]))
    stamp = String(reply[1])
    const changed = chunk.filter((batch, i) => {
      const deleted = Number(reply[2 + i])
      if (deleted >= 0) (round.results.get(batch.slot) as InSourceResult).deleted = deleted
      return deleted < 0
    })
    if (changed.length > 0) return written(round, [...changed, ...chunks.slice(n + 1).flat()])
  }
  return round
}

/**
 * One source's quiet deletes in one run, in order: the stamps they passed through since the
 * last write that was not ours. Waves of one source run side by side, and each one's deletes
 * add to the stamp the others' copies read. A delete is sent only after the source's earlier
 * deletes answered, and must find the stamp at the tip of the chain when every copy of its
 * round read a stamp of the chain: the server's dirty counter only grows (saves are in the
 * stamp), so a copy that read a chain stamp ran between that stamp's delete and the next one,
 * when nothing else wrote, and all that came after were our own deletes, each of which found
 * the stamp its predecessor left. Otherwise a round whose copies all read one stamp starts a
 * new chain from it; any other round deletes nothing (written). Keyed by the run's pool: a
 * chain is never carried over to another run or server.
 */
export class QuietLedger {
  private chain = new Set<string>()
  private tip?: string
  private turn: Promise<unknown> = Promise.resolve()

  /** Runs `work` once every earlier delete of this source has answered. */
  serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.turn.then(work)
    this.turn = run.catch(() => undefined)
    return run
  }

  /** The stamp a delete of copies that read `stamps` must find, or undefined: a write not ours may have come between. */
  expected(stamps: ReadonlySet<string>): string | undefined {
    if (this.tip !== undefined && [...stamps].every((stamp) => this.chain.has(stamp))) return this.tip
    return stamps.size === 1 ? [...stamps][0] : undefined
  }

  /** A delete that found `expected` left `after`. */
  passed(expected: string, after: string): void {
    if (expected !== this.tip) this.chain = new Set([expected])
    this.chain.add(after)
    this.tip = after
  }

  /** A delete found the stamp changed, or failed: nothing is known about the writes since. */
  broken(): void {
    this.chain = new Set()
    this.tip = undefined
  }
}

const ledgers = new WeakMap<object, Map<string, QuietLedger>>()

/** The ledger of `address` for the run that owns `pool`. */
export function quietLedger(pool: object, address: string): QuietLedger {
  const byAddress = ledgers.get(pool) ?? new Map<string, QuietLedger>()
  ledgers.set(pool, byAddress)
  const ledger = byAddress.get(address) ?? new QuietLedger()
  byAddress.set(address, ledger)
  return ledger
}

/** The quiet copy for one slot on its own (the round pipelines it): for tests. */
export async function copyQuiet(source: Redis, slot: number, count: number, migrateArgs: ReadonlyArray<number | string>, replace: boolean): Promise<{result: InSourceResult; batch?: QuietBatch; stamp?: string}> {
  const reply = await source.callBuffer('EVAL', QUIET_COPY_SCRIPT, 0, slot, count, ...migrateArgs, 'COPY', ...(replace ? ['REPLACE'] : []))
  const round: InSourceRound = {acked: 0, results: new Map()}
  const stamps = new Set<string>()
  const batch = quietCopied(round, {count, replace, slot}, reply, stamps)
  return {batch, result: round.results.get(slot) as InSourceResult, stamp: [...stamps][0]}
}

/** The quiet delete of copied batches: 'changed' (nothing deleted), or per batch the keys deleted, -1 where its listing changed. For tests. */
export async function deleteQuiet(source: Redis, stamp: string, batches: readonly QuietBatch[]): Promise<'changed' | number[]> {
  const reply = (await source.callBuffer('EVAL', QUIET_DELETE_SCRIPT, 0, stamp, ...batches.flatMap((batch) => [batch.slot, batch.count, batch.digest]))) as Array<Buffer | number>
  return String(reply[0]) === 'ok' ? reply.slice(2).map(Number) : 'changed'
}
