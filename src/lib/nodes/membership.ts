/**
 * Node membership work: checking that nodes are fit to join a cluster, telling a fresh set of
 * nodes from a cluster create already formed (or half formed), adding a node and removing one.
 */
import {type ClusterSnapshot, findNode} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, mapLimit, settleLimit} from '../cluster/connection.js'
import {waitForClusterOk, waitForReplication} from '../cluster/wait.js'
import {meetArgs, resolveForMeet} from './create.js'
import {SlotctlError, errorMessage, usageError} from '../core/errors.js'
import {type ReplicaMove, type ZoneOf, chooseMasterFor, noZones, placementWarnings, planReplicaMoves} from '../plan/placement.js'
import {formatRanges} from '../core/slots.js'
import {type ClusterNode, keyCountFromInfo, myselfOf, openSlotsOf, parseClusterNodes, parseInfo, slotCount, slotMapSignature} from '../cluster/topology.js'
import {waitUntil} from '../cluster/wait.js'
import {type Issue, type NodeRef, issue, nodeRef} from '../core/result.js'

export interface CandidateState {
  /** As the operator gave it. */
  address: string
  reachable: boolean
  error?: string
  clusterEnabled: boolean
  id?: string
  keys: number
  /** The node's own CLUSTER NODES, itself included. */
  nodes: ClusterNode[]
  clusterState?: string
}

const isFresh = (state: CandidateState) => state.nodes.length === 1 && state.keys === 0 && (myselfOf(state.nodes)?.slots.length ?? 0) === 0

/** What a node reports about itself, read in one round trip; never throws. */
export async function inspectNode(pool: NodePool, address: string): Promise<CandidateState> {
  const state: CandidateState = {address, clusterEnabled: false, keys: 0, nodes: [], reachable: false}
  try {
    const replies = (await pool.read(address, (client) => client.pipeline().info('cluster').info('keyspace').call('CLUSTER', 'NODES').call('CLUSTER', 'INFO').exec())) ?? []
    const [[infoError, clusterSection], [keysError, keyspace], [nodesError, nodesText], [, clusterInfo]] = replies
    if (infoError || keysError) throw infoError ?? keysError
    state.reachable = true
    state.keys = keyCountFromInfo(parseInfo(String(keyspace)))
    state.clusterEnabled = parseInfo(String(clusterSection)).cluster_enabled === '1'
    if (!state.clusterEnabled || nodesError) return state
    state.nodes = parseClusterNodes(String(nodesText))
    state.id = myselfOf(state.nodes)?.id
    state.clusterState = parseInfo(String(clusterInfo)).cluster_state
  } catch (error) {
    state.reachable = false
    state.error = errorMessage(error)
  }
  return state
}

export async function inspectNodes(pool: NodePool, addresses: readonly string[]): Promise<CandidateState[]> {
  return mapLimit(addresses, NODE_PARALLELISM, (address) => inspectNode(pool, address))
}

/** Why a node cannot be used at all (unreachable, cluster support off), or undefined. */
function unusable(state: CandidateState): string | undefined {
  if (!state.reachable) return state.error?.includes(state.address) ? state.error : `${state.address} is unreachable: ${state.error ?? 'no answer'}`
  if (!state.clusterEnabled) return `${state.address} is not cluster-enabled (cluster_enabled:0): start it with --cluster-enabled yes`
  if (!state.id) return `${state.address} did not list itself in CLUSTER NODES`
  return undefined
}

/** Why a node cannot join a new cluster, or undefined when it is empty and alone. */
export function notEmptyReason(state: CandidateState): string | undefined {
  const bad = unusable(state)
  if (bad) return bad
  if (state.keys > 0) return `${state.address} is not empty: it holds ${state.keys} key(s)`
  if (state.nodes.length > 1) return `${state.address} is not empty: it already knows ${state.nodes.length - 1} other node(s)`
  const self = myselfOf(state.nodes)
  if (self && self.slots.length > 0) return `${state.address} is not empty: it already owns slots ${formatRanges(self.slots)}`
  return undefined
}

