/**
 * The legacy slot protocol (CLUSTER SETSLOT + MIGRATE) for a wave: slots of one
 * source/target pair opened, emptied and closed together.
 *
 *   open    target: SETSLOT s IMPORTING source      source: SETSLOT s MIGRATING target
 *   move    durable (default): WATCH + MIGRATE COPY, WAIT for the target's replicas, then
 *           DEL in MULTI/EXEC (durable.ts); --durability none: MIGRATE ... KEYS (key-mover.ts)
 *   close   1. source: COUNTKEYSINSLOT s = 0 for every slot, and its configEpoch eS once
 *              no other master shares it
 *           2. target: its configEpoch raised above eS (CLUSTER BUMPEPOCH, then re-read)
 *           3. target: claims the slots itself with DELSLOTS + ADDSLOTS in one MULTI
 *              (importing cleared and the slot assigned in one atomic step: no moment with
 *              keys in a slot neither owned nor imported), guarded so that a target that
 *              has turned replica runs none of it; then closes one slot (the herald) with
 *              SETSLOT NODE for the PONG broadcast that carries the claim everywhere (on
 *              Redis inside the claim's transaction, so the broadcast leaves with it); a
 *              target that hands SETSLOT to its replicas before applying it (Valkey >= 8)
 *              hands SETSLOT s NODE down to them only after step 4 (claimThenHandDown,
 *              closeSlots)
 *           4. source: SETSLOT s NODE target (the other masters learn the new owner from
 *              the herald's broadcast, never from a SETSLOT: see redis#12564 below)
 *   verify  the target's own view owns every slot, the source's does not; durable moves
 *           also wait until every replica of the target gives it the slots (replicas.ts)
 *
 * Why no interleaving of cluster-bus messages can hand a closed slot back or drop its keys
 * (checked against redis 7.0 src/cluster.c and valkey 8.0 src/cluster_legacy.c):
 *
 * - A node rebinds a slot it owns only in clusterUpdateSlotsConfigWith(), when a message
 *   (a PING/PONG header or an UPDATE naming a node) claims the slot for another node with a
 *   configEpoch greater than the current owner's; if the slot held keys there, they are
 *   deleted ("dirty slot"). Nothing else hands a slot to another node without an operator
 *   command. So a closed slot is safe exactly when, from step 3 on, no message can claim it
 *   for anyone but the target with an epoch above the target's.
 * - Before the run every view agreed that the source owned these slots (the run refuses a
 *   cluster whose views disagree), so the source is the only node any message can claim them
 *   for: its own headers, and UPDATEs that other nodes send naming it. Both carry at most the
 *   source's real configEpoch.
 * - The source's configEpoch can rise while its wave closes, and a claim it then makes for
 *   the slots would win at the target: by epoch-collision handling (clusterHandleConfigEpoch
 *   Collision: of two masters with the same configEpoch, the one with the smaller id takes
 *   currentEpoch + 1, which after step 2 is above the target's), by BUMPEPOCH sent by someone
 *   else, or by a failover in its shard (a replica that wins, or a TAKEOVER, claims the slots
 *   its view gives its master, with a new, highest epoch). Step 1 therefore waits until no
 *   other master in the source's view shares its configEpoch (bounded; the slots stay open
 *   otherwise), and takes the epoch read then as eS. The executor never lets a node close as a
 *   target while it is the source of another wave in flight (and never runs a node as source
 *   and target at once, which also rules out MIGRATE cycles). What no client-side protocol can
 *   rule out is a failover or an operator's BUMPEPOCH in the source's shard between step 2
 *   and step 4: the verification after the wave and the final agreement check report it, and
 *   docs/known-limitations.md names it.
 * - Step 2 makes the target's configEpoch greater than eS before the target claims any of
 *   the slots, so from step 3 on a claim for the source carries an epoch below the target's
 *   and changes nothing there, however the pipeline of step 3 is split over event-loop turns
 *   (Valkey >= 8 blocks each SETSLOT until the replicas acknowledge it). While the slots are
 *   still importing, the target's owner for them is the source, and a claim by the source
 *   with eS is not above the source's own epoch either. (Redis 7.0 skips importing slots in
 *   clusterUpdateSlotsConfigWith; Valkey rebinds them like any other slot: the argument does
 *   not rely on either.) The collision rule cannot lower the target's epoch: it only
 *   increments.
 * - A node holding keys of a slot it neither owns nor imports deletes them when it checks its
 *   data against its config (at start-up; on Valkey 9 also when it wins a failover). Step 3
 *   never creates that state: each slot leaves "importing" and becomes "owned" in one atomic
 *   step (the claim's MULTI, or the herald's SETSLOT NODE, which Valkey also hands to the
 *   replicas as one command). (An earlier version made slots
 *   STABLE and then assigned them, to save broadcasts; a target replica promoted between the
 *   two, or a target restarted between them, deleted the slot's keys.)
 * - Nothing is deleted at the source: step 1 counted 0 keys in every slot it closes (a
 *   failed or refused count leaves the slot open), and a migrating source cannot gain keys
 *   in the slot (a command for a key it lacks is redirected with ASK to the target). That
 *   count is the only guard: step 4 is no backstop, because the source usually learns the new
 *   owner from the PONG the target broadcasts in step 3 before step 4 reaches it, and a node
 *   that loses a slot that way deletes any keys it still has there (dirty slot).
 * - UPDATE messages never advertise slots their owner stopped claiming, and every node
 *   accepts a claim on a slot whose owner no longer claims it; neither can revive the
 *   source's claim.
 * - Except on Redis 7.0.13-7.0.15 and 7.2.0-7.2.3 (redis#12564, fixed in 7.2.4 where
 *   clusterDelSlot clears it): there a node marks a slot "owner no longer claims it" when the
 *   master its view gives the slot to sends a ping without it, and only that master's next
 *   differing ping listing it again, or a rebind by gossip, clears the mark; a node that takes
 *   the slot itself (ADDSLOTS, SETSLOT NODE) keeps it. A target that claims a marked slot
 *   gives it back to the first ping still claiming it for the source, whatever the epochs, and
 *   deletes its keys. No client command clears or shows the mark. Within a move the source
 *   stops listing the slots only after the target's claim, so the target cannot be marked
 *   then; a mark on it comes from an earlier move of the slot between two other masters (redis
 *   7.0.15 clusterUpdateSlotsConfigWith, clusterProcessPacket: only masters' pings count).
 *   There the third master marks the slot when the old owner's ping without it arrives before
 *   the new owner's broadcast. Learning the new owner by gossip then rebinds the slot and
 *   clears the mark; told by SETSLOT NODE instead, it keeps the mark, and the new owner's pings
 *   match its view from then on, so nothing clears it until, as the target of a later move of
 *   the slot, it hands the slot back with its keys (CI, 7.0.15: the last wave of one run, lost
 *   in the next run that moved those slots again). So a close tells only the source (a node
 *   never marks its own slots) and the other masters learn from the herald's broadcast, at
 *   once. Marks that other tools leave (redis-cli tells every master) remain: the herald
 *   inside the claim's transaction keeps the window in which a ping can act on one as short as
 *   the server allows (docs/known-limitations.md).
 */
