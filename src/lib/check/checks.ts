/**
 * Health checks over a loaded cluster. Pure: the snapshot (and, for multiple owners, the
 * evidence gathered by scanMultipleOwners) go in, findings come out. `check` prints them;
 * fix, reshard and rebalance use them as preconditions.
 */
import type {ClusterSnapshot, NodeView} from '../cluster/loader.js'
import {SLOT_COUNT, type SlotRange, expandRanges, formatSlots, parseSlotRanges} from '../core/slots.js'
import {type ClusterNode, type MarkerKind, markersNotOn, replicasOf, shortId, slotMapSignature, slotOwners} from '../cluster/topology.js'
import {isTerminal} from '../cluster/slot-migrations.js'
import {type Issue, type NodeRef, nodeRef, rangeSet, slotSet} from '../core/result.js'

export type Severity = 'error' | 'warning'

export type FindingCode =
  | 'CLUSTER_STATE'
  | 'MASTER_AUTH_FAILED'
  | 'MASTER_FAILED'
  | 'MASTER_UNREACHABLE'
  | 'MULTIPLE_OWNERS'
  | 'NODE_HANDSHAKE'
  | 'NODE_NOADDR'
  | 'NODE_SUSPECTED'
  | 'NO_REPLICA'
  | 'OPEN_SLOT'
  | 'REPLICA_AUTH_FAILED'
  | 'REPLICA_FAILED'
  | 'REPLICA_ORPHANED'
  | 'REPLICA_SAME_HOST'
  | 'REPLICA_UNREACHABLE'
  | 'SLOTS_DISAGREE'
  | 'SLOTS_UNCOVERED'
  | 'SLOT_MIGRATION_RUNNING'

export interface Finding {
  severity: Severity
  code: FindingCode
  message: string
  nodes?: NodeRef[]
  slots?: SlotRange[]
  slotCount?: number
  /** The command that deals with it, when there is one. */
  hint?: string
}

/** slot → ids of masters holding keys for it without owning it (from scanMultipleOwners). */
export type StrayKeyEvidence = Map<number, string[]>

export interface CheckOptions {
  strayKeys?: StrayKeyEvidence
}

const error = (code: FindingCode, message: string, extra: Partial<Finding> = {}): Finding => ({code, message, severity: 'error', ...extra})
const warning = (code: FindingCode, message: string, extra: Partial<Finding> = {}): Finding => ({code, message, severity: 'warning', ...extra})

function label(node: ClusterNode): string {
  return `${node.address || '(no address)'} (${node.id.slice(0, 8)})`
}

/**
 * A master that is down and owns nothing any more (its replica took over) is removed, not
 * restarted: its nodes.conf may still import slots it was receiving when it died. Valkey ≥ 8
 * then clears the import and takes each such slot with a new config epoch as soon as the
 * import's source pings without claiming it (clusterUpdateSlotsConfigWith, "Clear my importing
 * source"), which wins the slot back from the promoted replica and deletes the keys written
 * there since ("dirty slot"). Nothing outside the node can make it forget that state before
 * it starts, so the server comes back only with an empty data directory, as a new node.
 */
function slotlessDeadMasterHint(snapshot: ClusterSnapshot, node: ClusterNode, seed = snapshot.seedAddress): string {
  return `remove it: slotctl del-node ${seed} ${node.id}. Do not restart it with its old files (its nodes.conf can take slots back from the master that replaced it); to use the server again, start it with an empty data directory and add it: slotctl add-node ${node.address || 'HOST:PORT'} ${seed}`
}

function deadMasterHint(snapshot: ClusterSnapshot, node: ClusterNode): string {
  if (node.slots.length === 0) return slotlessDeadMasterHint(snapshot, node, currentSeed(snapshot, node))
  return deadOwnerHint(snapshot, node)
}

/** The reachable, unflagged nodes and the view each has of the cluster. */
function liveViews(snapshot: ClusterSnapshot): Array<{self: ClusterNode; nodes: ClusterNode[]}> {
  return snapshot.nodes.flatMap((self) => {
    const nodes = snapshot.views[self.id]?.reachable ? snapshot.views[self.id].nodes : undefined
    return nodes && !self.failed ? [{nodes, self}] : []
  })
}

