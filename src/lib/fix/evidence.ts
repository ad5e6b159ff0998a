/**
 * Gathers what fix decides from: the suspicious slots of a loaded cluster, with the key
 * counts every live master holds for them and each master's own idea of the owner.
 * Read-only: nothing here changes the cluster.
 *
 * Everything is read from the live masters' own views, never from the seed's beliefs about
 * other nodes, so fix decides the same whichever node it is asked.
 */
import type {ClusterSnapshot} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, mapLimit} from '../cluster/connection.js'
import type {JournalState} from '../migrate/journal.js'
import {type MasterEvidence, type SlotEvidence, effectiveClaimants} from '../plan/fix.js'
import {deadOwnerHint} from '../check/checks.js'
import {holdsKeysOutside} from '../check/scan.js'
import {countKeysInSlots} from '../cluster/slot-stats.js'
import {SLOT_COUNT, expandRanges} from '../core/slots.js'
import {readServerFeaturesOf} from '../cluster/server-info.js'
import {type ClusterNode, markersNotOn, openSlotsOf, slotCount, slotOwners} from '../cluster/topology.js'

export interface FixEvidence {
  masters: MasterEvidence[]
  slots: SlotEvidence[]
  /** masters whose claims count but that cannot be read: fix refuses to act without --force */
  unreachableOwners: ClusterNode[]
  /** slot → live masters holding keys for it without claiming it */
  strayKeys: Map<number, string[]>
}

export interface EvidenceOptions {
  /** count every foreign slot on every master, not only on masters whose key count shows strays */
  searchMultipleOwners: boolean
  journal?: JournalState
}

/**
 * Masters fix reads from and writes to: those that answer and are masters in their own view.
 * A fail flag is left out on purpose: views flag a node that came back at different times.
 */
export function liveMasters(snapshot: ClusterSnapshot): ClusterNode[] {
  return snapshot.nodes.filter((node) => node.role === 'master' && snapshot.views[node.id]?.reachable)
}

/** What the live masters see: their own claims, whom each names as owner, and the newest epoch each has heard of per node. */
interface LiveViews {
  live: ClusterNode[]
  liveIds: Set<string>
  /** live master id → slot → owner in its own view */
  owners: Map<string, Map<number, string>>
  /** slot → live masters listing it in their own view */
  ownClaims: Map<number, string[]>
  epochs: Map<string, number>
}

function readLiveViews(snapshot: ClusterSnapshot): LiveViews {
  const live = liveMasters(snapshot)
  const owners = new Map(live.map((node) => [node.id, slotOwners(snapshot.views[node.id]?.nodes ?? [])]))
  const ownClaims = new Map<number, string[]>()
  for (const node of live) for (const slot of expandRanges(node.slots)) ownClaims.set(slot, [...(ownClaims.get(slot) ?? []), node.id])
  const liveIds = new Set(live.map((node) => node.id))
  const epochs = new Map<string, number>()
  for (const node of live) {
    for (const seen of snapshot.views[node.id]?.nodes ?? []) {
      // a live master's own epoch is the truth about it; of the others, the newest one heard of
      if (seen.myself) epochs.set(seen.id, seen.configEpoch)
      else if (!liveIds.has(seen.id)) epochs.set(seen.id, Math.max(seen.configEpoch, epochs.get(seen.id) ?? 0))
    }
  }
  return {epochs, live, liveIds, ownClaims, owners}
}

function claimantsOf(views: LiveViews, slot: number): string[] {
  const named = [...views.owners.values()].flatMap((owners) => owners.get(slot) ?? [])
  return effectiveClaimants(views.ownClaims.get(slot) ?? [], named, views.liveIds, (id) => views.epochs.get(id) ?? 0)
}

/**
 * Dead target id → its replica promoted since: of the replicas the journal recorded for it,
 * the one live master whose config epoch is above the target's (a failover gives the winner
 * an epoch above every one it heard of). Only the journal can say it: once promoted, no view
 * links a replica to its old master any more (clusterSetNodeAsMaster drops the link).
 *
 * Why the replica holds the keys of a slot its dead master claimed: a durable move deletes a
 * key at the source only after the target's replicas acknowledged it (migrate/durable.ts), and
 * every later write was the target's, which replicated it as for any failover. Why the slot
 * was left with the dead target: Redis replicas do not receive CLUSTER SETSLOT and learn their
 * master's slots from its pings, so a target that dies between its claim and its next ping
 * leaves the masters naming it while the promoted replica claims only what it heard of.
 * (Valkey 9 was once seen deleting such a slot's keys itself as the replica was promoted,
 * before anything else ran: docs/known-limitations.md. Handing the slot over loses nothing
 * more; leaving it keeps the cluster down.)
 */