export type CreateReadiness =
  | {kind: 'fresh'}
  | {kind: 'exists'; message: string; extraNodes: number}
  | {kind: 'refused'; problems: string[]}
  | {kind: 'half-formed'; message: string; nextStep: string}

function knowsAll(state: CandidateState, ids: ReadonlySet<string>): boolean {
  const known = new Set(state.nodes.filter((node) => !node.handshake).map((node) => node.id))
  return [...ids].every((id) => known.has(id))
}

function describeHalfFormed(states: readonly CandidateState[]): {message: string; nextStep: string} {
  const alone = states.filter((state) => state.nodes.length === 1)
  const joined = states.filter((state) => state.nodes.length > 1)
  const withSlots = states.filter((state) => (myselfOf(state.nodes)?.slots.length ?? 0) > 0)
  const parts: string[] = []
  if (joined.length > 0) parts.push(`${joined.map((s) => s.address).join(', ')} have joined each other`)
  if (alone.length > 0) parts.push(`${alone.map((s) => s.address).join(', ')} have not joined`)
  if (withSlots.length > 0) parts.push(`slots are assigned on ${withSlots.map((s) => s.address).join(', ')}`)
  const message = `these nodes are a half-formed cluster: ${parts.join('; ')}`
  const healthy = joined.filter((state) => state.clusterState === 'ok')
  const restFresh = states.filter((state) => !healthy.includes(state)).every((state) => isFresh(state))
  if (healthy.length > 0 && restFresh && healthy.every((state) => healthy.every((other) => knowsAll(state, new Set([other.id as string]))))) {
    const fresh = states.filter((state) => isFresh(state)).map((state) => state.address)
    return {message, nextStep: `the joined nodes work (cluster_state:ok): add the others with slotctl add-node NEW ${healthy[0].address} [--replica], for ${fresh.join(', ')}`}
  }
  return {message, nextStep: 'none of these nodes holds keys: run CLUSTER RESET HARD on each of them (e.g. redis-cli -h HOST -p PORT CLUSTER RESET HARD) and run create again'}
}

/**
 * Decides what create should do with these nodes: form a cluster (all fresh), nothing (they
 * already are one cluster in cluster_state:ok), or refuse with one line per node at fault.
 */
export function classifyForCreate(states: readonly CandidateState[]): CreateReadiness {
  const broken = states.flatMap((state) => unusable(state) ?? [])
  if (broken.length > 0) return {kind: 'refused', problems: broken}
  if (states.every((state) => isFresh(state))) return {kind: 'fresh'}
  const ids = new Set(states.map((state) => state.id as string))
  if (states.every((state) => knowsAll(state, ids) && state.clusterState === 'ok')) {
    const extraNodes = Math.max(...states.map((state) => state.nodes.length)) - ids.size
    const masters = states[0].nodes.filter((node) => node.role === 'master' && node.slots.length > 0).length
    return {extraNodes, kind: 'exists', message: `these nodes already form a cluster (${masters} masters, ${states[0].nodes.length} nodes, cluster_state:ok)`}
  }
  // Nodes that hold keys or belong to nodes outside this list are not ours to touch.
  const problems = states.flatMap((state) => {
    if (state.keys > 0) return [`${state.address} is not empty: it holds ${state.keys} key(s)`]
    const strangers = state.nodes.filter((node) => !ids.has(node.id)).length
    if (strangers > 0) return [`${state.address} is not empty: it already belongs to a cluster with ${strangers} node(s) not given here`]
    return []
  })
  if (problems.length > 0) return {kind: 'refused', problems}
  return {kind: 'half-formed', ...describeHalfFormed(states)}
}

async function run(pool: NodePool, address: string, ...args: Array<number | string>): Promise<unknown> {
  try {
    return await (await pool.client(address)).call(String(args[0]), ...args.slice(1))
  } catch (error) {
    throw new SlotctlError(`${address} refused ${args.slice(0, 2).join(' ')}: ${errorMessage(error)}`, {code: 'E_REDIS'})
  }
}

