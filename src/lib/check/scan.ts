/** I/O that gathers evidence the pure checks cannot see in CLUSTER NODES. */
import type {ClusterSnapshot} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, mapLimit} from '../cluster/connection.js'
import {countKeysInSlots} from '../cluster/slot-stats.js'
import {SLOT_COUNT} from '../cluster/slots.js'
import {slotOwners} from '../cluster/topology.js'

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
