/**
 * Pure create planner: which nodes become masters, which replicate whom, and which slots each
 * master gets. Spreads masters across zones and hosts and keeps replicas off their master's
 * host and zone whenever another choice exists; what cannot be avoided is reported.
 */
import {type SlotRange, splitEvenly} from '../core/slots.js'

export interface CreateCandidate {
  address: string
  host: string
  zone?: string
}

export interface PlannedMaster extends CreateCandidate {
  slots: SlotRange[]
}

export interface PlannedReplica extends CreateCandidate {
  masterAddress: string
}

export interface CreatePlan {
  masters: PlannedMaster[]
  replicas: PlannedReplica[]
  /** Anti-affinity rules that could not be met with the nodes given. */
  violations: string[]
}

/** A cluster needs one master; newer servers' own test setups use one or two. */
export const MIN_MASTERS = 1

/**
 * Promoting a replica takes the votes of a majority of masters other than the failed one:
 * with fewer than 3 masters no failover can ever be elected.
 */
export const MIN_MASTERS_FOR_FAILOVER = 3

export function domainOf(node: CreateCandidate): string {
  return node.zone ?? node.host
}

export function masterCountFor(nodeCount: number, replicasPerMaster: number): number {
  return Math.floor(nodeCount / (replicasPerMaster + 1))
}

/** Takes one node from each domain in turn, so the first N picks cover as many domains as possible. */
export function interleaveByDomain(nodes: readonly CreateCandidate[], domain: (node: CreateCandidate) => string = domainOf): CreateCandidate[] {
  const groups = new Map<string, CreateCandidate[]>()
  for (const node of nodes) {
    const key = domain(node)
    groups.set(key, [...(groups.get(key) ?? []), node])
  }
  const queues = [...groups.values()].sort((a, b) => b.length - a.length)
  const order: CreateCandidate[] = []
  while (order.length < nodes.length) {
    for (const queue of queues) {
      const next = queue.shift()
      if (next) order.push(next)
    }
  }
  return order
}

/**
 * Zones first, hosts second: inside each zone the nodes are interleaved by host, then the
 * zones are interleaved, so the first picks cover every zone and, within zones, every host.
 */
function interleaveByZoneThenHost(nodes: readonly CreateCandidate[]): CreateCandidate[] {
  const byZone = new Map<string, CreateCandidate[]>()
  for (const node of nodes) {
    const key = node.zone ?? ''
    byZone.set(key, [...(byZone.get(key) ?? []), node])
  }
  const zoneQueues = [...byZone.values()].map((group) => interleaveByDomain(group, (node) => node.host)).sort((a, b) => b.length - a.length)
  const order: CreateCandidate[] = []
  while (order.length < nodes.length) {
    for (const queue of zoneQueues) {
      const next = queue.shift()
      if (next) order.push(next)
    }
  }
  return order
}

const SAME_HOST_AS_MASTER = 10_000
const SAME_ZONE_AS_MASTER = 1000
const SIBLING_SAME_HOST = 10
const SIBLING_SAME_ZONE = 1

const sameZone = (a: CreateCandidate, b: CreateCandidate) => a.zone !== undefined && a.zone === b.zone

/** Anti-affinity cost of one master's group of replicas; lower is better, 0 is perfect. */
function groupCost(master: CreateCandidate, replicas: readonly CreateCandidate[]): number {
  let cost = 0
  for (const [index, replica] of replicas.entries()) {
    if (replica.host === master.host) cost += SAME_HOST_AS_MASTER
    if (sameZone(replica, master)) cost += SAME_ZONE_AS_MASTER
    for (const sibling of replicas.slice(index + 1)) {
      if (sibling.host === replica.host) cost += SIBLING_SAME_HOST
      if (sameZone(sibling, replica)) cost += SIBLING_SAME_ZONE
    }
  }
  return cost
}

