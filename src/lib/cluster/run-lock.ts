/**
 * One changing run per cluster. Every run that changes a cluster names its connection on
 * every master (CLIENT SETNAME slotctl:<verb>:<host>:<pid>:<start>:<nonce>) and only then
 * reads CLIENT LIST on every master; another run's name there means another live run.
 *
 * Why two runs cannot both pass: each names itself everywhere before it looks anywhere. If
 * run B sees no name of run A on some master M, B's look at M came before A named itself
 * on M, so before A looked anywhere, and after B had named itself everywhere: A sees B on
 * every master and refuses. (Both may refuse; then the operator retries one.)
 *
 * A dead run holds no connection, so its name is gone with it; nothing is left to unlock.
 */
import {hostname} from 'node:os'

import type {NodePool} from './connection.js'
import {NODE_PARALLELISM, settleLimit} from './connection.js'
import {SlotctlError, errorMessage} from '../errors.js'

const PREFIX = 'slotctl:'

export interface RunMarker {
  verb: string
  host: string
  pid: number
  startedAt: string
}

export interface OtherRun extends RunMarker {
  /** the master whose CLIENT LIST showed it */
  seenOn: string
  /** how long that connection has been open, seconds */
  ageSeconds: number
}

/** A CLIENT SETNAME value: no spaces or newlines, so host names are reduced to [A-Za-z0-9._-]. */
export function markerName(marker: RunMarker, nonce: string): string {
  const host = marker.host.replace(/[^A-Za-z0-9._-]/g, '_')
  return `${PREFIX}${marker.verb}:${host}:${marker.pid}:${marker.startedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}:${nonce}`
}

export function parseMarkerName(name: string): (RunMarker & {nonce: string}) | undefined {
  if (!name.startsWith(PREFIX)) return undefined
  const [verb, host, pid, startedAt, nonce] = name.slice(PREFIX.length).split(':')
  if (!verb || !host || !/^\d+$/.test(pid ?? '') || !startedAt || !nonce) return undefined
  return {host, nonce, pid: Number(pid), startedAt, verb}
}

/** The other slotctl runs named in one CLIENT LIST reply. */
export function otherRunsIn(clientList: string, ownName: string, seenOn: string): OtherRun[] {
  const runs: OtherRun[] = []
  for (const line of clientList.split('\n')) {
    const name = /(?:^| )name=(\S*)/.exec(line)?.[1]
    if (!name || name === ownName) continue
    const marker = parseMarkerName(name)
    if (!marker) continue
    const ageSeconds = Number(/(?:^| )age=(\d+)/.exec(line)?.[1] ?? 0)
    runs.push({ageSeconds, host: marker.host, pid: marker.pid, seenOn, startedAt: marker.startedAt, verb: marker.verb})
  }
  return runs
}

function lockError(message: string, suggestions: string[]): SlotctlError {
  return new SlotctlError(message, {code: 'E_LOCKED', suggestions})
}

export interface LockOptions {
  force?: boolean
  warn?: (message: string) => void
}

/** Runs one command on every master; the first refusal becomes a lock error (the lock cannot be checked). */
async function onEveryMaster(pool: NodePool, masters: readonly string[], args: string[]): Promise<unknown[]> {
  const replies = await settleLimit(masters, NODE_PARALLELISM, async (address) => (await pool.client(address)).call(...(args as [string, ...string[]])))
  const refused = replies.findIndex((entry) => entry.error)
  if (refused === -1) return replies.map((entry) => entry.value)
  const cause = errorMessage(replies[refused].error)
  throw lockError(`cannot check for other slotctl runs on ${masters[refused]}: ${cause}`, [
    /NOPERM|no permissions/i.test(cause) ? 'the ACL user needs +client|setname and +client|list to change the cluster' : 'check the node, then run again',
  ])
}

/** Refuses (E_LOCKED) when `others` is not empty, unless forced (then `warn`s). */
function refuseOthers(others: OtherRun[], options: LockOptions): void {
  if (others.length === 0) return
  const other = others[0]
  const what = `another slotctl run is changing this cluster: '${other.verb}' from pid ${other.pid} on ${other.host}, started ${other.startedAt} (seen on ${other.seenOn})`
  if (!options.force) throw lockError(what, ['wait for it to finish; if that process is stuck, stop it, or pass --force to go on anyway'])
  options.warn?.(`warning: ${what}; going on because of --force`)
}

async function otherRuns(pool: NodePool, masters: readonly string[], ownName: string): Promise<OtherRun[]> {
  const lists = await onEveryMaster(pool, masters, ['CLIENT', 'LIST', 'TYPE', 'normal'])
  return lists.flatMap((list, i) => otherRunsIn(String(list), ownName, masters[i]))
}

/** Read-only: refuses early, with the real reason, while another slotctl run changes the cluster. */
export async function refuseIfOtherRun(pool: NodePool, masters: readonly string[], options: LockOptions = {}): Promise<void> {
  refuseOthers(await otherRuns(pool, masters, ''), options)
}

/**
 * Names this run on every master, then refuses (E_LOCKED) if any master shows another
 * slotctl run. With `force`, another run is reported through `warn` instead.
 */
export async function acquireRunLock(pool: NodePool, masters: readonly string[], verb: string, options: LockOptions = {}): Promise<string> {
  const name = markerName({host: hostname(), pid: process.pid, startedAt: new Date().toISOString(), verb}, Math.random().toString(36).slice(2, 8))
  await onEveryMaster(pool, masters, ['CLIENT', 'SETNAME', name])
  refuseOthers(await otherRuns(pool, masters, name), options)
  return name
}