/**
 * Live masters that claim, in their own view, slots the dead `node` owns in the seed's view:
 * a replica the cluster promoted (its keys are there), or a reshard target. Only a node's own
 * claim counts: a node importing a slot ignores other claims on it (so the seed's view may
 * still give the dead node slots its promoted replica took), and a replica that missed its
 * master's last claim keeps giving those slots to their former owner.
 */
function slotHeirs(snapshot: ClusterSnapshot, node: ClusterNode): {heirs: ClusterNode[]; covered: Set<number>} {
  const deadSlots = new Set(expandRanges(node.slots))
  const heirs: ClusterNode[] = []
  const covered = new Set<number>()
  for (const {self} of liveViews(snapshot)) {
    if (self.id === node.id || self.role !== 'master') continue
    const taken = expandRanges(self.slots).filter((slot) => deadSlots.has(slot))
    if (taken.length === 0) continue
    heirs.push(self)
    for (const slot of taken) covered.add(slot)
  }
  return {covered, heirs}
}

/** The dead `node`'s slots that no live master serves in any live view: uncovered once it is removed. */
export function slotsServedByNoOther(snapshot: ClusterSnapshot, node: ClusterNode): number[] {
  const {covered} = slotHeirs(snapshot, node)
  return expandRanges(node.slots).filter((slot) => !covered.has(slot))
}

/** Whether a replica of the dead `node` (or a master that took its slots) holds or may hold its keys. */
export function keysMayBeElsewhere(snapshot: ClusterSnapshot, node: ClusterNode): boolean {
  return liveReplicasOf(snapshot, node).length > 0 || slotHeirs(snapshot, node).heirs.length > 0
}

/** Replicas of the dead node in any live view (the seed's may be behind), that answer and are not flagged. */
function liveReplicasOf(snapshot: ClusterSnapshot, node: ClusterNode): ClusterNode[] {
  const live = new Map(liveViews(snapshot).map((view) => [view.self.id, view.self]))
  const ids = new Set(liveViews(snapshot).flatMap((view) => view.nodes.filter((other) => other.role === 'replica' && other.masterId === node.id).map((other) => other.id)))
  return [...ids].flatMap((id) => {
    const replica = live.get(id)
    // its own view decides: a replica the cluster promoted meanwhile is an heir, not a replica
    return replica && replica.role === 'replica' && replica.masterId === node.id ? [replica] : []
  })
}

/**
 * The seed to name in a hint about the dead `node`: one whose view is current. The seed's own
 * view may not be (an importing target keeps giving the dead source the slot it imports); then
 * a live master that gives the dead node none of those slots is named, its heir first.
 */
export function currentSeed(snapshot: ClusterSnapshot, node: ClusterNode, heirs: readonly ClusterNode[] = []): string {
  const ownsIn = (view: readonly ClusterNode[]) => (view.find((other) => other.id === node.id)?.slots.length ?? 0) > 0
  const seedView = snapshot.views[snapshot.seedId]
  if (!seedView?.reachable || !seedView.nodes || !ownsIn(seedView.nodes)) return snapshot.seedAddress
  const current = liveViews(snapshot).filter((view) => view.self.role === 'master' && view.self.address && !ownsIn(view.nodes))
  const heirIds = new Set(heirs.map((heir) => heir.id))
  const chosen = current.find((view) => heirIds.has(view.self.id)) ?? current[0]
  return chosen ? chosen.self.address : snapshot.seedAddress
}

/**
 * A target that died right after claiming slots, before its replica heard of the claim, leaves
 * them with no live owner while the promoted replica holds their keys. Only the run's journal
 * says which replica that was, so the hint can only name the case (fix reads the journal).
 */
function promotedAfterClaim(seed: string): string {
  return `If it died while slotctl was moving slots to it and its replica has been promoted since, that replica holds their keys: slotctl fix ${seed} hands them to it (add --journal FILE if the run's journal is not in the default place).`
}

