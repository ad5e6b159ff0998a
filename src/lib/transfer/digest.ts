/**
 * A digest of a data set that depends neither on where its keys live nor on how a server
 * encodes them: per key, SHA-1 over its name, type and a canonical form of its value, XOR-ed
 * over all keys. XOR makes it composable: the digest of a cluster is the XOR of its masters'
 * digests, however slots are spread. Values are read with ordinary commands (no DEBUG, which
 * production servers often refuse). TTLs are left out: they change as time passes. Streams
 * count their entries, not their consumer groups. The data must not change while it is read.
 */
import {createHash} from 'node:crypto'

import type {Redis} from 'ioredis'

export const DIGEST_ALGORITHM = 'slotctl-content-v1'
export const EMPTY_DIGEST = '0'.repeat(40)

type Reply = Buffer | Reply[] | null | number

export interface KeyFingerprint {
  type: string
  /** SHA-1 of the canonical value */
  value: Buffer
}

export interface DataDigest {
  keys: number
  /** 40 hex characters; all zeros for no keys */
  digest: string
}

const SCAN_COUNT = 1000

function u32(n: number): Buffer {
  const buffer = Buffer.alloc(4)
  buffer.writeUInt32BE(n)
  return buffer
}

function xorInto(target: Buffer, source: Buffer): void {
  for (let i = 0; i < target.length; i++) target[i] ^= source[i]
}

function sha1(...parts: Buffer[]): Buffer {
  const hash = createHash('sha1')
  for (const part of parts) hash.update(u32(part.length)).update(part)
  return hash.digest()
}

/** Elements in a fixed order (lists, sorted sets, streams). */
function orderedHash(parts: Buffer[]): Buffer {
  return sha1(...parts)
}

/** Members of sets and fields of hashes: order-free, since servers iterate them differently. */
function unorderedHash(elements: Buffer[][]): Buffer {
  const total = Buffer.alloc(20)
  for (const element of elements) xorInto(total, sha1(...element))
  return sha1(u32(elements.length), total)
}

/** Scores as IEEE doubles: servers print the same double differently (0.1 vs 0.10000000000000001). */
function scoreBytes(text: Buffer): Buffer {
  const raw = text.toString()
  const value = raw === 'inf' || raw === '+inf' ? Infinity : raw === '-inf' ? -Infinity : Number(raw)
  const buffer = Buffer.alloc(8)
  buffer.writeDoubleBE(value)
  return buffer
}

function pairs(flat: Buffer[]): Buffer[][] {
  const result: Buffer[][] = []
  for (let i = 0; i + 1 < flat.length; i += 2) result.push([flat[i], flat[i + 1]])
  return result
}

function streamParts(entries: Reply[]): Buffer[] {
  const parts: Buffer[] = []
  for (const entry of entries as Reply[][]) {
    const [id, fields] = entry as [Buffer, Buffer[]]
    parts.push(id, u32(fields.length), ...fields)
  }
  return parts
}

/** The command that reads a value of this type whole, in a deterministic shape. */
function readCommand(type: string): [string, ...string[]] {
  switch (type) {
    case 'string': return ['GET']
    case 'list': return ['LRANGE', '0', '-1']
    case 'set': return ['SMEMBERS']
    case 'zset': return ['ZRANGE', '0', '-1', 'WITHSCORES']
    case 'hash': return ['HGETALL']
    case 'stream': return ['XRANGE', '-', '+']
    // module types: their serialized form is the best available
    default: return ['DUMP']
  }
}

function canonicalHash(type: string, reply: Reply): Buffer {
  switch (type) {
    case 'string': return sha1(reply as Buffer)
    case 'list': return orderedHash(reply as Buffer[])
    case 'set': return unorderedHash((reply as Buffer[]).map((member) => [member]))
    case 'zset': return orderedHash(pairs(reply as Buffer[]).flatMap(([member, score]) => [member, scoreBytes(score)]))
    case 'hash': return unorderedHash(pairs(reply as Buffer[]))
    case 'stream': return orderedHash(streamParts(reply as Reply[]))
    default: return sha1((reply as Buffer | null) ?? Buffer.alloc(0))
  }
}