import {type NodePool, type Reply, delay, pipelineCalls, spreadCalls} from '../cluster/connection.js'
import {parseClusterNodes, parseInfo} from '../cluster/topology.js'
import {SlotctlError, errorMessage, isConnectionLost, nodeFailure} from '../core/errors.js'
import {formatSlots} from '../core/slots.js'
import {tagForSlot} from './durable.js'
import {readReplicaStates} from './replicas.js'

export interface SlotEndpoint {
  id: string
  address: string
}

export interface SlotMoveTarget {
  slot: number
  source: SlotEndpoint
  target: SlotEndpoint
}

type Command = Array<number | string>

/** Connections to use for a node's SETSLOTs: 1, or more where each SETSLOT waits for replicas. */
export type Lanes = (nodeId: string) => number
const noLanes: Lanes = () => 1

/** How long the target may take to learn the source's epoch through gossip before a close gives up. */
const EPOCH_WAIT_MS = 30_000
/** Valkey answers NOREPLICAS when a replica did not acknowledge a SETSLOT in time; SETSLOT is idempotent. */
const NOREPLICAS_RETRIES = 5

function protocolError(node: SlotEndpoint, what: string, error: unknown, slot: number): SlotctlError {
  return new SlotctlError(`slot ${slot}: ${nodeFailure(node.address, what, error)}`, {code: isConnectionLost(error) ? 'E_UNREACHABLE' : 'E_MIGRATION'})
}

