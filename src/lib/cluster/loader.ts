/**
 * Loads a cluster from one seed node: the seed's CLUSTER NODES, then every known node's own
 * view in parallel, so that disagreements between nodes stay visible to checks.
 */
import type {Redis} from 'ioredis'

import {type NodeAddress, formatAddress} from './address.js'
import {NODE_PARALLELISM, type NodePool, describeConnectError, pollBackoff, settleLimit} from './connection.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {type ClusterNode, type SlotFieldCache, myselfOf, parseClusterNodes, parseInfo, resolveNodeId} from './topology.js'
import {type SlotMigrationJob, parseSlotMigrations} from './slot-migrations.js'

export interface NodeView {
  id: string
  address: string
  reachable: boolean
  error?: string
  /** Why it could not be read: E_HUNG (answers nothing), E_AUTH, E_UNREACHABLE, ... */
  errorCode?: string
  /** The node's own CLUSTER NODES. */
  nodes?: ClusterNode[]
  /** The node's CLUSTER INFO. */
  clusterInfo?: Record<string, string>
  /** Atomic slot migration jobs the node reports (Valkey >= 9; absent elsewhere). */
  slotMigrations?: SlotMigrationJob[]
}

export interface ClusterSnapshot {
  seedAddress: string
  seedId: string
  /**
   * Every node the seed knows. A reachable node's slots, open slots, role and master come
   * from its own `myself` line (what it will act on); flags such as fail come from the seed.
   */
  nodes: ClusterNode[]
  views: Record<string, NodeView>
}

export interface NodeState {
  nodes: ClusterNode[]
  clusterInfo: Record<string, string>
  slotMigrations?: SlotMigrationJob[]
}

function notClusterError(address: string): SlotctlError {
  return new SlotctlError(`${address} is not a cluster node (cluster support is disabled there)`, {
    code: 'E_NOT_CLUSTER',
    suggestions: ['start the server (redis-server or valkey-server) with --cluster-enabled yes, or point slotctl at a node of the cluster'],
  })
}

/** One node's state (see readNodeState) within the read deadline (see NodePool.read). */
export async function readNodeStateOf(pool: NodePool, address: string, cache?: SlotFieldCache): Promise<NodeState> {
  return pool.read(address, (client) => readNodeState(client, address, cache))
}

/**
 * One node's CLUSTER NODES, CLUSTER INFO and slot-migration jobs, read in one round trip.
 * Servers without atomic slot migration answer GETSLOTMIGRATIONS with an error: no jobs.
 */
export async function readNodeState(client: Redis, address: string, cache?: SlotFieldCache): Promise<NodeState> {
  let replies: Array<[Error | null, unknown]> | null
  try {
    replies = await client.pipeline().call('CLUSTER', 'NODES').call('CLUSTER', 'INFO').call('CLUSTER', 'GETSLOTMIGRATIONS').exec()
  } catch (error) {
    throw new SlotctlError(`cannot read cluster state from ${address}: ${errorMessage(error)}`, {code: 'E_UNREACHABLE'})
  }
  const [[nodesError, nodesText], [infoError, infoText], [jobsError, jobs] = [null, null]] = replies ?? [[new Error('no reply'), null], [null, null]]
  const failure = nodesError ?? infoError
  if (failure) {
    if (/cluster support disabled/i.test(failure.message)) throw notClusterError(address)
    if (/NOAUTH|WRONGPASS/.test(failure.message)) throw describeConnectError(address, failure)
    throw new SlotctlError(`${address} answered CLUSTER NODES with: ${failure.message}`, {code: 'E_PROTOCOL'})
  }
  return {clusterInfo: parseInfo(String(infoText)), nodes: parseClusterNodes(String(nodesText), cache), ...(jobsError ? {} : {slotMigrations: parseSlotMigrations(jobs)})}
}

function isDialable(node: ClusterNode): boolean {
  return !node.noAddress && !node.handshake && node.address !== ''
}

/** A reachable node's own description of itself overrides what the seed believes about it. */
function withOwnState(fromSeed: ClusterNode, view: NodeView): ClusterNode {
  const self = view.nodes ? myselfOf(view.nodes) : undefined
  if (!self || self.id !== fromSeed.id) return fromSeed
  return {
    ...fromSeed,
    importing: self.importing,
    masterId: self.masterId,
    migrating: self.migrating,
    role: self.role,
    slots: self.slots,
  }
}

