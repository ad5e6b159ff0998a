/**
 * Carries out fix decisions. Per slot (repairSlot): make the destination accept the slot's
 * keys, make every other owner hand new keys to it (MIGRATING), count and move every other
 * master's keys into it until none are left, then give the slot to the destination
 * everywhere in a few pipelines (close), and count once more.
 *
 * Why each step holds, against redis 7.0 src/cluster.c and valkey 8.0 src/cluster_legacy.c:
 *
 * - Keys outside their owner are lost the moment the node's config and data disagree: a node
 *   holding keys of a slot it neither owns nor imports deletes them when it checks its data
 *   against its config (verifyClusterConfigWithData at start-up on Valkey; Redis 7 sets the
 *   slot importing instead), and an owner that loses a slot it holds keys of deletes them
 *   ("dirty slot", clusterUpdateSlotsConfigWith) once a greater epoch claims it. So fix never
 *   sends SETSLOT STABLE to a node that holds keys of the slot without owning it: a slot that
 *   fails half-way stays open, every key reachable through MOVED/ASK, and the next fix sees
 *   where the keys are (an earlier version rolled such slots back and stranded moved keys).
 * - An owner that does not migrate the slot serves writes of new keys itself; counted before
 *   them, those keys would stay behind at the close and die as a dirty slot. Every owner other
 *   than the destination is therefore marked MIGRATING before its keys are counted: from then
 *   on a command for a key it lacks is redirected to the destination (getNodeByQuery: a
 *   migrating slot with missing keys answers ASK), so it gains no key, and the count that
 *   reaches 0 stays 0. SETSLOT NODE at the owner refuses while it still holds keys (both
 *   servers), and the slot is counted again after the close as a backstop.
 * - A node imports only from the slot's owner. Valkey ≥ 8 clears an import and takes the slot
 *   itself, bumping its epoch, as soon as the node it imports from sends a ping that does not
 *   claim the slot ("no longer being imported ... Clear my importing source"): importing from
 *   a non-owner, or from an owner that gives the slot away before the import is cleared,
 *   hands the slot to the importer. Non-owners fix drains are made STABLE (0 keys counted)
 *   before the close for that reason.
 * - The destination closes with SETSLOT NODE alone: one command clears its import and assigns
 *   the slot, on it and (Valkey ≥ 8) on its replicas; STABLE first would leave a moment with
 *   keys in a slot it neither owns nor imports. A destination that hands SETSLOT to its
 *   replicas before applying it (Valkey ≥ 8) first claims the slot itself, DELSLOTS + ADDSLOTS
 *   in one MULTI, for the reason migrate/slot-protocol.ts gives at claimThenHandDown.
 *   Destinations close before any other master names them, so a destination's own import is gone before its source stops claiming the
 *   slot (the Valkey take-over above cannot fire), and its config epoch is first raised above
 *   every live master's and the newest one heard of for a master that is down; an epoch that
 *   cannot be read stops the close, since a claim for a former owner with a greater epoch
 *   would take the slot back as a dirty slot (the argument of migrate/slot-protocol.ts).
 * - A destination that crashes mid-repair keeps what it took: the slot is still importing in
 *   its nodes.conf, and neither server deletes keys of an importing slot at start-up.
 * - Left open: a client that was sent ASK to a node before fix re-pointed the markers can
 *   still write there (with ASKING) in the round trip after fix counted that node empty; and a
 *   failover of an owner mid-repair (on Redis 7 the promoted replica has no MIGRATING marker,
 *   SETSLOT is not replicated) lets it take new keys again. The count after the close reports
 *   the first (the slot fails, exit 1; check and the migration verbs show and refuse keys left
 *   outside their owner); the second is outside what a client-side protocol controls, as in
 *   migrate/slot-protocol.ts.
 */
import type {NodeAddress} from '../cluster/address.js'
import {AUTH_FAILED_HINT, type Finding, runChecks} from '../check/checks.js'
import {type ClusterSnapshot, reloadUntil} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, clusterPipeline, delay, mapLimit} from '../cluster/connection.js'
import {countKeysInSlots} from '../cluster/slot-stats.js'
import {expandRanges} from '../core/slots.js'
import {waitForClusterOk} from '../cluster/wait.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {moveSlotKeys} from '../migrate/key-mover.js'
import {type SlotEndpoint, claimThenHandDown, raiseEpochAbove} from '../migrate/slot-protocol.js'
import {type ServerFeatures, handsBackTakenSlots, readServerFeaturesOf} from '../cluster/server-info.js'
import type {MasterEvidence, SlotEvidence, SlotFix} from '../plan/fix.js'
import {type ClusterNode, parseClusterNodes, slotOwners} from '../cluster/topology.js'

