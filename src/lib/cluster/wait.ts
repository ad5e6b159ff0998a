import {NODE_PARALLELISM, type NodePool, delay, mapLimit} from './connection.js'
import {readNodeStateOf} from './loader.js'
import {parseInfo, slotMapSignature} from './topology.js'
import {SlotctlError} from '../core/errors.js'

export interface Progress {
  done: boolean
  /** What is still missing, named per node, for the timeout message. */
  lagging?: string
}

/**
 * Polls `probe` until it reports done. On timeout the error names what lags, because
 * "timed out" alone tells an operator nothing.
 */
export async function waitUntil(what: string, timeoutMs: number, probe: () => Promise<Progress>, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: Progress = {done: false}
  for (;;) {
    last = await probe()
    if (last.done) return
    if (Date.now() >= deadline) break
    await delay(intervalMs)
  }
  throw new SlotctlError(`timed out after ${Math.round(timeoutMs / 1000)} s waiting until ${what}${last.lagging ? `: ${last.lagging}` : ''}`, {
    code: 'E_TIMEOUT',
    suggestions: ['check the lagging node with: slotctl check HOST:PORT', 'raise --wait-timeout if the cluster is just slow'],
  })
}

/** Every node knows all the others (no handshake left) and all report the same slot map. */
export async function waitForAgreement(
  pool: NodePool,
  addresses: string[],
  timeoutMs: number,
  what = 'every node knows every other and all agree on the slot map',
  onAllKnown?: () => Promise<void>,
): Promise<void> {
  let nudged = false
  await waitUntil(what, timeoutMs, async () => {
    const states = await mapLimit(addresses, NODE_PARALLELISM, async (address) => readNodeStateOf(pool, address))
    const signatures = new Set(states.map((state) => slotMapSignature(state.nodes)))
    const lagging = states.flatMap((state, index) => {
      const known = state.nodes.filter((node) => !node.handshake && !node.noAddress).length
      return known < addresses.length ? [`${addresses[index]} knows ${known} of ${addresses.length} nodes`] : []
    })
    if (lagging.length === 0 && signatures.size > 1 && onAllKnown && !nudged) {
      nudged = true
      await onAllKnown()
    }
    if (signatures.size > 1) lagging.push('nodes still disagree on the slot map')
    return {done: lagging.length === 0, lagging: lagging.join('; ')}
  })
}

/** Each replica's link to its master is up, and every node sees it as that master's replica. */
export async function waitForReplication(pool: NodePool, replicas: Array<{address: string; masterId: string}>, allAddresses: string[], timeoutMs: number): Promise<void> {
  await waitUntil('every replica is linked to its master', timeoutMs, async () => {
    const lagging: string[] = []
    await mapLimit(replicas, NODE_PARALLELISM, async (replica) => {
      const info = parseInfo(String(await pool.read(replica.address, (client) => client.info('replication'))))
      if (info.master_link_status !== 'up') lagging.push(`${replica.address} link ${info.master_link_status ?? 'not set'}`)
    })
    const states = await mapLimit(allAddresses, NODE_PARALLELISM, async (address) => readNodeStateOf(pool, address))
    for (const [index, state] of states.entries()) {
      const unseen = replicas.filter((replica) => !state.nodes.some((node) => node.role === 'replica' && node.masterId === replica.masterId && node.address === replica.address))
      if (unseen.length > 0) lagging.push(`${allAddresses[index]} does not yet see ${unseen.length} replica(s)`)
    }
    return {done: lagging.length === 0, lagging: lagging.slice(0, 5).join('; ')}
  })
}

/** Every node reports cluster_state:ok. */
export async function waitForClusterOk(pool: NodePool, addresses: string[], timeoutMs: number): Promise<void> {
  await waitUntil('every node reports cluster_state:ok', timeoutMs, async () => {
    const states = await mapLimit(addresses, NODE_PARALLELISM, async (address) => readNodeStateOf(pool, address))
    const lagging = states.flatMap((state, index) => (state.clusterInfo.cluster_state === 'ok' ? [] : [`${addresses[index]} is ${state.clusterInfo.cluster_state}`]))
    return {done: lagging.length === 0, lagging: lagging.join('; ')}
  })
}