function unreadView(node: ClusterNode, address: string, error: unknown): NodeView {
  return {address, error: errorMessage(error), id: node.id, reachable: false, ...(error instanceof SlotctlError ? {errorCode: error.code} : {})}
}

async function readView(pool: NodePool, node: ClusterNode, address: string, cache: SlotFieldCache): Promise<NodeView> {
  try {
    const state = await readNodeStateOf(pool, address, cache)
    return {address, clusterInfo: state.clusterInfo, id: node.id, nodes: state.nodes, reachable: true, slotMigrations: state.slotMigrations}
  } catch (error) {
    return unreadView(node, address, error)
  }
}

export interface LoadOptions {
  /**
   * Nodes (by id, given the seed's view) whose own view is not read: a failover --force is
   * there to bypass an unresponsive master, so it must not first wait for it to answer.
   */
  skipViews?: (seedNodes: readonly ClusterNode[]) => ReadonlySet<string>
}

export async function loadCluster(pool: NodePool, seed: NodeAddress, options: LoadOptions = {}): Promise<ClusterSnapshot> {
  const seedAddress = formatAddress(seed)
  await pool.client(seed) // a URL's own credentials and TLS apply to the seed's client
  // the views of one load share parsed slot ranges: each master's are parsed once
  const cache: SlotFieldCache = new Map()
  const seedState = await readNodeStateOf(pool, seedAddress, cache)
  const seedSelf = myselfOf(seedState.nodes)
  if (!seedSelf) throw new SlotctlError(`${seedAddress} did not list itself in CLUSTER NODES`, {code: 'E_PROTOCOL'})

  const seedView: NodeView = {address: seedAddress, clusterInfo: seedState.clusterInfo, id: seedSelf.id, nodes: seedState.nodes, reachable: true, slotMigrations: seedState.slotMigrations}
  const skipped = options.skipViews?.(seedState.nodes) ?? new Set<string>()
  const others = seedState.nodes.filter((node) => !node.myself && isDialable(node) && !skipped.has(node.id))
  const otherViews = await settleLimit(others, NODE_PARALLELISM, (node) => readView(pool, node, node.address, cache))

  const views: Record<string, NodeView> = {[seedSelf.id]: seedView}
  for (const node of seedState.nodes.filter((candidate) => !candidate.myself && skipped.has(candidate.id))) {
    views[node.id] = {address: node.address, error: 'not contacted (bypassed)', errorCode: 'E_SKIPPED', id: node.id, reachable: false}
  }
  for (const [index, result] of otherViews.entries()) {
    const node = others[index]
    views[node.id] = result.value ?? unreadView(node, node.address, result.error)
  }

  const nodes = seedState.nodes.map((node) => {
    // The seed may be reached under another name than it announces (localhost vs 127.0.0.1).
    const seen = node.myself ? {...node, address: seedAddress, myself: false} : node
    const view = views[node.id]
    return view ? withOwnState(seen, view) : seen
  })
  return {nodes, seedAddress, seedId: seedSelf.id, views}
}

/**
 * Reloads the cluster until `settled` holds (gossip carrying new owners everywhere takes a
 * few pings) or the time is up; returns the last snapshot either way: the caller judges it.
 * `first`, when given, is judged before anything is read again.
 */
export async function reloadUntil(pool: NodePool, seed: NodeAddress, timeoutMs: number, settled: (snapshot: ClusterSnapshot) => boolean, first?: ClusterSnapshot): Promise<ClusterSnapshot> {
  const deadline = Date.now() + timeoutMs
  let snapshot = first ?? (await loadCluster(pool, seed))
  const pause = pollBackoff()
  while (!settled(snapshot) && Date.now() < deadline) {
    await pause()
    snapshot = await loadCluster(pool, seed)
  }
  return snapshot
}

export function nodeById(snapshot: ClusterSnapshot, id: string): ClusterNode | undefined {
  return snapshot.nodes.find((node) => node.id === id)
}

/** Resolves a user-given id or prefix against the snapshot's nodes. */
export function findNode(snapshot: ClusterSnapshot, idOrPrefix: string): ClusterNode {
  return resolveNodeId(snapshot.nodes, idOrPrefix)
}

export function reachableNodes(snapshot: ClusterSnapshot): ClusterNode[] {
  return snapshot.nodes.filter((node) => snapshot.views[node.id]?.reachable)
}
