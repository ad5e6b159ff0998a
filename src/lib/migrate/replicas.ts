/**
 * The target's replicas, as a durable move needs them: which replicas the target must have
 * (its own view of the cluster), whether each is online and keeping up (its INFO
 * replication), and whether each already gives a closed slot to the target in its own view.
 * Every wait here is bounded by the run's --replica-wait.
 */
import {type NodePool, delay, pollBackoff} from '../cluster/connection.js'
import {parseClusterNodes, parseInfo} from '../cluster/topology.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import type {SlotEndpoint} from './slot-protocol.js'

/** A replica whose last acknowledgement is older than this is not keeping up (replicas ack every second). */
const MAX_ACK_LAG_S = 2
const POLL_MS = 200
const EPOCH_POLL_MS = 25

export interface ReplicaState {
  address: string
  /** why the replica cannot acknowledge now; undefined when it is healthy */
  problem?: string
}

/**
 * The replicas the target's own view lists for it. One marked failed still counts: it can
 * come back and win an election while its data is recent enough (cluster-replica-validity-
 * factor), so moving without it could lose what it lacks; the operator removes it (del-node)
 * or asks for fewer acknowledgements.
 */
async function listedReplicas(pool: NodePool, target: SlotEndpoint): Promise<string[]> {
  const view = parseClusterNodes(String(await pool.read(target.address, (client) => client.call('CLUSTER', 'NODES'))))
  return view.filter((node) => node.role !== 'master' && node.masterId === target.id && !node.handshake && !node.noAddress).map((node) => node.address)
}

/** slaveN lines of INFO replication: "ip=...,port=...,state=online,offset=...,lag=..." */
function connectedReplicas(info: Record<string, string>): Map<string, {state: string; lag: number}> {
  const found = new Map<string, {state: string; lag: number}>()
  for (const [name, value] of Object.entries(info)) {
    if (!/^slave\d+$/.test(name)) continue
    const fields = Object.fromEntries(value.split(',').map((pair) => pair.split('=') as [string, string]))
    found.set(`${fields.port}`, {lag: Number(fields.lag ?? 0), state: fields.state ?? ''})
  }
  return found
}

export async function readReplicaStates(pool: NodePool, target: SlotEndpoint): Promise<ReplicaState[]> {
  const listed = await listedReplicas(pool, target)
  if (listed.length === 0) return []
  const info = parseInfo(String(await pool.read(target.address, (client) => client.call('INFO', 'replication'))))
  // the replica's listening port identifies it (INFO shows the ip the connection came from)
  const connected = connectedReplicas(info)
  return listed.map((address) => {
    const link = connected.get(address.slice(address.lastIndexOf(':') + 1))
    if (!link) return {address, problem: 'not connected to the target'}
    if (link.state !== 'online') return {address, problem: `link ${link.state || 'down'}`}
    if (link.lag > MAX_ACK_LAG_S) return {address, problem: `no acknowledgement for ${link.lag} s`}
    return {address}
  })
}

export interface ReplicaGate {
  /** acknowledgements each batch must get (0: the target has no replicas to wait for) */
  acks: number
  replicas: string[]
}

/**
 * Before a wave opens: the target must have `wanted` healthy replicas (all it has when
 * undefined). Waits up to `waitMs` for replicas that are catching up; refuses, naming them,
 * when they do not, so that nothing moves unprotected.
 */