export interface FixApplyOptions {
  pipeline: number
  timeoutMs: number
  replace: boolean
  /** slots whose keys are moved at once */
  parallel: number
  /** how long to wait for cluster_state:ok once uncovered slots have owners */
  settleTimeoutMs: number
  /** Ctrl-C: start no further key moves; slots whose keys already moved are still closed. */
  signal?: AbortSignal
  onSlotMoved?: (fix: SlotFix, keys: number) => void
  /**
   * Slots an interrupted slotctl run had in flight (its journal): there a different copy of a
   * key at the node importing from the owner is an older copy of that run's (durable moves
   * copy, wait for the replicas, then delete), and the owner's copy wins.
   */
  ownerWins?: ReadonlySet<number>
  /** how long a master on Redis 7.0.13-7.2.3 may take to learn a destination by gossip (learnByGossip); GOSSIP_WAIT_MS */
  gossipWaitMs?: number
}

/**
 * How long a master is given to learn a destination's claim by gossip before it is told
 * (learnByGossip): the destination's broadcast arrives in milliseconds; without one, its
 * next ping to that master comes within about a second in a small cluster.
 */
const GOSSIP_WAIT_MS = 3000
const GOSSIP_POLL_MS = 50

export interface FixFailure {
  slot: number
  error: string
}

export interface FixOutcome {
  fixedSlots: number[]
  failures: FixFailure[]
  /** keys moved, including those of slots that failed later (they sit at the destination, the slot left open) */
  keysMoved: number
  /** slots left as they were because of an interruption */
  skippedSlots: number[]
}

type Setslot = Array<number | string>

/** Rounds of count-and-move per slot: only writes already redirected before the markers were set can add keys after the first. */
const MOVE_ROUNDS = 3

/**
 * The epoch a destination must get above: every other live master's, and `downEpoch`, the
 * newest heard of for a master that is down (one that comes back must not win the slot back).
 * An epoch that could not be read is not 0: it stops the close.
 */
export function epochFloor(id: string, epochs: ReadonlyMap<string, Error | number>, downEpoch: number): number {
  const others = [...epochs].filter(([other]) => other !== id).map(([, epoch]) => epoch)
  const unreadable = others.find((epoch): epoch is Error => epoch instanceof Error)
  if (unreadable) throw new SlotctlError(`${unreadable.message}: the slot is not given away without it`, {code: 'E_MIGRATION'})
  return Math.max(downEpoch, ...(others as number[]))
}

class FixRunner {
  private readonly evidence: Map<number, SlotEvidence>
  private readonly addresses: Map<string, string>
  private readonly live: string[]
  /** the newest config epoch live masters have heard of for a master that is down */
  private readonly downEpoch: number
  keysMoved = 0

  constructor(
    private readonly pool: NodePool,
    masters: readonly MasterEvidence[],
    slots: readonly SlotEvidence[],
    private readonly options: FixApplyOptions,
  ) {
    this.evidence = new Map(slots.map((slot) => [slot.slot, slot]))
    this.addresses = new Map(masters.map((master) => [master.id, master.address]))
    this.live = masters.filter((master) => master.live).map((master) => master.id)
    this.downEpoch = Math.max(0, ...masters.filter((master) => !master.live).map((master) => master.configEpoch))
  }

  endpoint(id: string): SlotEndpoint {
    return {address: this.addresses.get(id) ?? '', id}
  }

  async command(id: string, ...args: Setslot): Promise<unknown> {
    const client = await this.pool.client(this.endpoint(id).address)
    return client.call('CLUSTER', ...args)
  }

  private slotError(fix: SlotFix, message: string): SlotctlError {
    return new SlotctlError(`slot ${fix.slot}: ${message}; the slot is left open as it is (run fix again)`, {code: 'E_MIGRATION'})
  }

  /** Live masters other than the destination that own the slot in their own view. */
  private otherOwners(fix: SlotFix): string[] {
    const slot = this.evidence.get(fix.slot)!
    return this.live.filter((id) => id !== fix.destination && slot.viewOwner[id] === id)
  }

