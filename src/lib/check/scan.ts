/** I/O that gathers evidence the pure checks cannot see in CLUSTER NODES. */
import {createHash} from 'node:crypto'

import type {ClusterSnapshot} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, mapLimit} from '../cluster/connection.js'
import {countKeysBatch} from '../cluster/raw-pipeline.js'
import {countKeysInSlots} from '../cluster/slot-stats.js'
import {SLOT_COUNT, type SlotRange, expandRanges, mergeRanges} from '../core/slots.js'
import {type ClusterNode, slotOwners} from '../cluster/topology.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {type Finding, type StrayKeyEvidence, multipleOwnerFindings} from './checks.js'

/**
 * Finds keys stored on masters that do not own their slot (redis-cli's "multiple owners"):
 * one pipelined COUNTKEYSINSLOT per foreign slot, per reachable master.
 */
export async function scanStrayKeys(pool: NodePool, snapshot: ClusterSnapshot): Promise<Map<number, string[]>> {
  const owners = slotOwners(snapshot.nodes)
  const masters = snapshot.nodes.filter((node) => node.role === 'master' && snapshot.views[node.id]?.reachable)
  const stray = new Map<number, string[]>()
  await mapLimit(masters, NODE_PARALLELISM, async (master) => {
    const foreign: number[] = []
    for (let slot = 0; slot < SLOT_COUNT; slot++) if (owners.get(slot) !== master.id) foreign.push(slot)
    const counts = await countKeysInSlots(pool, master.address, foreign)
    for (const [index, count] of counts.entries()) {
      if (count === 0) continue
      const slot = foreign[index]
      stray.set(slot, [...(stray.get(slot) ?? []), master.id])
    }
  })
  return stray
}

/** master id → slot → keys, for the slots each master owns or imports (slots without keys left out) */
export type KeyCountsByMaster = Map<string, Map<number, number>>

/** A master's key total and the key count of each given slot that has keys, read at one instant. */
export interface OwnKeyCount {
  total: number
  counts: Map<number, number>
}

/**
 * DBSIZE and COUNTKEYSINSLOT of each slot, run inside the server: a script is atomic, so
 * writes in between cannot hide a stray key, and one call replaces thousands of commands
 * over the wire. Slots arrive as start,end pairs; only slots with keys come back.
 */
const COUNT_SCRIPT = `
local out = {redis.call('DBSIZE')}
for i = 1, #ARGV, 2 do
  for slot = tonumber(ARGV[i]), tonumber(ARGV[i + 1]) do
    local n = redis.call('CLUSTER', 'COUNTKEYSINSLOT', slot)
    if n > 0 then
      out[#out + 1] = slot
      out[#out + 1] = n
    end
  end
end
return out`
const COUNT_SHA = createHash('sha1').update(COUNT_SCRIPT).digest('hex')

/** Consecutive runs of sorted slots as flat start,end pairs. */
function slotRunArgs(slots: readonly number[]): number[] {
  const sorted = [...slots].sort((a, b) => a - b)
  const args: number[] = []
  for (const slot of sorted) {
    if (args.length > 0 && args.at(-1) === slot - 1) args[args.length - 1] = slot
    else args.push(slot, slot)
  }
  return args
}

/**
 * The key total of a master and the counts of the given slots, at one instant: by a script
 * where the user may run one, else in one MULTI (DBSIZE and a COUNTKEYSINSLOT per slot).
 */
export async function countOwnKeys(pool: NodePool, master: ClusterNode, slots: readonly number[]): Promise<OwnKeyCount> {
  const client = await pool.client(master.address)
  let reply: unknown
  try {
    // EVALSHA_RO (and SCRIPT LOAD): not held by CLIENT PAUSE WRITE (a manual failover, an operator's pause)
    const [[loadError], [error, counted]] = ((await client.pipeline().call('SCRIPT', 'LOAD', COUNT_SCRIPT).call('EVALSHA_RO', COUNT_SHA, 0, ...slotRunArgs(slots)).exec()) ?? [[new Error('no reply')], [new Error('no reply')]]) as Array<[Error | null, unknown]>
    if (loadError ?? error) throw loadError ?? error
    reply = counted
  } catch {
    // scripts refused to this user (NOPERM), or turned off: the transaction counts the same
    return countOwnKeysInTransaction(pool, master, slots)
  }
  const [total, ...pairs] = (Array.isArray(reply) ? reply : []).map(Number)
  const counts = new Map<number, number>()
  for (let i = 0; i + 1 < pairs.length; i += 2) counts.set(pairs[i], pairs[i + 1])
  return {counts, total}
}

async function countOwnKeysInTransaction(pool: NodePool, master: ClusterNode, slots: readonly number[]): Promise<OwnKeyCount> {
  const client = await pool.client(master.address)
  const transaction = client.multi().call('DBSIZE')
  for (const slot of slots) transaction.call('CLUSTER', 'COUNTKEYSINSLOT', slot)
  let replies: Array<[Error | null, unknown]> | null
  try {
    replies = await transaction.exec()
  } catch (error) {
    throw new SlotctlError(`${master.address} could not count its keys: ${errorMessage(error)}`, {code: 'E_PROTOCOL'})
  }
  const failed = (replies ?? []).find(([error]) => error)
  if (!replies || failed) throw new SlotctlError(`${master.address} could not count its keys: ${failed?.[0]?.message ?? 'transaction aborted'}`, {code: 'E_PROTOCOL'})
  const [[, total], ...replyCounts] = replies
  const counts = new Map<number, number>()
  for (const [index, [, count]] of replyCounts.entries()) if (Number(count) > 0) counts.set(slots[index], Number(count))
  return {counts, total: Number(total)}
}