function reachableMembers(snapshot: ClusterSnapshot): ClusterNode[] {
  return snapshot.nodes.filter((node) => snapshot.views[node.id]?.reachable)
}

export interface AddNodeOptions {
  replica: boolean
  masterId?: string
  zoneOf?: ZoneOf
  waitTimeoutMs: number
  onEvent?: (message: string) => void
  /** check and choose (empty node, master to follow) but change nothing */
  dryRun?: boolean
}

export interface AddNodeResult {
  address: string
  id: string
  role: 'master' | 'replica'
  alreadyMember: boolean
  masterId?: string
  masterAddress?: string
  warnings: Issue[]
}

function chooseMaster(snapshot: ClusterSnapshot, newAddress: string, host: string, options: AddNodeOptions): ClusterNode {
  const zoneOf = options.zoneOf ?? noZones
  if (options.masterId) {
    const master = findNode(snapshot, options.masterId)
    if (master.role !== 'master') throw usageError(`--master-id ${options.masterId} is ${master.address || master.id.slice(0, 8)}, which is not a master`)
    if (master.failed) throw new SlotctlError(`--master-id ${options.masterId} (${master.address}) is flagged fail: choose a live master`, {code: 'E_MASTER_FAILED'})
    return master
  }
  const master = chooseMasterFor({host, zone: zoneOf({address: newAddress, host})}, snapshot.nodes, zoneOf)
  if (!master) throw new SlotctlError('the cluster has no live master to replicate', {code: 'E_NO_MASTER'})
  return master
}

/**
 * Every reachable member lists the new node (past handshake), the new node knows every member
 * and the same slot map, and reports cluster_state:ok: only then can a reshard use it.
 */
async function waitForJoin(pool: NodePool, snapshot: ClusterSnapshot, newAddress: string, newId: string, timeoutMs: number): Promise<void> {
  const members = reachableMembers(snapshot)
  const expectedSignature = slotMapSignature(snapshot.nodes)
  const memberIds = snapshot.nodes.filter((node) => !node.handshake && !node.noAddress).map((node) => node.id)
  await waitUntil(`every node knows ${newAddress} and it knows the full slot map`, timeoutMs, async () => {
    const lagging: string[] = []
    const views = await mapLimit([...members.map((node) => node.address), newAddress], NODE_PARALLELISM, async (address) => ({
      address,
      nodes: parseClusterNodes(String(await pool.read(address, (client) => client.call('CLUSTER', 'NODES')))),
    }))
    for (const view of views.slice(0, -1)) {
      const entry = view.nodes.find((node) => node.id === newId)
      if (!entry || entry.handshake) lagging.push(`${view.address} does not list ${newAddress} yet`)
    }
    const own = views.at(-1)!.nodes
    const missing = memberIds.filter((id) => !own.some((node) => node.id === id && !node.handshake))
    if (missing.length > 0) lagging.push(`${newAddress} does not know ${missing.length} member(s) yet`)
    else if (slotMapSignature(own) !== expectedSignature) lagging.push(`${newAddress} does not have the full slot map yet`)
    return {done: lagging.length === 0, lagging: lagging.slice(0, 5).join('; ')}
  })
  await waitForClusterOk(pool, [newAddress], timeoutMs)
}

/** Function library name → code on a node; undefined where functions do not exist (before Redis 7). */
async function functionLibraries(pool: NodePool, address: string): Promise<Map<string, string> | undefined> {
  let reply: unknown[]
  try {
    reply = (await pool.read(address, (client) => client.call('FUNCTION', 'LIST', 'WITHCODE'))) as unknown[]
  } catch (error) {
    if (/unknown command/i.test(errorMessage(error))) return undefined
    throw new SlotctlError(`cannot list the function libraries of ${address}: ${errorMessage(error)}`, {code: 'E_FUNCTIONS'})
  }
  const libraries = new Map<string, string>()
  for (const entry of reply as unknown[][]) {
    const fields = new Map<string, unknown>()
    for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1])
    libraries.set(String(fields.get('library_name')), String(fields.get('library_code')))
  }
  return libraries
}