/**
 * The next step for a master that is down while it owns slots: promote its replica, let the
 * cluster finish replacing it, or remove it. A step that loses data is named only when no
 * replica of it holds or may hold its keys, judged from every live view, not the seed's alone.
 */
export function deadOwnerHint(snapshot: ClusterSnapshot, node: ClusterNode): string {
  const {covered, heirs} = slotHeirs(snapshot, node)
  const seed = currentSeed(snapshot, node, heirs)
  const replica = liveReplicasOf(snapshot, node)[0]
  // if the cluster promotes it before this runs, failover says "already master" and succeeds
  if (replica) return `promote its replica: slotctl failover ${seed} --replica ${replica.id} --force`
  const slotTotal = expandRanges(node.slots).length
  if (heirs.length > 0 && covered.size === slotTotal) {
    const names = heirs.map((heir) => `${heir.address} (${shortId(heir.id)})`).join(', ')
    return `its slots are served by ${names} now (its replica, promoted: its keys are there). Let fix settle what is still open or disputed: slotctl fix ${seed}; then ${slotlessDeadMasterHint(snapshot, node, seed)}`
  }
  if (heirs.length > 0) {
    // part of its slots moved on (a reshard target); the rest have no copy anywhere else
    return `restart it: ${slotTotal - covered.size} of its slots have no live master (${heirs.map((heir) => heir.address).join(', ')} serve${heirs.length === 1 ? 's' : ''} the others). ${promotedAfterClaim(seed)} Otherwise the keys of those slots exist only there; if it is lost for good: slotctl del-node ${seed} ${node.id} --accept-data-loss (those slots come back empty), then slotctl fix ${seed}`
  }
  return `restart it: no live master serves its slots. ${promotedAfterClaim(seed)} Otherwise its keys exist only there; if it is lost for good: slotctl del-node ${seed} ${node.id} --accept-data-loss (its slots come back empty), then slotctl fix ${seed}`
}

/** Hung and refused-login nodes are named as such: "unreachable" would send the operator to the network. */
function unreadableBecause(view: NodeView): string {
  if (view.errorCode === 'E_HUNG') return `is hung: ${view.error?.replace(/^.*? is hung: /, '') ?? 'it answers nothing'}`
  return `is unreachable: ${view.error ?? 'no answer'}`
}

/**
 * A node that refuses this run's login answers: its data is there, so the next step is the
 * right credentials, never a failover or a removal (which would lose or orphan its data).
 */
export const AUTH_FAILED_HINT = 'it answers but refuses this login (its password rotated?): run again with the password (and --user) it takes; its data is intact, so do not fail it over or remove it'

function authFailedFinding(node: ClusterNode, view: NodeView): Finding {
  const isMaster = node.role === 'master'
  const message = `${isMaster ? 'master' : 'replica'} ${label(node)} refuses this login (${view.error ?? 'authentication failed'})`
  const extra = {hint: AUTH_FAILED_HINT, nodes: [nodeRef(node)]}
  return isMaster ? error('MASTER_AUTH_FAILED', message, extra) : warning('REPLICA_AUTH_FAILED', message, extra)
}

function reachabilityFindings(snapshot: ClusterSnapshot): Finding[] {
  const findings: Finding[] = []
  const seed = snapshot.seedAddress
  for (const node of snapshot.nodes) {
    const view = snapshot.views[node.id]
    const isMaster = node.role === 'master'
    const nodes = [nodeRef(node)]
    const removeHint = `restart it, or remove it for good: slotctl del-node ${seed} ${node.id}`
    if (node.failed) {
      const hint = isMaster ? deadMasterHint(snapshot, node) : removeHint
      findings.push(isMaster && node.slots.length > 0
        ? error('MASTER_FAILED', `master ${label(node)} is flagged fail`, {hint, nodes})
        : warning(isMaster ? 'MASTER_FAILED' : 'REPLICA_FAILED', `${isMaster ? 'master without slots' : 'replica'} ${label(node)} is flagged fail`, {hint, nodes}))
    } else if (node.suspectedFailed) {
      findings.push(warning('NODE_SUSPECTED', `${label(node)} is suspected down (fail?) by ${seed}`, {nodes}))
    }
    if (view && !view.reachable && view.errorCode === 'E_AUTH') {
      findings.push(authFailedFinding(node, view))
    } else if (view && !view.reachable) {
      const message = `${isMaster ? 'master' : 'replica'} ${label(node)} ${unreadableBecause(view)}`
      findings.push(isMaster ? error('MASTER_UNREACHABLE', message, {hint: deadMasterHint(snapshot, node), nodes}) : warning('REPLICA_UNREACHABLE', message, {hint: removeHint, nodes}))
    }
    const forgetHint = `slotctl fix ${seed} --forget-failed`
    if (node.handshake) findings.push(warning('NODE_HANDSHAKE', `node ${label(node)} is stuck in handshake`, {hint: forgetHint, nodes}))
    if (node.noAddress && !node.handshake) findings.push(warning('NODE_NOADDR', `node ${node.id.slice(0, 8)} has no address (noaddr)`, {hint: forgetHint, nodes}))
  }
  return findings
}