/** Greedy first guess: round by round, each master takes the cheapest remaining node. */
function assignGreedily(masters: readonly PlannedMaster[], pool: CreateCandidate[]): CreateCandidate[][] {
  const groups: CreateCandidate[][] = masters.map(() => [])
  while (pool.length > 0) {
    for (const [index, master] of masters.entries()) {
      if (pool.length === 0) break
      let best = 0
      let bestCost = Number.POSITIVE_INFINITY
      for (const [candidateIndex, candidate] of pool.entries()) {
        const cost = groupCost(master, [...groups[index], candidate])
        if (cost < bestCost) {
          best = candidateIndex
          bestCost = cost
        }
      }
      groups[index].push(...pool.splice(best, 1))
    }
  }
  return groups
}

/**
 * Greedy choices can strand the last master with only same-host nodes. Swapping two
 * replicas between masters whenever that lowers the total cost fixes those cases; group
 * sizes never change, so replicas stay evenly spread. Deterministic, and cheap at cluster sizes.
 */
function improveBySwaps(masters: readonly PlannedMaster[], groups: CreateCandidate[][]): void {
  for (let improved = true, rounds = 0; improved && rounds < 100; rounds++) {
    improved = false
    for (let a = 0; a < groups.length; a++) {
      for (let b = a + 1; b < groups.length; b++) {
        for (let i = 0; i < groups[a].length; i++) {
          for (let j = 0; j < groups[b].length; j++) {
            const before = groupCost(masters[a], groups[a]) + groupCost(masters[b], groups[b])
            const swappedA = [...groups[a]]
            const swappedB = [...groups[b]]
            swappedA[i] = groups[b][j]
            swappedB[j] = groups[a][i]
            if (groupCost(masters[a], swappedA) + groupCost(masters[b], swappedB) < before) {
              groups[a] = swappedA
              groups[b] = swappedB
              improved = true
            }
          }
        }
      }
    }
  }
}

export function describeViolations(masters: readonly CreateCandidate[], replicas: readonly PlannedReplica[]): string[] {
  const violations: string[] = []
  for (const master of masters) {
    const own = replicas.filter((replica) => replica.masterAddress === master.address)
    for (const replica of own) {
      if (replica.host === master.host) violations.push(`replica ${replica.address} is on the same host as its master ${master.address}`)
      else if (sameZone(replica, master)) violations.push(`replica ${replica.address} is in the same zone (${replica.zone}) as its master ${master.address}`)
    }
    const hosts = own.map((replica) => replica.host)
    if (new Set(hosts).size < hosts.length) violations.push(`several replicas of ${master.address} share a host`)
    const zones = own.flatMap((replica) => (replica.zone === undefined ? [] : [replica.zone]))
    if (new Set(zones).size < zones.length) violations.push(`several replicas of ${master.address} share a zone`)
  }
  const masterHosts = masters.map((master) => master.host)
  const allHosts = new Set([...masterHosts, ...replicas.map((replica) => replica.host)])
  if (new Set(masterHosts).size < Math.min(masters.length, allHosts.size)) violations.push('masters are not spread over as many hosts as possible')
  const zoneCount = new Set([...masters, ...replicas].flatMap((node) => (node.zone === undefined ? [] : [node.zone]))).size
  const masterZones = new Set(masters.flatMap((master) => (master.zone === undefined ? [] : [master.zone])))
  if (zoneCount > 0 && masterZones.size < Math.min(masters.length, zoneCount)) violations.push('masters are not spread over as many zones as possible')
  return violations
}

export function planCreate(nodes: readonly CreateCandidate[], replicasPerMaster: number): CreatePlan {
  const masterCount = masterCountFor(nodes.length, replicasPerMaster)
  const ordered = interleaveByZoneThenHost(nodes)
  const slotRanges = splitEvenly(masterCount)
  const masters: PlannedMaster[] = ordered.slice(0, masterCount).map((node, index) => ({...node, slots: [slotRanges[index]]}))
  // Nodes beyond masters × (replicas + 1) become extra replicas, spread the same way.
  const groups = assignGreedily(masters, ordered.slice(masterCount))
  improveBySwaps(masters, groups)
  const replicas: PlannedReplica[] = groups.flatMap((group, index) => group.map((node) => ({...node, masterAddress: masters[index].address})))
  return {masters, replicas, violations: describeViolations(masters, replicas)}
}
