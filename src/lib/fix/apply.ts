/**
 * Carries out fix decisions. Per slot: make the destination accept the slot's keys, move
 * every other master's keys into it (MIGRATE never deletes a key the target did not take),
 * then give the slot to the destination everywhere in a few pipelines. A slot that cannot
 * be finished (a key conflict) is put back as it was found, minus the keys that moved.
 */
import type {NodeAddress} from '../cluster/address.js'
import {runChecks} from '../check/checks.js'
import {type ClusterSnapshot, reloadUntil} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, clusterPipeline, mapLimit} from '../cluster/connection.js'
import {waitForClusterOk} from '../nodes/create.js'
import {SlotctlError, errorMessage} from '../errors.js'
import {moveSlotKeys} from '../migrate/key-mover.js'
import {type SlotEndpoint, raiseEpochAbove} from '../migrate/slot-protocol.js'
import type {MasterEvidence, SlotEvidence, SlotFix} from '../plan/fix.js'
import type {ClusterNode} from '../cluster/topology.js'

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
}

export interface FixFailure {
  slot: number
  error: string
}

export interface FixOutcome {
  fixedSlots: number[]
  failures: FixFailure[]
  keysMoved: number
  /** slots left as they were because of an interruption */
  skippedSlots: number[]
}

type Setslot = Array<number | string>

class FixRunner {
  private readonly evidence: Map<number, SlotEvidence>
  private readonly addresses: Map<string, string>
  /** the newest config epoch live masters have heard of for a master that is down */
  private readonly downEpoch: number

  constructor(
    private readonly pool: NodePool,
    masters: readonly MasterEvidence[],
    slots: readonly SlotEvidence[],
    private readonly options: FixApplyOptions,
  ) {
    this.evidence = new Map(slots.map((slot) => [slot.slot, slot]))
    this.addresses = new Map(masters.map((master) => [master.id, master.address]))
    this.downEpoch = Math.max(0, ...masters.filter((master) => !master.live).map((master) => master.configEpoch))
  }

  endpoint(id: string): SlotEndpoint {
    return {address: this.addresses.get(id) ?? '', id}
  }

  async command(id: string, ...args: Setslot): Promise<unknown> {
    const client = await this.pool.client(this.endpoint(id).address)
    return client.call('CLUSTER', ...args)
  }

  /**
   * The destination must own or import the slot, or RESTORE-ASKING from the sources bounces.
   * An owner that still migrates the slot (to a target that is gone, or one fix passed over)
   * answers ASK for every key it lacks, RESTORE-ASKING included: it stops migrating first.
   */
  async prepareDestination(fix: SlotFix, added: string[]): Promise<void> {
    const slot = this.evidence.get(fix.slot)!
    const seen = slot.viewOwner[fix.destination]
    if (seen === fix.destination && slot.migrating[fix.destination]) {
      await this.command(fix.destination, 'SETSLOT', fix.slot, 'STABLE')
      delete slot.migrating[fix.destination]
    }
    if (seen === fix.destination || slot.importing[fix.destination]) return
    if (seen === null) {
      await this.command(fix.destination, 'ADDSLOTS', fix.slot)
    } else {
      await this.command(fix.destination, 'SETSLOT', fix.slot, 'IMPORTING', seen)
      added.push(fix.destination)
    }
  }

  /**
   * An owner serves MIGRATE of its keys once it marks the slot migrating. A non-owner serves
   * them only while importing the slot and asked with ASKING; a node that thinks nobody owns
   * the slot answers CLUSTERDOWN, so it first learns the destination owns it.
   */
  async prepareSource(fix: SlotFix, source: string, added: string[]): Promise<boolean> {
    const slot = this.evidence.get(fix.slot)!
    const seen = slot.viewOwner[source]
    if (seen === source) {
      if (slot.migrating[source] !== fix.destination) {
        await this.command(source, 'SETSLOT', fix.slot, 'MIGRATING', fix.destination)
        added.push(source)
      }
      return false
    }
    if (seen === null) await this.command(source, 'SETSLOT', fix.slot, 'NODE', fix.destination)
    if (!slot.importing[source]) {
      await this.command(source, 'SETSLOT', fix.slot, 'IMPORTING', fix.destination)
      added.push(source)
    }
    return true
  }

