/**
 * Retention: journals and audit records older than a limit go, the newest `keep` of each
 * always stay. Only journals slotctl names itself (<kind>-<ISO stamp>.jsonl in its journals
 * folder) are candidates, and only regular files of this user: never a symlink (removing one
 * would remove the link, but it is not slotctl's), never a file someone placed there.
 */
import {lstatSync, readdirSync, unlinkSync} from 'node:fs'
import path from 'node:path'

import {writeOutputFile} from '../files.js'
import {journalDir} from '../migrate/journal.js'
import {type HistoryRecord, historyFile, readHistory} from './audit-log.js'

/** The names defaultJournalPath gives (kind, then the ISO time with : and . as -). */
const JOURNAL_NAME = /^(drain|fix|import|rebalance|reshard)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z\.jsonl$/

export interface PruneOptions {
  /** remove what is older than this (ms) */
  olderThanMs: number
  /** always keep this many newest journals, and this many newest records */
  keep: number
  dryRun: boolean
  now?: number
  journals?: string
  history?: string
}

export interface PrunedJournal {
  path: string
  bytes: number
  modifiedAt: string
}

export interface PruneOutcome {
  journalDir: string
  historyFile: string
  journalsRemoved: PrunedJournal[]
  journalsKept: number
  bytesFreed: number
  recordsRemoved: number
  recordsKept: number
  /** files in the journals folder that are not slotctl's journals: never touched */
  foreignFiles: number
}

interface JournalFile extends PrunedJournal {
  mtimeMs: number
}

/** slotctl's own journals in `dir`, newest first; anything else is counted, not listed. */
function ownJournals(dir: string): {journals: JournalFile[]; foreign: number} {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {foreign: 0, journals: []}
    throw error
  }
  const uid = process.getuid?.()
  const journals: JournalFile[] = []
  let foreign = 0
  for (const name of names) {
    const file = path.join(dir, name)
    const stats = lstatSync(file, {throwIfNoEntry: false})
    if (!stats || !JOURNAL_NAME.test(name) || !stats.isFile() || (uid !== undefined && stats.uid !== uid)) {
      foreign++
      continue
    }
    journals.push({bytes: stats.size, modifiedAt: new Date(stats.mtimeMs).toISOString(), mtimeMs: stats.mtimeMs, path: file})
  }
  return {foreign, journals: journals.sort((a, b) => b.mtimeMs - a.mtimeMs)}
}

/** Records to keep: the newest `keep`, and every one newer than the limit. */
function keptRecords(records: HistoryRecord[], cutoff: number, keep: number): HistoryRecord[] {
  const newestFirst = records.map((record, index) => ({index, record, time: Date.parse(record.time)}))
  newestFirst.sort((a, b) => b.time - a.time || b.index - a.index)
  const keepIndexes = new Set(newestFirst.filter((entry, rank) => rank < keep || !(entry.time < cutoff)).map((entry) => entry.index))
  return records.filter((_record, index) => keepIndexes.has(index))
}

export async function pruneHistory(options: PruneOptions): Promise<PruneOutcome> {
  const dir = options.journals ?? journalDir()
  const log = options.history ?? historyFile()
  const cutoff = (options.now ?? Date.now()) - options.olderThanMs
  const {foreign, journals} = ownJournals(dir)
  const removable = journals.filter((journal, rank) => rank >= options.keep && journal.mtimeMs < cutoff)
  if (!options.dryRun) for (const journal of removable) unlinkSync(journal.path)

  const {records} = readHistory(log)
  const kept = keptRecords(records, cutoff, options.keep)
  // rewritten whole (temp file, then rename): records appended meanwhile by another run may be lost
  if (!options.dryRun && kept.length < records.length) await writeOutputFile(log, kept.map((record) => `${JSON.stringify(record)}\n`).join(''), {overwrite: true})
  return {
    bytesFreed: removable.reduce((sum, journal) => sum + journal.bytes, 0),
    foreignFiles: foreign,
    historyFile: log,
    journalDir: dir,
    journalsKept: journals.length - removable.length,
    journalsRemoved: removable.map(({bytes, modifiedAt, path: file}) => ({bytes, modifiedAt, path: file})),
    recordsKept: kept.length,
    recordsRemoved: records.length - kept.length,
  }
}