/**
 * Runs SETSLOTs (or other CLUSTER subcommands) on one node, pipelined, spread over `lanes`
 * connections (Valkey holds each SETSLOT until the replicas acknowledge it; clients waiting
 * at once share an acknowledgement round). Those answered NOREPLICAS (a replica did not
 * acknowledge in time, and the primary did not apply it) are sent again. Returns each
 * command's final [error, value].
 */
async function clusterCalls(pool: NodePool, node: SlotEndpoint, commands: readonly Command[], lanes = 1): Promise<Reply[]> {
  const replies = await spreadCalls(pool, node.address, commands.map((args) => ['CLUSTER', ...args]), lanes)
  for (let attempt = 0; attempt < NOREPLICAS_RETRIES; attempt++) {
    const again = replies.flatMap(([error], i) => (error && /NOREPLICAS/.test(error.message) ? [i] : []))
    if (again.length === 0) break
    // Sent again only while every replica is attached and keeping up: a primary that dropped a
    // hung replica would then apply it without that replica, which could later be promoted
    // without knowing it (and, on Valkey, delete the keys of a slot it does not own).
    await refuseUnprotectedRetry(pool, node, again.length)
    await delay(100 * (attempt + 1))
    const retried = await spreadCalls(pool, node.address, again.map((i) => ['CLUSTER', ...commands[i]]), lanes)
    for (const [j, i] of again.entries()) replies[i] = retried[j]
  }
  return replies
}

async function refuseUnprotectedRetry(pool: NodePool, node: SlotEndpoint, count: number): Promise<void> {
  const sick = (await readReplicaStates(pool, node).catch((error: unknown) => [{address: node.address, problem: `replicas unreadable: ${errorMessage(error)}`}])).filter((state) => state.problem)
  if (sick.length === 0) return
  throw new SlotctlError(`${node.address} answered NOREPLICAS for ${count} SETSLOT(s): its replica(s) ${sick.map((state) => `${state.address} (${state.problem})`).join(', ')} did not acknowledge; the slot(s) are left as they are (open slots stay open and journaled)`, {
    code: 'E_REPLICAS',
    suggestions: ['bring the replica back (or remove it with del-node), then resume the run (--resume JOURNAL) or let fix finish it'],
  })
}

function throwFirst(replies: Reply[], slots: readonly number[], node: SlotEndpoint, what: string, tolerate?: (error: Error) => boolean): void {
  const index = replies.findIndex(([error]) => error && !tolerate?.(error))
  if (index !== -1) throw protocolError(node, what, replies[index][0], slots[Math.min(index, slots.length - 1)])
}

/**
 * Opens slots of one source/target pair: IMPORTING on the target first (a key the source
 * hands over with ASK must find an importing target), then MIGRATING on the source.
 * Pipelined, because Redis saves nodes.conf once per event-loop turn, not once per SETSLOT.
 */
export async function openSlots(pool: NodePool, moves: readonly SlotMoveTarget[], lanes: Lanes = noLanes): Promise<void> {
  if (moves.length === 0) return
  const {source, target} = moves[0]
  const slots = moves.map((move) => move.slot)
  throwFirst(await clusterCalls(pool, target, moves.map((m) => ['SETSLOT', m.slot, 'IMPORTING', m.source.id]), lanes(target.id)), slots, target, 'SETSLOT IMPORTING')
  throwFirst(await clusterCalls(pool, source, moves.map((m) => ['SETSLOT', m.slot, 'MIGRATING', m.target.id]), lanes(source.id)), slots, source, 'SETSLOT MIGRATING')
}

export interface CloseOutcome {
  /** slots now owned by the target in its own view and no longer by the source */
  closed: number[]
  /** slots left open, with the reason (keys left at the source, a refused count, ...) */
  open: Array<{slot: number; error: string}>
  /** keys the target holds in each closed slot (COUNTKEYSINSLOT right after the close) */
  targetKeys: Map<number, number>
}

interface SourceState {
  epoch: number
  /** slot → keys still at the source, or the error that kept them from being counted */
  counts: Map<number, Error | number>
}