function promotedReplicas(views: LiveViews, journal: JournalState | undefined): Map<string, string> {
  const promoted = new Map<string, string>()
  for (const [target, replicas] of Object.entries(journal?.replicas ?? {})) {
    if (views.liveIds.has(target)) continue
    const newer = replicas.filter((id) => views.liveIds.has(id) && (views.epochs.get(id) ?? 0) > (views.epochs.get(target) ?? 0))
    if (newer.length === 1) promoted.set(target, newer[0])
  }
  return promoted
}

/**
 * A slot whose only claimant is a dead target the journal moved it to, whose replica was
 * promoted since: the claim passes to that replica (see promotedReplicas).
 */
function inheritedClaim(claimants: readonly string[], plannedTarget: string | undefined, promoted: ReadonlyMap<string, string>): {claimants: string[]; promotedReplica?: {id: string; replaces: string}} {
  const heir = plannedTarget === undefined ? undefined : promoted.get(plannedTarget)
  if (!heir || claimants.length !== 1 || claimants[0] !== plannedTarget) return {claimants: [...claimants]}
  return {claimants: [], promotedReplica: {id: heir, replaces: plannedTarget}}
}

/** Slots CLUSTER NODES alone shows to be wrong: open, not claimed by exactly one live master, or named otherwise by a view. */
function suspiciousSlots(views: LiveViews): Set<number> {
  const suspicious = new Set<number>()
  for (const node of views.live) for (const slot of openSlotsOf(node)) suspicious.add(slot)
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    const claims = views.ownClaims.get(slot) ?? []
    if (claims.length !== 1) suspicious.add(slot)
    else for (const owners of views.owners.values()) if (owners.get(slot) !== claims[0]) suspicious.add(slot)
  }
  return suspicious
}

/** master id → slot → COUNTKEYSINSLOT, asked of every live master. */
async function countKeys(pool: NodePool, live: readonly ClusterNode[], slots: readonly number[]): Promise<Map<string, Map<number, number>>> {
  const counts = new Map<string, Map<number, number>>()
  await mapLimit(live, NODE_PARALLELISM, async (node) => {
    const perSlot = await countKeysInSlots(pool, node.address, slots)
    counts.set(node.id, new Map(slots.map((slot, i) => [slot, perSlot[i]])))
  })
  return counts
}

/**
 * slot → live masters holding keys for it without claiming it in their own view. A master
 * whose key count adds up is not searched further unless `everywhere`; the others have
 * every foreign slot counted.
 */
export async function findStrayKeys(pool: NodePool, snapshot: ClusterSnapshot, everywhere: boolean): Promise<Map<number, string[]>> {
  const stray = new Map<number, string[]>()
  await mapLimit(liveMasters(snapshot), NODE_PARALLELISM, async (master) => {
    const own = expandRanges(master.slots)
    if (!everywhere && !(await holdsKeysOutside(pool, master, own))) return
    const mine = new Set(own)
    const foreign = Array.from({length: SLOT_COUNT}, (_, slot) => slot).filter((slot) => !mine.has(slot))
    const counts = await countKeysInSlots(pool, master.address, foreign)
    for (const [index, count] of counts.entries()) if (count > 0) stray.set(foreign[index], [...(stray.get(foreign[index]) ?? []), master.id])
  })
  return stray
}

/**
 * slot → replica id → master id, for every marker a reachable replica shows that its master
 * does not show the same way. Valkey replicates SETSLOT to replicas before running it on the
 * master, so a replica keeps a marker its master never set or already cleared when the
 * master answered NOREPLICAS, or when it missed the master's STABLE while disconnected.
 */
function replicaOnlyMarkers(snapshot: ClusterSnapshot): Map<number, Record<string, string>> {
  const byId = new Map(snapshot.nodes.map((node) => [node.id, node]))
  const markers = new Map<number, Record<string, string>>()
  for (const replica of snapshot.nodes) {
    if (replica.role !== 'replica' || !replica.masterId || !snapshot.views[replica.id]?.reachable) continue
    for (const {slot} of markersNotOn(replica, byId.get(replica.masterId))) markers.set(slot, {...markers.get(slot), [replica.id]: replica.masterId})
  }
  return markers
}