/**
 * Functions are not replicated between masters: a new master without the cluster's libraries
 * would fail FCALLs for the slots it later receives, so they are copied (as redis-cli does).
 * A node that already has a library the cluster lacks, or another version of one, is
 * refused: which version its keys are used with is not slotctl's to decide.
 */
export async function copyFunctions(pool: NodePool, fromAddress: string, toAddress: string): Promise<void> {
  const cluster = await functionLibraries(pool, fromAddress)
  if (!cluster || cluster.size === 0) {
    const own = cluster && (await functionLibraries(pool, toAddress))
    if (own && own.size > 0) refuseForeignLibraries(toAddress, [...own.keys()])
    return
  }
  const own = (await functionLibraries(pool, toAddress)) ?? new Map<string, string>()
  const differing = [...own].filter(([name, code]) => cluster.get(name) !== code).map(([name]) => name)
  if (differing.length > 0) refuseForeignLibraries(toAddress, differing)
  if ([...cluster.keys()].every((name) => own.has(name))) return
  try {
    const dump = await (await pool.client(fromAddress)).callBuffer('FUNCTION', 'DUMP')
    // REPLACE only rewrites libraries found equal above; the missing ones are added
    await (await pool.client(toAddress)).callBuffer('FUNCTION', 'RESTORE', dump as Buffer, 'REPLACE')
  } catch (error) {
    throw new SlotctlError(`cannot copy the cluster's functions to ${toAddress}: ${errorMessage(error)}`, {code: 'E_FUNCTIONS'})
  }
}

function refuseForeignLibraries(address: string, names: string[]): never {
  throw new SlotctlError(`${address} has function libraries that differ from the cluster's: ${names.join(', ')}`, {
    code: 'E_FUNCTIONS',
    suggestions: [`delete them on the new node (FUNCTION DELETE name, or FUNCTION FLUSH) so it takes the cluster's, or load the same versions on the cluster`],
  })
}

export async function addNode(pool: NodePool, snapshot: ClusterSnapshot, newAddress: string, host: string, options: AddNodeOptions): Promise<AddNodeResult> {
  const state = await inspectNode(pool, newAddress)
  const member = state.id ? snapshot.nodes.find((node) => node.id === state.id) : undefined
  if (member && knowsAll(state, new Set([snapshot.seedId]))) {
    const self = myselfOf(state.nodes)!
    return {address: newAddress, alreadyMember: true, id: member.id, masterId: self.masterId ?? undefined, role: self.role === 'replica' ? 'replica' : 'master', warnings: []}
  }
  const reason = notEmptyReason(state)
  if (reason) throw new SlotctlError(reason, {code: 'E_NODE_NOT_EMPTY', suggestions: ['add-node takes an empty, cluster-enabled node that knows no other node']})
  const id = state.id as string
  const master = options.replica ? chooseMaster(snapshot, newAddress, host, options) : undefined
  if (options.dryRun) return {address: newAddress, alreadyMember: false, id, ...(master ? {masterAddress: master.address, masterId: master.id} : {}), role: master ? 'replica' : 'master', warnings: []}
  if (!master) await copyFunctions(pool, snapshot.seedAddress, newAddress)
  const seed = snapshot.nodes.find((node) => node.id === snapshot.seedId)!
  options.onEvent?.(`meeting ${snapshot.seedAddress}`)
  await run(pool, newAddress, ...meetArgs({busPort: seed.busPort, ip: await resolveForMeet(seed.host), port: seed.port}))
  options.onEvent?.('waiting until every node knows the new node and it knows the slot map')
  await waitForJoin(pool, snapshot, newAddress, id, options.waitTimeoutMs)
  if (!master) return {address: newAddress, alreadyMember: false, id, role: 'master', warnings: []}

  options.onEvent?.(`replicating ${master.address} (${master.id.slice(0, 8)})`)
  await run(pool, newAddress, 'CLUSTER', 'REPLICATE', master.id)
  const all = [...reachableMembers(snapshot).map((node) => node.address), newAddress]
  await waitForReplication(pool, [{address: newAddress, masterId: master.id}], all, options.waitTimeoutMs)
  const zoneOf = options.zoneOf ?? noZones
  const warnings = placementWarnings({address: newAddress, host, zone: zoneOf({address: newAddress, host})}, master, zoneOf).map((message) => issue('ANTI_AFFINITY', message))
  return {address: newAddress, alreadyMember: false, id, masterAddress: master.address, masterId: master.id, role: 'replica', warnings}
}

