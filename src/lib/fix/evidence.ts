/**
 * Gathers what fix decides from: the suspicious slots of a loaded cluster, with the key
 * counts every live master holds for them and each master's own idea of the owner.
 * Read-only: nothing here changes the cluster.
 */
import type {ClusterSnapshot} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, mapLimit} from '../cluster/connection.js'
import type {JournalState} from '../migrate/journal.js'
import type {MasterEvidence, SlotEvidence} from '../plan/fix.js'
import {scanStrayKeys} from '../check/scan.js'
import {countKeysInSlots} from '../cluster/slot-stats.js'
import {SLOT_COUNT} from '../cluster/slots.js'
import {type ClusterNode, mastersOf, openSlotsOf, slotCount, slotOwners} from '../cluster/topology.js'

export interface FixEvidence {
  masters: MasterEvidence[]
  slots: SlotEvidence[]
  /** masters that own slots but cannot be read: fix refuses to act without --force */
  unreachableOwners: ClusterNode[]
  /** slot → masters holding keys for it without owning it (only with the full scan) */
  strayKeys?: Map<number, string[]>
}

export interface EvidenceOptions {
  searchMultipleOwners: boolean
  journal?: JournalState
}

function isLive(snapshot: ClusterSnapshot, node: ClusterNode): boolean {
  return node.role === 'master' && !node.failed && Boolean(snapshot.views[node.id]?.reachable)
}

/** Owner maps of every live master's own view: the nodes fix will talk to. */
function viewOwnerMaps(snapshot: ClusterSnapshot, live: readonly ClusterNode[]): Map<string, Map<number, string>> {
  return new Map(live.map((node) => [node.id, slotOwners(snapshot.views[node.id]?.nodes ?? [])]))
}

/** Slots that CLUSTER NODES alone shows to be wrong: open, unowned, claimed twice, or seen differently. */
function suspiciousSlots(snapshot: ClusterSnapshot, viewOwners: Map<string, Map<number, string>>): Set<number> {
  const suspicious = new Set<number>()
  const claims = new Map<number, number>()
  for (const node of mastersOf(snapshot.nodes)) {
    for (const slot of openSlotsOf(node)) suspicious.add(slot)
    for (const [start, end] of node.slots) for (let s = start; s <= end; s++) claims.set(s, (claims.get(s) ?? 0) + 1)
  }
  const owners = slotOwners(snapshot.nodes)
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    if ((claims.get(slot) ?? 0) !== 1) suspicious.add(slot)
    else for (const view of viewOwners.values()) if (view.get(slot) !== owners.get(slot)) suspicious.add(slot)
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

function intendedTargets(journal: JournalState | undefined): Map<number, string> {
  if (!journal) return new Map()
  return new Map(journal.plan.moves.filter((move) => !journal.doneSlots.has(move.slot)).map((move) => [move.slot, move.targetId]))
}

function openMarkers(masters: readonly ClusterNode[], slot: number, kind: 'importing' | 'migrating'): Record<string, string> {
  const markers: Record<string, string> = {}
  for (const node of masters) if (node[kind][slot]) markers[node.id] = node[kind][slot]
  return markers
}

export async function gatherFixEvidence(pool: NodePool, snapshot: ClusterSnapshot, options: EvidenceOptions): Promise<FixEvidence> {
  const masters = mastersOf(snapshot.nodes)
  const live = masters.filter((node) => isLive(snapshot, node))
  const viewOwners = viewOwnerMaps(snapshot, live)
  const suspicious = suspiciousSlots(snapshot, viewOwners)
  const strayKeys = options.searchMultipleOwners ? await scanStrayKeys(pool, snapshot) : undefined
  for (const slot of strayKeys?.keys() ?? []) suspicious.add(slot)
  const slots = [...suspicious].sort((a, b) => a - b)
  const counts = await countKeys(pool, live, slots)
  const intended = intendedTargets(options.journal)
  const claimants = (slot: number) => masters.filter((node) => node.slots.some(([a, b]) => slot >= a && slot <= b)).map((node) => node.id)
  return {
    masters: masters.map((node) => ({address: node.address, id: node.id, live: isLive(snapshot, node), slotCount: slotCount(node)})),
    slots: slots.map((slot) => ({
      claimants: claimants(slot),
      importing: openMarkers(masters, slot, 'importing'),
      intendedTarget: intended.get(slot),
      keys: Object.fromEntries(live.map((node) => [node.id, counts.get(node.id)?.get(slot) ?? 0])),
      migrating: openMarkers(masters, slot, 'migrating'),
      slot,
      viewOwner: Object.fromEntries(live.map((node) => [node.id, viewOwners.get(node.id)?.get(slot) ?? null])),
    })),
    strayKeys,
    unreachableOwners: masters.filter((node) => node.slots.length > 0 && !isLive(snapshot, node)),
  }
}
