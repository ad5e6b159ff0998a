/**
 * The fix planner: pure. Evidence about each suspicious slot goes in (who claims it, which
 * nodes hold keys for it, open-slot markers, the journal's intended target); per-slot
 * decisions come out: where the slot's keys must end up, and which masters hand theirs over.
 * Every decision moves keys into one node and never deletes any, so a wrong guess costs a
 * move, not data.
 */
import {compareText} from '../core/compare.js'

export interface MasterEvidence {
  id: string
  address: string
  /** reachable and a master in its own view: the only masters fix reads from or writes to */
  live: boolean
  slotCount: number
  /** its config epoch: its own for a live master, the highest any live master has heard of otherwise */
  configEpoch: number
  /** for a master that is down: the command that deals with it (promote its replica, or remove it) */
  nextStep?: string
  /**
   * The master sends CLUSTER SETSLOT on to its replicas (Valkey ≥ 8), so a SETSLOT STABLE
   * on it clears a marker one of its replicas still shows. Only read when a replica does.
   */
  replicatesSetslot?: boolean
}

export interface SlotEvidence {
  slot: number
  /**
   * masters whose claim on the slot counts (see effectiveClaimants): live masters that list it
   * in their own view, and a master that is down if live views name it and no live claimant
   * has a newer config epoch
   */
  claimants: string[]
  /** master id → the node id it migrates the slot to */
  migrating: Record<string, string>
  /** master id → the node id it imports the slot from */
  importing: Record<string, string>
  /** live master id → keys it holds for the slot (COUNTKEYSINSLOT) */
  keys: Record<string, number>
  /** live master id → who owns the slot in that master's own view (null: nobody) */
  viewOwner: Record<string, null | string>
  /** where an interrupted slotctl run meant to move the slot (from its journal) */
  intendedTarget?: string
  /** replica id → its master's id, for replicas showing a marker for the slot their master does not */
  replicaMarkers?: Record<string, string>
  /**
   * The slot's only claim was a dead target's that a run's journal moved it to, and `id` is
   * the replica the journal recorded for that target, promoted since (see promotedReplicas in
   * fix/evidence.ts): the slot goes to it, which replicated the target's keys. That claim is
   * left out of `claimants`.
   */
  promotedReplica?: {id: string; replaces: string}
}

export type SlotProblem =
  | 'importing-only'
  | 'migrating-only'
  | 'migrating-to-gone'
  | 'multiple-owners'
  | 'open-migration'
  | 'replica-marker'
  | 'stray-keys'
  | 'uncovered'
  | 'views-disagree'

export type FixAction =
  | 'assign' // an uncovered slot gets an owner
  | 'clear-replica-marker' // SETSLOT STABLE on a master, which passes it on to the replica still showing a marker
  | 'close-back' // an open slot goes back to its owner
  | 'merge-keys' // keys outside the owner move into it
  | 'reassert-owner' // masters that disagree are told the owner
  | 'roll-forward' // an open migration completes
  | 'settle-owner' // one of several claimants keeps the slot
  | 'skip'

export interface SlotFix {
  slot: number
  problem: SlotProblem
  action: FixAction
  /** node every key of the slot ends up on ('' when skipped) */
  destination: string
  /** live masters whose keys for the slot move into the destination */
  sources: string[]
  /** the destination takes a slot it did not own, or others doubt it: bump its epoch so its claim wins */
  claimsSlot: boolean
  reason: string
}

function liveSet(masters: readonly MasterEvidence[]): Set<string> {
  return new Set(masters.filter((master) => master.live).map((master) => master.id))
}

const keysOn = (slot: SlotEvidence, id: string) => slot.keys[id] ?? 0

/**
 * Whose claim on a slot counts, the same whichever node fix is asked. A live master's own view
 * says what it claims. A master that is down cannot be asked, so its claim is what live views
 * name; it counts only while no live claimant has a greater config epoch: a greater epoch wins
 * the slot in every view (Redis 7 leaves a node that imports the slot naming the old owner, but
 * that is a stale view, not a claim). A claim that counts keeps its slot from being given away
 * while its keys are out of reach.
 */
export function effectiveClaimants(ownClaims: readonly string[], namedByViews: readonly string[], live: ReadonlySet<string>, epochOf: (id: string) => number): string[] {
  const down = [...new Set(namedByViews)].filter((id) => !live.has(id) && !ownClaims.some((claimant) => epochOf(claimant) > epochOf(id)))
  return [...[...ownClaims].sort(), ...down.sort()]
}