export interface RemoveNodeOptions {
  /** An unreachable master that still owns slots may go (its slots become uncovered). */
  forceDeadWithSlots?: boolean
  zoneOf?: ZoneOf
  waitTimeoutMs: number
  onEvent?: (message: string) => void
}

export interface RemoveNodeResult {
  id: string
  address: string
  role: string
  reachable: boolean
  replicaMoves: ReplicaMove[]
  forgottenBy: NodeRef[]
  reset: boolean
  warnings: Issue[]
}

/**
 * A node with slots (or open slots) cannot go: its data would be lost. `deadWithSlots` lets an
 * unreachable master go anyway (del-node --accept-data-loss): its keys are gone already, and its slots
 * become uncovered for fix to hand out.
 */
export function refuseIfOwnsSlots(node: ClusterNode, deadWithSlots: {allowed: boolean; reachable: boolean; deadHint?: string} = {allowed: false, reachable: true}): void {
  if (node.slots.length > 0 && !(deadWithSlots.allowed && !deadWithSlots.reachable)) {
    const hints = deadWithSlots.reachable
      ? ['add --drain to move its slots to the other masters first (or move them with slotctl reshard or rebalance)']
      : deadWithSlots.deadHint
        ? [deadWithSlots.deadHint]
        : ['bring it back (its keys exist only there), or promote a replica of it (slotctl failover --replica ID --force)', 'if it is lost for good: add --accept-data-loss; its slots come back empty once slotctl fix gives them to the other masters']
    throw new SlotctlError(`${node.address || node.id.slice(0, 8)} (${node.id.slice(0, 8)}) still owns ${slotCount(node)} slot(s) (${formatRanges(node.slots)}): move them away before removing it`, {
      code: 'E_NODE_HAS_SLOTS',
      suggestions: hints,
    })
  }
  const open = openSlotsOf(node)
  if (open.length > 0) {
    throw new SlotctlError(`${node.address || node.id.slice(0, 8)} has open slots (${open.join(',')}): close them first`, {code: 'E_OPEN_SLOTS', suggestions: ['finish the interrupted migration (slotctl reshard --resume JOURNAL), or close the slot with CLUSTER SETSLOT <slot> STABLE']})
  }
}

async function moveReplicas(pool: NodePool, moves: readonly ReplicaMove[], timeoutMs: number): Promise<void> {
  await mapLimit(moves, NODE_PARALLELISM, (move) => run(pool, move.replicaAddress, 'CLUSTER', 'REPLICATE', move.masterId))
  // A replica refuses to forget its own master, so FORGET must wait until each has switched.
  await waitUntil('the moved replicas follow their new masters', timeoutMs, async () => {
    const lagging: string[] = []
    await mapLimit(moves, NODE_PARALLELISM, async (move) => {
      const self = myselfOf(parseClusterNodes(String(await pool.read(move.replicaAddress, (client) => client.call('CLUSTER', 'NODES')))))
      if (self?.masterId !== move.masterId) lagging.push(`${move.replicaAddress} still follows ${self?.masterId?.slice(0, 8) ?? 'nobody'}`)
    })
    return {done: lagging.length === 0, lagging: lagging.join('; ')}
  })
}

