/**
 * The migration journal: the plan, then one line per slot started and finished (JSON
 * lines, appended synchronously), so an interrupted run — even by kill -9 — can be resumed,
 * and fix can roll an open slot forward to its intended target.
 */
import {appendFileSync, mkdirSync, readFileSync, readdirSync, statSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'

import {SlotctlError, usageError} from '../errors.js'
import type {MigrationPlan} from '../plan/types.js'

type JournalLine = {type: 'plan'; plan: MigrationPlan; command?: string} | {type: 'slot-done'; slot: number; keys: number} | {type: 'slot-start'; slot: number}

export interface JournalState {
  plan: MigrationPlan
  command?: string
  doneSlots: Set<number>
  /** Slots started but not recorded as done: possibly open (importing/migrating). */
  inFlight: Set<number>
}

export function journalDir(env: NodeJS.ProcessEnv = process.env): string {
  const stateHome = env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state')
  return path.join(stateHome, 'slotctl', 'journals')
}

export function defaultJournalPath(kind: string, env: NodeJS.ProcessEnv = process.env, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-')
  return path.join(journalDir(env), `${kind}-${stamp}.jsonl`)
}

/** Journals older than this are not trusted to describe today's open slots. */
const DISCOVERY_MAX_AGE_MS = 7 * 24 * 3600 * 1000
const DISCOVERY_MAX_FILES = 20

/**
 * The newest recent journal in the default place whose run was interrupted with one of
 * `openSlots` in flight, between nodes this cluster has: what fix uses when not given one.
 */
export function findJournalFor(openSlots: ReadonlySet<number>, nodeIds: ReadonlySet<string>, dir = journalDir(), now = Date.now()): {path: string; state: JournalState} | undefined {
  let names: string[]
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.jsonl'))
  } catch {
    return undefined
  }
  const recent = names
    .map((name) => ({file: path.join(dir, name), mtime: statSync(path.join(dir, name)).mtimeMs}))
    .filter(({mtime}) => now - mtime < DISCOVERY_MAX_AGE_MS)
    .sort((a, b) => b.mtime - a.mtime)
    .slice(0, DISCOVERY_MAX_FILES)
  for (const {file} of recent) {
    let state: JournalState
    try {
      state = readJournal(file)
    } catch {
      continue
    }
    const matches = state.plan.moves.some((move) => state.inFlight.has(move.slot) && openSlots.has(move.slot) && nodeIds.has(move.sourceId) && nodeIds.has(move.targetId))
    if (matches) return {path: file, state}
  }
  return undefined
}

export class Journal {
  private constructor(readonly path: string) {}

  /** Starts a new journal with the plan as its first line. */
  static create(file: string, plan: MigrationPlan, command?: string): Journal {
    mkdirSync(path.dirname(file), {recursive: true})
    const journal = new Journal(file)
    journal.append([{command, plan, type: 'plan'}])
    return journal
  }

  /** Continues an existing journal (resume). */
  static reopen(file: string): Journal {
    // A crash mid-write leaves a torn last line; end it so the next line stays readable.
    const text = readFileSync(file, 'utf8')
    if (text.length > 0 && !text.endsWith('\n')) appendFileSync(file, '\n')
    return new Journal(file)
  }

  /** A wave's slots in one write: before its first SETSLOT. */
  slotsStarted(slots: readonly number[]): void {
    this.append(slots.map((slot) => ({slot, type: 'slot-start'})))
  }

  /** A wave's closed slots in one write: right after its last SETSLOT NODE. */
  slotsDone(done: ReadonlyArray<{slot: number; keys: number}>): void {
    this.append(done.map(({keys, slot}) => ({keys, slot, type: 'slot-done'})))
  }

  private append(lines: JournalLine[]): void {
    // A synchronous append reaches the kernel before the next step, so it survives kill -9.
    // No fsync: it cost milliseconds per slot, and after a machine crash the cluster's own
    // open-slot markers still tell `fix` what was in flight.
    if (lines.length > 0) appendFileSync(this.path, lines.map((line) => `${JSON.stringify(line)}\n`).join(''))
  }
}

export function readJournal(file: string): JournalState {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    throw usageError(`cannot read journal '${file}'`)
  }
  const state: Partial<JournalState> & {doneSlots: Set<number>; inFlight: Set<number>} = {doneSlots: new Set(), inFlight: new Set()}
  for (const raw of text.split('\n')) {
    if (!raw.trim()) continue
    let line: JournalLine
    try {
      line = JSON.parse(raw) as JournalLine
    } catch {
      continue // a line torn by a crash mid-write: everything before it is intact
    }
    if (line.type === 'plan') {
      state.plan = line.plan
      state.command = line.command
    } else if (line.type === 'slot-start') {
      state.inFlight.add(line.slot)
    } else {
      state.inFlight.delete(line.slot)
      state.doneSlots.add(line.slot)
    }
  }
  if (!state.plan) throw new SlotctlError(`'${file}' is not a slotctl journal (no plan line)`, {code: 'E_USAGE', exitCode: 2})
  return state as JournalState
}