function stateFindings(snapshot: ClusterSnapshot): Finding[] {
  return Object.values(snapshot.views)
    .filter((view) => view.reachable && view.clusterInfo && view.clusterInfo.cluster_state !== 'ok')
    .map((view) => error('CLUSTER_STATE', `${view.address} reports cluster_state:${view.clusterInfo?.cluster_state ?? 'unknown'}`, {
      // it follows from the other errors (an uncovered slot, a failed master) and clears by itself with them
      hint: `deal with the other errors; cluster_state turns ok once every slot has a live owner (slotctl check ${snapshot.seedAddress})`,
      nodes: [nodeRef(view)],
    }))
}

function agreementFindings(snapshot: ClusterSnapshot): Finding[] {
  const bySignature = new Map<string, string[]>()
  for (const view of Object.values(snapshot.views)) {
    if (!view.reachable || !view.nodes) continue
    const signature = slotMapSignature(view.nodes)
    bySignature.set(signature, [...(bySignature.get(signature) ?? []), view.id])
  }
  if (bySignature.size <= 1) return []
  const groups = [...bySignature.values()].sort((a, b) => b.length - a.length)
  const outliers = groups.slice(1).flat().map((id) => nodeRef(snapshot.views[id]))
  const names = outliers.map((node) => node.address).join(', ')
  return [error('SLOTS_DISAGREE', `nodes do not agree on the slot map: ${names} differ from the majority`, {hint: `slotctl fix ${snapshot.seedAddress} --dry-run`, nodes: outliers})]
}

function openSlotFinding(snapshot: ClusterSnapshot, node: ClusterNode, kind: MarkerKind, slots: number[], suffix = ''): Finding {
  const hint = `an interrupted slotctl run continues with its --resume JOURNAL; anything else: slotctl fix ${snapshot.seedAddress} --dry-run`
  return error('OPEN_SLOT', `${label(node)} has slots in ${kind} state: ${formatSlots(slots)}${suffix}`, {hint, nodes: [nodeRef(node)], ...slotSet(slots)})
}

/**
 * Open slots, each reported once on the master that holds it. Valkey replicates SETSLOT, so
 * its replicas show their master's markers too: those are the same open slot, not another
 * one. A marker only a replica shows (its master closed the slot while the replica missed
 * it) is a problem of its own.
 */
function openSlotFindings(snapshot: ClusterSnapshot): Finding[] {
  const findings: Finding[] = []
  const byId = new Map(snapshot.nodes.map((node) => [node.id, node]))
  for (const node of snapshot.nodes) {
    const master = node.role === 'replica' && node.masterId ? byId.get(node.masterId) : undefined
    // an unreachable master's own markers are unknown: its replica's are reported as they are
    const knownMaster = master && snapshot.views[master.id]?.reachable ? master : undefined
    const markers = markersNotOn(node, knownMaster)
    for (const kind of ['migrating', 'importing'] as const) {
      const slots = markers.filter((marker) => marker.kind === kind).map((marker) => marker.slot)
      if (slots.length === 0) continue
      const suffix = knownMaster ? ` (only the replica: its master ${label(knownMaster)} does not)` : ''
      findings.push(openSlotFinding(snapshot, node, kind, slots, suffix))
    }
  }
  return findings
}

