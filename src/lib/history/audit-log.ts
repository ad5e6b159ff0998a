/**
 * The audit log: one JSON line per run of a verb that changes a cluster (who, where, what,
 * on which cluster, how it ended, which journal it left), appended to history.jsonl in
 * slotctl's state directory. Appending is best effort: a run is never failed by its log.
 */
import {closeSync, fstatSync, constants as fsConstants, openSync, writeSync} from 'node:fs'
import {homedir, hostname, userInfo} from 'node:os'
import path from 'node:path'

import {ensurePrivateDirSync, PRIVATE_FILE_MODE, readRegularFileSync} from '../files.js'
import {redactSecrets} from '../secrets.js'

export type Outcome = 'ok' | 'failed' | 'interrupted'

export interface HistoryRecord {
  /** ISO time the run ended */
  time: string
  /** ISO time the run started */
  startedAt: string
  user: string
  host: string
  verb: string
  /** the command line's words after the verb, passwords masked */
  args: string[]
  cluster?: ClusterRef
  outcome: Outcome
  exitCode: number
  /** the error's one line, when the run failed */
  error?: string
  /** the journal the run wrote (or continued) */
  journal?: string
}

/** Which cluster a record is about: the address the run was given, and an id for it (see clusterIdOf). */
export interface ClusterRef {
  seed?: string
  /** the lowest node id among the masters the run read: the same for every node of one cluster */
  id?: string
  /** every master's address at the time, so that --cluster finds a run by any of them */
  masters?: string[]
}

/**
 * A name for a cluster that every one of its nodes leads to: the lowest node id among its
 * masters. It stays while that master does (a failover or its removal changes it).
 */
export function clusterIdOf(nodes: ReadonlyArray<{id: string; role: string}>): string | undefined {
  return nodes
    .filter((node) => node.role === 'master')
    .map((node) => node.id)
    .sort()[0]
}

/** slotctl's state directory: XDG_STATE_HOME (or ~/.local/state) /slotctl; journals live in its journals/ folder. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const stateHome = env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state')
  return path.join(stateHome, 'slotctl')
}

export function historyFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(stateDir(env), 'history.jsonl')
}

export function currentUser(): string {
  try {
    return userInfo().username
  } catch {
    // no passwd entry for this uid (a container): the uid still says who
    return process.env.USER || `uid ${process.getuid?.() ?? '?'}`
  }
}

export function currentHost(): string {
  try {
    return hostname()
  } catch {
    return 'unknown'
  }
}

/** Flags whose value is a password, in every spelling oclif takes (`--password X`, `--password=X`, `-a X`, `-aX`). */
const PASSWORD_FLAG = /^--[\w-]*password$/
const PASSWORD_FLAG_WITH_VALUE = /^(--[\w-]*password)=.*$/s

/**
 * Command words that carry a password for a server command given to `call`: AUTH's and
 * HELLO's arguments, CONFIG SET's requirepass/masterauth value, ACL SETUSER's >pass and #hash.
 */
function maskServerCommandSecrets(words: string[]): string[] {
  const upper = words.map((word) => word.toUpperCase())
  const masked = [...words]
  for (const [i, word] of upper.entries()) {
    if (word === 'AUTH' || word === 'AUTH2') {
      for (let j = i + 1; j < masked.length; j++) masked[j] = '***'
      break
    }
    if ((word === 'REQUIREPASS' || word === 'MASTERAUTH' || word === 'MASTERUSER') && i + 1 < masked.length) masked[i + 1] = '***'
    if (/^[>#<!]/.test(words[i]) && upper.includes('SETUSER')) masked[i] = `${words[i][0]}***`
  }
  return masked
}

/** The argument words as recorded: never a password, whichever way it was given. */
export function redactArgs(argv: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]
    if (word === '--') {
      out.push(...argv.slice(i).map((rest) => redactSecrets(rest)))
      break
    }
    if (word === '-a' || PASSWORD_FLAG.test(word)) {
      out.push(word)
      if (i + 1 < argv.length) out.push('***')
      i++
      continue
    }
    const withValue = PASSWORD_FLAG_WITH_VALUE.exec(word)
    if (withValue) out.push(`${withValue[1]}=***`)
    else if (/^-a./s.test(word) && !word.startsWith('--')) out.push('-a***')
    else out.push(redactSecrets(word))
  }
  return maskServerCommandSecrets(out)
}

/**
 * Appends one record: O_APPEND (one write, so concurrent runs do not interleave), O_NOFOLLOW
 * (a symlink planted at the name is not written through), created 0600 in a 0700 directory.
 * Returns the reason it could not, for the caller to warn with; never throws.
 */
export function appendHistory(record: HistoryRecord, file = historyFile()): string | undefined {
  try {
    ensurePrivateDirSync(path.dirname(file))
    const fd = openSync(file, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try {
      if (!fstatSync(fd).isFile()) return `'${file}' is not a regular file`
      writeSync(fd, `${JSON.stringify(record)}\n`)
    } finally {
      closeSync(fd)
    }
    return undefined
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return code === 'ELOOP' ? `'${file}' is a symlink: slotctl never writes through one` : `${(error as Error).message}`
  }
}

function isRecord(value: unknown): value is HistoryRecord {
  const record = value as HistoryRecord
  return typeof record === 'object' && record !== null && typeof record.time === 'string' && typeof record.verb === 'string' && Array.isArray(record.args)
}

/** The records in the log, oldest first; lines that are not records (a torn last line) are counted, not fatal. */
export function readHistory(file = historyFile()): {records: HistoryRecord[]; unreadable: number} {
  let text: string
  try {
    text = readRegularFileSync(file).toString('utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {records: [], unreadable: 0}
    throw error
  }
  const records: HistoryRecord[] = []
  let unreadable = 0
  for (const line of text.split('\n')) {
    if (!line.trim()) continue
    try {
      const value = JSON.parse(line) as unknown
      if (isRecord(value)) records.push(value)
      else unreadable++
    } catch {
      unreadable++
    }
  }
  return {records, unreadable}
}

/** `--cluster X`: a record matches by the start of its cluster id, its seed address, or any master's address. */
export function matchesCluster(record: HistoryRecord, wanted: string): boolean {
  const cluster = record.cluster
  if (!cluster) return false
  const lower = wanted.toLowerCase()
  if (cluster.id && /^[0-9a-f]{4,40}$/.test(lower) && cluster.id.startsWith(lower)) return true
  return cluster.seed === wanted || (cluster.masters ?? []).includes(wanted)
}
