/**
 * A digest of a data set that depends neither on where its keys live nor on how a server
 * encodes them: per key, SHA-1 over its name, its type and a canonical form of its value,
 * XOR-ed over all keys. XOR makes it composable: the digest of a cluster is the XOR of its
 * masters' digests, however slots are spread. Values are read with ordinary commands (no
 * DEBUG, which production servers often refuse). TTLs are left out: they change as time
 * passes. Streams count their entries, not their consumer groups. The data must not change
 * while it is read.
 */
import {createHash} from 'node:crypto'

import type {Redis} from 'ioredis'

import {parseInfo} from '../cluster/topology.js'

export const DIGEST_ALGORITHM = 'slotctl-content-v1'

type Reply = Buffer | Reply[] | null | number

export interface DataDigest {
  keys: number
  /** 40 hex characters; all zeros for no keys */
  digest: string
}

/** Types every server has; keys of module types need a TYPE each and are digested by DUMP. */
const CORE_TYPES = ['string', 'list', 'set', 'zset', 'hash', 'stream'] as const
const SCAN_COUNT = 2000

class Sha1 {
  private readonly hash = createHash('sha1')
  private readonly length = Buffer.alloc(4)

  /** Length-prefixed, so that concatenations cannot collide. */
  part(bytes: Buffer | string): this {
    const buffer = typeof bytes === 'string' ? Buffer.from(bytes) : bytes
    this.length.writeUInt32BE(buffer.length)
    this.hash.update(this.length).update(buffer)
    return this
  }

  digest(): Buffer {
    return this.hash.digest()
  }
}

function xorInto(target: Buffer, source: Buffer): void {
  for (let i = 0; i < target.length; i++) target[i] ^= source[i]
}

/** Members of sets and fields of hashes: order-free, since servers iterate them differently. */
function unordered(hash: Sha1, elements: Buffer[], width: 1 | 2): void {
  const total = Buffer.alloc(20)
  for (let i = 0; i + width <= elements.length; i += width) {
    const element = new Sha1().part(elements[i])
    if (width === 2) element.part(elements[i + 1])
    xorInto(total, element.digest())
  }
  hash.part(String(elements.length / width)).part(total)
}

/** Scores as IEEE doubles: servers print the same double differently (0.1 vs 0.10000000000000001). */
function scoreBytes(text: Buffer): Buffer {
  const raw = text.toString()
  const value = raw === 'inf' || raw === '+inf' ? Infinity : raw === '-inf' ? -Infinity : Number(raw)
  const buffer = Buffer.alloc(8)
  buffer.writeDoubleBE(value)
  return buffer
}

function addValue(hash: Sha1, type: string, reply: Reply): void {
  switch (type) {
    case 'string': {
      hash.part(reply as Buffer)
      break
    }
    case 'list': {
      for (const element of reply as Buffer[]) hash.part(element)
      break
    }
    case 'set': {
      unordered(hash, reply as Buffer[], 1)
      break
    }
    case 'hash': {
      unordered(hash, reply as Buffer[], 2)
      break
    }
    case 'zset': {
      const flat = reply as Buffer[]
      for (let i = 0; i + 1 < flat.length; i += 2) hash.part(flat[i]).part(scoreBytes(flat[i + 1]))
      break
    }
    case 'stream': {
      for (const entry of reply as Reply[][]) {
        const [id, fields] = entry as [Buffer, Buffer[]]
        hash.part(id).part(String(fields.length))
        for (const field of fields) hash.part(field)
      }
      break
    }
    default: {
      // module types: their serialized form is the best available
      hash.part((reply as Buffer | null) ?? Buffer.alloc(0))
    }
  }
}

