/**
 * One changing run per cluster. Every run that changes a cluster names a connection of its
 * own on every master (CLIENT SETNAME slotctl:<verb>:<host>:<pid>:<start>:<nonce>) and only
 * then reads CLIENT LIST on every master; another run's name there means another run.
 *
 * Why two runs cannot both pass: each names itself everywhere before it looks anywhere. If
 * run B sees no name of run A on some master M, B's look at M came before A named itself
 * on M, so before A looked anywhere, and after B had named itself everywhere: A sees B on
 * every master and refuses. (Both may refuse; then the operator retries one.)
 *
 * A dead run holds no connection, so its name is gone with it; nothing is left to unlock.
 *
 * A name alone proves nothing: any client may call itself slotctl:reshard:... So a run
 * renews its marker (CLIENT SETNAME again on that connection: the lock needs that right
 * anyway, where a PING may be denied by an ACL) every second, and a marker whose
 * connection has been idle for LIVE_IDLE_SECONDS is no live run's: it is stale (a stopped
 * or hung slotctl) or forged. So is one whose connection sends anything else (CLIENT LIST
 * shows its last command: a lock connection only ever renews its name), and one that names
 * this machine and a pid that no longer runs. It still refuses a change, because a stopped
 * run may wake up and go on moving slots; the message says what it is and how to go on
 * (--ignore-lock, CLIENT KILL). A look that changes nothing (--dry-run, backup) only warns.
 */
import {hostname} from 'node:os'

import type {Redis} from 'ioredis'

import type {NodePool} from './connection.js'
import {NODE_PARALLELISM, settleLimit} from './connection.js'
import {SlotctlError, errorMessage} from '../core/errors.js'

const PREFIX = 'slotctl:'

/** The pool lane of the lock connection: it does nothing but hold the name and renew it. */
const LOCK_LANE = 1000
const RENEW_EVERY_MS = 1000
/** Ten missed renewals: far more than an event-loop pause, far less than any real run. */
export const LIVE_IDLE_SECONDS = 10

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
  /** seconds since that connection last sent a command: a live run renews every second */
  idleSeconds: number
  /** the server's client id, for CLIENT KILL ID */
  clientId: string
  /** the client's address as the server sees it */
  clientAddress: string
  /** the last command that connection sent (CLIENT LIST `cmd`) */
  lastCommand: string
  name: string
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

function field(line: string, name: string): string | undefined {
  return new RegExp(`(?:^| )${name}=(\\S*)`).exec(line)?.[1]
}

/** The other slotctl markers in one CLIENT LIST reply. */
export function otherRunsIn(clientList: string, ownName: string, seenOn: string): OtherRun[] {
  const runs: OtherRun[] = []
  for (const line of clientList.split('\n')) {
    const name = field(line, 'name')
    if (!name || name === ownName) continue
    const marker = parseMarkerName(name)
    if (!marker) continue
    runs.push({
      ageSeconds: Number(field(line, 'age') ?? 0),
      clientAddress: field(line, 'addr') ?? '?',
      clientId: field(line, 'id') ?? '?',
      host: marker.host,
      idleSeconds: Number(field(line, 'idle') ?? 0),
      lastCommand: field(line, 'cmd') ?? '',
      name,
      pid: marker.pid,
      seenOn,
      startedAt: marker.startedAt,
      verb: marker.verb,
    })
  }
  return runs
}

/** A lock connection's only command: CLIENT SETNAME (`client|setname`; `client` before Redis 7). */
const RENEWAL = /^client(\|setname)?$/i

/** Why a marker is no live run's, or undefined when it behaves like one. */
export function notLiveBecause(run: OtherRun, here: {host: string; isRunning: (pid: number) => boolean} = {host: localHost(), isRunning: processRuns}): string | undefined {
  if (run.idleSeconds >= LIVE_IDLE_SECONDS) return `has been idle for ${run.idleSeconds} s; a live slotctl run renews its marker every second`
  if (run.lastCommand && !RENEWAL.test(run.lastCommand)) return `last sent '${run.lastCommand}'; a slotctl lock connection only ever renews its name`
  if (run.host === here.host && !here.isRunning(run.pid)) return `names pid ${run.pid} on this machine, which is not running`
  return undefined
}

export function isLive(run: OtherRun): boolean {
  return notLiveBecause(run) === undefined
}

