/**
 * Pure placement choices on a live topology: which master a new replica should follow, and
 * where the replicas of a node being removed should go. Anti-affinity first (another host,
 * then another zone), then the master with the fewest replicas.
 */
import {type ClusterNode, slotCount} from '../cluster/topology.js'
import {compareText} from '../core/compare.js'

/** Zone of a node, when the operator told us (by address or host). */
export type ZoneOf = (node: Pick<ClusterNode, 'address' | 'host'>) => string | undefined

export const noZones: ZoneOf = () => undefined

export interface ReplicaSpot {
  host: string
  zone?: string
}

interface Ranked {
  master: ClusterNode
  key: number[]
}

function liveMasters(nodes: readonly ClusterNode[], excluded: ReadonlySet<string>): ClusterNode[] {
  return nodes.filter((node) => node.role === 'master' && !node.failed && !node.noAddress && !excluded.has(node.id))
}

function replicaCounts(nodes: readonly ClusterNode[], excluded: ReadonlySet<string>): Map<string, ClusterNode[]> {
  const byMaster = new Map<string, ClusterNode[]>()
  for (const node of nodes) {
    if (node.role !== 'replica' || !node.masterId || excluded.has(node.id) || node.failed) continue
    byMaster.set(node.masterId, [...(byMaster.get(node.masterId) ?? []), node])
  }
  return byMaster
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return 0
}

function rank(master: ClusterNode, spot: ReplicaSpot, siblings: readonly ReplicaSpot[], zoneOf: ZoneOf): number[] {
  const masterZone = zoneOf(master)
  return [
    // a master without slots serves nothing, so a replica of it protects nothing
    slotCount(master) > 0 ? 0 : 1,
    master.host === spot.host ? 1 : 0,
    spot.zone !== undefined && spot.zone === masterZone ? 1 : 0,
    siblings.length,
    siblings.filter((sibling) => sibling.host === spot.host).length,
    siblings.filter((sibling) => spot.zone !== undefined && sibling.zone === spot.zone).length,
  ]
}

/**
 * The master a replica at `spot` should follow: with slots, on another host, in another zone,
 * with the fewest replicas, whose replicas are not on the same host. Ties: node id order, so
 * the choice is stable. Returns undefined when there is no live master.
 */
export function chooseMasterFor(spot: ReplicaSpot, nodes: readonly ClusterNode[], zoneOf: ZoneOf = noZones, excluded: ReadonlySet<string> = new Set()): ClusterNode | undefined {
  const groups = replicaCounts(nodes, excluded)
  const ranked: Ranked[] = liveMasters(nodes, excluded).map((master) => {
    const siblings = (groups.get(master.id) ?? []).map((node) => ({host: node.host, zone: zoneOf(node)}))
    return {key: rank(master, spot, siblings, zoneOf), master}
  })
  ranked.sort((a, b) => compareKeys(a.key, b.key) || compareText(a.master.id, b.master.id))
  return ranked[0]?.master
}

export interface ReplicaMove {
  replicaId: string
  replicaAddress: string
  masterId: string
  masterAddress: string
}

/**
 * New masters for the replicas of a node being removed, chosen one after the other so the
 * second move sees the first (fewest replicas first keeps them spread).
 */
export function planReplicaMoves(nodes: readonly ClusterNode[], removedId: string, zoneOf: ZoneOf = noZones): ReplicaMove[] {
  const orphans = nodes.filter((node) => node.role === 'replica' && node.masterId === removedId && !node.failed)
  let current = nodes.filter((node) => node.id !== removedId)
  const moves: ReplicaMove[] = []
  for (const orphan of orphans) {
    const spot = {host: orphan.host, zone: zoneOf(orphan)}
    const master = chooseMasterFor(spot, current.filter((node) => node.id !== orphan.id), zoneOf)
    if (!master) continue
    moves.push({masterAddress: master.address, masterId: master.id, replicaAddress: orphan.address, replicaId: orphan.id})
    current = current.map((node) => (node.id === orphan.id ? {...node, masterId: master.id} : node))
  }
  return moves
}

/** Why a chosen master is not ideal, for the operator; empty when placement is clean. */
export function placementWarnings(spot: ReplicaSpot & {address: string}, master: ClusterNode, zoneOf: ZoneOf = noZones): string[] {
  const warnings: string[] = []
  if (master.host === spot.host) warnings.push(`replica ${spot.address} is on the same host as its master ${master.address}`)
  else if (spot.zone !== undefined && spot.zone === zoneOf(master)) warnings.push(`replica ${spot.address} is in the same zone (${spot.zone}) as its master ${master.address}`)
  return warnings
}