/** SHA-1 of a key's name, type and canonical value: equal for equal data on any server. */
export function keyHash(key: Buffer, type: string, reply: Reply): Buffer {
  const hash = new Sha1().part(key).part(type)
  addValue(hash, type, reply)
  return hash.digest()
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
    default: return ['DUMP']
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

/** A key read with a type it no longer has: certainly not the value it is compared with. */
const ANOTHER_TYPE = Buffer.from('(another type)')

/**
 * One pipeline with ASKING before each command when the node only imports the slot (it serves
 * the keys of an importing slot to ASKING connections only); the replies of the commands.
 */
async function execEach(client: Redis, asking: boolean, commands: ReadonlyArray<[string, ...Array<Buffer | string>]>): Promise<Array<[Error | null, unknown]>> {
  const pipeline = client.pipeline()
  for (const [command, ...args] of commands) {
    if (asking) pipeline.call('ASKING')
    pipeline.callBuffer(command, ...args)
  }
  const replies = (await pipeline.exec()) ?? []
  return asking ? replies.filter((_, i) => i % 2 === 1) : replies
}

async function typesOf(client: Redis, keys: readonly Buffer[], asking: boolean): Promise<string[]> {
  if (keys.length === 0) return []
  return (await execEach(client, asking, keys.map((key) => ['TYPE', key]))).map(([error, type]) => {
    if (error) throw error
    return String(type)
  })
}

/**
 * keyHash of each key, null for a key that does not exist. One pipeline of reads, preceded by
 * one of TYPE for the keys whose type is not given.
 */
export async function fingerprints(client: Redis, keys: readonly Buffer[], knownTypes: ReadonlyArray<string | undefined> = [], asking = false): Promise<Array<Buffer | null>> {
  if (keys.length === 0) return []
  const unknown = keys.flatMap((_, i) => (knownTypes[i] === undefined ? [i] : []))
  const asked = await typesOf(client, unknown.map((i) => keys[i]), asking)
  const types = keys.map((_, i) => knownTypes[i] as string)
  for (const [j, i] of unknown.entries()) types[i] = asked[j]
  const reads = keys.flatMap((key, i): Array<[string, ...Array<Buffer | string>]> => {
    if (types[i] === 'none') return []
    const [command, ...args] = readCommand(types[i])
    return [[command, key, ...args]]
  })
  const replies = await execEach(client, asking, reads)
  let next = 0
  return keys.map((key, i) => {
    if (types[i] === 'none') return null
    const [error, reply] = replies[next++] ?? [new Error('no reply'), null]
    if (error && /WRONGTYPE/.test(error.message)) return ANOTHER_TYPE
    if (error) throw error
    if (reply === null) return null
    return keyHash(key, types[i], reply as Reply)
  })
}

/** Strings of a standalone server in one MGET (a cluster node refuses keys of several slots). */
async function stringHashes(client: Redis, keys: readonly Buffer[]): Promise<Array<Buffer | null>> {
  const values = (await client.callBuffer('MGET', ...keys)) as Array<Buffer | null>
  return keys.map((key, i) => (values[i] === null ? null : keyHash(key, 'string', values[i])))
}

export function sameValue(a: Buffer | null, b: Buffer | null): boolean {
  return a !== null && b !== null && a.equals(b)
}

/** XOR of digests given as hex strings. */
export function combineDigests(digests: readonly string[]): string {
  const total = Buffer.alloc(20)
  for (const digest of digests) xorInto(total, Buffer.from(digest, 'hex'))
  return total.toString('hex')
}

interface ServerTraits {
  standalone: boolean
  /** module types may exist: every key's type must be asked */
  modules: boolean
}

async function traitsOf(client: Redis): Promise<ServerTraits> {
  const info = parseInfo(String(await client.info()))
  return {modules: 'module' in info, standalone: info.cluster_enabled !== '1'}
}

/**
 * SCAN pages (never KEYS) of one type, or of any type; each page's values are read while the
 * next page is scanned.
 */
async function scanPages(client: Redis, type: string | undefined, signal: AbortSignal | undefined, onPage: (keys: Buffer[]) => Promise<void>): Promise<void> {
  let cursor = '0'
  let reading: Promise<void> = Promise.resolve()
  do {
    if (signal?.aborted) throw new Error('digest interrupted')
    const [next, keys] = (await client.callBuffer('SCAN', cursor, 'COUNT', SCAN_COUNT, ...(type ? ['TYPE', type] : []))) as [Buffer, Buffer[]]
    cursor = next.toString()
    await reading
    reading = keys.length > 0 ? onPage(keys) : Promise.resolve()
  } while (cursor !== '0')
  await reading
}

/**
 * Key count and digest of the selected db of one server. One SCAN pass per core type (SCAN
 * TYPE), so no key needs a TYPE; a server with modules gets one pass asking each key's type.
 */
export async function digestServer(client: Redis, signal?: AbortSignal): Promise<DataDigest> {
  const traits = await traitsOf(client)
  const total = Buffer.alloc(20)
  let keys = 0
  const add = (hashes: Array<Buffer | null>) => {
    for (const hash of hashes) {
      if (!hash) continue
      xorInto(total, hash)
      keys++
    }
  }
  if (traits.modules) {
    await scanPages(client, undefined, signal, async (batch) => add(await fingerprints(client, batch)))
  } else {
    for (const type of CORE_TYPES) {
      await scanPages(client, type, signal, async (batch) => {
        if (type === 'string' && traits.standalone) add(await stringHashes(client, batch))
        else add(await fingerprints(client, batch, batch.map(() => type)))
      })
    }
  }
  return {digest: total.toString('hex'), keys}
}