  /** Whether the slot needs keys counted and moved, or markers handled, before its close. */
  needsRepair(fix: SlotFix): boolean {
    const slot = this.evidence.get(fix.slot)!
    const marked = Object.keys(slot.migrating).length > 0 || Object.keys(slot.importing).length > 0
    return fix.sources.length > 0 || marked || this.otherOwners(fix).length > 0 || slot.viewOwner[fix.destination] !== fix.destination
  }

  /**
   * The destination accepts RESTOREs of the slot: it imports from the slot's one other owner
   * (never from anyone else, see the header), or it owns the slot and stops migrating it
   * (an owner that migrates answers ASK to every key it lacks, RESTORE-ASKING included).
   * Returns the owner the drained non-owners import from while their keys move.
   */
  private async prepareDestination(fix: SlotFix, owners: readonly string[]): Promise<string> {
    const slot = this.evidence.get(fix.slot)!
    const destination = fix.destination
    if (slot.viewOwner[destination] === destination) return destination
    if (owners.length === 0 && slot.claimants.length === 0) {
      // nobody owns it: the destination takes it (either command also clears an import); a
      // view that still names a dead or former owner refuses ADDSLOTS ("already busy")
      await this.command(destination, ...(slot.viewOwner[destination] ? ['SETSLOT', fix.slot, 'NODE', destination] : ['ADDSLOTS', fix.slot]))
      slot.viewOwner[destination] = destination
      return destination
    }
    if (owners.length !== 1) throw this.slotError(fix, `${this.endpoint(destination).address} does not own it and it has no single live owner to import it from`)
    if (slot.importing[destination] !== owners[0]) {
      await this.command(destination, 'SETSLOT', fix.slot, 'IMPORTING', owners[0])
      slot.importing[destination] = owners[0]
    }
    return owners[0]
  }

  /** Every other owner hands keys it lacks to the destination (ASK), so its count can only fall. */
  private async redirectOwners(fix: SlotFix, owners: readonly string[]): Promise<void> {
    const slot = this.evidence.get(fix.slot)!
    for (const owner of owners) {
      if (slot.migrating[owner] === fix.destination) continue
      await this.command(owner, 'SETSLOT', fix.slot, 'MIGRATING', fix.destination)
      slot.migrating[owner] = fix.destination
    }
  }

  /**
   * An owning destination that still migrates the slot (closing back) stops: it takes
   * RESTOREs then, and new keys stay with it. Its migration target is counted afterwards,
   * so keys redirected to it before the STABLE come back too.
   */
  private async stopMigratingAtDestination(fix: SlotFix): Promise<void> {
    const slot = this.evidence.get(fix.slot)!
    if (slot.viewOwner[fix.destination] !== fix.destination || !slot.migrating[fix.destination]) return
    await this.command(fix.destination, 'SETSLOT', fix.slot, 'STABLE')
    delete slot.migrating[fix.destination]
  }

  /** Keys of the slot on each live master other than the destination, counted now. */
  private async countElsewhere(fix: SlotFix): Promise<Map<string, number>> {
    const others = this.live.filter((id) => id !== fix.destination)
    const counts = await mapLimit(others, NODE_PARALLELISM, async (id) => (await countKeysInSlots(this.pool, this.endpoint(id).address, [fix.slot]))[0])
    return new Map(others.map((id, i) => [id, counts[i]]))
  }

  /**
   * A non-owner serves MIGRATE of its keys only while importing the slot and asked with
   * ASKING; it imports from the owner (see the header).
   */
  private async moveFrom(fix: SlotFix, holder: string, keys: number, owners: readonly string[], importFrom: string): Promise<void> {
    const slot = this.evidence.get(fix.slot)!
    const asking = !owners.includes(holder)
    if (asking && slot.importing[holder] !== importFrom) {
      await this.command(holder, 'SETSLOT', fix.slot, 'IMPORTING', importFrom)
      slot.importing[holder] = importFrom
    }
    try {
      // From the owner of a slot a slotctl run had in flight, its copy of a key wins: while a
      // slot is open, a key the owner holds is served (and written) there only, so a different
      // copy at the destination is an older one, left by a durable move whose delete was
      // interrupted (durable.ts). Elsewhere a conflict stops the slot unless --replace.
      const replace = this.options.replace || (!asking && Boolean(this.options.ownerWins?.has(fix.slot)))
      const result = await moveSlotKeys(this.pool, {slot: fix.slot, source: this.endpoint(holder), target: this.endpoint(fix.destination)}, {...this.options, asking, replace})
      this.keysMoved += result.keys
    } catch (error) {
      // A failed batch still moved the keys before the one that stopped it: the holder gains
      // no keys meanwhile (see the header), so what it lost is what moved.
      const left = await countKeysInSlots(this.pool, this.endpoint(holder).address, [fix.slot]).then(([count]) => count, () => keys)
      this.keysMoved += Math.max(0, keys - left)
      throw error
    }
  }

