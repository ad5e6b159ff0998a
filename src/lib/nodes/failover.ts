import {type ClusterSnapshot, readNodeStateOf} from '../cluster/loader.js'
import {type NodePool, NODE_PARALLELISM, settleLimit} from '../cluster/connection.js'
import {errorMessage, failure, SlotctlError} from '../core/errors.js'
import {type FailoverStep, type HealthOf, type ReplicaHealth} from '../plan/failover.js'
import {type ClusterNode, myselfOf, parseInfo, shortId, slotCount} from '../cluster/topology.js'
import {waitUntil} from '../cluster/wait.js'

export type FailoverMode = 'graceful' | 'force' | 'takeover'

async function replicationInfo(pool: NodePool, address: string): Promise<Record<string, string> | undefined> {
  try {
    return parseInfo(String(await pool.read(address, (client) => client.call('INFO', 'replication'))))
  } catch {
    return undefined
  }
}

/** Link state and lag of every replica, from INFO replication on it and on its master. */
export async function readReplicaHealth(pool: NodePool, snapshot: ClusterSnapshot): Promise<HealthOf> {
  const reachable = snapshot.nodes.filter((node) => snapshot.views[node.id]?.reachable)
  const infos = await settleLimit(reachable, NODE_PARALLELISM, (node) => replicationInfo(pool, node.address))
  const infoById = new Map(reachable.map((node, index) => [node.id, infos[index].value]))
  const health = new Map<string, ReplicaHealth>()
  for (const node of snapshot.nodes) {
    if (node.role !== 'replica') continue
    const own = infoById.get(node.id)
    const master = node.masterId ? infoById.get(node.masterId) : undefined
    const replicaOffset = Number(own?.slave_repl_offset)
    const masterOffset = Number(master?.master_repl_offset)
    const lag = Number.isFinite(replicaOffset) && Number.isFinite(masterOffset) && master ? Math.max(0, masterOffset - replicaOffset) : undefined
    health.set(node.id, {lag, linkUp: own?.master_link_status === 'up'})
  }
  return (id) => health.get(id)
}

export interface FailoverOutcome {
  masterId: string
  masterAddress: string
  replicaId: string
  replicaAddress: string
  mode: FailoverMode
  elapsedMs: number
}

/** Describes what each reachable node says about the two nodes, for the timeout message. */
function describeViews(states: Array<{address: string; nodes?: ClusterNode[]; error?: string}>, step: FailoverStep): string {
  return states
    .map((state) => {
      if (!state.nodes) return `${state.address}: unreachable (${state.error})`
      const promoted = state.nodes.find((n) => n.id === step.replicaId)
      const old = state.nodes.find((n) => n.id === step.masterId)
      // slot counts too: a master that has not claimed every slot yet looks done by role alone;
      // and config epochs: a view keeps the old master's slots while its epoch is not below the claim's
      const slots = (node: ClusterNode | undefined) => (node ? `${slotCount(node) > 0 ? ` of ${slotCount(node)} slot(s)` : ''} (epoch ${node.configEpoch})` : '')
      return `${state.address} sees ${step.replicaAddress} as ${promoted?.role ?? 'unknown'}${slots(promoted)}, ${step.masterAddress} as ${old ? (old.failed ? 'failed ' : '') + old.role : 'unknown'}${slots(old)}`
    })
    .join('; ')
}

/**
 * Agreed means every reachable node's own view (replicas too, since clients may ask them):
 * the promoted node is a master owning the old master's slots, and the old master owns none
 * and, when it answers, is the new master's replica.
 */
async function promotionProgress(pool: NodePool, addresses: string[], step: FailoverStep) {
  const results = await settleLimit(addresses, NODE_PARALLELISM, async (address) => readNodeStateOf(pool, address))
  const states = results.map((result, index) => ({address: addresses[index], error: result.error ? errorMessage(result.error) : undefined, nodes: result.value?.nodes}))
  const oldAnswers = states.some((state) => state.nodes && myselfOf(state.nodes)?.id === step.masterId)
  let done = states.some((state) => state.nodes)
  for (const state of states) {
    if (!state.nodes) continue
    const promoted = state.nodes.find((n) => n.id === step.replicaId)
    const old = state.nodes.find((n) => n.id === step.masterId)
    if (promoted?.role !== 'master' || slotCount(promoted) < step.slotCount) done = false
    if (old && slotCount(old) > 0) done = false
    if (oldAnswers && old && (old.role !== 'replica' || old.masterId !== step.replicaId)) done = false
  }
  return {done, lagging: describeViews(states, step), outvoted: !done && outvoted(states, step)}
}

