import {usageError, failure} from '../core/errors.js'
import type {SlotRange} from '../core/slots.js'
import {type ClusterNode, replicasOf, shortId, slotCount} from '../cluster/topology.js'
import {compareNatural} from '../core/compare.js'

/** What INFO replication says about one replica, read by the caller (planners do no I/O). */
export interface ReplicaHealth {
  linkUp: boolean
  /** Bytes the replica is behind its master; undefined when either offset is unknown. */
  lag?: number
}

export interface ReplicaCandidate {
  id: string
  address: string
  host: string
  linkUp: boolean
  lag?: number
  sameHost: boolean
  eligible: boolean
  /** Why it was ranked where it is, for --dry-run. */
  reason: string
}

export interface FailoverStep {
  masterId: string
  masterAddress: string
  replicaId: string
  replicaAddress: string
  /** The master's slots, which the replica takes over. */
  slots: SlotRange[]
  slotCount: number
  candidates: ReplicaCandidate[]
}

function stepSlots(master: ClusterNode): {slots: SlotRange[]; slotCount: number} {
  return {slotCount: slotCount(master), slots: master.slots.map(([start, end]) => [start, end])}
}

export type HealthOf = (replicaId: string) => ReplicaHealth | undefined

function describe(candidate: Omit<ReplicaCandidate, 'reason'>): string {
  const parts = [candidate.linkUp ? 'link up' : 'link down', candidate.lag === undefined ? 'lag unknown' : `lag ${candidate.lag} bytes`]
  parts.push(candidate.sameHost ? 'same host as master' : 'other host')
  return parts.join(', ')
}

/** allowLinkDown: --force/--takeover exist for a dead master, whose replicas all report the link down. */
export function rankReplicas(master: ClusterNode, nodes: readonly ClusterNode[], healthOf: HealthOf, zoneOf: (host: string) => string = (h) => h, allowLinkDown = false): ReplicaCandidate[] {
  const candidates = replicasOf(nodes, master.id).map((replica) => {
    const health = healthOf(replica.id)
    const base = {
      address: replica.address,
      eligible: (allowLinkDown || Boolean(health?.linkUp)) && !replica.failed && !replica.noFailover && !replica.suspectedFailed,
      host: replica.host,
      id: replica.id,
      lag: health?.lag,
      linkUp: Boolean(health?.linkUp),
      sameHost: zoneOf(replica.host) === zoneOf(master.host),
    }
    const flags = [replica.failed ? 'failed' : '', replica.noFailover ? 'nofailover' : ''].filter(Boolean)
    return {...base, reason: describe(base) + (flags.length > 0 ? `, flagged ${flags.join(',')}` : '')}
  })
  // Smallest lag wins; another host breaks ties, since a host outage then cannot take both.
  return candidates.sort(
    (a, b) =>
      Number(b.eligible) - Number(a.eligible) ||
      (a.lag ?? Number.MAX_SAFE_INTEGER) - (b.lag ?? Number.MAX_SAFE_INTEGER) ||
      Number(a.sameHost) - Number(b.sameHost) ||
      compareNatural(a.address, b.address),
  )
}

/** Picks the replica to promote for `master`, or explains why none may be; `seed` is named in hints. */
export function chooseReplica(master: ClusterNode, nodes: readonly ClusterNode[], healthOf: HealthOf, allowLinkDown = false, zoneOf: (host: string) => string = (h) => h, seed = 'HOST:PORT'): FailoverStep {
  if (master.role !== 'master') {
    throw usageError(`${shortId(master.id)} (${master.address}) is a replica, not a master`, [`to promote it, use --replica ${shortId(master.id)}`])
  }
  const candidates = rankReplicas(master, nodes, healthOf, zoneOf, allowLinkDown)
  if (candidates.length === 0) throw failure(`master ${shortId(master.id)} (${master.address}) has no replica to promote`, 'E_NO_REPLICA', [`add one with: slotctl add-node NEW_HOST:PORT ${seed} --replica --master-id ${master.id}`])
  const best = candidates[0]
  if (!best.eligible) {
    // A graceful failover needs a live link; a dead master leaves every link down.
    const hint = allowLinkDown ? [] : [`if the master is down, promote a replica without its agreement: slotctl failover ${seed} --replica ${best.id} --force`]
    throw failure(`no replica of ${master.address} can be promoted: ${candidates.map((c) => `${c.address} (${c.reason})`).join('; ')}`, 'E_NO_REPLICA', hint)
  }
  return {candidates, masterAddress: master.address, masterId: master.id, replicaAddress: best.address, replicaId: best.id, ...stepSlots(master)}
}

/** The step for an explicit --replica. */
export function stepForReplica(replica: ClusterNode, nodes: readonly ClusterNode[], healthOf: HealthOf): FailoverStep {
  if (replica.role !== 'replica' || !replica.masterId) {
    throw usageError(`${shortId(replica.id)} (${replica.address}) is a master, not a replica`, [`to fail it over, use --master ${shortId(replica.id)}`])
  }
  const master = nodes.find((node) => node.id === replica.masterId)
  if (!master) throw failure(`the master of ${replica.address} (${shortId(replica.masterId)}) is not known to the cluster`)
  const candidates = rankReplicas(master, nodes, healthOf).filter((c) => c.id === replica.id)
  return {candidates, masterAddress: master.address, masterId: master.id, replicaAddress: replica.address, replicaId: replica.id, ...stepSlots(master)}
}

/** Every master on `host` moves to a replica elsewhere; one missing replica fails the whole plan up front. */
export function planFromHost(host: string, nodes: readonly ClusterNode[], healthOf: HealthOf, zoneOf: (host: string) => string = (h) => h, seed = 'HOST:PORT'): FailoverStep[] {
  const masters = nodes.filter((node) => node.role === 'master' && !node.failed && node.host === host && slotCount(node) > 0)
  if (masters.length === 0) throw usageError(`no master with slots is on host ${host}`)
  return masters.map((master) => {
    const elsewhere = rankReplicas(master, nodes, healthOf, zoneOf).filter((c) => !c.sameHost && c.eligible)
    if (elsewhere.length === 0) {
      throw failure(`master ${shortId(master.id)} (${master.address}) has no healthy replica on another host than ${host}`, 'E_NO_REPLICA', [
        `add a replica on another host first: slotctl add-node NEW_HOST:PORT ${seed} --replica --master-id ${master.id}`,
      ])
    }
    return {candidates: elsewhere, masterAddress: master.address, masterId: master.id, replicaAddress: elsewhere[0].address, replicaId: elsewhere[0].id, ...stepSlots(master)}
  })
}