export function uncoveredSlots(nodes: readonly ClusterNode[]): number[] {
  // from the masters' ranges, not slot by slot: a healthy cluster has no gap to walk
  const ranges = nodes.filter((node) => node.role === 'master').flatMap((node) => node.slots)
  const missing: number[] = []
  let next = 0
  for (const [start, end] of [...ranges].sort((a, b) => a[0] - b[0])) {
    for (let slot = next; slot < Math.min(start, SLOT_COUNT); slot++) missing.push(slot)
    next = Math.max(next, end + 1)
  }
  for (let slot = next; slot < SLOT_COUNT; slot++) missing.push(slot)
  return missing
}

function coverageFindings(snapshot: ClusterSnapshot): Finding[] {
  const missing = uncoveredSlots(snapshot.nodes)
  if (missing.length === 0) return []
  return [error('SLOTS_UNCOVERED', `${missing.length} of ${SLOT_COUNT} slots are not covered by any master: ${formatSlots(missing)}`, {hint: `slotctl fix ${snapshot.seedAddress} --dry-run`, ...slotSet(missing)})]
}

export function multipleOwnerFindings(snapshot: ClusterSnapshot, strayKeys: StrayKeyEvidence | undefined): Finding[] {
  if (!strayKeys) return []
  const owners = slotOwners(snapshot.nodes)
  const refOf = (id: string) => nodeRef(snapshot.views[id] ?? {address: '', id})
  const findings: Finding[] = []
  for (const [slot, holders] of [...strayKeys.entries()].sort((a, b) => a[0] - b[0])) {
    const owner = owners.get(slot)
    const names = holders.map((id) => snapshot.views[id]?.address ?? id.slice(0, 8)).join(', ')
    findings.push(error('MULTIPLE_OWNERS', `slot ${slot} has keys on ${names}, which do not own it${owner ? ` (owner: ${snapshot.views[owner]?.address ?? owner.slice(0, 8)})` : ''}`, {
      hint: `slotctl fix ${snapshot.seedAddress} --search-multiple-owners --dry-run`,
      nodes: holders.map((id) => refOf(id)),
      ...slotSet([slot]),
    }))
  }
  return findings
}

function redundancyFindings(snapshot: ClusterSnapshot): Finding[] {
  const findings: Finding[] = []
  const seed = snapshot.seedAddress
  const known = new Set(snapshot.nodes.map((node) => node.id))
  for (const replica of snapshot.nodes.filter((node) => node.role === 'replica' && node.masterId && !known.has(node.masterId))) {
    // It replicates nothing the cluster knows: no failover will ever promote it usefully.
    findings.push(warning('REPLICA_ORPHANED', `replica ${label(replica)} replicates ${replica.masterId?.slice(0, 8)}, which is not a node of this cluster`, {hint: `slotctl del-node ${seed} ${replica.id}`, nodes: [nodeRef(replica)]}))
  }
  for (const master of snapshot.nodes.filter((node) => node.role === 'master' && node.slots.length > 0 && !node.failed)) {
    const replicas = replicasOf(snapshot.nodes, master.id).filter((replica) => !replica.failed)
    if (replicas.length === 0) {
      findings.push(warning('NO_REPLICA', `master ${label(master)} has no replica: losing it loses its slots`, {hint: `add one: slotctl add-node NEW_HOST:PORT ${seed} --replica --master-id ${master.id}`, nodes: [nodeRef(master)]}))
    }
    for (const replica of replicas) {
      if (replica.host !== master.host) continue
      findings.push(warning('REPLICA_SAME_HOST', `replica ${label(replica)} is on the same host as its master ${label(master)}`, {
        hint: `add a replica on another host (slotctl add-node NEW_HOST:PORT ${seed} --replica --master-id ${master.id}), then slotctl del-node ${seed} ${replica.id}`,
        nodes: [nodeRef(replica), nodeRef(master)],
      }))
    }
  }
  return findings
}

