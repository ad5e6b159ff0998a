/**
 * Per-slot load for `rebalance --by keys|memory` and `info`: key counts of each master's own
 * slots, from one CLUSTER SLOT-STATS call where the master has it (Valkey ≥ 8), else from
 * CLUSTER COUNTKEYSINSLOT per slot (pipelined); and a byte estimate per slot.
 *
 * The byte estimate: a master's dataset memory (INFO memory `used_memory_dataset`, i.e.
 * used_memory minus the server's own overhead) is shared among its slots in proportion to
 * their key counts: bytes(slot) ≈ dataset(node) · keys(slot) / keys(node). It assumes keys of
 * one node are of similar size on average per slot; it costs one INFO per master instead of
 * a MEMORY USAGE per key.
 */
import {NODE_PARALLELISM, type NodePool, mapLimit} from './connection.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {SLOT_COUNT, type SlotRange, expandRanges, runsInOrder} from '../core/slots.js'
import {readServerFeatures} from './server-info.js'
import {countKeysBatch} from './raw-pipeline.js'
import {parseInfo} from './topology.js'

export interface SlotStatsMaster {
  id: string
  address: string
  slots: readonly SlotRange[]
}

/** COUNTKEYSINSLOT of each slot on one node, in order, in one batch within the read deadline. */
export async function countKeysInSlots(pool: NodePool, address: string, slots: readonly number[]): Promise<number[]> {
  if (slots.length === 0) return []
  const replies = await pool.readMany(address, countKeysBatch(runsInOrder(slots)))
  return replies.map(([error, value]) => {
    if (error) throw new SlotctlError(`${address} answered CLUSTER COUNTKEYSINSLOT with: ${error.message}`, {code: 'E_PROTOCOL'})
    return Number(value)
  })
}

/**
 * Pure: slot → key-count from a CLUSTER SLOT-STATS reply, [[slot, [field, value, ...]], ...]
 * (other fields, such as cpu-usec, are ignored).
 */
export function parseSlotStats(reply: unknown): Map<number, number> {
  const counts = new Map<number, number>()
  if (!Array.isArray(reply)) return counts
  for (const entry of reply) {
    if (!Array.isArray(entry) || !Array.isArray(entry[1])) continue
    const fields = entry[1] as unknown[]
    for (let i = 0; i + 1 < fields.length; i += 2) if (String(fields[i]) === 'key-count') counts.set(Number(entry[0]), Number(fields[i + 1]))
  }
  return counts
}

/** Key counts of every slot a node owns, in one call: the node answers for its own slots only. */
async function slotStatsKeyCounts(pool: NodePool, address: string): Promise<Map<number, number>> {
  return parseSlotStats(await pool.read(address, (client) => client.call('CLUSTER', 'SLOT-STATS', 'SLOTSRANGE', 0, SLOT_COUNT - 1)))
}

/**
 * Key counts of one master's own slots, in the order of `slots`. SLOT-STATS where the master
 * has it; slots it did not answer for (its view of its slots differs from ours) and masters
 * without it are counted one COUNTKEYSINSLOT each.
 */
export async function masterSlotKeyCounts(pool: NodePool, address: string, slots: readonly number[]): Promise<number[]> {
  if (slots.length === 0) return []
  const features = await readServerFeatures(pool, address).catch(() => undefined)
  const stats = features?.slotStats ? await slotStatsKeyCounts(pool, address).catch(() => undefined) : undefined
  const missing = slots.filter((slot) => stats?.get(slot) === undefined)
  const counted = missing.length > 0 ? await countKeysInSlots(pool, address, missing) : []
  const fallback = new Map(missing.map((slot, i) => [slot, counted[i]]))
  return slots.map((slot) => stats?.get(slot) ?? (fallback.get(slot) as number))
}

/** Key count of every slot (index = slot), each read from the master that owns it. */
export async function slotKeyCounts(pool: NodePool, masters: readonly SlotStatsMaster[]): Promise<number[]> {
  const keys = Array.from({length: SLOT_COUNT}, () => 0)
  await mapLimit(masters, NODE_PARALLELISM, async (master) => {
    const slots = expandRanges(master.slots)
    let counts: number[]
    try {
      counts = await masterSlotKeyCounts(pool, master.address, slots)
    } catch (error) {
      if (error instanceof SlotctlError) throw error
      throw new SlotctlError(`cannot count keys per slot on ${master.address}: ${errorMessage(error)}`, {code: 'E_UNREACHABLE'})
    }
    for (const [index, slot] of slots.entries()) keys[slot] = counts[index]
  })
  return keys
}

/** Bytes of data a master holds, without the server's fixed overhead. */
export function datasetBytes(info: Record<string, string>): number {
  const dataset = Number(info.used_memory_dataset)
  if (Number.isFinite(dataset) && dataset >= 0) return dataset
  return Math.max(0, Number(info.used_memory ?? 0) - Number(info.used_memory_startup ?? 0))
}

/** Pure: spreads each master's dataset bytes over its slots by key share. */
export function estimateSlotBytes(masters: readonly SlotStatsMaster[], keys: readonly number[], bytesByMaster: ReadonlyMap<string, number>): number[] {
  const bytes = Array.from({length: SLOT_COUNT}, () => 0)
  for (const master of masters) {
    const slots = expandRanges(master.slots)
    const nodeKeys = slots.reduce((sum, slot) => sum + keys[slot], 0)
    const nodeBytes = bytesByMaster.get(master.id) ?? 0
    if (nodeKeys === 0) continue
    for (const slot of slots) bytes[slot] = (nodeBytes * keys[slot]) / nodeKeys
  }
  return bytes
}

export async function slotByteEstimates(pool: NodePool, masters: readonly SlotStatsMaster[], keys: readonly number[]): Promise<number[]> {
  const memory = await mapLimit(masters, NODE_PARALLELISM, async (master) => {
    try {
      const client = await pool.client(master.address)
      return datasetBytes(parseInfo(String(await client.info('memory'))))
    } catch (error) {
      throw new SlotctlError(`cannot read INFO memory from ${master.address}: ${errorMessage(error)}`, {code: 'E_UNREACHABLE'})
    }
  })
  return estimateSlotBytes(masters, keys, new Map(masters.map((master, index) => [master.id, memory[index]])))
}
