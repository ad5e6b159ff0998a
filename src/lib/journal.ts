/**
 * The migration journal: the plan, then one line per slot started and finished (JSON
 * lines, appended synchronously), so an interrupted run — even by kill -9 — can be resumed,
 * and fix can roll an open slot forward to its intended target.
 */
import {appendFileSync, mkdirSync, readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'

import {SlotctlError, usageError} from './errors.js'
import type {MigrationPlan} from './plan/types.js'

type JournalLine = {type: 'plan'; plan: MigrationPlan; command?: string} | {type: 'slot-done'; slot: number; keys: number} | {type: 'slot-start'; slot: number}

export interface JournalState {
  plan: MigrationPlan
  command?: string
  doneSlots: Set<number>
  /** Slots started but not recorded as done: possibly open (importing/migrating). */
  inFlight: Set<number>
}

export function defaultJournalPath(kind: string, env: NodeJS.ProcessEnv = process.env, now = new Date()): string {
  const stateHome = env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state')
  const stamp = now.toISOString().replace(/[:.]/g, '-')
  return path.join(stateHome, 'slotctl', 'journals', `${kind}-${stamp}.jsonl`)
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