/** Step 1: the source's keys per slot and its configEpoch, in one pipeline. */
async function readSource(pool: NodePool, source: SlotEndpoint, slots: readonly number[]): Promise<SourceState> {
  const replies = await clusterCalls(pool, source, [...slots.map((slot) => ['COUNTKEYSINSLOT', slot]), ['INFO']])
  const [infoError, info] = replies[slots.length]
  if (infoError) throw protocolError(source, 'CLUSTER INFO', infoError, slots[0])
  const counts = new Map(slots.map((slot, i): [number, Error | number] => [slot, replies[i][0] ?? Number(replies[i][1])]))
  return {counts, epoch: Number(parseInfo(String(info)).cluster_my_epoch)}
}

/** How long an epoch collision at the source may take to resolve (one ping exchange, normally). */
const COLLISION_WAIT_MS = 10_000

/**
 * The source's configEpoch once no other master in its view shares it (see the header: a
 * collision would raise it above the target's in the middle of the close).
 */
async function uniqueSourceEpoch(pool: NodePool, source: SlotEndpoint, epoch: number, slots: readonly number[]): Promise<number> {
  const deadline = Date.now() + COLLISION_WAIT_MS
  for (;;) {
    const [[error, text]] = await pipelineCalls(pool, source.address, [['CLUSTER', 'NODES']])
    if (error) throw protocolError(source, 'CLUSTER NODES', error, slots[0])
    const view = parseClusterNodes(String(text))
    const mine = view.find((node) => node.myself)?.configEpoch ?? epoch
    const twin = view.find((node) => !node.myself && node.role === 'master' && node.configEpoch === mine)
    if (!twin) return mine
    if (Date.now() >= deadline) {
      throw new SlotctlError(`the source ${source.address} shares its config epoch ${mine} with ${twin.address || twin.id} after ${COLLISION_WAIT_MS / 1000} s; its slots stay migrating/importing`, {code: 'E_MIGRATION'})
    }
    await delay(100)
  }
}

async function readEpochs(pool: NodePool, node: SlotEndpoint): Promise<{current: number; mine: number}> {
  const [[error, info]] = await clusterCalls(pool, node, [['INFO']])
  if (error) throw new SlotctlError(nodeFailure(node.address, 'CLUSTER INFO', error), {code: isConnectionLost(error) ? 'E_UNREACHABLE' : 'E_MIGRATION'})
  const fields = parseInfo(String(info))
  return {current: Number(fields.cluster_current_epoch), mine: Number(fields.cluster_my_epoch)}
}

/**
 * Step 2: makes `node`'s configEpoch greater than `floor`. BUMPEPOCH takes the node above
 * the greatest epoch it knows of; if it does not know `floor` yet (gossip carries epochs in
 * every message header), it learns it within a few heartbeats.
 */
export async function raiseEpochAbove(pool: NodePool, node: SlotEndpoint, floor: number, waitMs = EPOCH_WAIT_MS): Promise<number> {
  const deadline = Date.now() + waitMs
  for (;;) {
    const epochs = await readEpochs(pool, node)
    if (epochs.mine > floor) return epochs.mine
    if (epochs.current >= floor) {
      const [[error]] = await clusterCalls(pool, node, [['BUMPEPOCH']])
      if (error) throw new SlotctlError(nodeFailure(node.address, 'CLUSTER BUMPEPOCH', error), {code: 'E_MIGRATION', suggestions: ['the ACL user needs +cluster|bumpepoch to move slots']})
      const after = await readEpochs(pool, node)
      if (after.mine > floor) return after.mine
    }
    if (Date.now() >= deadline) {
      throw new SlotctlError(`${node.address} did not get a config epoch above ${floor} within ${waitMs / 1000} s (it is at ${epochs.mine}); its slots stay importing`, {code: 'E_MIGRATION'})
    }
    await delay(50)
  }
}

/**
 * SETSLOT NODE on importing slots (step 3's herald): one command that clears the importing
 * marker and assigns the slot together, on the target and (Valkey >= 8) on its replicas.
 * There is never a moment in which the target (or a replica that may be promoted, or the
 * target restarted from its nodes.conf) holds the slot's keys neither importing nor owning
 * it: a node in that state deletes them (verifyClusterConfigWithData, at start-up, and on
 * Valkey 9 also when a replica wins a failover). Each such SETSLOT broadcasts a PONG, which
 * is why a close sends it for one slot only, after the claim.
 */