  /** Non-owners that import the slot and now hold none of its keys stop importing, before anyone gives the slot away. */
  private async stopImportingElsewhere(fix: SlotFix, counts: ReadonlyMap<string, number>): Promise<void> {
    const slot = this.evidence.get(fix.slot)!
    for (const [id, keys] of counts) {
      if (keys !== 0 || !slot.importing[id] || slot.viewOwner[id] === id) continue
      await this.command(id, 'SETSLOT', fix.slot, 'STABLE')
      delete slot.importing[id]
    }
  }

  /**
   * Everything before the close: afterwards the destination accepts the slot, every other
   * owner migrates it to the destination, and no other live master holds a key of it.
   * Throws (the slot stays open, every marker in place) otherwise. Returns the keys moved.
   */
  async repairSlot(fix: SlotFix): Promise<number> {
    const before = this.keysMoved
    const owners = this.otherOwners(fix)
    const importFrom = await this.prepareDestination(fix, owners)
    await this.redirectOwners(fix, owners)
    await this.stopMigratingAtDestination(fix)
    for (let round = 0; ; round++) {
      const counts = await this.countElsewhere(fix)
      const holders = [...counts].filter(([, keys]) => keys > 0).map(([id]) => id)
      if (holders.length === 0) {
        await this.stopImportingElsewhere(fix, counts)
        return this.keysMoved - before
      }
      if (round === MOVE_ROUNDS) throw this.slotError(fix, `keys keep arriving at ${holders.map((id) => this.endpoint(id).address).join(', ')}`)
      for (const holder of holders) await this.moveFrom(fix, holder, counts.get(holder)!, owners, importFrom)
    }
  }

  /**
   * SETSLOT STABLE on the master of each replica that still shows a marker its master does
   * not: a no-op for the master, which passes it on to its replicas (Valkey ≥ 8).
   */
  async clearReplicaMarkers(fixes: readonly SlotFix[]): Promise<FixFailure[]> {
    const byMaster = new Map<string, number[]>()
    for (const fix of fixes) {
      for (const master of new Set(Object.values(this.evidence.get(fix.slot)?.replicaMarkers ?? {}))) byMaster.set(master, [...(byMaster.get(master) ?? []), fix.slot])
    }
    const failures: FixFailure[] = []
    await mapLimit([...byMaster.entries()], NODE_PARALLELISM, async ([id, slots]) => {
      const errors = await this.pipeline(id, slots.map((slot) => ['SETSLOT', slot, 'STABLE']))
      for (const [i, slot] of slots.entries()) {
        const error = errors[i]
        if (!error) continue
        // the replicas get the STABLE anyway once they catch up; only the wait for them ran out
        const why = /NOREPLICAS/.test(error.message) ? ' (its replicas did not acknowledge in time; run fix again once they are in sync)' : ''
        failures.push({error: `${this.endpoint(id).address}: ${error.message}${why}`, slot})
      }
    })
    return failures
  }

  async pipeline(id: string, commands: Setslot[]): Promise<Array<Error | null>> {
    return clusterPipeline(this.pool, this.endpoint(id).address, commands)
  }

  /**
   * Each live master's config epoch now, or why it could not be read: a destination that
   * takes slots must get above all the others', and an epoch that cannot be read is not 0.
   */
  async epochs(liveMasters: readonly string[]): Promise<Map<string, Error | number>> {
    const epochs = await mapLimit(liveMasters, NODE_PARALLELISM, async (id): Promise<Error | number> => {
      try {
        const epoch = /cluster_my_epoch:(\d+)/.exec(String(await this.command(id, 'INFO')))?.[1]
        return epoch === undefined ? new Error(`${this.endpoint(id).address} reported no cluster_my_epoch`) : Number(epoch)
      } catch (error) {
        return new Error(`${this.endpoint(id).address} did not tell its config epoch: ${errorMessage(error)}`)
      }
    })
    return new Map(liveMasters.map((id, i) => [id, epochs[i]]))
  }

