/**
 * Pure create planner: which nodes become masters, which replicate whom, and which slots each
 * master gets. Spreads masters across failure domains (zone when known, else host) and keeps
 * replicas off their master's domain whenever another choice exists.
 */
import {type SlotRange, splitEvenly} from '../slots.js'

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

export function domainOf(node: CreateCandidate): string {
  return node.zone ?? node.host
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

function replicaCost(candidate: CreateCandidate, master: CreateCandidate, siblings: readonly CreateCandidate[]): number {
  let cost = 0
  if (candidate.host === master.host) cost += 10_000
  if (candidate.zone !== undefined && candidate.zone === master.zone) cost += 1000
  for (const sibling of siblings) {
    if (sibling.host === candidate.host) cost += 10
    if (candidate.zone !== undefined && sibling.zone === candidate.zone) cost += 1
  }
  return cost
}

function describeViolations(masters: readonly PlannedMaster[], replicas: readonly PlannedReplica[]): string[] {
  const violations: string[] = []
  for (const master of masters) {
    const own = replicas.filter((replica) => replica.masterAddress === master.address)
    for (const replica of own) {
      if (replica.host === master.host) violations.push(`replica ${replica.address} is on the same host as its master ${master.address}`)
      else if (replica.zone !== undefined && replica.zone === master.zone) violations.push(`replica ${replica.address} is in the same zone (${replica.zone}) as its master ${master.address}`)
    }
    const hosts = own.map((replica) => replica.host)
    if (new Set(hosts).size < hosts.length) violations.push(`several replicas of ${master.address} share a host`)
  }
  return violations
}

export function planCreate(nodes: readonly CreateCandidate[], replicasPerMaster: number): CreatePlan {
  const masterCount = Math.floor(nodes.length / (replicasPerMaster + 1))
  const ordered = interleaveByDomain(nodes)
  const slotRanges = splitEvenly(masterCount)
  const masters: PlannedMaster[] = ordered.slice(0, masterCount).map((node, index) => ({...node, slots: [slotRanges[index]]}))
  const pool = ordered.slice(masterCount)
  const replicas: PlannedReplica[] = []
  // Fill replicas round by round, so every master gets its k-th replica before any gets k+1;
  // nodes left over after the requested rounds become extra replicas the same way.
  while (pool.length > 0) {
    for (const master of masters) {
      if (pool.length === 0) break
      const siblings = replicas.filter((replica) => replica.masterAddress === master.address)
      let best = 0
      for (let i = 1; i < pool.length; i++) if (replicaCost(pool[i], master, siblings) < replicaCost(pool[best], master, siblings)) best = i
      const [chosen] = pool.splice(best, 1)
      replicas.push({...chosen, masterAddress: master.address})
    }
  }
  return {masters, replicas, violations: describeViolations(masters, replicas)}
}
