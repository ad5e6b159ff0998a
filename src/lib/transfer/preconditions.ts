/**
 * Preconditions shared by import and restore --into: the cluster must be safe to write into
 * (check/gate.ts, the gate of the migration verbs) and, for restore, empty.
 */
import type {ClusterSnapshot} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, mapLimit} from '../cluster/connection.js'
import {SlotctlError} from '../core/errors.js'
import {mastersOf, slotOwners} from '../cluster/topology.js'
import {SLOT_COUNT} from '../core/slots.js'
import type {NodeRef} from '../core/result.js'

/** The master serving each slot, as an array indexed by slot (the cluster is fully covered). */
export function ownerTable(snapshot: ClusterSnapshot): NodeRef[] {
  const owners = slotOwners(snapshot.nodes)
  const byId = new Map(mastersOf(snapshot.nodes).map((node) => [node.id, {address: node.address, id: node.id}]))
  const table: NodeRef[] = []
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    const owner = byId.get(owners.get(slot) ?? '')
    if (!owner) throw new SlotctlError(`slot ${slot} has no master`, {code: 'E_UNSAFE_CLUSTER'})
    table.push(owner)
  }
  return table
}

/** DBSIZE of every master that owns slots. */
export async function keysPerMaster(pool: NodePool, snapshot: ClusterSnapshot): Promise<Array<{node: NodeRef; keys: number}>> {
  const masters = mastersOf(snapshot.nodes).filter((node) => node.slots.length > 0)
  return mapLimit(masters, NODE_PARALLELISM, async (node) => ({keys: Number(await (await pool.client(node.address)).dbsize()), node: {address: node.address, id: node.id}}))
}
