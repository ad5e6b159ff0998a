/**
 * Shared by the fault tests of moves: a layout (a source owning slot 0, a target with a
 * replica), 3000 keys of 2 KB in slots 0-1023, and the checks that every key and every
 * acknowledged write is there afterwards.
 */
import {randomBytes} from 'node:crypto'

import {expect} from 'chai'

import {delay} from '../../src/lib/cluster/connection.js'
import {type ClusterNode, parseClusterNodes, parseInfo, slotMapSignature} from '../../src/lib/cluster/topology.js'
import {tagForSlot} from '../../src/lib/migrate/durable.js'
import type {TestCluster} from './cluster-harness.js'
import type {RecordingWriter} from './writer.js'

export const KEYS = 3000
export const SLOTS = 1024

export interface Layout {
  source: string
  sourceId: string
  target: string
  targetId: string
  replica: string
}

export async function layout(cluster: TestCluster): Promise<Layout> {
  const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
  const source = nodes.find((node) => node.role === 'master' && node.slots.some(([start]) => start === 0))
  const target = nodes.find((node) => node.role === 'master' && node !== source)
  const replica = nodes.find((node) => node.masterId === target?.id)
  if (!source || !target || !replica) throw new Error('unexpected layout')
  return {replica: replica.address, source: source.address, sourceId: source.id, target: target.address, targetId: target.id}
}

/** 3000 keys of 2 KB, spread over slots 0-1023 (each named into its slot with a hash tag). */
export async function writeKeys(cluster: TestCluster): Promise<Map<string, Buffer>> {
  const client = cluster.clusterClient()
  const expected = new Map<string, Buffer>()
  for (let start = 0; start < KEYS; start += 500) {
    const writes: Array<Promise<unknown>> = []
    for (let i = start; i < start + 500; i++) {
      const key = `k:${i}:{${tagForSlot(i % SLOTS)}}`
      const value = randomBytes(2048)
      expected.set(key, value)
      writes.push(client.set(key, value))
    }
    await Promise.all(writes)
  }
  return expected
}

/** Every key with its value, read from whichever master serves it now. */
export async function expectAllKeys(cluster: TestCluster, expected: Map<string, Buffer>): Promise<void> {
  const client = cluster.clusterClient()
  const keys = [...expected.keys()]
  const missing: string[] = []
  const changed: string[] = []
  for (let start = 0; start < keys.length; start += 200) {
    const batch = keys.slice(start, start + 200)
    const values = await Promise.all(batch.map((key) => client.getBuffer(key)))
    for (const [i, key] of batch.entries()) {
      if (values[i] === null) missing.push(key)
      else if (!values[i]?.equals(expected.get(key) as Buffer)) changed.push(key)
    }
  }
  if (missing.length > 0 && process.env.SLOTCTL_TEST_DEBUG) {
    for (const address of cluster.addresses) {
      const where = await cluster.client(address).exists(missing[0]).catch((error: Error) => error.message)
      process.stderr.write(`[debug] ${missing[0]} at ${address}: ${where}\n${await cluster.client(address).call('CLUSTER', 'NODES').catch(() => '')}\n`)
    }
  }
  expect({changed: changed.length, missing: missing.length, sample: missing.slice(0, 3)}).to.deep.equal({changed: 0, missing: 0, sample: []})
}

/** Every acknowledged write is there with its value or a later one of the same writer. */
export async function expectAcknowledgedWrites(cluster: TestCluster, writer: RecordingWriter): Promise<void> {
  const client = cluster.clusterClient()
  const lost: string[] = []
  for (const [key, value] of writer.acknowledged) {
    const now = await client.get(key)
    if (now === null || Number(now.slice(1)) < Number(value.slice(1))) lost.push(`${key}: ${value} → ${now}`)
  }
  expect(writer.acknowledged.size, 'the writer saw writes acknowledged').to.be.greaterThan(0)
  expect(lost, `${lost.length} of ${writer.acknowledged.size} acknowledged writes lost`).to.deep.equal([])
}

/**
 * A slot migration stopped half-way, as a source that dies mid-reshard leaves it: each slot
 * of `source` gets `keysPerSlot` keys, is opened towards `target` (IMPORTING there, then
 * MIGRATING at the source) and half of its keys move; both masters then wait until a replica
 * holds every key, so that a failover alone loses none.
 */
export async function halfMoveSlots(cluster: TestCluster, source: ClusterNode, target: ClusterNode, slots: readonly number[], keysPerSlot = 100): Promise<void> {
  const client = cluster.clusterClient()
  for (const slot of slots) {
    await Promise.all(Array.from({length: keysPerSlot}, (_, i) => client.set(`{${tagForSlot(slot)}}:${i}`, `value-${slot}-${i}`)))
  }
  const from = cluster.client(source.address)
  const to = cluster.client(target.address)
  for (const slot of slots) {
    await to.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
    await from.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
    const keys = (await from.callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, keysPerSlot / 2)) as Buffer[]
    await from.callBuffer('MIGRATE', target.host, target.port, '', 0, 5000, 'KEYS', ...keys)
  }
  for (const node of [from, to]) expect(await node.call('WAIT', 1, 10_000)).to.equal(1)
}

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await delay(200)
  }
}

export async function isMaster(cluster: TestCluster, address: string): Promise<boolean> {
  return parseInfo(String(await cluster.client(address).info('replication'))).role === 'master'
}


/**
 * Until every node that answers gives each slot the same owner in its own view, as an
 * operator's `slotctl check` from any seed would want before clients are trusted again. A
 * cluster client reading while two masters still name each other for a slot gets "Too many
 * Cluster redirections" (seen once after fix on Redis 8), which says nothing about the keys;
 * views that never agree fail here, with each node's line.
 */
export async function waitForOneView(cluster: TestCluster, timeoutMs = 30_000): Promise<void> {
  let views: string[] = []
  const agree = async () => {
    views = []
    for (const address of cluster.addresses) {
      const text = await cluster
        .client(address)
        .call('CLUSTER', 'NODES')
        .catch(() => undefined)
      if (text !== undefined) views.push(`${address}: ${slotMapSignature(parseClusterNodes(String(text)))}`)
    }
    return new Set(views.map((view) => view.slice(view.indexOf(': ')))).size === 1
  }
  await waitUntil('every reachable node to give each slot the same owner', agree, timeoutMs).catch((error: Error) => {
    throw new Error(`${error.message}:\n${views.join('\n')}`)
  })
}