/** Whether a master holds keys outside the given slots, counted exactly (countOwnKeys). */
export async function holdsKeysOutside(pool: NodePool, master: ClusterNode, slots: readonly number[], counted?: Map<number, number>): Promise<boolean> {
  const {counts, total} = await countOwnKeys(pool, master, slots)
  for (const [slot, count] of counts) counted?.set(slot, count)
  let inSlots = 0
  for (const count of counts.values()) inSlots += count
  return total > inSlots
}

/**
 * The same question with read-only commands (INFO keyspace and the counts, pipelined back to
 * back, not in a transaction): a key deleted in between can only make the total look too big,
 * and then every other slot is counted exactly, so it never reports a stray key that is not
 * there; a key written in between can hide one. Good enough for a report, not for a refusal.
 */
async function mayHoldKeysOutside(pool: NodePool, master: ClusterNode, accounted: readonly SlotRange[]): Promise<boolean> {
  const replies = await pool.readMany(master.address, countKeysBatch(accounted, [['INFO', 'keyspace']]))
  if (!replies || replies.length === 0) throw new SlotctlError(`${master.address} could not count its keys: no reply`, {code: 'E_PROTOCOL'})
  const [[infoError, info], ...counts] = replies
  let inSlots = 0
  // a plain loop: it runs over 16,384 replies once per check, before the JIT has compiled it
  for (const [error, count] of counts) {
    if (error) throw new SlotctlError(`${master.address} could not count its keys: ${error.message}`, {code: 'E_PROTOCOL'})
    inSlots += Number(count)
  }
  if (infoError) throw new SlotctlError(`${master.address} could not count its keys: ${infoError.message}`, {code: 'E_PROTOCOL'})
  const total = Number(/^db0:keys=(\d+)/m.exec(String(info))?.[1] ?? 0)
  return total > inSlots
}

/**
 * slot → masters holding keys of it while their own view neither gives it to them nor marks
 * it importing. Such keys are lost as soon as the node checks its data against its config
 * (at start-up, or when a failover or a slot move makes it look; Valkey deletes them, and
 * 9.1 asserts in kvstore.c when a migration touches them). Cheap on a healthy cluster: one
 * round trip per master (its key total and a count per accounted slot); the other slots are
 * counted only on a master whose total does not add up. `exact` reads the total with DBSIZE
 * in the same MULTI as the counts (writes in between cannot hide a stray key); otherwise
 * with INFO keyspace, which a read-only ACL user may run.
 */
export async function findKeysOutsideOwners(pool: NodePool, snapshot: ClusterSnapshot, exact: boolean, counted?: KeyCountsByMaster): Promise<StrayKeyEvidence> {
  const masters = snapshot.nodes.filter((node) => node.role === 'master' && snapshot.views[node.id]?.reachable)
  const stray: StrayKeyEvidence = new Map()
  await mapLimit(masters, NODE_PARALLELISM, async (master) => {
    const accountedRanges = mergeRanges([...master.slots.map(([start, end]): SlotRange => [start, end]), ...Object.keys(master.importing).map((slot): SlotRange => [Number(slot), Number(slot)])])
    const own = new Map<number, number>()
    counted?.set(master.id, own)
    const outside = exact ? holdsKeysOutside(pool, master, expandRanges(accountedRanges), own) : mayHoldKeysOutside(pool, master, accountedRanges)
    if (!(await outside)) return
    const accounted = new Set(expandRanges(accountedRanges))
    const others = Array.from({length: SLOT_COUNT}, (_, slot) => slot).filter((slot) => !accounted.has(slot))
    const counts = await countKeysInSlots(pool, master.address, others)
    for (const [index, count] of counts.entries()) if (count > 0) stray.set(others[index], [...(stray.get(others[index]) ?? []), master.id])
  })
  return stray
}

/**
 * For the migration verbs: returns what it counted (key counts of each master's own slots, so
 * the run need not count them again) and refuses while any master holds keys of a slot it neither owns nor
 * imports (MULTIPLE_OWNERS, in BLOCKS_MIGRATION). Moving slots around such keys is how they
 * get deleted; fix --search-multiple-owners moves them into their owner first. One exception:
 * keys held by the node a legacy move of this run takes their slot to. The move opens the
 * slot there (IMPORTING, from then on the keys are safe at start-up and from gossip) and
 * compares them with the moved copies (BUSYKEY: equal ones merge, different ones stop the
 * slot, left open); an atomic move (Valkey 9) has no such step and is refused.
 */
export async function refuseKeysOutsideOwners(pool: NodePool, snapshot: ClusterSnapshot, legacyMoves: ReadonlyArray<{slot: number; targetId: string}> = []): Promise<KeyCountsByMaster> {
  const absorbedBy = new Map(legacyMoves.map((move) => [move.slot, move.targetId]))
  const stray: StrayKeyEvidence = new Map()
  const counted: KeyCountsByMaster = new Map()
  for (const [slot, holders] of await findKeysOutsideOwners(pool, snapshot, true, counted)) {
    const left = holders.filter((id) => id !== absorbedBy.get(slot))
    if (left.length > 0) stray.set(slot, left)
  }
  const findings: Finding[] = multipleOwnerFindings(snapshot, stray)
  if (findings.length === 0) return counted
  const more = findings.length > 1 ? ` (and ${findings.length - 1} more slot(s))` : ''
  throw new SlotctlError(`refusing to move slots: ${findings[0].message}${more}`, {
    code: 'E_UNSAFE_CLUSTER',
    suggestions: [`move them into their owner first: slotctl fix ${snapshot.seedAddress} --search-multiple-owners`],
  })
}