  /**
   * Destinations first (so no slot is left without an owner): one taking a slot it did not
   * own first gets a config epoch above every other master's, so that no claim of a former
   * owner can take the slot back while the pipelines below run (see
   * migrate/slot-protocol.ts for the argument), then SETSLOT NODE itself. Then every other
   * live master names the destination: told with SETSLOT NODE (an owner left with keys
   * refuses, and the count after the close reports it), or, on Redis versions with
   * redis#12564, learning it by gossip where being told could keep a stale mark
   * (learnByGossip).
   */
  async close(fixes: readonly SlotFix[], liveMasters: readonly string[]): Promise<FixFailure[]> {
    const failures: FixFailure[] = []
    const byDestination = new Map<string, SlotFix[]>()
    for (const fix of fixes) byDestination.set(fix.destination, [...(byDestination.get(fix.destination) ?? []), fix])
    const claiming = [...byDestination.entries()].filter(([, own]) => own.some((fix) => fix.claimsSlot)).map(([id]) => id)
    const epochs = claiming.length > 0 ? await this.epochs(liveMasters) : new Map<string, Error | number>()
    // one INFO server per master serves both the destinations' hand-down and learnByGossip
    const features = fixes.length > 0 ? await this.featuresOf([...new Set([...liveMasters, ...claiming])]) : new Map<string, ServerFeatures>()
    const handsDown = new Set(claiming.filter((id) => features.get(id)?.replicatedSetslot))
    await mapLimit([...byDestination.entries()], NODE_PARALLELISM, async ([id, own]) => {
      try {
        if (own.some((fix) => fix.claimsSlot)) await raiseEpochAbove(this.pool, this.endpoint(id), epochFloor(id, epochs, this.downEpoch))
        // a destination that hands SETSLOT to its replicas first claims the slots itself (slot-protocol.ts)
        if (handsDown.has(id)) await claimThenHandDown(this.pool, this.endpoint(id), own.filter((fix) => fix.claimsSlot).map((fix) => fix.slot), 1)
      } catch (error) {
        for (const fix of own) failures.push({error: errorMessage(error), slot: fix.slot})
        return
      }
      const assign = handsDown.has(id) ? own.filter((fix) => !fix.claimsSlot) : own
      const errors = await this.pipeline(id, assign.map((fix) => ['SETSLOT', fix.slot, 'NODE', id]))
      for (const [i, fix] of assign.entries()) {
        if (errors[i]) failures.push({error: `${this.endpoint(id).address}: ${errors[i]!.message}`, slot: fix.slot})
      }
    })
    const failed = new Set(failures.map((failure) => failure.slot))
    const rest = fixes.filter((fix) => !failed.has(fix.slot))
    const learning = await this.learnByGossip(rest, liveMasters, features)
    await mapLimit(liveMasters, NODE_PARALLELISM, async (id) => {
      failures.push(...(await this.tell(id, rest.filter((fix) => fix.destination !== id && !learning.get(id)?.has(fix.slot)))))
    })
    failures.push(...(await this.tellUnlearned(rest, learning)))
    return failures
  }

  /** SETSLOT NODE destination on `id` for each fix; the failures. */
  private async tell(id: string, fixes: readonly SlotFix[]): Promise<FixFailure[]> {
    const errors = await this.pipeline(id, fixes.map((fix) => ['SETSLOT', fix.slot, 'NODE', fix.destination]))
    // A master that just gave away its last slot became a replica: it follows by itself.
    return fixes.flatMap((fix, i) => (errors[i] && !/only with masters/i.test(errors[i]!.message) ? [{error: `${this.endpoint(id).address}: ${errors[i]!.message}`, slot: fix.slot}] : []))
  }

  /**
   * Masters (id → slots) that are to learn a destination from its claim, by gossip, rather
   * than from SETSLOT NODE: on Redis 7.0.13-7.0.15 and 7.2.0-7.2.3 (redis#12564), a master
   * whose view names another live master for the slot (or already the destination: nothing
   * to tell), and that holds no marker of it. Such a master may have marked the slot "owner
   * not claiming" (its named owner gave the slot away before the destination's claim reached
   * it); SETSLOT NODE keeps that mark, and a mark kept hands the slot back with its keys when
   * that master later takes it (docs/known-limitations.md), while the claim arriving by gossip
   * clears it. A view that names itself (a node never marks its own slots), nobody or a
   * master that is down (no ping of its marks anything), or that imports or migrates the slot
   * (an importing node ignores claims), is told at once, as on every other server.
   */
  private async learnByGossip(fixes: readonly SlotFix[], liveMasters: readonly string[], features: ReadonlyMap<string, ServerFeatures>): Promise<Map<string, Set<number>>> {
    const learning = new Map<string, Set<number>>()
    if (fixes.length === 0) return learning
    const affected = liveMasters.filter((id) => {
      const found = features.get(id)
      return found !== undefined && handsBackTakenSlots(found)
    })
    const live = new Set(liveMasters)
    await mapLimit(affected, NODE_PARALLELISM, async (id) => {
      const view = await this.viewOf(id).catch(() => undefined)
      if (!view) return
      const slots = fixes.filter((fix) => {
        const named = view.owners.get(fix.slot)
        return fix.destination !== id && named !== undefined && named !== id && live.has(named) && !view.marked.has(fix.slot)
      })
      if (slots.length > 0) learning.set(id, new Set(slots.map((fix) => fix.slot)))
    })
    return learning
  }