async function takeSlotsOnTarget(pool: NodePool, source: SlotEndpoint, target: SlotEndpoint, slots: readonly number[], lanes: number): Promise<void> {
  try {
    const replies = await clusterCalls(pool, target, slots.map((slot) => ['SETSLOT', slot, 'NODE', target.id]), lanes)
    throwFirst(replies, slots, target, 'SETSLOT NODE')
  } catch (error) {
    if (/NOREPLICAS/.test(errorMessage(error))) await reimportOnLaggingReplicas(pool, source, target, slots, lanes)
    throw error
  }
}

/**
 * Step 3 on a target that hands SETSLOT to its replicas before it applies it (Valkey >= 8,
 * clusterCommandSetSlot: replicated first, run on the primary once they acknowledge).
 *
 * Why not SETSLOT NODE alone there (found from server logs, valkey 8.0 cluster_legacy.c,
 * clusterUpdateSlotsConfigWith): between a replica applying `SETSLOT s NODE target` and its
 * primary applying it, the primary's pings do not claim s yet. A replica that processes one
 * marks s "owner not claiming", and then the source's next ping, which still claims s (the
 * source is told after the target), rebinds s to the source whatever the epochs (isSlotUnclaimed). The
 * primary's next ping sets it right; a target that dies before leaves a replica that, promoted,
 * neither owns nor imports s and deletes its keys ("I have keys for slot s, but the slot is
 * assigned to another node"). With a pipeline of SETSLOTs that window is open for some slot
 * during most of the close: fault runs lost keys in 3 of 6 target kills on Valkey 9.
 *
 * So the target claims the slots itself first, in one transaction: per slot DELSLOTS then
 * ADDSLOTS, which assigns it to the target and clears the import in one atomic step (no moment
 * with the keys in a slot it neither owns nor imports; both commands only change the node's
 * own table and are not handed to the replicas). BUMPEPOCH opens the transaction, as
 * SETSLOT NODE bumps the epoch of a node that takes a slot it imported: the claim carries the
 * greatest epoch the target knows of, not only one above the source's (step 2). A failover
 * in the source's shard that the target has heard of (a promoted replica claims the source's
 * slots, the migrating ones too, with a new epoch) then loses to the target's claim instead of
 * taking the slots and making the target delete their keys as a dirty slot (seen once: the
 * source stopped, its replica promoted just before the close). From then on every ping the
 * target sends claims the slots with that epoch. Only then is `SETSLOT s NODE target`
 * sent, for the replicas: each binds s to a primary that already claims it, so no ping of the target marks it unclaimed there, and the source's claim carries
 * a lower epoch. In a migration's close the source is told between
 * the two (closeSlots), so the source stops claiming the slots at once. A target that dies
 * between the two leaves replicas that still import the slots (IMPORTING was handed down at
 * the open): promoted, one keeps their keys, and fix (or Valkey's own "no longer being
 * imported" take-over, once the source no longer claims them) gives it the slots. What
 * remains is a ping sent by the target before the transaction and delivered to a replica
 * only after the replicated SETSLOT that followed the transaction's answer: a message delayed
 * past that whole round trip.
 */
export async function claimThenHandDown(pool: NodePool, target: SlotEndpoint, slots: readonly number[], lanes: number): Promise<void> {
  await claimOnTarget(pool, target, slots)
  await handDownToReplicas(pool, target, slots, lanes)
}

/** The slot of `slots` the target holds the fewest keys of (the first one if they cannot be counted). */
async function fewestKeysAtTarget(pool: NodePool, target: SlotEndpoint, slots: readonly number[]): Promise<number> {
  const counts = await pipelineCalls(pool, target.address, slots.map((slot) => ['CLUSTER', 'COUNTKEYSINSLOT', slot])).catch(() => [])
  let best = 0
  for (let i = 1; i < slots.length; i++) {
    if (!counts[i] || counts[i][0] || !counts[best] || counts[best][0]) continue
    if (Number(counts[i][1]) < Number(counts[best][1])) best = i
  }
  return slots[best]
}