export function classifySlot(slot: SlotEvidence, live: ReadonlySet<string>): SlotProblem | null {
  const migrating = Object.values(slot.migrating)
  const importing = Object.keys(slot.importing)
  if (migrating.length > 0 && importing.length > 0) return 'open-migration'
  if (migrating.length > 0) return migrating.every((target) => live.has(target)) ? 'migrating-only' : 'migrating-to-gone'
  if (importing.length > 0) return 'importing-only'
  if (slot.claimants.length === 0) return 'uncovered'
  if (slot.claimants.length > 1) return 'multiple-owners'
  const owner = slot.claimants[0]
  if (Object.entries(slot.keys).some(([id, count]) => id !== owner && count > 0)) return 'stray-keys'
  if (Object.values(slot.viewOwner).some((seen) => seen !== owner)) return 'views-disagree'
  if (Object.keys(slot.replicaMarkers ?? {}).length > 0) return 'replica-marker'
  return null
}

/**
 * An open migration rolls forward only with evidence that it got going: its target holds
 * keys, already claims the slot, or is the journal's intended target. Otherwise closing it
 * back moves nothing.
 */
function rollForwardTarget(slot: SlotEvidence, live: ReadonlySet<string>): string | undefined {
  const targets = new Set([...Object.values(slot.migrating), ...Object.keys(slot.importing)].filter((id) => live.has(id)))
  const started = [...targets].filter((id) => keysOn(slot, id) > 0 || slot.claimants.includes(id) || slot.intendedTarget === id)
  return started.sort((a, b) => keysOn(slot, b) - keysOn(slot, a) || compareText(a, b))[0]
}

/** Among several claimants, the one holding most keys keeps the slot; then the one most masters name. */
function pickClaimant(slot: SlotEvidence, claimants: readonly string[]): string {
  const votes = (id: string) => Object.values(slot.viewOwner).filter((seen) => seen === id).length
  return [...claimants].sort((a, b) => keysOn(slot, b) - keysOn(slot, a) || votes(b) - votes(a) || compareText(a, b))[0]
}

function mostKeys(slot: SlotEvidence, live: ReadonlySet<string>): string | undefined {
  const holders = Object.keys(slot.keys).filter((id) => live.has(id) && keysOn(slot, id) > 0)
  return holders.sort((a, b) => keysOn(slot, b) - keysOn(slot, a) || compareText(a, b))[0]
}

/**
 * Empty uncovered slots even out the live masters' slot counts, handed out in contiguous
 * runs (each master's share at once) so the result stays readable as ranges.
 */
class Spreader {
  private readonly quotas: Array<[string, number]>

  constructor(masters: readonly MasterEvidence[], emptySlots: number) {
    const counts = new Map(masters.filter((master) => master.live).map((master) => [master.id, master.slotCount]))
    const quota = new Map([...counts.keys()].map((id) => [id, 0]))
    for (let i = 0; i < emptySlots && counts.size > 0; i++) {
      const [id] = [...counts.entries()].sort((a, b) => a[1] - b[1] || compareText(a[0], b[0]))[0]
      counts.set(id, (counts.get(id) ?? 0) + 1)
      quota.set(id, (quota.get(id) ?? 0) + 1)
    }
    this.quotas = [...quota.entries()].filter(([, n]) => n > 0).sort((a, b) => compareText(a[0], b[0]))
  }

  next(): string | undefined {
    const current = this.quotas[0]
    if (!current) return undefined
    current[1]--
    if (current[1] === 0) this.quotas.shift()
    return current[0]
  }
}

function skip(slot: SlotEvidence, problem: SlotProblem, reason: string): SlotFix {
  return {action: 'skip', claimsSlot: false, destination: '', problem, reason, slot: slot.slot, sources: []}
}

/** A master as reasons name it: its address and short id, or the short id alone. */
function masterName(master: MasterEvidence | undefined, id: string): string {
  return master?.address ? `${master.address} (${id.slice(0, 8)})` : id.slice(0, 8)
}

function downOwnerReason(master: MasterEvidence | undefined, id: string): string {
  return `its owner ${masterName(master, id)} is down: ${master?.nextStep ?? 'bring it back or fail it over first'}`
}

/**
 * Only a replica still marks the slot open (its master closed it while the replica missed
 * the SETSLOT): the master's own SETSLOT STABLE is a no-op for the master and reaches the
 * replica through replication. A replica refuses SETSLOT from clients, so there is no other way.
 */
function clearReplicaMarker(slot: SlotEvidence, masters: ReadonlyMap<string, MasterEvidence>): SlotFix {
  const owner = slot.claimants[0]
  for (const id of new Set(Object.values(slot.replicaMarkers ?? {}))) {
    const master = masters.get(id)
    if (!master?.live) return skip(slot, 'replica-marker', `only a replica of ${id.slice(0, 8)} still shows it open, and that master is down: bring it back (or fail it over), then run fix again`)
    if (!master.replicatesSetslot) return skip(slot, 'replica-marker', `only a replica of ${master.address} still shows it open, and that master does not pass SETSLOT on to its replicas (not Valkey 8 or newer): run CLUSTER REPLICATE ${id} on the replica to resync it`)
  }
  return {action: 'clear-replica-marker', claimsSlot: false, destination: owner, problem: 'replica-marker', reason: 'only a replica still shows it open: SETSLOT STABLE on its master reaches it', slot: slot.slot, sources: []}
}