  /** A master's own view: who owns each slot, and the slots it imports or migrates. */
  private async viewOf(id: string): Promise<{owners: Map<number, string>; marked: Set<number>}> {
    const nodes = parseClusterNodes(String(await this.pool.read(this.endpoint(id).address, (client) => client.call('CLUSTER', 'NODES'))))
    const myself = nodes.find((node) => node.myself)
    return {marked: new Set([...Object.keys(myself?.importing ?? {}), ...Object.keys(myself?.migrating ?? {})].map(Number)), owners: slotOwners(nodes)}
  }

  /**
   * Waits (GOSSIP_WAIT_MS at most) until each master of `learning` names the destination of
   * each of its slots; a view that has not by then, or cannot be read, is told with SETSLOT
   * NODE after all (a claim that does not arrive must not leave the slot unassigned there).
   */
  private async tellUnlearned(fixes: readonly SlotFix[], learning: Map<string, Set<number>>): Promise<FixFailure[]> {
    const destination = new Map(fixes.map((fix) => [fix.slot, fix.destination]))
    const deadline = Date.now() + (this.options.gossipWaitMs ?? GOSSIP_WAIT_MS)
    for (;;) {
      await mapLimit([...learning.keys()], NODE_PARALLELISM, async (id) => {
        const view = await this.viewOf(id).catch(() => undefined)
        const slots = learning.get(id)!
        for (const slot of slots) if (view?.owners.get(slot) === destination.get(slot)) slots.delete(slot)
        if (slots.size === 0) learning.delete(id)
      })
      if (learning.size === 0 || Date.now() >= deadline || this.options.signal?.aborted) break
      await delay(GOSSIP_POLL_MS)
    }
    const failures: FixFailure[] = []
    await mapLimit([...learning.entries()], NODE_PARALLELISM, async ([id, slots]) => {
      failures.push(...(await this.tell(id, fixes.filter((fix) => slots.has(fix.slot)))))
    })
    return failures
  }

  /**
   * Server features by node id; a node that cannot be read is left out, which counts as
   * neither handing SETSLOT down (Valkey >= 8) nor having redis#12564.
   */
  private async featuresOf(ids: readonly string[]): Promise<Map<string, ServerFeatures>> {
    const byAddress = await readServerFeaturesOf(this.pool, ids.map((id) => this.endpoint(id).address)).catch(() => new Map<string, ServerFeatures>())
    return new Map(ids.flatMap((id): Array<[string, ServerFeatures]> => {
      const found = byAddress.get(this.endpoint(id).address)
      return found ? [[id, found]] : []
    }))
  }

  /** The backstop after the close: no live master but the destination may hold a key of a repaired slot. */
  async countAfterClose(fixes: readonly SlotFix[]): Promise<FixFailure[]> {
    const failures: FixFailure[] = []
    await mapLimit(fixes, this.options.parallel, async (fix) => {
      try {
        for (const [id, keys] of await this.countElsewhere(fix)) {
          if (keys > 0) failures.push({error: `${this.endpoint(id).address} still holds ${keys} key(s) of it after the close (written after fix counted them): run fix again`, slot: fix.slot})
        }
      } catch (error) {
        failures.push({error: `the count after the close failed: ${errorMessage(error)}`, slot: fix.slot})
      }
    })
    return failures
  }
}

/**
 * While any slot is uncovered the cluster is down and every MIGRATE bounces with
 * CLUSTERDOWN, so uncovered slots get their owner first; keys held elsewhere follow as
 * ordinary strays.
 */
