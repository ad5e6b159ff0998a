/**
 * Big keys, before they hurt. MIGRATE serialises a key, sends it and waits for the target to
 * restore it while its source is blocked; a key of hundreds of MB blocks its master longer
 * than cluster-node-timeout, and the cluster starts failing it over (redis#6999, #13122).
 * Before a legacy migration moves anything, the keys above a size in the slots to move are
 * found (MEMORY USAGE with sampling, inside the source), their blocking time is estimated,
 * and a run whose big key would block longer than half the node timeout is refused unless
 * the operator allows it. Atomic slot migration streams keys in pieces: it is not affected.
 */
import {createHash} from 'node:crypto'

import {type NodePool, pipelineCalls} from '../cluster/connection.js'
import {SlotctlError} from '../errors.js'
import type {BigKey, SlotMove} from '../plan/types.js'

export const DEFAULT_BIG_KEY_BYTES = 64 * 1024 * 1024
/** MIGRATE throughput assumed for the estimate (serialise, send, restore), bytes per second. */
export const DEFAULT_MIGRATE_RATE = 100 * 1024 * 1024
const DEFAULT_NODE_TIMEOUT_MS = 15_000

/** Keys of one slot at or above ARGV[2] bytes: name, size pairs. All of the slot's keys are looked at. */
const FIND_SCRIPT = `
local keys = redis.call('CLUSTER', 'GETKEYSINSLOT', tonumber(ARGV[1]), 1000000000)
local limit = tonumber(ARGV[2])
local out = {}
for i = 1, #keys do
  local size = redis.call('MEMORY', 'USAGE', keys[i], 'SAMPLES', 5)
  if size and size >= limit then
    out[#out + 1] = keys[i]
    out[#out + 1] = size
  end
end
return out`
const FIND_SHA = createHash('sha1').update(FIND_SCRIPT).digest('hex')
const SLOTS_PER_PIPELINE = 256

/** A key name for people and plan files: UTF-8 when it is, 0x-hex otherwise. */
export function printableKey(key: Buffer): string {
  const text = key.toString('utf8')
  return Buffer.from(text, 'utf8').equals(key) ? text : `0x${key.toString('hex')}`
}

export function keyFromPrintable(text: string): Buffer {
  return /^0x([0-9a-f]{2})*$/i.test(text) ? Buffer.from(text.slice(2), 'hex') : Buffer.from(text, 'utf8')
}

function pairsToKeys(slot: number, reply: unknown): Array<{slot: number; key: Buffer; bytes: number}> {
  const list = Array.isArray(reply) ? reply : []
  const found: Array<{slot: number; key: Buffer; bytes: number}> = []
  for (let i = 0; i + 1 < list.length; i += 2) found.push({bytes: Number(list[i + 1]), key: Buffer.from(list[i] as Buffer), slot})
  return found
}

/** Inside the source (one script call per slot); through slotctl where scripts are refused. */
async function bigKeysOn(pool: NodePool, address: string, slots: readonly number[], minBytes: number): Promise<Array<{slot: number; key: Buffer; bytes: number}>> {
  const found: Array<{slot: number; key: Buffer; bytes: number}> = []
  const client = await pool.client(address)
  for (let start = 0; start < slots.length; start += SLOTS_PER_PIPELINE) {
    const chunk = slots.slice(start, start + SLOTS_PER_PIPELINE)
    const pipeline = client.pipeline().call('SCRIPT', 'LOAD', FIND_SCRIPT)
    for (const slot of chunk) pipeline.callBuffer('EVALSHA', FIND_SHA, 0, slot, minBytes)
    const [loaded, ...replies] = (await pipeline.exec()) ?? []
    if (loaded?.[0]) return bigKeysThroughClient(pool, address, slots, minBytes)
    for (const [i, [error, reply]] of replies.entries()) {
      if (error) throw new SlotctlError(`${address} could not list the big keys of slot ${chunk[i]}: ${error.message}`, {code: 'E_PROTOCOL'})
      found.push(...pairsToKeys(chunk[i], reply))
    }
  }
  return found
}

async function bigKeysThroughClient(pool: NodePool, address: string, slots: readonly number[], minBytes: number): Promise<Array<{slot: number; key: Buffer; bytes: number}>> {
  const found: Array<{slot: number; key: Buffer; bytes: number}> = []
  const client = await pool.client(address)
  for (const slot of slots) {
    const keys = (await client.callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, 1_000_000_000)) as Buffer[]
    if (keys.length === 0) continue
    const sizes = (await client.pipeline(keys.map((key) => ['memory', 'usage', key, 'SAMPLES', 5])).exec()) ?? []
    for (const [i, [error, size]] of sizes.entries()) if (!error && Number(size) >= minBytes) found.push({bytes: Number(size), key: keys[i], slot})
  }
  return found
}

async function nodeTimeoutMs(pool: NodePool, address: string): Promise<number> {
  const [[error, reply]] = await pipelineCalls(pool, address, [['CONFIG', 'GET', 'cluster-node-timeout']])
  const value = Number(Array.isArray(reply) ? reply[1] : Number.NaN)
  return error || !Number.isFinite(value) || value <= 0 ? DEFAULT_NODE_TIMEOUT_MS : value
}

export interface BigKeyOptions {
  minBytes: number
  /** assumed MIGRATE throughput, bytes per second */
  rate: number
}

/** The big keys of the moves, per source, with how long each would block its master. */
export async function findBigKeys(pool: NodePool, moves: readonly SlotMove[], addresses: ReadonlyMap<string, string>, options: BigKeyOptions): Promise<BigKey[]> {
  if (options.minBytes <= 0) return []
  const bySource = new Map<string, number[]>()
  for (const move of moves) bySource.set(move.sourceId, [...(bySource.get(move.sourceId) ?? []), move.slot])
  const found = await Promise.all(
    [...bySource].map(async ([id, slots]) => {
      const address = addresses.get(id) as string
      const [keys, timeoutMs] = await Promise.all([bigKeysOn(pool, address, slots, options.minBytes), nodeTimeoutMs(pool, address)])
      return keys.map(({bytes, key, slot}): BigKey => ({blockLimitMs: Math.floor(timeoutMs / 2), bytes, estimatedBlockMs: Math.round((bytes / options.rate) * 1000), key: printableKey(key), slot}))
    }),
  )
  return found.flat().sort((a, b) => b.bytes - a.bytes)
}

/** The big keys that would block their master for more than half of its node timeout. */
export function blockingKeys(keys: readonly BigKey[]): BigKey[] {
  return keys.filter((key) => key.estimatedBlockMs > key.blockLimitMs)
}
