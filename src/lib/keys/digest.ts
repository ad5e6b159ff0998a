/**
 * A digest of a data set that depends neither on where its keys live nor on how a server
 * encodes them: per key, SHA-1 over its name, its type and a canonical form of its value,
 * XOR-ed over all keys. XOR makes it composable: the digest of a cluster is the XOR of its
 * masters' digests, however slots are spread. Values are read with ordinary commands (no
 * DEBUG, which production servers often refuse). Key TTLs are left out: they change as time
 * passes. Per-field hash expiry times (HPEXPIRE, Redis >= 7.4, Valkey >= 9) are in: they are
 * absolute, and DUMP/RESTORE (MIGRATE, backups) keeps them exactly. Vector sets (Redis 8) are
 * read element by element (their DUMP is not canonical: a restored copy serializes its graph
 * differently). Other module types are compared by DUMP: equal payloads are equal values,
 * different ones count as different, never as equal. Streams count their entries, not their
 * consumer groups. The data must not change while it is read.
 */
import {createHash} from 'node:crypto'

import type {Redis} from 'ioredis'

import {parseInfo} from '../cluster/topology.js'

/** v2: hash field expiry times and vector sets by content (v1 had neither). */
export const DIGEST_ALGORITHM = 'slotctl-content-v2'

type Reply = Buffer | Reply[] | null | number

/**
 * What a second read adds to a key's value: the expiry time (ms, -1 none) of each field of a
 * hash, in HGETALL's order; the [VEMB RAW reply, VGETATTR reply] of each element of a vector set.
 */
type Detail = Reply[] | undefined

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

/** Every part of a reply, flattened, numbers as text: for replies whose shape is fixed. */
function partsOf(reply: Reply, hash: Sha1): void {
  if (Array.isArray(reply)) {
    hash.part(`[${reply.length}`)
    for (const element of reply) partsOf(element, hash)
  } else {
    hash.part(reply === null ? '(nil)' : typeof reply === 'number' ? String(reply) : reply)
  }
}

/**
 * Members of sets, fields of hashes, elements of vector sets: order-free, since servers
 * iterate them differently. `extra` adds a part per element (a field's expiry time, a vector
 * element's embedding and attributes); a hash field without an expiry adds nothing, so hashes
 * without field TTLs digest as they always did.
 */
function unordered(hash: Sha1, elements: Buffer[], width: 1 | 2, extra?: Reply[]): void {
  const total = Buffer.alloc(20)
  for (let i = 0; i + width <= elements.length; i += width) {
    const element = new Sha1().part(elements[i])
    if (width === 2) element.part(elements[i + 1])
    const more = extra?.[i / width]
    if (more !== undefined && more !== -1) partsOf(more, element.part('+'))
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

function addValue(hash: Sha1, type: string, reply: Reply, detail: Detail): void {
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
      unordered(hash, reply as Buffer[], 2, detail)
      break
    }
    case 'vectorset': {
      unordered(hash, reply as Buffer[], 1, detail)
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
export function keyHash(key: Buffer, type: string, reply: Reply, detail?: Detail): Buffer {
  const hash = new Sha1().part(key).part(type)
  addValue(hash, type, reply, detail)
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
    // a count above the cardinality returns every element once
    case 'vectorset': return ['VRANDMEMBER', String(2 ** 31 - 1)]
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
  const values = keys.map((_, i): [Error | null, Reply] | undefined => (types[i] === 'none' ? undefined : ((replies[next++] ?? [new Error('no reply'), null]) as [Error | null, Reply])))
  const details = await detailsOf(client, asking, keys, types, values)
  return keys.map((key, i) => {
    if (!values[i]) return null
    const [error, reply] = values[i]
    if (error && /WRONGTYPE/.test(error.message)) return ANOTHER_TYPE
    if (error) throw error
    if (reply === null) return null
    return keyHash(key, types[i], reply, details[i])
  })
}

/** Servers known to lack HPEXPIRETIME (before Redis 7.4 / Valkey 9): no hash there has field TTLs. */
const withoutFieldTtls = new WeakSet<Redis>()

/** The commands that read a key's detail (see Detail): none for most types. */
function detailReads(client: Redis, key: Buffer, type: string, reply: Reply): Array<[string, ...Array<Buffer | string>]> {
  const elements = reply as Buffer[]
  if (type === 'hash' && elements.length > 0 && !withoutFieldTtls.has(client)) {
    const fields = elements.filter((_, i) => i % 2 === 0)
    return [['HPEXPIRETIME', key, 'FIELDS', String(fields.length), ...fields]]
  }
  if (type === 'vectorset') return elements.flatMap((element): Array<[string, ...Buffer[]]> => [['VEMB', key, element, Buffer.from('RAW')], ['VGETATTR', key, element]])
  return []
}

/**
 * The second read of the keys that need one (hashes: their fields' expiry times; vector sets:
 * each element), in one pipeline. A server without HPEXPIRETIME has no field TTLs; any other
 * error (NOPERM, an element gone) is thrown: the value cannot be compared.
 */
async function detailsOf(client: Redis, asking: boolean, keys: readonly Buffer[], types: readonly string[], values: ReadonlyArray<[Error | null, Reply] | undefined>): Promise<Detail[]> {
  const perKey = keys.map((key, i) => {
    const value = values[i]
    return value && !value[0] && value[1] !== null ? detailReads(client, key, types[i], value[1]) : []
  })
  const commands = perKey.flat()
  if (commands.length === 0) return keys.map(() => undefined)
  const replies = await execEach(client, asking, commands)
  let next = 0
  return perKey.map((reads, i): Detail => {
    if (reads.length === 0) return undefined
    const own = replies.slice(next, next + reads.length)
    next += reads.length
    const failed = own.find(([error]) => error)?.[0]
    if (failed && types[i] === 'hash' && /unknown command/i.test(failed.message)) {
      withoutFieldTtls.add(client)
      return undefined
    }
    if (failed) throw failed
    const flat = own.map(([, reply]) => reply as Reply)
    // vector sets: [VEMB, VGETATTR] per element
    return types[i] === 'vectorset' ? flat.flatMap((_, j) => (j % 2 === 0 ? [[flat[j], flat[j + 1]]] : [])) : (flat[0] as Reply[])
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