function decide(slot: SlotEvidence, problem: SlotProblem, live: ReadonlySet<string>, spreader: Spreader, masters: ReadonlyMap<string, MasterEvidence>): SlotFix {
  const deadClaimant = slot.claimants.find((id) => !live.has(id))
  if (deadClaimant) return skip(slot, problem, downOwnerReason(masters.get(deadClaimant), deadClaimant))
  if (problem === 'replica-marker') return clearReplicaMarker(slot, masters)
  const liveClaimants = slot.claimants.filter((id) => live.has(id))
  const forward = problem === 'open-migration' || problem === 'migrating-only' || problem === 'importing-only' ? rollForwardTarget(slot, live) : undefined

  let destination: string | undefined
  let action: FixAction
  let reason: string
  if (forward) {
    ;[destination, action, reason] = [forward, 'roll-forward', forwardReason(slot, forward)]
  } else if (liveClaimants.length === 1) {
    destination = liveClaimants[0]
    action = problem === 'stray-keys' ? 'merge-keys' : problem === 'views-disagree' ? 'reassert-owner' : 'close-back'
    reason = action === 'close-back' ? closeBackReason(slot, problem) : action === 'merge-keys' ? 'keys belong with the slot owner' : 'some masters name another owner'
  } else if (liveClaimants.length > 1) {
    ;[destination, action, reason] = [pickClaimant(slot, liveClaimants), 'settle-owner', `${liveClaimants.length} masters claim the slot; the one with most keys keeps it`]
  } else if (slot.promotedReplica && live.has(slot.promotedReplica.id)) {
    ;[destination, action, reason] = [slot.promotedReplica.id, 'assign', promotedReplicaReason(masters.get(slot.promotedReplica.replaces), slot.promotedReplica.replaces)]
  } else {
    const holder = mostKeys(slot, live)
    destination = holder ?? spreader.next()
    action = 'assign'
    reason = holder ? 'nobody owns the slot; it goes to the master holding its keys' : 'nobody owns the slot and no master holds keys for it'
  }
  if (!destination) return skip(slot, problem, 'no live master to give the slot to')
  const sources = Object.keys(slot.keys).filter((id) => id !== destination && live.has(id) && keysOn(slot, id) > 0).sort()
  const contested = action === 'assign' || action === 'settle-owner' || action === 'reassert-owner'
  return {action, claimsSlot: contested || slot.viewOwner[destination] !== destination, destination, problem, reason, slot: slot.slot, sources}
}

function promotedReplicaReason(dead: MasterEvidence | undefined, id: string): string {
  return `its owner ${masterName(dead, id)} is down and was the last to claim it; this node was its replica (the run's journal says so) and has taken its place`
}

function closeBackReason(slot: SlotEvidence, problem: SlotProblem): string {
  if (problem !== 'migrating-to-gone') return 'the migration never got going (no keys at its target)'
  const gone = [...new Set(Object.values(slot.migrating))].map((id) => id.slice(0, 8)).join(', ')
  return `its target ${gone} is no live master any more: the slot stays with its owner`
}

function forwardReason(slot: SlotEvidence, target: string): string {
  if (slot.intendedTarget === target) return 'the journal names this target'
  if (keysOn(slot, target) > 0) return 'its target already holds keys of the slot'
  return 'its target already claims the slot'
}

export function planFix(masters: readonly MasterEvidence[], slots: readonly SlotEvidence[]): SlotFix[] {
  const live = liveSet(masters)
  const problems = [...slots].sort((a, b) => a.slot - b.slot).map((slot) => ({problem: classifySlot(slot, live), slot}))
  const empty = problems.filter(({problem, slot}) => problem === 'uncovered' && !slot.promotedReplica && !mostKeys(slot, live)).length
  const spreader = new Spreader(masters, empty)
  const byId = new Map(masters.map((master) => [master.id, master]))
  return problems.flatMap(({problem, slot}) => (problem ? [decide(slot, problem, live, spreader, byId)] : []))
}

export interface FixGroup {
  slots: number[]
  problem: SlotProblem
  action: FixAction
  destination: string
  sources: string[]
  reason: string
}

/** Groups consecutive decisions that read the same, so 5000 uncovered slots print as one line. */
export function groupFixes(fixes: readonly SlotFix[]): FixGroup[] {
  const groups: FixGroup[] = []
  for (const fix of fixes) {
    const last = groups.at(-1)
    const same = last && last.problem === fix.problem && last.action === fix.action && last.destination === fix.destination && last.reason === fix.reason && last.sources.join() === fix.sources.join()
    if (same) last.slots.push(fix.slot)
    else groups.push({action: fix.action, destination: fix.destination, problem: fix.problem, reason: fix.reason, slots: [fix.slot], sources: fix.sources})
  }
  return groups
}