  async moveKeys(fix: SlotFix): Promise<number> {
    const added: string[] = []
    let moved = 0
    try {
      await this.prepareDestination(fix, added)
      for (const source of fix.sources) {
        const asking = await this.prepareSource(fix, source, added)
        // From the owner, its copy of a key wins: while a slot is open, a key the owner holds
        // is served (and written) there only, so a different copy at the destination is an
        // older one, left by a durable move whose delete was interrupted (durable.ts).
        const replace = this.options.replace || !asking
        const result = await moveSlotKeys(this.pool, {slot: fix.slot, source: this.endpoint(source), target: this.endpoint(fix.destination)}, {...this.options, asking, replace})
        moved += result.keys
      }
      return moved
    } catch (error) {
      // Markers fix set itself go away again, so the next run sees the slot as it was.
      await Promise.all(added.map((id) => this.command(id, 'SETSLOT', fix.slot, 'STABLE').catch(() => undefined)))
      throw error
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
   * Destinations first (so no slot is left without an owner), bumping their epoch where they
   * take a slot they did not own so their claim wins over stale gossip; then every other
   * live master drops its markers and names the destination.
   */
  /** Each live master's config epoch now: a destination that takes slots must get above all the others'. */
  async epochs(liveMasters: readonly string[]): Promise<Map<string, number>> {
    const epochs = await mapLimit(liveMasters, NODE_PARALLELISM, async (id) => {
      const info = String(await this.command(id, 'INFO').catch(() => ''))
      return Number(/cluster_my_epoch:(\d+)/.exec(info)?.[1] ?? 0)
    })
    return new Map(liveMasters.map((id, i) => [id, epochs[i]]))
  }

  /**
   * A destination taking a slot it did not own first gets a config epoch above every live
   * master's, so that no claim of a former owner can take the slot back while the pipeline
   * below runs (see migrate/slot-protocol.ts for the argument).
   */
  async close(fixes: readonly SlotFix[], liveMasters: readonly string[]): Promise<FixFailure[]> {
    const failures: FixFailure[] = []
    const byDestination = new Map<string, SlotFix[]>()
    for (const fix of fixes) byDestination.set(fix.destination, [...(byDestination.get(fix.destination) ?? []), fix])
    const epochs = [...byDestination.values()].some((own) => own.some((fix) => fix.claimsSlot)) ? await this.epochs(liveMasters) : new Map<string, number>()
    // masters that are down count too: one that comes back must not win the slot back
    const floorFor = (id: string) => Math.max(this.downEpoch, ...[...epochs].filter(([other]) => other !== id).map(([, epoch]) => epoch))
    await mapLimit([...byDestination.entries()], NODE_PARALLELISM, async ([id, own]) => {
      try {
        if (own.some((fix) => fix.claimsSlot)) await raiseEpochAbove(this.pool, this.endpoint(id), floorFor(id))
      } catch (error) {
        for (const fix of own) failures.push({error: errorMessage(error), slot: fix.slot})
        return
      }
      const errors = await this.pipeline(id, own.flatMap((fix) => [['SETSLOT', fix.slot, 'STABLE'], ['SETSLOT', fix.slot, 'NODE', id]]))
      for (const [i, fix] of own.entries()) {
        const error = errors[i * 2] ?? errors[i * 2 + 1]
        if (error) failures.push({error: `${this.endpoint(id).address}: ${error.message}`, slot: fix.slot})
      }
    })
    const failed = new Set(failures.map((failure) => failure.slot))
    const rest = fixes.filter((fix) => !failed.has(fix.slot))
    await mapLimit(liveMasters, NODE_PARALLELISM, async (id) => {
      const others = rest.filter((fix) => fix.destination !== id)
      const errors = await this.pipeline(id, others.flatMap((fix) => [['SETSLOT', fix.slot, 'STABLE'], ['SETSLOT', fix.slot, 'NODE', fix.destination]]))
      for (const [i, fix] of others.entries()) {
        // A master that just gave away its last slot became a replica: it follows by itself.
        const error = [errors[i * 2], errors[i * 2 + 1]].find((e) => e && !/only with masters/i.test(e.message))
        if (error) failures.push({error: `${this.endpoint(id).address}: ${error.message}`, slot: fix.slot})
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
    if (evidence) for (const master of live) evidence.viewOwner[master.id] = fix.destination
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
  let keysMoved = 0
  const coverFailed = failedSlots()
  const withKeys = actionable.filter((fix) => fix.sources.length > 0 && !coverFailed.has(fix.slot))
  // A node that has not caught up with a failover yet answers CLUSTERDOWN to every MIGRATE.
  // If it never comes, the moves below fail and report why, slot by slot.
  if (withKeys.length > 0) await waitForClusterOk(pool, live.map((master) => master.address), options.settleTimeoutMs).catch(() => undefined)
  const skipped = new Set<number>()
  await mapLimit(withKeys, options.parallel, async (fix) => {
    if (options.signal?.aborted) {
      skipped.add(fix.slot)
      return
    }
    try {
      const keys = await runner.moveKeys(fix)
      keysMoved += keys
      options.onSlotMoved?.(fix, keys)
    } catch (error) {
      failures.push({error: errorMessage(error), slot: fix.slot})
    }
  })
  const moveFailed = failedSlots()
  const moved = actionable.filter((fix) => !skipped.has(fix.slot) && !moveFailed.has(fix.slot))
  failures.push(...(await runner.close(moved, live.map((master) => master.id))))
  const failed = failedSlots()
  return {
    failures: failures.sort((a, b) => a.slot - b.slot),
    fixedSlots: [...moved, ...replicaOnly].map((fix) => fix.slot).filter((slot) => !failed.has(slot)).sort((a, b) => a - b),
    keysMoved,
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

export function refuseUnreachableOwners(owners: ReadonlyArray<{address: string; id: string}>): void {
  if (owners.length === 0) return
  const names = owners.map((node) => `${node.address || '(no address)'} (${node.id.slice(0, 8)})`).join(', ')
  throw new SlotctlError(`refusing to fix while master(s) owning slots are unreachable or failed: ${names}`, {
    code: 'E_UNREACHABLE_MASTER',
    suggestions: ['bring them back or fail them over (slotctl failover), or pass --force to fix what can be fixed without them'],
  })
}

const SETTLING: ReadonlySet<string> = new Set(['CLUSTER_STATE', 'OPEN_SLOT', 'SLOTS_DISAGREE'])

/**
 * Reloads the cluster until gossip has carried the new owners everywhere (no open slot, all
 * views agree, cluster_state ok) or the time is up; returns the last snapshot either way,
 * because the check that follows reports whatever is still wrong.
 */
export async function settledSnapshot(pool: NodePool, seed: NodeAddress, timeoutMs: number): Promise<ClusterSnapshot> {
  return reloadUntil(pool, seed, timeoutMs, (snapshot) => !runChecks(snapshot).some((finding) => SETTLING.has(finding.code)))
}