/**
 * claimThenHandDown's first half: the target's own claim, in one transaction.
 *
 * With `importingSlot` (a migration's close), the transaction is guarded: ASKING, then inside
 * it a DEL of a key of that slot that never exists (slotctl:claim:{...}), which only a master
 * importing the slot serves. Redis 7
 * runs CLUSTER ADDSLOTS and DELSLOTS on a replica (only SETSLOT refuses), so a target that a
 * failover in its shard turned into a replica would otherwise own the slots in its own view
 * while its new primary does not (seen in the fault suite: fix could not give them back). A
 * replica answers the DEL with MOVED (becoming a replica closed its imports), which flags
 * the transaction (processCommand: flagTransaction), and EXEC runs none of it; one demoted
 * after the DEL was queued fails EXEC's own redirection check the same way (the ASKING
 * flag lasts through the transaction, redis 7.0 resetClient).
 * A write, not a read (it was a GET): a master that a manual failover has paused
 * (CLUSTER FAILOVER from its replica) holds back an EXEC with a write until the pause ends,
 * and by then it is a replica and the EXEC is redirected. An EXEC of reads and CLUSTER
 * commands ran during the pause: the replica then took over without the claim, the old
 * target kept the claimed slots as a master of its own, lost the others as dirty slots, and
 * Redis 8.0.6 crashed deleting their keys during the pause (an assertion in delKeysInSlot;
 * fault suite, failover-target-shard, 1 run in 5).
 */
async function claimOnTarget(pool: NodePool, target: SlotEndpoint, slots: readonly number[], importingSlot?: number, heraldInside = false): Promise<void> {
  const claims = slots.flatMap((slot) => [['CLUSTER', 'DELSLOTS', slot], ['CLUSTER', 'ADDSLOTS', slot]])
  const guard = importingSlot === undefined ? [] : [['DEL', `slotctl:claim:{${tagForSlot(importingSlot)}}`]]
  const herald = heraldInside && importingSlot !== undefined ? [['CLUSTER', 'SETSLOT', importingSlot, 'NODE', target.id]] : []
  const transaction = [...(guard.length > 0 ? [['ASKING']] : []), ['MULTI'], ...guard, ['CLUSTER', 'BUMPEPOCH'], ...claims, ...herald, ['EXEC']]
  const replies = await pipelineCalls(pool, target.address, transaction)
  const [execError, results] = replies[replies.length - 1]
  if (execError || !Array.isArray(results)) throw protocolError(target, 'MULTI/EXEC (CLUSTER BUMPEPOCH, DELSLOTS + ADDSLOTS)', execError ?? new Error('the transaction was not run'), slots[0] ?? (importingSlot as number))
  // a DELSLOTS refused (the slot already unassigned in the target's view) changes nothing; the ADDSLOTS must hold
  const added = results.slice(1 + guard.length, 1 + guard.length + claims.length).filter((_, i) => i % 2 === 1)
  const refused = added.findIndex((reply) => reply instanceof Error)
  if (refused !== -1) throw protocolError(target, 'CLUSTER ADDSLOTS', added[refused], slots[refused])
  const heraldReply = herald.length > 0 ? results.at(-1) : undefined
  if (heraldReply instanceof Error) throw protocolError(target, 'CLUSTER SETSLOT NODE', heraldReply, importingSlot as number)
}

/** claimThenHandDown's second half: SETSLOT NODE on slots the target already claims, for its replicas. */
async function handDownToReplicas(pool: NodePool, target: SlotEndpoint, slots: readonly number[], lanes: number): Promise<void> {
  throwFirst(await clusterCalls(pool, target, slots.map((slot) => ['SETSLOT', slot, 'NODE', target.id]), lanes), slots, target, 'SETSLOT NODE')
}

/**
 * Valkey (>= 8) sends a SETSLOT to the replicas before it applies it, and answers NOREPLICAS
 * when they do not acknowledge in time, without applying it; but a replica that was only
 * behind still applies it once it catches up. A replica that then holds `SETSLOT s NODE
 * target` without its primary's new epoch can lose the slot to the source's claim and, once
 * promoted, deletes the slot's keys (seen in the durable-moves test). Sending IMPORTING again
 * queues behind it, so that replica ends up importing the slot, and a node importing a slot
 * keeps its keys (verifyClusterConfigWithData). The primary, which never applied NODE,
 * refuses nothing it has not got (or answers NOREPLICAS again); where NODE was applied, it
 * answers "already the owner" before replicating anything. Best effort, short timeouts.
 */
async function reimportOnLaggingReplicas(pool: NodePool, source: SlotEndpoint, target: SlotEndpoint, slots: readonly number[], lanes: number): Promise<void> {
  await spreadCalls(pool, target.address, slots.map((slot) => ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id, 'TIMEOUT', 100]), lanes).catch(() => [])
}

