/**
 * Applies a create plan to empty nodes: slots, distinct config epochs, MEET, and waits
 * until every node agrees, then replication, and waits until every replica link is up.
 */
import {lookup} from 'node:dns/promises'
import {isIP} from 'node:net'

import type {Redis} from 'ioredis'

import {parseAddress} from './address.js'
import {readNodeState} from './cluster.js'
import {NODE_PARALLELISM, type NodePool, mapLimit} from './connection.js'
import {SlotctlError, errorMessage} from './errors.js'
import type {CreatePlan} from './plan/create.js'
import {parseInfo, slotMapSignature} from './topology.js'
import {waitUntil} from './wait.js'

export type CreateEvent = {phase: 'assign-slots' | 'meet' | 'replicate' | 'wait-join' | 'wait-replication' | 'wait-state'}

export interface ApplyCreateOptions {
  waitTimeoutMs: number
  onEvent?: (event: CreateEvent) => void
}

async function call(client: Redis, address: string, ...args: Array<number | string>): Promise<unknown> {
  try {
    return await client.call(args[0] as string, ...args.slice(1))
  } catch (error) {
    throw new SlotctlError(`${address} refused ${args.slice(0, 2).join(' ')}: ${errorMessage(error)}`, {code: 'E_REDIS'})
  }
}

async function assignSlots(pool: NodePool, plan: CreatePlan): Promise<void> {
  await mapLimit(plan.masters, NODE_PARALLELISM, async (master) => {
    const client = await pool.client(master.address)
    await call(client, master.address, 'CLUSTER', 'ADDSLOTSRANGE', ...master.slots.flat())
  })
}

async function setEpochs(pool: NodePool, addresses: string[]): Promise<void> {
  await mapLimit(addresses, NODE_PARALLELISM, async (address, index) => {
    const client = await pool.client(address)
    await call(client, address, 'CLUSTER', 'SET-CONFIG-EPOCH', index + 1)
  })
}

/** CLUSTER MEET wants an IP address; operators may type host names. */
export async function resolveForMeet(host: string): Promise<string> {
  if (isIP(host)) return host
  try {
    return (await lookup(host)).address
  } catch (error) {
    throw new SlotctlError(`cannot resolve ${host} for CLUSTER MEET: ${errorMessage(error)}`, {code: 'E_UNREACHABLE'})
  }
}

async function meetAll(pool: NodePool, addresses: string[]): Promise<void> {
  const first = parseAddress(addresses[0])
  const ip = await resolveForMeet(first.host)
  await mapLimit(addresses.slice(1), NODE_PARALLELISM, async (address) => {
    const client = await pool.client(address)
    await call(client, address, 'CLUSTER', 'MEET', ip, first.port)
  })
}

export async function nodeIds(pool: NodePool, addresses: string[]): Promise<Map<string, string>> {
  const ids = await mapLimit(addresses, NODE_PARALLELISM, async (address) => String(await call(await pool.client(address), address, 'CLUSTER', 'MYID')))
  return new Map(addresses.map((address, index) => [address, ids[index]]))
}

/** Every node knows all the others (no handshake left) and all report the same slot map. */
export async function waitForAgreement(pool: NodePool, addresses: string[], timeoutMs: number, what = 'every node knows every other and all agree on the slot map'): Promise<void> {
  await waitUntil(what, timeoutMs, async () => {
    const states = await mapLimit(addresses, NODE_PARALLELISM, async (address) => readNodeState(await pool.client(address), address))
    const signatures = new Set(states.map((state) => slotMapSignature(state.nodes)))
    const lagging = states.flatMap((state, index) => {
      const known = state.nodes.filter((node) => !node.handshake && !node.noAddress).length
      return known < addresses.length ? [`${addresses[index]} knows ${known} of ${addresses.length} nodes`] : []
    })
    if (signatures.size > 1) lagging.push('nodes still disagree on the slot map')
    return {done: lagging.length === 0, lagging: lagging.join('; ')}
  })
}

async function replicate(pool: NodePool, plan: CreatePlan, ids: Map<string, string>): Promise<void> {
  await mapLimit(plan.replicas, NODE_PARALLELISM, async (replica) => {
    const client = await pool.client(replica.address)
    await call(client, replica.address, 'CLUSTER', 'REPLICATE', ids.get(replica.masterAddress) as string)
  })
}

/** Each replica's link to its master is up, and every node sees it as that master's replica. */
export async function waitForReplication(pool: NodePool, replicas: Array<{address: string; masterId: string}>, allAddresses: string[], timeoutMs: number): Promise<void> {
  await waitUntil('every replica is linked to its master', timeoutMs, async () => {
    const lagging: string[] = []
    await mapLimit(replicas, NODE_PARALLELISM, async (replica) => {
      const info = parseInfo(String(await (await pool.client(replica.address)).info('replication')))
      if (info.master_link_status !== 'up') lagging.push(`${replica.address} link ${info.master_link_status ?? 'not set'}`)
    })
    const states = await mapLimit(allAddresses, NODE_PARALLELISM, async (address) => readNodeState(await pool.client(address), address))
    for (const [index, state] of states.entries()) {
      const unseen = replicas.filter((replica) => !state.nodes.some((node) => node.role === 'replica' && node.masterId === replica.masterId && node.address === replica.address))
      if (unseen.length > 0) lagging.push(`${allAddresses[index]} does not yet see ${unseen.length} replica(s)`)
    }
    return {done: lagging.length === 0, lagging: lagging.slice(0, 5).join('; ')}
  })
}

export async function waitForClusterOk(pool: NodePool, addresses: string[], timeoutMs: number): Promise<void> {
  await waitUntil('every node reports cluster_state:ok', timeoutMs, async () => {
    const states = await mapLimit(addresses, NODE_PARALLELISM, async (address) => readNodeState(await pool.client(address), address))
    const lagging = states.flatMap((state, index) => (state.clusterInfo.cluster_state === 'ok' ? [] : [`${addresses[index]} is ${state.clusterInfo.cluster_state}`]))
    return {done: lagging.length === 0, lagging: lagging.join('; ')}
  })
}

export async function applyCreatePlan(pool: NodePool, plan: CreatePlan, options: ApplyCreateOptions): Promise<Map<string, string>> {
  const emit = (phase: CreateEvent['phase']) => options.onEvent?.({phase})
  const addresses = [...plan.masters, ...plan.replicas].map((node) => node.address)
  const ids = await nodeIds(pool, addresses)
  emit('assign-slots')
  await assignSlots(pool, plan)
  await setEpochs(pool, addresses)
  emit('meet')
  await meetAll(pool, addresses)
  emit('wait-join')
  await waitForAgreement(pool, addresses, options.waitTimeoutMs)
  if (plan.replicas.length > 0) {
    emit('replicate')
    await replicate(pool, plan, ids)
    emit('wait-replication')
    const replicas = plan.replicas.map((replica) => ({address: replica.address, masterId: ids.get(replica.masterAddress) as string}))
    await waitForReplication(pool, replicas, addresses, options.waitTimeoutMs)
  }
  emit('wait-state')
  await waitForClusterOk(pool, addresses, options.waitTimeoutMs)
  return ids
}

