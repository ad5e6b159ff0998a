/**
 * What import reports: the shapes of its --json result, and the dry run's survey (how many
 * keys each master would receive, and how many the cluster already has).
 */
import type {Redis} from 'ioredis'

import {type NodePool, mapLimit} from '../cluster/connection.js'
import {keySlot} from '../core/slots.js'
import type {Issue, NodeRef} from '../core/result.js'
import type {Conflict} from './mover.js'
import {ScanGuard} from './scan-guard.js'
import {ExitCode, SlotctlError} from '../core/errors.js'

export interface KeyName {
  /** the name as text when it is valid UTF-8, else 0x-prefixed hex */
  key: string
  encoding: 'hex' | 'utf8'
}

/** A key both sides have with different values; the master holds the cluster's copy. */
export interface ConflictView extends KeyName {
  masterId: string
  masterAddress: string
}

/** A master and how many keys it received (or, in a dry run, would receive). */
export interface OwnerCount extends NodeRef {
  keys: number
}

export interface ImportResult {
  status: 'done' | 'failed' | 'interrupted' | 'nothing-to-do' | 'partial' | 'planned'
  seed: NodeRef
  source: {address: string; db: number; keys: number; version: string}
  mode: 'copy' | 'move'
  replace: boolean
  match: string | null
  /** keys now in the cluster with the source's value (moved, copied, or already equal) */
  keysImported: number
  /** dry run: keys that would be imported, and how many of them the cluster already has */
  keysPlanned?: number
  keysAlreadyInCluster?: number
  owners: OwnerCount[]
  conflicts: {count: number; keys: ConflictView[]}
  elapsedMs: number
  journal?: string
  resumeCommand?: string
  warnings: Issue[]
  errors: Issue[]
}

/** Conflicts listed in --json; the count is always complete. */
export const CONFLICTS_LISTED = 1000

export function keyName(key: Buffer): KeyName {
  const text = key.toString('utf8')
  return Buffer.from(text, 'utf8').equals(key) ? {encoding: 'utf8', key: text} : {encoding: 'hex', key: key.toString('hex')}
}

export function conflictViews(conflicts: readonly Conflict[]): ConflictView[] {
  return conflicts.slice(0, CONFLICTS_LISTED).map(({key, owner}) => ({...keyName(key), masterAddress: owner.address, masterId: owner.id}))
}

export interface Survey {
  keys: number
  present: number
  perOwner: Map<NodeRef, number>
}

const SURVEY_SCAN_COUNT = 2000

/** Dry run: scans the source (never KEYS) and asks each owner which keys it already has. */
export async function surveySource(source: Redis, cluster: NodePool, owners: readonly NodeRef[], scope: {address: string; keys: number; match?: string; signal?: AbortSignal}): Promise<Survey> {
  const survey: Survey = {keys: 0, perOwner: new Map(), present: 0}
  const guard = new ScanGuard(source, `the source ${scope.address}`, scope.keys, SURVEY_SCAN_COUNT)
  let cursor = '0'
  do {
    if (scope.signal?.aborted) throw new SlotctlError('interrupted: nothing was changed', {code: 'E_INTERRUPTED', exitCode: ExitCode.interrupted})
    const [next, keys] = (await source.callBuffer('SCAN', cursor, ...(scope.match ? ['MATCH', scope.match] : []), 'COUNT', SURVEY_SCAN_COUNT)) as [Buffer, Buffer[]]
    cursor = next.toString()
    await guard.step(cursor)
    const groups = new Map<NodeRef, Buffer[]>()
    for (const key of keys) {
      const owner = owners[keySlot(key)]
      groups.set(owner, [...(groups.get(owner) ?? []), key])
    }
    await mapLimit([...groups], 16, async ([owner, group]) => {
      const pipeline = (await cluster.client(owner.address)).pipeline()
      for (const key of group) pipeline.exists(key)
      const replies = (await pipeline.exec()) ?? []
      survey.present += replies.filter(([error, found]) => !error && Number(found) > 0).length
      survey.perOwner.set(owner, (survey.perOwner.get(owner) ?? 0) + group.length)
    })
    survey.keys += keys.length
  } while (cursor !== '0')
  return survey
}
