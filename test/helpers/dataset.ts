/**
 * Test data for data-safety tests: every type, binary (non-UTF-8) key names, hash tags and
 * one big hash; and a digest of a whole cluster's data that does not depend on where keys
 * live, so it must be equal before and after any slot movement.
 */
import {createHash} from 'node:crypto'

import type {Cluster, Redis} from 'ioredis'

import {keySlot} from '../../src/lib/core/slots.js'
import {mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {TestCluster} from './cluster-harness.js'

export interface DatasetOptions {
  keys: number
  bigHashFields?: number
}

function binaryKey(i: number): Buffer {
  return Buffer.from([0xff, 0xfe, 0x80 + (i % 64), ...Buffer.from(String(i))])
}

/** Writes `keys` keys of mixed types through a cluster client (or to one standalone server), plus a big hash. */
export async function writeDataset(client: Cluster | Redis, options: DatasetOptions): Promise<void> {
  const chunk = 500
  for (let start = 0; start < options.keys; start += chunk) {
    const writes: Array<Promise<unknown>> = []
    for (let i = start; i < Math.min(start + chunk, options.keys); i++) {
      switch (i % 8) {
        case 0: writes.push(client.set(`str:${i}`, `value-${i}-${'x'.repeat(i % 50)}`)); break
        case 1: writes.push(client.set(binaryKey(i), Buffer.from([0, 1, 2, 0xff, i % 256]))); break
        case 2: writes.push(client.set(`{tag${i % 40}}:${i}`, `tagged-${i}`)); break
        case 3: writes.push(client.rpush(`list:${i}`, 'a', 'b', String(i))); break
        case 4: writes.push(client.sadd(`set:${i}`, 'x', 'y', String(i))); break
        case 5: writes.push(client.zadd(`zset:${i}`, 1, 'one', i, `m${i}`)); break
        case 6: writes.push(client.hset(`hash:${i}`, {f1: 'v1', f2: String(i)})); break
        default: writes.push(client.xadd(`stream:${i}`, '*', 'field', String(i)))
      }
    }
    await Promise.all(writes)
  }
  const fields = options.bigHashFields ?? 0
  for (let start = 0; start < fields; start += 5000) {
    const values: Record<string, string> = {}
    for (let i = start; i < Math.min(start + 5000, fields); i++) values[`field:${i}`] = `v${i}`
    await client.hset('big:hash', values)
  }
}

async function masterAddresses(cluster: TestCluster): Promise<string[]> {
  const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
  return mastersOf(nodes).filter((node) => !node.failed && !node.suspectedFailed).map((node) => node.address)
}

/** Key count and digest of one server's selected db (needs DEBUG, which test servers allow locally). */
export async function nodeDigest(client: Redis): Promise<{digest: Buffer; keys: number}> {
  const digest = Buffer.alloc(20)
  const keys = await keyDigests(client)
  for (const keyDigest of keys.values()) for (let b = 0; b < 20; b++) digest[b] ^= keyDigest[b]
  return {digest, keys: keys.size}
}

/**
 * The digest clients see while slots may be open: a durable move interrupted between its copy
 * and the source's delete leaves a key at both ends, and the source serves it (the importing
 * target answers only ASKING clients for a key the source lacks). A key stored by a master
 * that imports its slot counts only when no other master holds it.
 */
export async function servedDigest(cluster: TestCluster): Promise<{digest: string; keys: number}> {
  const served = new Map<string, Buffer>()
  const copies = new Map<string, Buffer>()
  for (const address of await masterAddresses(cluster)) {
    const client = cluster.client(address)
    const myself = parseClusterNodes(String(await client.call('CLUSTER', 'NODES'))).find((node) => node.myself)
    const importing = new Set(Object.keys(myself?.importing ?? {}).map(Number))
    for (const [key, digest] of await keyDigests(client)) (importing.has(keySlot(Buffer.from(key, 'hex'))) ? copies : served).set(key, digest)
  }
  for (const [key, digest] of copies) if (!served.has(key)) served.set(key, digest)
  const total = Buffer.alloc(20)
  for (const digest of served.values()) for (let b = 0; b < 20; b++) total[b] ^= digest[b]
  return {digest: total.toString('hex'), keys: served.size}
}

/** key (hex) → the same per-key digest nodeDigest XORs */
async function keyDigests(client: Redis): Promise<Map<string, Buffer>> {
  const digests = new Map<string, Buffer>()
  let cursor = '0'
  do {
    const [next, batch] = (await client.callBuffer('SCAN', cursor, 'COUNT', 1000)) as [Buffer, Buffer[]]
    cursor = next.toString()
    if (batch.length === 0) continue
    // DEBUG DIGEST-VALUE is order-independent inside a value (DUMP is not: a hashtable
    // restored elsewhere iterates in another order), so equal data gives equal digests.
    const values = (await client.callBuffer('DEBUG', 'DIGEST-VALUE', ...batch)) as Buffer[]
    for (const [i, key] of batch.entries()) digests.set(key.toString('hex'), createHash('sha1').update(String(key.length)).update(key).update(values[i]).digest())
  } while (cursor !== '0')
  return digests
}

/** Key count and an order-independent digest of every key and value on every master. */
export async function clusterDigest(cluster: TestCluster): Promise<{digest: string; keys: number}> {
  return serversDigest((await masterAddresses(cluster)).map((address) => cluster.client(address)))
}

/** The same digest over any servers (the masters of a cluster, or one standalone server). */
export async function serversDigest(clients: Redis[]): Promise<{digest: string; keys: number}> {
  const total = Buffer.alloc(20)
  let keys = 0
  for (const client of clients) {
    const node = await nodeDigest(client)
    for (let b = 0; b < 20; b++) total[b] ^= node.digest[b]
    keys += node.keys
  }
  return {digest: total.toString('hex'), keys}
}