/** Step 4: the source, which then stops claiming the slots at once (its replicas and the other masters learn by gossip). */
async function tellSource(pool: NodePool, source: SlotEndpoint, target: SlotEndpoint, slots: readonly number[], lanes: Lanes): Promise<void> {
  const assign = slots.map((slot): Command => ['SETSLOT', slot, 'NODE', target.id])
  // A source that lost its last slot may already be a replica of the target (gossip was
  // faster): Redis 7 then refuses SETSLOT ("only with masters"); Valkey >= 8 unblocks a SETSLOT
  // waiting for replica acks with "UNBLOCKED ... (master -> replica?)". Either way verifyClose
  // next reads the source's own view, which must give the slots to the target.
  // Valkey 8 may also drop the connection as the source turns replica ("Command aborted due
  // to connection close"). Its clients are then dropped and verifyClose reads the source's
  // view on a fresh connection, so a source that is really gone still fails the close there.
  // The drop can also reach a command queued behind it ("Connection is closed"): any lost
  // connection is tolerated here, and verifyClose reads the source again on a fresh one.
  const turnedReplica = /only with masters|^UNBLOCKED .*master -> replica|aborted due to connection close/i
  const tolerated = (error: Error) => turnedReplica.test(error.message) || isConnectionLost(error)
  await clusterCalls(pool, source, assign, lanes(source.id))
    .then((replies) => {
      if (replies.some(([error]) => error && isConnectionLost(error))) pool.forget(source.address)
      throwFirst(replies, slots, source, 'SETSLOT NODE', tolerated)
    })
    .catch((error: unknown) => {
      if (!isConnectionLost(error) && !turnedReplica.test(errorMessage(error))) throw error
      pool.forget(source.address)
    })
}

/** The slots a node's own CLUSTER NODES gives to `ownerId`, or undefined if it could not be read. */
async function ownedInView(pool: NodePool, node: SlotEndpoint, ownerId: string, slots: readonly number[]): Promise<Set<number>> {
  const [[error, text]] = await pipelineCalls(pool, node.address, [['CLUSTER', 'NODES']])
  if (error) throw new SlotctlError(nodeFailure(node.address, 'CLUSTER NODES', error), {code: 'E_VERIFY'})
  const owner = parseClusterNodes(String(text)).find((entry) => entry.id === ownerId)
  const owned = new Set<number>()
  for (const slot of slots) if (owner?.slots.some(([start, end]) => slot >= start && slot <= end)) owned.add(slot)
  return owned
}

/**
 * ownedInView, read once more on a fresh connection when the connection was lost. A source
 * whose last slot another wave of it just gave away turns replica, and Valkey 8 then drops
 * its clients, this wave's pooled connection among them (seen: a resumed drain failed a wave
 * that had closed, "unreachable (the connection was lost)"). A source really gone fails the
 * second read too.
 */
async function ownedInViewAfterDrop(pool: NodePool, node: SlotEndpoint, ownerId: string, slots: readonly number[]): Promise<Set<number>> {
  try {
    return await ownedInView(pool, node, ownerId, slots)
  } catch (error) {
    const dropped = isConnectionLost(error) || (error instanceof SlotctlError && error.code === 'E_UNREACHABLE')
    if (!dropped) throw error
    pool.forget(node.address)
    return ownedInView(pool, node, ownerId, slots)
  }
}

/**
 * Reads back what a close did: the target's and the source's own views must give every
 * slot to the target (throws E_VERIFY naming the slots otherwise). Returns the keys the
 * target holds in each slot.
 */
export async function verifyClose(pool: NodePool, source: SlotEndpoint, target: SlotEndpoint, slots: readonly number[]): Promise<Map<number, number>> {
  const [atTarget, atSource] = await Promise.all([ownedInView(pool, target, target.id, slots), ownedInViewAfterDrop(pool, source, target.id, slots)])
  const wrong = slots.filter((slot) => !atTarget.has(slot) || !atSource.has(slot))
  if (wrong.length > 0) {
    const where = [...(slots.some((slot) => !atTarget.has(slot)) ? [`${target.address} (target)`] : []), ...(slots.some((slot) => !atSource.has(slot)) ? [`${source.address} (source)`] : [])]
    throw new SlotctlError(`verification failed: slot(s) ${formatSlots(wrong)} are not owned by ${target.address} in the view of ${where.join(' and ')} after the close`, {
      code: 'E_VERIFY',
      suggestions: [`inspect with: slotctl check ${target.address}`, `then: slotctl fix ${target.address} --dry-run`],
    })
  }
  // a count that fails says nothing either way: the slot is left out of the comparison
  const counts = await clusterCalls(pool, target, slots.map((slot) => ['COUNTKEYSINSLOT', slot])).catch(() => [])
  return new Map(slots.flatMap((slot, i): Array<[number, number]> => (counts[i] && !counts[i][0] ? [[slot, Number(counts[i][1])]] : [])))
}