/**
 * An atomic slot migration in flight (Valkey >= 9) leaves no marker in CLUSTER NODES, yet
 * its slots are changing hands: the cluster is not at rest until the job ends. Each job is
 * reported once, by its source.
 */
function slotMigrationFindings(snapshot: ClusterSnapshot): Finding[] {
  const findings: Finding[] = []
  for (const view of Object.values(snapshot.views)) {
    for (const job of view.slotMigrations ?? []) {
      if (isTerminal(job) || job.operation !== 'EXPORT') continue
      const target = snapshot.nodes.find((node) => node.id === job.targetNode)
      const ranges = parseSlotRanges(job.slotRanges.trim().replaceAll(/\s+/g, ',')) ?? []
      findings.push(error('SLOT_MIGRATION_RUNNING', `an atomic slot migration of slots ${job.slotRanges.replaceAll(' ', ',')} from ${view.address} to ${target ? label(target) : job.targetNode.slice(0, 8)} is in progress (${job.state})`, {
        hint: `wait until it ends: slotctl check ${snapshot.seedAddress}`,
        nodes: [nodeRef(view), {address: target?.address ?? '', id: job.targetNode}],
        ...rangeSet(ranges),
      }))
    }
  }
  return findings
}

export function runChecks(snapshot: ClusterSnapshot, options: CheckOptions = {}): Finding[] {
  const findings = [
    ...reachabilityFindings(snapshot),
    ...slotMigrationFindings(snapshot),
    ...stateFindings(snapshot),
    ...agreementFindings(snapshot),
    ...openSlotFindings(snapshot),
    ...coverageFindings(snapshot),
    ...multipleOwnerFindings(snapshot, options.strayKeys),
    ...redundancyFindings(snapshot),
  ]
  return findings.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1))
}

/** How a group of same-code findings reads ("12 replicas share a host with their master"). */
export const GROUP_SUMMARY: Partial<Record<FindingCode, string>> = {
  CLUSTER_STATE: 'nodes report a cluster_state other than ok',
  MASTER_AUTH_FAILED: 'masters refuse this login (authentication failed)',
  MASTER_FAILED: 'masters are flagged fail',
  MASTER_UNREACHABLE: 'masters are unreachable',
  MULTIPLE_OWNERS: 'slots have keys on masters that do not own them',
  NODE_HANDSHAKE: 'nodes are stuck in handshake',
  NODE_NOADDR: 'nodes have no address (noaddr)',
  NODE_SUSPECTED: 'nodes are suspected down (fail?)',
  NO_REPLICA: 'masters have no replica: losing one loses its slots',
  REPLICA_AUTH_FAILED: 'replicas refuse this login (authentication failed)',
  REPLICA_FAILED: 'replicas are flagged fail',
  REPLICA_ORPHANED: 'replicas replicate a node that is not in this cluster',
  REPLICA_SAME_HOST: 'replicas share a host with their master',
  REPLICA_UNREACHABLE: 'replicas are unreachable',
}

export const groupSummary = (code: string): string | undefined => GROUP_SUMMARY[code as FindingCode]

/** Findings as the contract's errors and warnings (the severity is the array they are in). */
export function splitFindings(findings: readonly Finding[]): {errors: Issue[]; warnings: Issue[]} {
  const toIssue = ({severity: _severity, ...rest}: Finding): Issue => rest
  return {errors: findings.filter((f) => f.severity === 'error').map(toIssue), warnings: findings.filter((f) => f.severity === 'warning').map(toIssue)}
}

export function hasErrors(findings: readonly Finding[]): boolean {
  return findings.some((finding) => finding.severity === 'error')
}

/** Codes that make moving slots unsafe: reshard/rebalance refuse to start on these. */
export const BLOCKS_MIGRATION: ReadonlySet<FindingCode> = new Set<FindingCode>([
  'CLUSTER_STATE',
  'MASTER_AUTH_FAILED',
  'MASTER_FAILED',
  'MASTER_UNREACHABLE',
  'MULTIPLE_OWNERS',
  'OPEN_SLOT',
  'SLOTS_DISAGREE',
  'SLOTS_UNCOVERED',
  'SLOT_MIGRATION_RUNNING',
])
