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

const sha = (script: string) => createHash('sha1').update(script).digest('hex')
const COPY_SHA = sha(COPY_SCRIPT)
const DELETE_SHA = sha(DELETE_SCRIPT)

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
}

export interface InSourceRound {
  results: Map<number, InSourceResult>
  /** the scripts are refused here (ACL, scripting off): nothing was copied or deleted */
  unavailable?: Error
  acked: number
}

/** The copy script's reply: the batch and its token ('' when nothing was copied). */
function copyResult(reply: unknown): {result: InSourceResult; token: string} {
  const [status, detail, bytes, listed, ...keys] = reply as [Buffer, Buffer, number, number, ...Buffer[]]
  if (String(status) === 'err') return {result: {bytes: 0, error: new Error(String(detail)), keys, listed: Number(listed)}, token: ''}
  if (String(status) === 'big') return {result: {big: true, bytes: 0, keys: [], listed: Number(listed)}, token: ''}
  return {result: {bytes: Number(bytes), keys, listed: Number(listed)}, token: keys.length > 0 ? String(detail) : ''}
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
 * One round (steps 1-3 of the header) for `batches`, each one slot's: copies in one pipeline,
 * one WAIT at the target, deletes in one pipeline. `target` must be a connection no one else
 * uses (WAIT blocks it). `migrateArgs`: MIGRATE's arguments up to COPY (host port "" 0 timeout).
 */
export async function copyWaitDeleteInSource(source: Redis, target: Redis, targetAddress: string, migrateArgs: ReadonlyArray<number | string>, batches: readonly InSourceBatch[], durability: Durability): Promise<InSourceRound> {
  const round: InSourceRound = {acked: 0, results: new Map()}
  // EVALSHA: the script text is sent once per round, not once per slot
  const copying = source.pipeline().call('SCRIPT', 'LOAD', COPY_SCRIPT).call('SCRIPT', 'LOAD', DELETE_SCRIPT)
  for (const batch of batches) copying.callBuffer('EVALSHA', COPY_SHA, 0, batch.slot, batch.count, IN_SOURCE_MAX_KEY_BYTES, ...migrateArgs, 'COPY', ...(batch.replace ? ['REPLACE'] : []))
  const [loadedCopy, loadedDelete, ...copied] = (await copying.exec()) ?? []
  const refused = loadedCopy?.[0] ?? loadedDelete?.[0]
  if (refused) return {...round, unavailable: refused}
  const tokens = new Map<number, string>()
  for (const [i, batch] of batches.entries()) {
    const [error, reply] = copied[i] ?? [new Error('no reply'), null]
    if (error && isScriptRefused(error)) return {...round, unavailable: error}
    if (error) {
      round.results.set(batch.slot, {bytes: 0, error, keys: [], listed: 0})
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