/** FORGET everywhere at once: the 60 s forget ban must not run out before the last node forgets. */
async function forgetEverywhere(pool: NodePool, others: readonly ClusterNode[], id: string): Promise<{forgottenBy: NodeRef[]; warnings: Issue[]}> {
  const results = await settleLimit(others, NODE_PARALLELISM, async (node) => (await pool.client(node.address)).call('CLUSTER', 'FORGET', id))
  const forgottenBy: NodeRef[] = []
  const warnings: Issue[] = []
  for (const [index, result] of results.entries()) {
    const node = others[index]
    if (!result.error || /unknown node/i.test(result.error.message)) forgottenBy.push(nodeRef(node))
    else warnings.push(issue('NOT_FORGOTTEN', `${node.address} did not forget it: ${result.error.message}`, {nodes: [nodeRef(node)]}))
  }
  return {forgottenBy, warnings}
}

/**
 * Removes a node that owns no slots: re-points its replicas, forgets it on every other
 * reachable node in parallel, then resets it (when reachable) so it can be reused. Works for a
 * dead node, and for a former master that Redis turned into a replica when its last slot left.
 */
export async function removeNode(pool: NodePool, snapshot: ClusterSnapshot, nodeId: string, options: RemoveNodeOptions): Promise<RemoveNodeResult> {
  const node = findNode(snapshot, nodeId)
  const reachable = Boolean(snapshot.views[node.id]?.reachable)
  refuseIfOwnsSlots(node, {allowed: Boolean(options.forceDeadWithSlots), reachable})
  const others = reachableMembers(snapshot).filter((other) => other.id !== node.id)
  if (others.length === 0) throw new SlotctlError(`${node.address} is the only reachable node: nothing would remain`, {code: 'E_LAST_NODE'})
  const warnings = snapshot.nodes
    .filter((other) => other.id !== node.id && !snapshot.views[other.id]?.reachable)
    .map((other) => issue('NOT_FORGOTTEN', `${other.address || other.id.slice(0, 8)} is unreachable and still knows the node: run del-node again once it is back`, {nodes: [nodeRef(other)]}))

  const zoneOf = options.zoneOf ?? noZones
  const moves = planReplicaMoves(reachableMembers(snapshot).concat(snapshot.nodes.filter((n) => n.id === node.id)), node.id, zoneOf)
  const orphans = snapshot.nodes.filter((other) => other.masterId === node.id && other.role === 'replica' && snapshot.views[other.id]?.reachable)
  if (orphans.length > moves.length) throw new SlotctlError(`${node.address} has replicas and there is no other live master for them`, {code: 'E_NO_MASTER'})
  if (moves.length > 0) {
    options.onEvent?.(`re-pointing ${moves.length} replica(s): ${moves.map((move) => `${move.replicaAddress} -> ${move.masterAddress}`).join(', ')}`)
    await moveReplicas(pool, moves, options.waitTimeoutMs)
  }

  options.onEvent?.(`forgetting ${node.id.slice(0, 8)} on ${others.length} node(s)`)
  const forgotten = await forgetEverywhere(pool, others, node.id)
  warnings.push(...forgotten.warnings)

  let reset = false
  if (reachable) {
    try {
      // HARD, not SOFT as redis-cli does: a new node id escapes the 60 s forget ban the
      // other nodes now hold against the old one, so the node can be added back at once.
      await run(pool, node.address, 'CLUSTER', 'RESET', 'HARD')
      reset = true
    } catch (error) {
      warnings.push(issue('NOT_RESET', `could not reset ${node.address}: ${errorMessage(error)}`, {nodes: [nodeRef(node)]}))
    }
  }
  return {address: node.address, forgottenBy: forgotten.forgottenBy, id: node.id, reachable, replicaMoves: moves, reset, role: node.role, warnings}
}