async function coverUncovered(runner: FixRunner, fixes: readonly SlotFix[], masters: readonly MasterEvidence[], slots: readonly SlotEvidence[]): Promise<FixFailure[]> {
  const uncovered = fixes.filter((fix) => fix.problem === 'uncovered')
  if (uncovered.length === 0) return []
  const live = masters.filter((master) => master.live)
  const failures = await runner.close(uncovered, live.map((master) => master.id))
  const byslot = new Map(slots.map((slot) => [slot.slot, slot]))
  for (const fix of uncovered) {
    const evidence = byslot.get(fix.slot)
    if (!evidence) continue
    for (const master of live) evidence.viewOwner[master.id] = fix.destination
    evidence.claimants = [fix.destination]
  }
  return failures
}

/**
 * Redis 7 lets a node importing a slot ignore gossip about that slot's owner, so after a
 * failover it may still name the dead master, or nobody once the old master came back as a
 * replica: it counts the slot as unserved and answers CLUSTERDOWN to every MIGRATE and
 * RESTORE. Such views are pointed at the live owner first (SETSLOT NODE of another node keeps
 * the importing marker).
 */
async function repointStaleViews(runner: FixRunner, fixes: readonly SlotFix[], masters: readonly MasterEvidence[], slots: readonly SlotEvidence[]): Promise<void> {
  const live = new Set(masters.filter((master) => master.live).map((master) => master.id))
  const bySlot = new Map(slots.map((slot) => [slot.slot, slot]))
  const commands = new Map<string, Setslot[]>()
  for (const fix of fixes) {
    const evidence = bySlot.get(fix.slot)
    const owners = evidence?.claimants.filter((id) => live.has(id)) ?? []
    if (!evidence || owners.length !== 1) continue
    for (const [id, seen] of Object.entries(evidence.viewOwner)) {
      if (seen !== null && live.has(seen)) continue
      commands.set(id, [...(commands.get(id) ?? []), ['SETSLOT', fix.slot, 'NODE', owners[0]]])
      evidence.viewOwner[id] = owners[0]
    }
  }
  await mapLimit([...commands.entries()], NODE_PARALLELISM, ([id, list]) => runner.pipeline(id, list))
}

export async function applyFixes(pool: NodePool, masters: readonly MasterEvidence[], slots: readonly SlotEvidence[], fixes: readonly SlotFix[], options: FixApplyOptions): Promise<FixOutcome> {
  const ownSlots = structuredClone(slots) as SlotEvidence[]
  const runner = new FixRunner(pool, masters, ownSlots, options)
  const replicaOnly = fixes.filter((fix) => fix.action === 'clear-replica-marker')
  const actionable = fixes.filter((fix) => fix.action !== 'skip' && fix.action !== 'clear-replica-marker')
  await repointStaleViews(runner, actionable, masters, ownSlots)
  const failures = await coverUncovered(runner, actionable, masters, ownSlots)
  failures.push(...(await runner.clearReplicaMarkers(replicaOnly)))
  const failedSlots = () => new Set(failures.map((failure) => failure.slot))
  const live = masters.filter((master) => master.live)
  const coverFailed = failedSlots()
  const toRepair = actionable.filter((fix) => !coverFailed.has(fix.slot) && runner.needsRepair(fix))
  // A node that has not caught up with a failover yet answers CLUSTERDOWN to every MIGRATE.
  // If it never comes, the moves below fail and report why, slot by slot.
  if (toRepair.some((fix) => fix.sources.length > 0)) await waitForClusterOk(pool, live.map((master) => master.address), options.settleTimeoutMs).catch(() => undefined)
  const skipped = new Set<number>()
  await mapLimit(toRepair, options.parallel, async (fix) => {
    if (options.signal?.aborted) {
      skipped.add(fix.slot)
      return
    }
    try {
      const keys = await runner.repairSlot(fix)
      options.onSlotMoved?.(fix, keys)
    } catch (error) {
      failures.push({error: errorMessage(error), slot: fix.slot})
    }
  })
  const repairFailed = failedSlots()
  const ready = actionable.filter((fix) => !skipped.has(fix.slot) && !repairFailed.has(fix.slot))
  failures.push(...(await runner.close(ready, live.map((master) => master.id))))
  const closeFailed = failedSlots()
  failures.push(...(await runner.countAfterClose(toRepair.filter((fix) => !skipped.has(fix.slot) && !closeFailed.has(fix.slot)))))
  const failed = failedSlots()
  return {
    failures: failures.sort((a, b) => a.slot - b.slot),
    fixedSlots: [...ready, ...replicaOnly].map((fix) => fix.slot).filter((slot) => !failed.has(slot)).sort((a, b) => a - b),
    keysMoved: runner.keysMoved,
    skippedSlots: [...skipped].sort((a, b) => a - b),
  }
}