/** RDB object type bytes (the first byte of a DUMP payload) by the type name TYPE reports. */
const DUMP_TYPES: Record<number, string> = {
  0: 'string',
  1: 'list', 10: 'list', 14: 'list', 18: 'list',
  2: 'set', 11: 'set', 20: 'set',
  3: 'zset', 5: 'zset', 12: 'zset', 17: 'zset',
  4: 'hash', 9: 'hash', 13: 'hash', 16: 'hash',
  15: 'stream', 19: 'stream', 21: 'stream',
}

/** The type of a DUMP payload; undefined for module types and encodings this table does not know. */
export function typeOfDump(payload: Buffer): string | undefined {
  return DUMP_TYPES[payload[0]]
}

/** Read with a type the key no longer has: certainly not the value it is compared with. */
const ANOTHER_TYPE: KeyFingerprint = {type: '(another type)', value: Buffer.alloc(20)}

async function typesOf(client: Redis, keys: readonly Buffer[]): Promise<string[]> {
  if (keys.length === 0) return []
  const pipeline = client.pipeline()
  for (const key of keys) pipeline.type(key)
  return ((await pipeline.exec()) ?? []).map(([error, type]) => {
    if (error) throw error
    return String(type)
  })
}

/**
 * Type and canonical value hash of each key, null for a key that does not exist. One pipeline
 * of reads, preceded by one of TYPE for the keys whose type is not given.
 */
export async function fingerprints(client: Redis, keys: readonly Buffer[], knownTypes: ReadonlyArray<string | undefined> = []): Promise<Array<KeyFingerprint | null>> {
  if (keys.length === 0) return []
  const unknown = keys.flatMap((_, i) => (knownTypes[i] === undefined ? [i] : []))
  const asked = await typesOf(client, unknown.map((i) => keys[i]))
  const types = keys.map((_, i) => knownTypes[i] as string)
  for (const [j, i] of unknown.entries()) types[i] = asked[j]
  const reading = client.pipeline()
  for (const [i, key] of keys.entries()) {
    if (types[i] === 'none') continue
    const [command, ...args] = readCommand(types[i])
    reading.callBuffer(command, key, ...args)
  }
  const replies = (await reading.exec()) ?? []
  let next = 0
  return keys.map((_, i) => {
    if (types[i] === 'none') return null
    const [error, reply] = replies[next++] ?? [new Error('no reply'), null]
    if (error && /WRONGTYPE/.test(error.message)) return ANOTHER_TYPE
    if (error) throw error
    if (reply === null) return null
    return {type: types[i], value: canonicalHash(types[i], reply as Reply)}
  })
}

export function sameValue(a: KeyFingerprint | null, b: KeyFingerprint | null): boolean {
  return a !== null && b !== null && a.type === b.type && a.value.equals(b.value)
}

export function keyDigest(key: Buffer, fingerprint: KeyFingerprint): Buffer {
  return sha1(key, Buffer.from(fingerprint.type), fingerprint.value)
}

/** XOR of digests given as hex strings. */
export function combineDigests(digests: readonly string[]): string {
  const total = Buffer.alloc(20)
  for (const digest of digests) xorInto(total, Buffer.from(digest, 'hex'))
  return total.toString('hex')
}

/** Key count and digest of the selected db of one server (SCAN, never KEYS). */
export async function digestServer(client: Redis, signal?: AbortSignal): Promise<DataDigest> {
  const total = Buffer.alloc(20)
  let keys = 0
  let cursor = '0'
  do {
    if (signal?.aborted) throw new Error('digest interrupted')
    const [next, batch] = (await client.callBuffer('SCAN', cursor, 'COUNT', SCAN_COUNT)) as [Buffer, Buffer[]]
    cursor = next.toString()
    const found = await fingerprints(client, batch)
    for (const [i, fingerprint] of found.entries()) {
      if (!fingerprint) continue
      xorInto(total, keyDigest(batch[i], fingerprint))
      keys++
    }
  } while (cursor !== '0')
  return {digest: total.toString('hex'), keys}
}
