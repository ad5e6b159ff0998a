/**
 * Big keys, before they hurt. MIGRATE serialises a key, sends it and waits for the target to
 * restore it while its source is blocked; a key that blocks its master longer than
 * cluster-node-timeout gets it failed over (redis#6999, #13122). Before a legacy migration
 * moves anything, the keys of the slots to move that are big, or whose move would block
 * their master longer than half its node timeout, are found; the latter refuse the run
 * unless the operator allows them. Atomic slot migration streams keys in pieces: it is not
 * affected.
 *
 * The estimate follows what MIGRATE costs: a cost per element (restoring a hash, set or
 * sorted set allocates and inserts every element: a 96 MiB hash of 1.5M fields blocked its
 * master for about 3 s, 3x what its bytes at 100 MB/s suggest) plus a cost per byte
 * (serialise, send, copy: --assumed-migrate-rate), times a safety factor.
 *
 * Finding them must never miss one, and should not ask every key: no key outweighs its
 * node's dataset, and every element of a costly type takes at least a few bytes, so each
 * node gives a byte size under which no key can be big or block too long. A node whose
 * dataset is below it is not looked into at all (one INFO); on the others every key of
 * the slots to move is sized inside the source (MEMORY USAGE with sampling, one script call
 * per slot), and only the keys above it are asked their type and length.
 */
import {createHash} from 'node:crypto'

import {type NodePool, pipelineCalls} from '../cluster/connection.js'
import {parseInfo} from '../cluster/topology.js'
import {SlotctlError} from '../core/errors.js'
import type {BigKey, SlotMove} from '../plan/types.js'

export const DEFAULT_BIG_KEY_BYTES = 64 * 1024 * 1024
/** Per-byte MIGRATE throughput of the estimate (serialise, send, copy), bytes per second. */
export const DEFAULT_MIGRATE_RATE = 100 * 1024 * 1024
const DEFAULT_NODE_TIMEOUT_MS = 15_000

/**
 * Nanoseconds per element on top of the per-byte cost, by TYPE. Source: `node bench/run.js
 * big-key-cost` (MIGRATE ... COPY of 2M-element keys between two local servers, 3 tries
 * each), 2026-12-06 on the 2-core CI machine at load 3-10, best..worst ns per element:
 * Redis 7.0 hash 1100..3600 (small fields) and 1600..4200 (67-byte fields), set 930..1900,
 * zset 650..2000, list 36..38, stream 60..100; Valkey 9 hash 900..1400 and 2300..5300, set
 * 370..390, zset 560..600, list 40, stream 110..170; Valkey 8 hash 1200..3700 and
 * 3000..11000 (load 10). Strings are bytes only (100..400 MB/s). Each number below plus the
 * element's bytes at 100 MB/s is above the best case of its type; times SAFETY_FACTOR it is
 * above every try at load 3 (Redis 7 hash of 67-byte fields: 2 x (1500 + 916) = 4832 ns >=
 * 4157), not above the worst at load 10 (Valkey 9: 5255; Valkey 8: 11000): the limit of half
 * the node timeout is the margin left for those.
 */
const ELEMENT_NS: Readonly<Record<string, number>> = {hash: 1500, list: 50, set: 1000, stream: 100, zset: 1000}
/**
 * The fewest bytes (MEMORY USAGE ... SAMPLES 0) an element of each type takes in the encoding
 * that costs per element, measured with the shortest members that are still distinct (300k
 * of them): Valkey 9 hash 31, set 23, sorted set 68, list 2, stream 10 bytes per element;
 * Redis 7 and 8, Valkey 8: 60, 34-52, 106, 2, 13. Rounded down below the smallest.
 */
export const MIN_ELEMENT_BYTES: Readonly<Record<string, number>> = {hash: 24, list: 2, set: 16, stream: 4, zset: 48}
export const SAFETY_FACTOR = 2

/**
 * How long moving one key would block its master, ms. A string costs its bytes; a key of
 * unknown type or length (not allowed to ask; a module's type, a vector set) is assumed to
 * be of the costliest type, as dense in elements as it can be.
 */
export function estimateBlockMs(key: {bytes: number; type?: string; elements?: number}, rate: number): number {
  const byteNs = (key.bytes * 1e9) / rate
  const perElement = key.type === undefined ? undefined : ELEMENT_NS[key.type]
  const elementNs = key.type === 'string' ? 0 : perElement !== undefined && key.elements !== undefined ? perElement * key.elements : key.bytes * worstElementNsPerByte()
  return Math.ceil((SAFETY_FACTOR * (byteNs + elementNs)) / 1e6)
}

function worstElementNsPerByte(): number {
  return Math.max(...Object.keys(ELEMENT_NS).map((type) => ELEMENT_NS[type] / MIN_ELEMENT_BYTES[type]))
}

