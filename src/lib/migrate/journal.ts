/**
 * The migration journal: the plan, then one line per slot started and finished (JSON
 * lines, appended synchronously), so an interrupted run — even by kill -9 — can be resumed,
 * and fix can roll an open slot forward to its intended target.
 */
import {readdirSync, statSync} from 'node:fs'
import path from 'node:path'

import {SlotctlError, usageError} from '../core/errors.js'
import {stateDir} from '../history/audit-log.js'
import {appendToFileSync, createJournalFile, cutTornLastLine, readErrorText, readRegularFileSync} from '../files.js'
import {validateJournalLine} from '../plan/plan-file.js'
import type {MigrationPlan} from '../plan/types.js'

/** What a run was started with, so that --resume continues the same way (an off-peak throttle stays on). */
export interface RunSettings {
  pipeline?: number
  timeoutMs?: number
  parallel?: number
  maxKeysPerSec?: number
  maxBytesPerSec?: number
  replace?: boolean
  /** the run used SETSLOT + MIGRATE even where atomic slot migration was offered */
  legacyMigrate?: boolean
  /** 'replicas' (the default) or 'none' */
  durability?: string
  minReplicaAcks?: number
  replicaWaitMs?: number
}

/** What the plan line says besides the plan. */
export interface JournalHeader {
  command?: string
  verb?: string
  settings?: RunSettings
  /**
   * target id → its replicas' ids when the run started. A target that dies right after it
   * claimed slots can leave them with no live owner (Redis replicas learn their master's new
   * slots only from its pings); the replica promoted since holds their keys, and fix can
   * tell it from any other master only by this record.
   */
  replicas?: Record<string, string[]>
}

type JournalLine =
  | ({type: 'plan'; plan: MigrationPlan} & JournalHeader)
  | {type: 'slot-done'; slot: number; keys: number}
  | {type: 'slot-start'; slot: number}

export interface JournalState {
  plan: MigrationPlan
  command?: string
  /** the verb that started the run (reshard, rebalance, apply, del-node) */
  verb?: string
  settings: RunSettings
  /** target id → its replicas' ids when the run started (none in journals written before it was kept) */
  replicas?: Record<string, string[]>
  doneSlots: Set<number>
  /** Slots started but not recorded as done: possibly open (importing/migrating). */
  inFlight: Set<number>
}

export function journalDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(stateDir(env), 'journals')
}

export function defaultJournalPath(kind: string, env: NodeJS.ProcessEnv = process.env, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-')
  return path.join(journalDir(env), `${kind}-${stamp}.jsonl`)
}

/** Journals older than this are not trusted to describe today's open slots. */
const DISCOVERY_MAX_AGE_MS = 7 * 24 * 3600 * 1000
const DISCOVERY_MAX_FILES = 20

/** What fix finds in the cluster that a journal may explain. */
export interface JournalClues {
  /** slots open (importing or migrating) somewhere */
  openSlots: ReadonlySet<number>
  /** every node id the cluster has */
  nodeIds: ReadonlySet<string>
  /** slot → the failed master that owns it in the seed's view */
  deadOwners?: ReadonlyMap<number, string>
}

/**
 * The newest recent journal in the default place whose run was interrupted with one of the
 * open slots in flight, between nodes this cluster has, or that moved to a master now failed
 * slots it still owns and recorded that target's replicas: what fix uses when not given one.
 */
export function findJournalFor(clues: JournalClues, dir = journalDir(), now = Date.now()): {path: string; state: JournalState} | undefined {
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
    if (state.plan.moves.some((move) => explains(state, move, clues))) return {path: file, state}
  }
  return undefined
}

function explains(state: JournalState, move: MigrationPlan['moves'][number], clues: JournalClues): boolean {
  if (!clues.nodeIds.has(move.sourceId) || !clues.nodeIds.has(move.targetId)) return false
  if (state.inFlight.has(move.slot) && clues.openSlots.has(move.slot)) return true
  return clues.deadOwners?.get(move.slot) === move.targetId && (state.replicas?.[move.targetId]?.length ?? 0) > 0
}

export class Journal {
  private constructor(readonly path: string) {}

  /**
   * Starts a new journal with the plan as its first line. The file must not exist (reusing
   * one would merge two runs), and it is created before anything moves, private to the user.
   */
  static create(file: string, plan: MigrationPlan, header: JournalHeader = {}): Journal {
    createJournalFile(file, {...header, plan, type: 'plan'} satisfies JournalLine, 'run')
    return new Journal(file)
  }

  /** Continues an existing journal (resume). */
  static reopen(file: string): Journal {
    cutTornLastLine(file)
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
    if (lines.length > 0) appendToFileSync(this.path, lines.map((line) => `${JSON.stringify(line)}\n`).join(''))
  }
}

/** Parses one journal line; only the last line may be torn by a crash mid-write (undefined then). */
function parseLine(raw: string, where: string, isLast: boolean): JournalLine | undefined {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    if (isLast) return undefined
    throw usageError(`${where} is not JSON`)
  }
  validateJournalLine(value, where)
  return value as JournalLine
}

export function readJournal(file: string): JournalState {
  let text: string
  try {
    text = readRegularFileSync(file).toString('utf8')
  } catch (error) {
    throw usageError(`cannot read journal '${file}': ${readErrorText(error)}`)
  }
  const state: Partial<JournalState> & {doneSlots: Set<number>; inFlight: Set<number>} = {doneSlots: new Set(), inFlight: new Set()}
  const lines = text.split('\n')
  while (lines.length > 0 && !lines[lines.length - 1].trim()) lines.pop()
  for (const [i, raw] of lines.entries()) {
    if (!raw.trim()) continue
    const line = parseLine(raw, `${file} line ${i + 1}`, i === lines.length - 1)
    if (!line) continue
    if (line.type === 'plan') {
      if (state.plan) throw usageError(`${file} line ${i + 1}: a second plan line (the file holds two runs)`)
      state.plan = line.plan
      state.command = line.command
      state.verb = line.verb
      state.settings = line.settings ?? {}
      if (line.replicas) state.replicas = line.replicas
    } else if (!state.plan) {
      throw new SlotctlError(`'${file}' is not a slotctl journal (no plan line)`, {code: 'E_USAGE', exitCode: 2})
    } else if (line.type === 'slot-start') {
      state.inFlight.add(line.slot)
    } else {
      state.inFlight.delete(line.slot)
      state.doneSlots.add(line.slot)
    }
  }
  if (!state.plan) throw new SlotctlError(`'${file}' is not a slotctl journal (no plan line)`, {code: 'E_USAGE', exitCode: 2})
  const planned = new Set(state.plan.moves.map((move) => move.slot))
  const stray = [...state.doneSlots, ...state.inFlight].find((slot) => !planned.has(slot))
  if (stray !== undefined) throw usageError(`${file}: slot ${stray} is journaled but not in its plan`)
  return state as JournalState
}