/** Whether each live master behind such a replica passes SETSLOT on (one INFO server each). */
async function setslotReplication(pool: NodePool, live: readonly ClusterNode[], replicaMarkers: Map<number, Record<string, string>>): Promise<Map<string, boolean>> {
  const involved = new Set([...replicaMarkers.values()].flatMap((byReplica) => Object.values(byReplica)))
  const asked = live.filter((master) => involved.has(master.id))
  const features = await readServerFeaturesOf(pool, asked.map((master) => master.address))
  return new Map(asked.map((master) => [master.id, features.get(master.address)?.replicatedSetslot ?? false]))
}

function plannedTargets(journal: JournalState | undefined): Map<number, string> {
  return new Map((journal?.plan.moves ?? []).map((move) => [move.slot, move.targetId]))
}

/** The planned targets of the slots the journal's run had not finished. */
function intendedTargets(journal: JournalState | undefined, planned: ReadonlyMap<number, string>): Map<number, string> {
  return new Map([...planned].filter(([slot]) => !journal?.doneSlots.has(slot)))
}

function openMarkers(masters: readonly ClusterNode[], slot: number, kind: 'importing' | 'migrating'): Record<string, string> {
  const markers: Record<string, string> = {}
  for (const node of masters) if (node[kind][slot]) markers[node.id] = node[kind][slot]
  return markers
}

/** Every master fix may name: the live ones, and any node a live view names as an owner. */
function masterEvidence(snapshot: ClusterSnapshot, views: LiveViews, named: ReadonlySet<string>, replicatesSetslot: ReadonlyMap<string, boolean>): MasterEvidence[] {
  const nodes = snapshot.nodes.filter((node) => views.liveIds.has(node.id) || (node.role === 'master' && !snapshot.views[node.id]?.reachable) || named.has(node.id))
  return nodes.map((node) => {
    const live = views.liveIds.has(node.id)
    return {
      address: node.address,
      configEpoch: views.epochs.get(node.id) ?? node.configEpoch,
      id: node.id,
      live,
      slotCount: live ? slotCount(node) : 0,
      ...(replicatesSetslot.has(node.id) ? {replicatesSetslot: replicatesSetslot.get(node.id)} : {}),
      ...(live ? {} : {nextStep: deadOwnerHint(snapshot, node)}),
    }
  })
}

export async function gatherFixEvidence(pool: NodePool, snapshot: ClusterSnapshot, options: EvidenceOptions): Promise<FixEvidence> {
  const views = readLiveViews(snapshot)
  const suspicious = suspiciousSlots(views)
  const promoted = promotedReplicas(views, options.journal)
  const planned = plannedTargets(options.journal)
  const strayKeys = await findStrayKeys(pool, snapshot, options.searchMultipleOwners)
  for (const slot of strayKeys.keys()) suspicious.add(slot)
  const replicaMarkers = replicaOnlyMarkers(snapshot)
  for (const slot of replicaMarkers.keys()) suspicious.add(slot)
  const replicatesSetslot = await setslotReplication(pool, views.live, replicaMarkers)
  const slots = [...suspicious].sort((a, b) => a - b)
  const counts = await countKeys(pool, views.live, slots)
  const intended = intendedTargets(options.journal, planned)
  const evidence = slots.map((slot): SlotEvidence => ({
    ...inheritedClaim(claimantsOf(views, slot), planned.get(slot), promoted),
    importing: openMarkers(views.live, slot, 'importing'),
    intendedTarget: intended.get(slot),
    keys: Object.fromEntries(views.live.map((node) => [node.id, counts.get(node.id)?.get(slot) ?? 0])),
    migrating: openMarkers(views.live, slot, 'migrating'),
    ...(replicaMarkers.has(slot) ? {replicaMarkers: replicaMarkers.get(slot)} : {}),
    slot,
    viewOwner: Object.fromEntries(views.live.map((node) => [node.id, views.owners.get(node.id)?.get(slot) ?? null])),
  }))
  const downOwners = new Set(evidence.flatMap((slot) => slot.claimants.filter((id) => !views.liveIds.has(id))))
  const named = new Set(evidence.flatMap((slot) => Object.values(slot.viewOwner).filter((id): id is string => id !== null)))
  return {
    masters: masterEvidence(snapshot, views, new Set([...named, ...downOwners]), replicatesSetslot),
    slots: evidence,
    strayKeys,
    unreachableOwners: snapshot.nodes.filter((node) => downOwners.has(node.id)),
  }
}
