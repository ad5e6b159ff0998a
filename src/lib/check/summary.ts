/** Per-node summaries shared by check and info (what --json reports for each node). */
import type {ClusterSnapshot} from '../cluster/loader.js'
import {countSlots, formatRanges} from '../cluster/slots.js'
import {type ClusterNode, replicasOf} from '../cluster/topology.js'

export interface NodeSummary {
  id: string
  address: string
  role: string
  masterId: string | null
  slots: string
  slotCount: number
  replicas: number
  flags: string[]
  reachable: boolean
  clusterState?: string
}

export function summarizeNode(snapshot: ClusterSnapshot, node: ClusterNode): NodeSummary {
  const view = snapshot.views[node.id]
  return {
    address: node.address,
    clusterState: view?.clusterInfo?.cluster_state,
    flags: node.flags.filter((flag) => flag !== 'myself'),
    id: node.id,
    masterId: node.masterId,
    reachable: Boolean(view?.reachable),
    replicas: node.role === 'master' ? replicasOf(snapshot.nodes, node.id).length : 0,
    role: node.role,
    slotCount: countSlots(node.slots),
    slots: formatRanges(node.slots),
  }
}

/** Masters first (by first slot), each followed by its replicas: the order operators read. */
export function orderedNodes(snapshot: ClusterSnapshot): ClusterNode[] {
  const firstSlot = (node: ClusterNode) => node.slots[0]?.[0] ?? Number.MAX_SAFE_INTEGER
  const masters = snapshot.nodes.filter((node) => node.role === 'master').sort((a, b) => firstSlot(a) - firstSlot(b) || a.address.localeCompare(b.address))
  const ordered: ClusterNode[] = []
  for (const master of masters) ordered.push(master, ...replicasOf(snapshot.nodes, master.id))
  for (const node of snapshot.nodes) if (!ordered.includes(node)) ordered.push(node)
  return ordered
}
