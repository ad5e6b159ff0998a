/**
 * Durable key moves: a key leaves its source only after the target and every replica the
 * target must have (see replicas.ts) hold it. Per round of batches (keys of one or more
 * slots of one source/target pair), on connections of its own:
 *
 *   1. source: WATCH the listed keys, then MIGRATE ... COPY of the same keys (a slot's
 *      batch per connection: a cluster transaction may not span slots)
 *   2. target: a write of our own (ASKING MULTI SET+DEL EXEC on a key of one of the slots),
 *      then WAIT acks timeout, once for the whole round
 *   3. source: MULTI, DEL the keys, EXEC, on each batch's connection
 *
 * Why no acknowledged write is lost (redis 7.0 src/cluster.c, src/multi.c, src/replication.c;
 * valkey 8.0 src/cluster_legacy.c, src/cluster.c, the same code paths):
 *
 * - WAIT counts the replicas that acknowledged the replication offset of the calling
 *   client's last propagated write (c->woff, set in call() only when the command propagated
 *   something). The RESTOREs that MIGRATE runs at the target belong to the source's
 *   connection, so our own connection first writes (a transaction that sets and deletes a
 *   private key, propagated as one MULTI/EXEC): its offset is after those RESTOREs in the one
 *   replication stream, so an acknowledgement of it covers every copied key.
 * - MIGRATE COPY leaves the source untouched, so a key a client changes (or deletes, or that
 *   expires) after WATCH "touches" the watched key and EXEC in step 3 deletes nothing
 *   (multi.c: touchWatchedKey / isWatchedKeyExpired). Nothing the replicas did not
 *   acknowledge is ever deleted, and no write a client made at the source is lost: the next
 *   round lists the key again and copies its new value with REPLACE.
 * - While a key exists at the source, the source serves it (getNodeByQuery only redirects a
 *   migrating slot's commands for keys it lacks), so nobody but this copy writes that key at
 *   the target; REPLACE therefore only overwrites an older copy of ours. A key missing at a
 *   migrating source is never written there again (ASK sends it to the target), so once a
 *   key is gone from the source, everything newer is at the target.
 * - WATCH and the DELs name keys of a migrating slot: a key missing there makes a
 *   multi-key command answer TRYAGAIN (or ASK), which fails WATCH (the batch is not deleted
 *   this round) or aborts the transaction (EXECABORT): both mean "again".
 * - A crash (of slotctl, source or target) between the steps leaves keys at the source and
 *   copies at the target: the slot stays open, and finishing it copies again with REPLACE.
 *
 * What this cannot do: a key a client deletes at the source between step 1 and step 3 keeps
 * its copy at the target (the delete is lost, never a write). Said in docs/known-limitations.md.
 */
import {randomBytes} from 'node:crypto'

import type {Redis} from 'ioredis'

import type {NodePool} from '../cluster/connection.js'
import {SLOT_COUNT, crc16} from '../core/slots.js'
import {SlotctlError, isConnectionLost, nodeFailure} from '../core/errors.js'

/** How a run protects moved keys; a mover given none moves with plain MIGRATE (--durability none). */
export interface DurabilitySettings {
  /** acknowledgements each batch needs; undefined: every replica the target has */
  minReplicaAcks?: number
  /** how long a batch (and the check before a wave) waits for the replicas, ms */
  waitMs: number
  signal?: AbortSignal
}

export interface Durability {
  /** replica acknowledgements every batch needs before its keys leave the source (0: plain MIGRATE) */
  acks: number
  /** how long one batch waits for them (WAIT's timeout), ms */
  waitMs: number
  /** the target's replicas, for the error that names them */
  replicas?: readonly string[]
}

let slotTags: string[] | undefined

/** A short hash tag for every slot: a key named `...{tag}` lives in that slot. */
export function tagForSlot(slot: number): string {
  if (!slotTags) {
    const tags = new Array<string>(SLOT_COUNT)
    // ~170k candidates: hashing their ASCII codes in place, not through a Buffer per
    // key, takes this from ~250 ms to ~15 ms of the run's CPU (a tag has no braces, so its
    // whole text is what a key's {tag} hashes)
    const bytes = new Uint8Array(16)
    let found = 0
    for (let i = 0; found < SLOT_COUNT; i++) {
      const tag = i.toString(36)
      for (let j = 0; j < tag.length; j++) bytes[j] = tag.charCodeAt(j)
      const at = crc16(bytes.subarray(0, tag.length)) % SLOT_COUNT
      if (tags[at] === undefined) {
        tags[at] = tag
        found++
      }
    }
    slotTags = tags
  }
  return slotTags[slot]
}

/** Unique per run: the barrier key never meets a key of the operator's. */
const RUN_NONCE = randomBytes(6).toString('hex')

function barrierKey(slot: number): string {
  return `slotctl:replica-barrier:${RUN_NONCE}:{${tagForSlot(slot)}}`
}

export class ReplicaAckError extends SlotctlError {}

/**
 * Waits until `acks` replicas of the target acknowledged everything the target applied so
 * far (see the header). `slot` must be one the target owns or imports (ASKING covers both).
 * Returns how many replicas acknowledged; throws when fewer than `acks` did in time.
 */