/**
 * The byte size under which a key is neither big (minBytes) nor able to block longer than
 * limitMs, whatever its type: every key from it on must be looked at.
 */
export function findThresholdBytes(minBytes: number, limitMs: number, rate: number): number {
  const worstNsPerByte = SAFETY_FACTOR * (1e9 / rate + worstElementNsPerByte())
  return Math.max(1, Math.min(minBytes, Math.floor((limitMs * 1e6) / worstNsPerByte)))
}

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

/**
 * No key outweighs its node's dataset: INFO memory used_memory_dataset (used_memory less the
 * server's own overhead: its start-up memory, buffers and the key tables, whose entry for the
 * key DATASET_SLACK covers), else used_memory. Undefined when the node does not say.
 */
async function largestPossibleKey(pool: NodePool, address: string): Promise<number | undefined> {
  const [[error, reply]] = await pipelineCalls(pool, address, [['INFO', 'memory']])
  if (error) return undefined
  const info = parseInfo(String(reply))
  const bytes = info.used_memory_dataset === undefined ? Number(info.used_memory) : Number(info.used_memory_dataset) + DATASET_SLACK
  return Number.isFinite(bytes) ? bytes : undefined
}

const DATASET_SLACK = 4096

const LENGTH_COMMAND: Readonly<Record<string, string>> = {hash: 'HLEN', list: 'LLEN', set: 'SCARD', stream: 'XLEN', zset: 'ZCARD'}

/**
 * TYPE and element count of each key (few: only those above the threshold). A key whose
 * type or length the user may not read is left without them: its estimate assumes the worst.
 */
async function describeKeys(pool: NodePool, address: string, keys: ReadonlyArray<{key: Buffer}>): Promise<Array<{type?: string; elements?: number}>> {
  if (keys.length === 0) return []
  const client = await pool.client(address)
  const types = ((await client.pipeline(keys.map(({key}) => ['type', key])).exec()) ?? []).map(([error, type]) => (error ? undefined : String(type)))
  const lengths = (await client.pipeline(keys.map(({key}, i) => [(LENGTH_COMMAND[types[i] ?? ''] ?? 'EXISTS').toLowerCase(), key])).exec()) ?? []
  return keys.map((_, i) => {
    const type = types[i]
    const [error, length] = lengths[i] ?? [new Error('no reply')]
    if (type === undefined) return {}
    return type in LENGTH_COMMAND && !error ? {elements: Number(length), type} : {type}
  })
}

export interface BigKeyOptions {
  minBytes: number
  /** per-byte MIGRATE throughput of the estimate, bytes per second */
  rate: number
}

/** One source's big keys: none to look for where the dataset is below what could matter. */
async function bigKeysOfSource(pool: NodePool, address: string, slots: readonly number[], options: BigKeyOptions): Promise<BigKey[]> {
  const [timeoutMs, largest] = await Promise.all([nodeTimeoutMs(pool, address), largestPossibleKey(pool, address).catch(() => undefined)])
  const blockLimitMs = Math.floor(timeoutMs / 2)
  const threshold = findThresholdBytes(options.minBytes, blockLimitMs, options.rate)
  if (largest !== undefined && largest < threshold) return []
  const candidates = await bigKeysOn(pool, address, slots, threshold)
  const described = await describeKeys(pool, address, candidates)
  return candidates
    .map(({bytes, key, slot}, i): BigKey => {
      const {elements, type} = described[i]
      const estimatedBlockMs = estimateBlockMs({bytes, elements, type}, options.rate)
      return {blockLimitMs, bytes, ...(elements === undefined ? {} : {elements}), ...(type === undefined ? {} : {type}), estimatedBlockMs, key: printableKey(key), slot}
    })
    .filter((big) => big.bytes >= options.minBytes || big.estimatedBlockMs > big.blockLimitMs)
}

/** The big keys of the moves, per source, with how long each would block its master; the longest first. */
export async function findBigKeys(pool: NodePool, moves: readonly SlotMove[], addresses: ReadonlyMap<string, string>, options: BigKeyOptions): Promise<BigKey[]> {
  if (options.minBytes <= 0) return []
  const bySource = new Map<string, number[]>()
  for (const move of moves) bySource.set(move.sourceId, [...(bySource.get(move.sourceId) ?? []), move.slot])
  const found = await Promise.all([...bySource].map(([id, slots]) => bigKeysOfSource(pool, addresses.get(id) as string, slots, options)))
  return found.flat().sort((a, b) => b.estimatedBlockMs - a.estimatedBlockMs || b.bytes - a.bytes)
}

/** The big keys that would block their master for more than half of its node timeout. */
export function blockingKeys(keys: readonly BigKey[]): BigKey[] {
  return keys.filter((key) => key.estimatedBlockMs > key.blockLimitMs)
}
