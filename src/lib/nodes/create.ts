/**
 * Applies a create plan to empty nodes: slots, distinct config epochs, MEET, and waits
 * until every node agrees, then replication, and waits until every replica link is up.
 */
import {lookup} from 'node:dns/promises'
import {isIP} from 'node:net'

import type {Redis} from 'ioredis'

import {parseAddress} from '../cluster/address.js'
import {readNodeStateOf} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, mapLimit} from '../cluster/connection.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import type {CreatePlan} from '../plan/create.js'
import {myselfOf} from '../cluster/topology.js'
import {waitForAgreement, waitForClusterOk, waitForReplication, waitUntil} from '../cluster/wait.js'

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
  // a master may own its slots already (restore --start: a node loading keys claims their slots)
  await mapLimit(plan.masters.filter((master) => master.slots.length > 0), NODE_PARALLELISM, async (master) => {
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

type Pair = [from: string, to: string]

/** What a MEET needs to reach a node: its IP, port and cluster bus port. */
interface Peer {
  id: string
  ip: string
  port: number
  busPort: number
}

/** Redis's default bus port; any other (cluster-port) must be named in CLUSTER MEET. */
const DEFAULT_BUS_OFFSET = 10_000

/** Each node's id and bus port from its own `myself` line, and its IP for CLUSTER MEET. */
async function readPeers(pool: NodePool, addresses: readonly string[]): Promise<Map<string, Peer>> {
  const ips = new Map<string, Promise<string>>()
  const peers = await mapLimit(addresses, NODE_PARALLELISM, async (address): Promise<Peer> => {
    const self = myselfOf((await readNodeStateOf(pool, address)).nodes)
    if (!self) throw new SlotctlError(`${address} did not list itself in CLUSTER NODES`, {code: 'E_PROTOCOL'})
    const {host, port} = parseAddress(address)
    if (!ips.has(host)) ips.set(host, resolveForMeet(host))
    return {busPort: self.busPort || port + DEFAULT_BUS_OFFSET, id: self.id, ip: await (ips.get(host) as Promise<string>), port}
  })
  return new Map(addresses.map((address, index) => [address, peers[index]]))
}

/** CLUSTER MEET arguments for a peer: the bus port only when it is not port+10000 (older servers take no third argument). */
export function meetArgs(peer: {ip: string; port: number; busPort: number}): Array<number | string> {
  return ['CLUSTER', 'MEET', peer.ip, peer.port, ...(peer.busPort && peer.busPort !== peer.port + DEFAULT_BUS_OFFSET ? [peer.busPort] : [])]
}

/** Every pair once, the later node meeting the earlier one. */
function allPairs(addresses: readonly string[]): Pair[] {
  return addresses.flatMap((from, i) => addresses.slice(0, i).map((to): Pair => [from, to]))
}

/**
 * MEETs each pair directly instead of one hub plus gossip: handshakes then happen at once
 * rather than over several gossip rounds.
 */
async function meetPairs(pool: NodePool, peers: ReadonlyMap<string, Peer>, pairs: readonly Pair[]): Promise<void> {
  await mapLimit(pairs, NODE_PARALLELISM, async ([from, to]) => {
    await call(await pool.client(from), from, ...meetArgs(peers.get(to) as Peer))
  })
}

/**
 * Nodes take a peer's slots and master from packets that peer sends once they know it; a MEET
 * to a known node is such a packet (the handshake it starts is dropped on the reply), so it
 * spares waiting for the next heartbeat, which can be node-timeout/2 away.
 */
async function poke(pool: NodePool, peers: ReadonlyMap<string, Peer>, senders: readonly string[], addresses: readonly string[]): Promise<void> {
  await meetPairs(pool, peers, senders.flatMap((from) => addresses.filter((to) => to !== from).map((to): Pair => [from, to])))
}

/** A replica can only REPLICATE a master it knows (handshake done). */
async function waitForMastersKnown(pool: NodePool, replicas: ReadonlyArray<{address: string; masterId: string}>, timeoutMs: number): Promise<void> {
  await waitUntil('every replica knows its master', timeoutMs, async () => {
    const lagging: string[] = []
    await mapLimit(replicas, NODE_PARALLELISM, async (replica) => {
      const {nodes} = await readNodeStateOf(pool, replica.address)
      if (!nodes.some((node) => node.id === replica.masterId && !node.handshake && node.role === 'master')) lagging.push(`${replica.address} does not know its master yet`)
    })
    return {done: lagging.length === 0, lagging: lagging.slice(0, 5).join('; ')}
  })
}

async function replicate(pool: NodePool, replicas: ReadonlyArray<{address: string; masterId: string}>): Promise<void> {
  await mapLimit(replicas, NODE_PARALLELISM, async (replica) => {
    await call(await pool.client(replica.address), replica.address, 'CLUSTER', 'REPLICATE', replica.masterId)
  })
}

/**
 * Order matters for speed: masters meet each other and each replica meets only its master,
 * replicas REPLICATE as soon as they know their master, and only then does everyone meet
 * everyone. The other nodes thus first hear of each replica as a replica, instead of learning
 * its role change from gossip seconds later.
 */
export async function applyCreatePlan(pool: NodePool, plan: CreatePlan, options: ApplyCreateOptions): Promise<Map<string, string>> {
  const emit = (phase: CreateEvent['phase']) => options.onEvent?.({phase})
  const masterAddresses = plan.masters.map((node) => node.address)
  const addresses = [...masterAddresses, ...plan.replicas.map((node) => node.address)]
  const peers = await readPeers(pool, addresses)
  const ids = new Map([...peers].map(([address, peer]) => [address, peer.id]))
  const replicas = plan.replicas.map((replica) => ({address: replica.address, masterId: ids.get(replica.masterAddress) as string}))
  emit('assign-slots')
  await assignSlots(pool, plan)
  await setEpochs(pool, addresses)
  emit('meet')
  const firstPairs: Pair[] = [...allPairs(masterAddresses), ...plan.replicas.map((replica): Pair => [replica.address, replica.masterAddress])]
  await meetPairs(pool, peers, firstPairs)
  if (replicas.length > 0) {
    await waitForMastersKnown(pool, replicas, options.waitTimeoutMs)
    emit('replicate')
    await replicate(pool, replicas)
  }
  // Every node meets every master itself, since a node that sends MEET learns the target's
  // slots at once, while the target learns the sender's only at a later heartbeat.
  const met = new Set(firstPairs.map(([from, to]) => `${from} ${to}`))
  const secondPairs = [
    ...addresses.flatMap((from) => masterAddresses.filter((to) => to !== from).map((to): Pair => [from, to])),
    ...allPairs(plan.replicas.map((replica) => replica.address)),
  ]
  await meetPairs(pool, peers, secondPairs.filter(([from, to]) => !met.has(`${from} ${to}`)))
  emit('wait-join')
  await waitForAgreement(pool, addresses, options.waitTimeoutMs, undefined, async () => {
    // Handshakes done but slots not yet everywhere: let the masters speak now (see poke).
    await poke(pool, peers, masterAddresses, addresses)
  })
  if (replicas.length > 0) {
    await poke(pool, peers, replicas.map((replica) => replica.address), addresses)
    emit('wait-replication')
    await waitForReplication(pool, replicas, addresses, options.waitTimeoutMs)
  }
  emit('wait-state')
  await waitForClusterOk(pool, addresses, options.waitTimeoutMs)
  return ids
}