export interface ForgottenNode {
  id: string
  on: string
  reason: 'handshake' | 'noaddr'
}

/** An entry --forget-failed removes: stuck in handshake, or without an address. */
export function isStranger(node: ClusterNode): boolean {
  return !node.myself && (node.handshake || node.noAddress)
}

/** CLUSTER FORGET of nodes stuck in handshake or without address, on each node that lists them. */
export async function forgetStrangers(pool: NodePool, snapshot: ClusterSnapshot): Promise<ForgottenNode[]> {
  const forgotten: ForgottenNode[] = []
  const views = Object.values(snapshot.views).filter((view) => view.reachable && view.nodes)
  await mapLimit(views, NODE_PARALLELISM, async (view) => {
    const strangers = (view.nodes ?? []).filter((node) => isStranger(node))
    if (strangers.length === 0) return
    const client = await pool.client(view.address)
    for (const node of strangers) {
      // A replica refuses to forget its own master; that refusal is not worth reporting.
      const ok = await client.call('CLUSTER', 'FORGET', node.id).then(() => true, () => false)
      if (ok) forgotten.push({id: node.id, on: view.address, reason: node.handshake ? 'handshake' : 'noaddr'})
    }
  })
  return forgotten
}

/**
 * fix acts only with every slot owner readable (or --force). An owner that refuses the login
 * answers and holds its data: the way on is its credentials, never a failover or --force.
 */
export function refuseUnreachableOwners(owners: ReadonlyArray<{address: string; id: string}>, snapshot?: Pick<ClusterSnapshot, 'views'>): void {
  if (owners.length === 0) return
  const refusingLogin = owners.filter((node) => snapshot?.views[node.id]?.errorCode === 'E_AUTH')
  if (refusingLogin.length > 0) {
    const names = refusingLogin.map((node) => `${node.address || '(no address)'} (${node.id.slice(0, 8)})`).join(', ')
    throw new SlotctlError(`refusing to fix: master(s) owning slots refuse this login (authentication failed): ${names}`, {code: 'E_AUTH', suggestions: [AUTH_FAILED_HINT]})
  }
  const names = owners.map((node) => `${node.address || '(no address)'} (${node.id.slice(0, 8)})`).join(', ')
  throw new SlotctlError(`refusing to fix while master(s) owning slots are unreachable or failed: ${names}`, {
    code: 'E_UNREACHABLE_MASTER',
    suggestions: ['bring them back or fail them over (slotctl failover), or pass --force to fix what can be fixed without them'],
  })
}

/**
 * Errors that pass without anyone acting, once the cluster bus has caught up: a master that
 * just restarted keeps cluster_state:fail for its rejoin delay, and views differ until a ping
 * carries the news. When they are all that is wrong, fix waits for them (bounded) before
 * saying anything is left, as it does after a repair.
 */
const SETTLES_BY_ITSELF: ReadonlySet<string> = new Set(['CLUSTER_STATE', 'SLOTS_DISAGREE'])
/** What fix waits out after a repair: those, and open slots its own close leaves for a moment. */
const SETTLING: ReadonlySet<string> = new Set([...SETTLES_BY_ITSELF, 'OPEN_SLOT'])

export function onlySettling(errors: ReadonlyArray<{code: string}>): boolean {
  return errors.length > 0 && errors.every((finding) => SETTLES_BY_ITSELF.has(finding.code))
}

/** Whether a finding only says that slots fix left open on purpose (they failed) are open. */
function onlyLeftOpen(finding: Finding, leftOpen: ReadonlySet<number>): boolean {
  return finding.code === 'OPEN_SLOT' && expandRanges(finding.slots ?? []).every((slot) => leftOpen.has(slot))
}

/**
 * Reloads the cluster until gossip has carried the new owners everywhere (no open slot but
 * those fix left open because they failed, all views agree, cluster_state ok) or the time is
 * up; returns the last snapshot either way, because the check that follows reports whatever
 * is still wrong.
 */
export async function settledSnapshot(pool: NodePool, seed: NodeAddress, timeoutMs: number, leftOpen: ReadonlySet<number> = new Set()): Promise<ClusterSnapshot> {
  return reloadUntil(pool, seed, timeoutMs, (snapshot) => !runChecks(snapshot).some((finding) => SETTLING.has(finding.code) && !onlyLeftOpen(finding, leftOpen)))
}
