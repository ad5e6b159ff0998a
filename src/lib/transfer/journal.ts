/**
 * The import journal: the run's settings, then one checkpoint per SCAN page finished in
 * order (JSON lines, appended synchronously, so they survive kill -9). --resume continues the
 * SCAN from the last checkpoint; keys of later pages that had already moved are gone from the
 * source (a move) or found equal in the cluster (a copy), so nothing is done twice.
 */

import {SlotctlError, usageError} from '../core/errors.js'
import {appendToFileSync, createJournalFile, cutTornLastLine, readErrorText, readRegularFileSync} from '../files.js'
import type {Checkpoint} from './mover.js'

export interface ImportSettings {
  seed: string
  /** host:port, never credentials */
  source: string
  db: number
  copy: boolean
  replace: boolean
  match?: string
  pipeline: number
  timeoutMs: number
  maxKeysPerSec?: number
}

type JournalLine =
  | {type: 'import'; version: 1; createdAt: string; settings: ImportSettings; command: string}
  | {type: 'checkpoint'; cursor: string; keys: number; conflicts: Array<{key: string; owner: {id: string; address: string}}>}
  | {type: 'complete'}

export interface ImportJournalState {
  settings: ImportSettings
  command: string
  /** SCAN cursor to continue from */
  cursor: string
  keys: number
  conflicts: Array<{key: Buffer; owner: {id: string; address: string}}>
  complete: boolean
}

export class ImportJournal {
  private constructor(readonly path: string) {}

  /** A new file, private to the user (reusing one would merge two runs), created before anything moves. */
  static create(file: string, settings: ImportSettings, command: string): ImportJournal {
    const line: JournalLine = {command, createdAt: new Date().toISOString(), settings, type: 'import', version: 1}
    createJournalFile(file, line, 'import')
    return new ImportJournal(file)
  }

  static reopen(file: string): ImportJournal {
    cutTornLastLine(file)
    return new ImportJournal(file)
  }

  checkpoint(checkpoint: Checkpoint): void {
    const conflicts = checkpoint.conflicts.map(({key, owner}) => ({key: key.toString('hex'), owner}))
    this.append({conflicts, cursor: checkpoint.cursor, keys: checkpoint.keys, type: 'checkpoint'})
  }

  complete(): void {
    this.append({type: 'complete'})
  }

  private append(line: JournalLine): void {
    appendToFileSync(this.path, `${JSON.stringify(line)}\n`)
  }
}

export function readImportJournal(file: string): ImportJournalState {
  let text: string
  try {
    text = readRegularFileSync(file).toString('utf8')
  } catch (error) {
    throw usageError(`cannot read journal '${file}': ${readErrorText(error)}`)
  }
  let state: ImportJournalState | undefined
  for (const raw of text.split('\n')) {
    if (!raw.trim()) continue
    let line: JournalLine
    try {
      line = JSON.parse(raw) as JournalLine
    } catch {
      continue // torn by a crash mid-write: everything before it is intact
    }
    if (line.type === 'import') {
      state = {command: line.command, complete: false, conflicts: [], cursor: '0', keys: 0, settings: line.settings}
    } else if (state && line.type === 'checkpoint') {
      state.cursor = line.cursor
      state.keys += line.keys
      state.conflicts.push(...line.conflicts.map(({key, owner}) => ({key: Buffer.from(key, 'hex'), owner})))
    } else if (state && line.type === 'complete') {
      state.complete = true
    }
  }
  if (!state) throw new SlotctlError(`'${file}' is not a slotctl import journal`, {code: 'E_USAGE', exitCode: 2, suggestions: ['reshard/rebalance journals continue with their own verb']})
  return state
}
