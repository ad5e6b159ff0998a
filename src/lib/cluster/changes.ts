/**
 * What changed between two reads of a cluster: a run decides (plans, checks, gathers evidence)
 * on one read, and may act only if the read under its lock shows the same cluster.
 */
import type {ClusterSnapshot} from './loader.js'
import {formatSlots} from '../core/slots.js'
import {type ClusterNode, shortId, slotOwners} from './topology.js'

/** Nodes in handshake come and go with gossip; they hold no slots and serve nothing. */
function members(snapshot: ClusterSnapshot): Map<string, ClusterNode> {
  return new Map(snapshot.nodes.filter((node) => !node.handshake).map((node) => [node.id, node]))
}

/** Slot lists stay readable on one line: a fragmented map can have thousands of ranges. */
export function shorten(ranges: string, max = 60): string {
  return ranges.length > max ? `${ranges.slice(0, ranges.lastIndexOf(',', max - 4) + 1 || max - 4)}...` : ranges
}

function nameOf(node: ClusterNode): string {
  return `${node.address || '(no address)'} (${shortId(node.id)})`
}

function membershipChange(before: Map<string, ClusterNode>, after: Map<string, ClusterNode>): string | undefined {
  const left = [...before.values()].find((node) => !after.has(node.id))
  if (left) return `${nameOf(left)} left the cluster`
  const joined = [...after.values()].find((node) => !before.has(node.id))
  if (joined) return `${nameOf(joined)} joined the cluster`
  return undefined
}

function roleChange(before: Map<string, ClusterNode>, after: Map<string, ClusterNode>): string | undefined {
  for (const [id, was] of before) {
    const now = after.get(id) as ClusterNode
    if (now.role !== was.role) return `${nameOf(now)} is now a ${now.role} (was a ${was.role})`
    if (now.role === 'replica' && now.masterId !== was.masterId) return `replica ${nameOf(now)} now replicates ${shortId(now.masterId ?? '?')} (was ${shortId(was.masterId ?? '?')})`
  }
  return undefined
}

function ownerChange(before: ClusterSnapshot, after: ClusterSnapshot, nodes: Map<string, ClusterNode>): string | undefined {
  const was = slotOwners(before.nodes)
  const now = slotOwners(after.nodes)
  const moved: number[] = []
  for (let slot = 0; slot < 16_384; slot++) if (was.get(slot) !== now.get(slot)) moved.push(slot)
  if (moved.length === 0) return undefined
  const owner = (id: string | undefined) => (id ? (nodes.get(id) ? nameOf(nodes.get(id) as ClusterNode) : shortId(id)) : 'nobody')
  const [first] = moved
  return `${moved.length} slot(s) changed owner (${shorten(formatSlots(moved))}; slot ${first}: ${owner(was.get(first))} -> ${owner(now.get(first))})`
}

function openSlotChange(before: Map<string, ClusterNode>, after: Map<string, ClusterNode>): string | undefined {
  for (const [id, now] of after) {
    const was = before.get(id) as ClusterNode
    for (const kind of ['migrating', 'importing'] as const) {
      const slots = new Set([...Object.keys(was[kind]), ...Object.keys(now[kind])].map(Number))
      const changed = [...slots].filter((slot) => was[kind][slot] !== now[kind][slot])
      if (changed.length > 0) return `the ${kind} slot(s) of ${nameOf(now)} changed (${shorten(formatSlots(changed))})`
    }
  }
  return undefined
}

/**
 * The first difference that could make a decision taken on `before` wrong, in words; undefined
 * when none. Membership comes first: the later checks assume both reads hold the same nodes.
 */
export function clusterChange(before: ClusterSnapshot, after: ClusterSnapshot): string | undefined {
  const was = members(before)
  const now = members(after)
  return membershipChange(was, now) ?? roleChange(was, now) ?? ownerChange(before, after, now) ?? openSlotChange(was, now)
}
