/**
 * What a reviewer wants to know about a plan file before running it: what kind, how old,
 * for which cluster, which pairs move how many slots, how many keys, about how long.
 */
import type {MigrationPlan} from './types.js'
import {type PlanMeta, transfersOf} from './plan-file.js'

/**
 * A rough moving rate for the time estimate: about half of what one run reaches on a laptop
 * (README, about 100k keys/s), since real clusters have replicas to wait for and networks.
 */
export const NOMINAL_KEYS_PER_SEC = 50_000

export interface PlanPairSummary {
  sourceId: string
  sourceAddress: string
  targetId: string
  targetAddress: string
  slotCount: number
  slots: string
}

export interface PlanSummary {
  version: 1 | 2
  kind: MigrationPlan['kind']
  createdAt: string
  /** ms since createdAt (absent when createdAt is not a time) */
  ageMs?: number
  clusterId?: string
  inverted: boolean
  pairs: PlanPairSummary[]
  slots: number
  /** keys in the slots when the plan was made (version 2 files made by a dry run) */
  keys?: number
  /** keys at NOMINAL_KEYS_PER_SEC */
  expectedMs?: number
  nominalKeysPerSec: number
  bigKeys: number
}

export function summarizePlan(plan: MigrationPlan, meta: PlanMeta, now = Date.now()): PlanSummary {
  const addressOf = (id: string) => plan.nodes.find((node) => node.id === id)?.address ?? ''
  const created = Date.parse(plan.createdAt)
  const pairs = transfersOf(plan.moves).map(({count, slots, sourceId, targetId}) => ({slotCount: count, slots, sourceAddress: addressOf(sourceId), sourceId, targetAddress: addressOf(targetId), targetId}))
  return {
    ...(Number.isNaN(created) ? {} : {ageMs: Math.max(0, now - created)}),
    bigKeys: plan.bigKeys?.length ?? 0,
    ...(meta.clusterId ? {clusterId: meta.clusterId} : {}),
    createdAt: plan.createdAt,
    ...(meta.keys === undefined ? {} : {expectedMs: Math.round((meta.keys / NOMINAL_KEYS_PER_SEC) * 1000), keys: meta.keys}),
    inverted: Boolean(meta.inverted),
    kind: plan.kind,
    nominalKeysPerSec: NOMINAL_KEYS_PER_SEC,
    pairs,
    slots: plan.moves.length,
    version: meta.version,
  }
}

/** "3d 4h", "5h 12m", "42m", "30s": an age to the unit that matters. */
export function formatAge(ms: number): string {
  const minutes = Math.floor(ms / 60_000)
  if (minutes < 1) return `${Math.floor(ms / 1000)}s`
  if (minutes < 60) return `${minutes}m`
  const hours = Math.floor(minutes / 60)
  if (hours < 24) return `${hours}h ${minutes % 60}m`
  return `${Math.floor(hours / 24)}d ${hours % 24}h`
}