export async function waitForReplicas(target: Redis, targetAddress: string, slot: number, durability: Durability): Promise<number> {
  const key = barrierKey(slot)
  const replies = (await target.pipeline().call('ASKING').call('MULTI').call('SET', key, '1').call('DEL', key).call('EXEC').call('WAIT', durability.acks, durability.waitMs).exec()) ?? []
  const failed = replies.find(([error]) => error)
  if (failed) throw new SlotctlError(nodeFailure(targetAddress, 'the write slotctl waits for its replicas with', failed[0]), {code: isConnectionLost(failed[0]) ? 'E_UNREACHABLE' : 'E_REPLICA_ACK'})
  const acked = Number(replies[5]?.[1] ?? 0)
  if (acked < durability.acks) {
    const names = durability.replicas && durability.replicas.length > 0 ? ` (${durability.replicas.join(', ')})` : ''
    throw new ReplicaAckError(`only ${acked} of the ${durability.acks} replica(s) of the target ${targetAddress}${names} acknowledged within ${durability.waitMs} ms; keys not acknowledged stay at the source, and the slot is left migrating/importing`, {
      code: 'E_REPLICA_ACK',
      suggestions: ['look at the replicas (INFO replication on the target: state, lag), then resume the run (--resume JOURNAL) or let fix finish it', 'to move without waiting for replicas: --durability none'],
    })
  }
  return acked
}

/** waitForReplicas on a connection of its own (WAIT blocks its connection), dropped after an error. */
export async function waitForReplicasOf(pool: NodePool, targetAddress: string, slot: number, durability: Durability): Promise<number> {
  const lease = await pool.lease(targetAddress)
  let clean = false
  try {
    const acked = await waitForReplicas(lease.client, targetAddress, slot, durability)
    clean = true
    return acked
  } finally {
    lease.release(clean)
  }
}

export interface CopyGroup {
  slot: number
  keys: Buffer[]
  /** copy with REPLACE: the target may hold an older copy of ours */
  replace: boolean
}

export interface RoundOutcome {
  /** keys deleted at the source (moved) per slot */
  deleted: Map<number, number>
  /** slots whose batch MIGRATE refused, with the error: nothing of theirs was deleted */
  failed: Map<number, Error>
  /** slots a client's write (or a vanished key) interrupted between copy and delete: nothing of theirs was deleted */
  aborted: Set<number>
  /** replicas that acknowledged the round */
  acked: number
}

type Replies = Array<[Error | null, unknown]>

/**
 * One round (steps 1-3 of the header) for `groups`, each group (one slot) on a source
 * connection of its own, `sources[i]` for `groups[i]`: WATCH and MULTI are per connection,
 * EXEC drops every WATCH of its connection, and a cluster transaction may not span slots.
 * The copies of every group are covered by one WAIT. No one else may use these connections.
 * `migrateArgs`: MIGRATE's arguments up to COPY (host port "" 0 timeout [AUTH ...]).
 */
export async function copyWaitDelete(sources: readonly Redis[], target: Redis, targetAddress: string, migrateArgs: ReadonlyArray<number | string>, groups: readonly CopyGroup[], durability: Durability): Promise<RoundOutcome> {
  const outcome: RoundOutcome = {aborted: new Set(), acked: 0, deleted: new Map(), failed: new Map()}
  const copied = await Promise.all(groups.map(async (group, i) => ((await sources[i].pipeline().callBuffer('WATCH', ...group.keys).callBuffer('MIGRATE', ...migrateArgs, 'COPY', ...(group.replace ? ['REPLACE'] : []), 'KEYS', ...group.keys).exec()) ?? []) as Replies))
  const deletable: number[] = []
  for (const [i, group] of groups.entries()) {
    const [watchError] = copied[i][0] ?? [new Error('no reply')]
    const [migrateError, migrated] = copied[i][1] ?? [new Error('no reply'), null]
    // NOKEY: every listed key went away since the listing; nothing to copy or delete
    if (migrateError && !/NOKEY/.test(migrateError.message)) outcome.failed.set(group.slot, migrateError)
    else if (watchError) outcome.aborted.add(group.slot)
    else if (!migrateError && String(migrated) === 'OK') deletable.push(i)
  }
  const unwatch = (indexes: number[]) => Promise.all(indexes.map((i) => sources[i].call('UNWATCH').catch(() => undefined)))
  await unwatch(groups.map((_, i) => i).filter((i) => !deletable.includes(i)))
  if (deletable.length === 0) return outcome
  try {
    outcome.acked = durability.acks > 0 ? await waitForReplicas(target, targetAddress, groups[deletable[0]].slot, durability) : 0
  } catch (error) {
    await unwatch(deletable)
    throw error
  }
  const deleted = await Promise.all(deletable.map(async (i) => ((await sources[i].pipeline().call('MULTI').callBuffer('DEL', ...groups[i].keys).call('EXEC').exec()) ?? []) as Replies))
  for (const [n, i] of deletable.entries()) {
    const [execError, counts] = deleted[n].at(-1) ?? [new Error('no reply'), null]
    // EXEC answers nil (a watched key was touched) or EXECABORT (the DEL was redirected): nothing deleted
    if (execError || !Array.isArray(counts)) outcome.aborted.add(groups[i].slot)
    else outcome.deleted.set(groups[i].slot, Number(counts[0]))
  }
  return outcome
}