export async function requireHealthyReplicas(pool: NodePool, target: SlotEndpoint, wanted: number | undefined, waitMs: number, signal?: AbortSignal): Promise<ReplicaGate> {
  const deadline = Date.now() + waitMs
  for (;;) {
    const states = await readReplicaStates(pool, target)
    const acks = Math.min(wanted ?? states.length, states.length)
    const healthy = states.filter((state) => !state.problem)
    if (wanted !== undefined && wanted > states.length) {
      throw new SlotctlError(`the target ${target.address} has ${states.length} replica(s), fewer than the ${wanted} acknowledgements asked for (--min-replica-acks); nothing of this wave was moved`, {code: 'E_REPLICAS'})
    }
    if (healthy.length >= acks) return {acks, replicas: states.map((state) => state.address)}
    if (Date.now() >= deadline || signal?.aborted) {
      const sick = states.filter((state) => state.problem).map((state) => `${state.address}: ${state.problem}`)
      throw new SlotctlError(`the target ${target.address} has ${healthy.length} healthy replica(s) of the ${acks} every move must wait for (${sick.join('; ')}) after ${waitMs / 1000} s; nothing of this wave was moved`, {
        code: 'E_REPLICAS',
        suggestions: ['bring the replica back (or remove it with del-node), then resume the run', 'wait for fewer replicas with --min-replica-acks N, or move without waiting with --durability none'],
      })
    }
    await delay(POLL_MS)
  }
}

/**
 * After a close: every replica of the target must give the slots to the target in its own
 * view before the wave counts as moved (a replica promoted before it knew would not claim
 * them, and Valkey deletes the keys of a slot a new primary does not own). Bounded by waitMs.
 */
export async function awaitReplicaViews(pool: NodePool, target: SlotEndpoint, replicas: readonly string[], slots: readonly number[], waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs
  let pending = [...replicas]
  const pause = pollBackoff(POLL_MS)
  for (;;) {
    const lagging: string[] = []
    for (const address of pending) {
      const owned = await ownsInView(pool, address, target.id, slots).catch((error: unknown) => errorMessage(error))
      if (owned !== true) lagging.push(typeof owned === 'string' ? `${address} (${owned})` : address)
    }
    if (lagging.length === 0) return
    if (Date.now() >= deadline) {
      throw new SlotctlError(`the slots were closed at ${target.address}, but its replica(s) ${lagging.join(', ')} do not give them to it after ${waitMs / 1000} s`, {
        code: 'E_REPLICA_VIEW',
        suggestions: [`inspect with: slotctl check ${target.address}`],
      })
    }
    pending = pending.filter((address) => lagging.some((entry) => entry.startsWith(address)))
    await pause()
  }
}

async function ownsInView(pool: NodePool, address: string, ownerId: string, slots: readonly number[]): Promise<boolean> {
  const view = parseClusterNodes(String(await pool.read(address, (client) => client.call('CLUSTER', 'NODES'))))
  const owner = view.find((node) => node.id === ownerId)
  return slots.every((slot) => owner?.slots.some(([start, end]) => slot >= start && slot <= end) ?? false)
}

/**
 * Before a Valkey target claims slots: every replica must know the target's raised epoch.
 * Valkey hands `SETSLOT s NODE target` to the replicas before the target applies it; a
 * replica that knows only the target's older epoch lets the source's next claim take the slot
 * back in its view, and deletes the slot's keys if it is then promoted (docs/known-limitations.md). A replica that knows the new epoch keeps the slot against any claim with
 * the source's lower one. Bounded by waitMs; the slots stay open otherwise.
 */
export async function awaitReplicasKnowEpoch(pool: NodePool, target: SlotEndpoint, replicas: readonly string[], epoch: number, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs
  for (;;) {
    const behind: string[] = []
    for (const address of replicas) {
      const view = await pool.read(address, (client) => client.call('CLUSTER', 'NODES')).then((text) => parseClusterNodes(String(text)), () => [])
      if ((view.find((node) => node.id === target.id)?.configEpoch ?? -1) < epoch) behind.push(address)
    }
    if (behind.length === 0) return
    if (Date.now() >= deadline) {
      throw new SlotctlError(`the replica(s) ${behind.join(', ')} of ${target.address} did not learn its config epoch ${epoch} within ${waitMs / 1000} s; the slots stay migrating/importing`, {code: 'E_REPLICA_VIEW'})
    }
    await delay(EPOCH_POLL_MS)
  }
}