/**
 * The promoted node is master of the slots in its own view, but some view keeps them with
 * the old master at a config epoch not below the promoted node's own: that view never
 * takes its claim (a slot changes hands only for a greater epoch). Seen in CI on Redis 7 with
 * --force: the replica won its election at epoch 7 while every view had its failed master at
 * 8, and nothing changed for 30 s.
 */
export function outvoted(states: Array<{nodes?: ClusterNode[]}>, step: FailoverStep): boolean {
  const own = states.map((state) => state.nodes).find((nodes) => nodes && myselfOf(nodes)?.id === step.replicaId)
  const promoted = own?.find((n) => n.id === step.replicaId)
  if (!promoted || promoted.role !== 'master' || slotCount(promoted) < step.slotCount) return false
  return states.some((state) => {
    const old = state.nodes?.find((n) => n.id === step.masterId)
    return old !== undefined && slotCount(old) > 0 && old.configEpoch >= promoted.configEpoch
  })
}

/**
 * Redis abandons a manual failover after 5 s, and masters refuse to vote twice for the same
 * master's replicas within twice the node timeout: a failover that missed its vote is asked
 * again at this interval, until the caller's timeout.
 */
const FAILOVER_RETRY_MS = 6000

/** A view gets a few heartbeats to take the promoted node's claim before its epoch is raised (again). */
const BUMP_RETRY_MS = 2000

/**
 * A replica that is already master answers "You should send CLUSTER FAILOVER to a replica":
 * the failover happened (this run's earlier ask, or the cluster's own election), and the
 * wait that follows decides whether it owns the slots.
 */
async function sendFailover(pool: NodePool, step: FailoverStep, args: string[]): Promise<void> {
  const client = await pool.client(step.replicaAddress)
  try {
    await client.call('CLUSTER', 'FAILOVER', ...args)
  } catch (error) {
    if (/to a replica/i.test(errorMessage(error))) return
    throw failure(`${step.replicaAddress} refused CLUSTER FAILOVER${args.length > 0 ? ` ${args[0]}` : ''}: ${errorMessage(error)}`, 'E_FAILOVER')
  }
}

async function stillReplica(pool: NodePool, address: string): Promise<boolean> {
  return (await replicationInfo(pool, address))?.role === 'slave'
}

/** Sends CLUSTER FAILOVER to the replica and waits until every reachable node agrees on the switch. */
export async function runFailover(pool: NodePool, snapshot: ClusterSnapshot, step: FailoverStep, mode: FailoverMode, timeoutMs: number): Promise<FailoverOutcome> {
  const started = Date.now()
  const args = mode === 'graceful' ? [] : [mode.toUpperCase()]
  await sendFailover(pool, step, args)
  let lastSent = Date.now()
  // Nodes down at the start are not polled: each poll would wait out a connect timeout.
  const addresses = snapshot.nodes.filter((n) => snapshot.views[n.id]?.reachable).map((n) => n.address)
  let lastBump = 0
  const progress = async () => {
    const state = await promotionProgress(pool, addresses, step)
    if (!state.done && Date.now() - lastSent >= FAILOVER_RETRY_MS && (await stillReplica(pool, step.replicaAddress))) {
      await sendFailover(pool, step, args)
      lastSent = Date.now()
    }
    // what CLUSTER FAILOVER TAKEOVER does at the start, for a node that already won: a new
    // epoch above every one it knows, so that its claim wins in every view
    if (state.outvoted && Date.now() - lastBump >= BUMP_RETRY_MS) {
      lastBump = Date.now()
      await pool.read(step.replicaAddress, (client) => client.call('CLUSTER', 'BUMPEPOCH')).catch(() => undefined)
    }
    return state
  }
  try {
    await waitUntil(`${step.replicaAddress} is master of ${step.masterAddress}'s ${step.slotCount} slot(s) everywhere`, timeoutMs, progress, 100)
  } catch (error) {
    if (!(error instanceof SlotctlError)) throw error
    const hint = mode === 'graceful' ? `if the master ${step.masterAddress} is down or stuck, retry with: slotctl failover ${snapshot.seedAddress} --replica ${step.replicaId} --force` : mode === 'force' ? 'if most masters are unreachable, --takeover promotes without a vote (risky)' : 'check the cluster with: slotctl check HOST:PORT'
    throw new SlotctlError(`failover of ${shortId(step.masterId)} to ${step.replicaAddress} not confirmed: ${error.message}`, {code: 'E_TIMEOUT', suggestions: [hint, 'raise --timeout if the cluster is just slow']})
  }
  return {elapsedMs: Date.now() - started, masterAddress: step.masterAddress, masterId: step.masterId, mode, replicaAddress: step.replicaAddress, replicaId: step.replicaId}
}