/**
 * Closes a wave (steps 1-4 above) and verifies it. Slots the source still holds keys in,
 * or whose keys could not be counted, stay open and are returned as such; the rest belong
 * to the target in both nodes' own views when this returns. Throws when the close itself
 * failed part-way (the executor stops the run and the journal keeps the slots in flight).
 */
export async function closeSlots(pool: NodePool, moves: readonly SlotMoveTarget[], lanes: Lanes = noLanes, beforeClaim?: (targetEpoch: number) => Promise<void>, targetHandsDown = false, heraldInsideClaim = false): Promise<CloseOutcome> {
  const outcome: CloseOutcome = {closed: [], open: [], targetKeys: new Map()}
  if (moves.length === 0) return outcome
  const {source, target} = moves[0]
  const state = await readSource(pool, source, moves.map((move) => move.slot))
  state.epoch = await uniqueSourceEpoch(pool, source, state.epoch, moves.map((move) => move.slot))
  const empty: number[] = []
  for (const [slot, count] of state.counts) {
    if (count === 0) empty.push(slot)
    else outcome.open.push({error: count instanceof Error ? `${source.address} refused CLUSTER COUNTKEYSINSLOT: ${count.message}` : `${count} key(s) are still at the source ${source.address}`, slot})
  }
  if (empty.length === 0) return outcome
  const targetEpoch = await raiseEpochAbove(pool, target, state.epoch)
  await beforeClaim?.(targetEpoch)
  // The target claims all but one slot in one transaction, and one slot closes the ordinary
  // way for its PONG broadcast, which carries the whole claim to every node at once (ADDSLOTS
  // broadcasts nothing). One SETSLOT NODE per slot broadcasts a PONG per slot, and every node
  // walks all 16384 slots for each: on Redis 7 with replicas that was 18% of the servers' CPU
  // in a rebalance and 12-15% of its wall time. A replica of the source that wins a failover
  // before it heard of the claim would take the slots back with a newer epoch; masters that
  // know the claim refuse it their vote. On Valkey the herald keeps the replica window
  // claimThenHandDown describes; it is the slot with the fewest keys at the target.
  const herald = await fewestKeysAtTarget(pool, target, empty)
  const claimed = empty.filter((slot) => slot !== herald)
  if (!heraldInsideClaim || targetHandsDown) {
    if (claimed.length > 0) await claimOnTarget(pool, target, claimed, herald)
    await takeSlotsOnTarget(pool, source, target, [herald], 1)
  } else {
    // Redis: the herald ends the claim's own transaction, so its broadcast leaves in the same
    // event-loop turn as the claim. Redis 7.0.13-7.0.15 and 7.2.0-7.2.3 can keep a stale
    // "owner not claiming" mark on a slot a node takes with ADDSLOTS or SETSLOT (fixed in
    // redis#12564): such a slot goes to any node that claims it, whatever its epoch, and the
    // target deletes its keys as a dirty slot. Until the source and its replicas hear the
    // broadcast, their pings still claim the slots; a round trip between claim and herald
    // only widened that window (docs/known-limitations.md). Valkey 9.1.2 crashes on a
    // SETSLOT in a transaction, so only Redis targets take this path.
    await claimOnTarget(pool, target, claimed, herald, true)
  }
  await tellSource(pool, source, target, empty, lanes)
  // Redis does not replicate SETSLOT: its replicas learn the claim from the target's pings
  if (targetHandsDown && claimed.length > 0) await handDownToReplicas(pool, target, claimed, lanes(target.id))
  outcome.targetKeys = await verifyClose(pool, source, target, empty)
  outcome.closed = empty
  return outcome
}