/** This machine's name as markers carry it. */
function localHost(): string {
  return hostname().replace(/[^A-Za-z0-9._-]/g, '_')
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface LockOptions {
  /** --ignore-lock: go on past other markers, with a warning */
  ignoreLock?: boolean
  /** a look that changes nothing (--dry-run): a marker no live run holds only warns */
  readOnly?: boolean
  warn?: (message: string) => void
}

/** Runs one command on every master (on `lane`); the first refusal becomes a lock error (the lock cannot be checked). */
async function onEveryMaster(pool: NodePool, masters: readonly string[], args: string[], lane = 0): Promise<unknown[]> {
  const replies = await settleLimit(masters, NODE_PARALLELISM, async (address) => (await pool.client(address, lane)).call(...(args as [string, ...string[]])))
  const refused = replies.findIndex((entry) => entry.error)
  if (refused === -1) return replies.map((entry) => entry.value)
  const cause = errorMessage(replies[refused].error)
  throw new SlotctlError(`cannot check for other slotctl runs on ${masters[refused]}: ${cause}`, {
    code: 'E_LOCKED',
    suggestions: [/NOPERM|no permissions/i.test(cause) ? 'the ACL user needs +client|setname and +client|list to change the cluster' : 'check the node, then run again'],
  })
}

function liveRunError(run: OtherRun): SlotctlError {
  return new SlotctlError(`another slotctl run is changing this cluster: '${run.verb}' from pid ${run.pid} on ${run.host}, started ${run.startedAt} (client ${run.clientId} at ${run.clientAddress}, seen on ${run.seenOn})`, {
    code: 'E_LOCKED',
    suggestions: ['wait for it to finish; if that process is stuck, stop it. Only when no other slotctl run is active: --ignore-lock'],
  })
}

function staleMarkerError(run: OtherRun): SlotctlError {
  return new SlotctlError(
    `a stale or forged slotctl lock marker holds this cluster: client ${run.clientId} (${run.clientAddress}) on ${run.seenOn} is named '${run.name}' but ${notLiveBecause(run) ?? 'is no live run'}`,
    {
      code: 'E_LOCK_STALE',
      suggestions: [`if no slotctl run is active (a stopped one may wake up and go on), go on with --ignore-lock, or remove the marker: CLIENT KILL ID ${run.clientId} on ${run.seenOn}`],
    },
  )
}

/** Refuses when `others` is not empty, naming a live run first; with --ignore-lock only `warn`s. */
function refuseOthers(others: OtherRun[], options: LockOptions): void {
  if (others.length === 0) return
  const live = others.find((run) => isLive(run))
  const error = live ? liveRunError(live) : staleMarkerError(others[0])
  if (!live && options.readOnly && !options.ignoreLock) {
    options.warn?.(`warning: ${error.message}; a run that changes the cluster refuses until it is gone (or --ignore-lock)`)
    return
  }
  if (!options.ignoreLock) throw error
  options.warn?.(`warning: ${error.message}; going on because of --ignore-lock`)
}

async function otherRuns(pool: NodePool, masters: readonly string[], ownName: string): Promise<OtherRun[]> {
  const lists = await onEveryMaster(pool, masters, ['CLIENT', 'LIST', 'TYPE', 'normal'])
  return lists.flatMap((list, i) => otherRunsIn(String(list), ownName, masters[i]))
}

/** Read-only: refuses early, with the real reason, while another slotctl run changes the cluster. */
export async function refuseIfOtherRun(pool: NodePool, masters: readonly string[], options: LockOptions = {}, ownName = ''): Promise<void> {
  refuseOthers(await otherRuns(pool, masters, ownName), options)
}

/** A held lock: renewed every second until released (or the process ends, which closes its connections). */
export class RunLock {
  private readonly timer: NodeJS.Timeout
  private readonly pending = new Set<Redis>()

  constructor(
    readonly name: string,
    private readonly clients: Redis[],
  ) {
    this.timer = setInterval(() => this.renew(), RENEW_EVERY_MS)
    // the renewal must never be what keeps a finished run alive
    this.timer.unref()
  }

  release(): void {
    clearInterval(this.timer)
  }

  private renew(): void {
    for (const client of this.clients) {
      // a master busy with a long command: one PING waiting is enough
      if (this.pending.has(client)) continue
      this.pending.add(client)
      client
        .call('CLIENT', 'SETNAME', this.name)
        .catch(() => {
          // a lost master: its marker is gone with the connection, the others still hold
        })
        .finally(() => this.pending.delete(client))
    }
  }
}

/**
 * Names this run on a connection of its own on every master, then refuses if any master
 * shows another slotctl marker (live, or stale/forged). With ignoreLock, another marker is
 * reported through `warn` instead.
 */
export async function acquireRunLock(pool: NodePool, masters: readonly string[], verb: string, options: LockOptions = {}): Promise<RunLock> {
  const name = markerName({host: hostname(), pid: process.pid, startedAt: new Date().toISOString(), verb}, Math.random().toString(36).slice(2, 8))
  await onEveryMaster(pool, masters, ['CLIENT', 'SETNAME', name], LOCK_LANE)
  const lock = new RunLock(name, await Promise.all(masters.map((address) => pool.client(address, LOCK_LANE))))
  try {
    refuseOthers(await otherRuns(pool, masters, name), options)
  } catch (error) {
    lock.release()
    throw error
  }
  return lock
}
