/** Per-node summaries shared by check and info (what --json reports for each node). */
import type {ClusterSnapshot} from '../cluster/loader.js'
import type {SlotRange} from '../core/slots.js'
import {type ClusterNode, replicasOf} from '../cluster/topology.js'
import {byAddress, byFirstSlot, rangeSet} from '../core/result.js'

export interface NodeSummary {
  id: string
  address: string
  role: string
  /** The master a replica follows (null for masters). */
  masterId: string | null
  masterAddress: string | null
  slots: SlotRange[]
  slotCount: number
  replicaCount: number
  flags: string[]
  reachable: boolean
  clusterState?: string
}

export function summarizeNode(snapshot: ClusterSnapshot, node: ClusterNode): NodeSummary {
  const view = snapshot.views[node.id]
  const master = node.masterId ? snapshot.nodes.find((other) => other.id === node.masterId) : undefined
  return {
    address: node.address,
    clusterState: view?.clusterInfo?.cluster_state,
    flags: node.flags.filter((flag) => flag !== 'myself'),
    id: node.id,
    masterAddress: node.masterId ? (master?.address ?? '') : null,
    masterId: node.masterId,
    reachable: Boolean(view?.reachable),
    replicaCount: node.role === 'master' ? replicasOf(snapshot.nodes, node.id).length : 0,
    role: node.role,
    ...rangeSet(node.slots),
  }
}

/** Masters by first slot, each followed by its replicas (by address): the order operators read. */
export function orderedNodes(snapshot: ClusterSnapshot): ClusterNode[] {
  const masters = snapshot.nodes.filter((node) => node.role === 'master').sort(byFirstSlot)
  const ordered: ClusterNode[] = []
  for (const master of masters) ordered.push(master, ...replicasOf(snapshot.nodes, master.id).sort(byAddress))
  for (const node of [...snapshot.nodes].sort(byAddress)) if (!ordered.includes(node)) ordered.push(node)
  return ordered
}
