/**
 * Plan and journal files are checked against their JSON Schemas (schemas/) before anything
 * reads them: a malformed file gets one line naming the field, never a TypeError from deep
 * inside a verb. Files carry intent (node ids, slots); the addresses in them are only shown.
 */
import {existsSync, readFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import type {ErrorObject, ValidateFunction} from 'ajv'

import {usageError} from '../core/errors.js'
import type {BigKey, MigrationPlan, PlanNode, SlotMove} from './types.js'
import {readRegularFileSync} from '../files.js'
import {formatSlots} from '../core/slots.js'

/** A plan of every slot is well under a megabyte. */
const MAX_PLAN_BYTES = 64 * 1024 * 1024

/**
 * schemas/ of the package: up from this module to the first folder with a package.json. The
 * module is dist/lib/plan/plan-file.js (tsc), src/lib/plan/plan-file.ts (tsx) or part of the
 * bundle dist/slotctl.js, so no fixed number of levels holds for all three.
 */
function schemaDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir)
  return path.join(dir, 'schemas')
}

let validators: {journalLine: ValidateFunction; plan: ValidateFunction} | undefined

/** Loaded and compiled on first use: only apply, --resume and fix's journal lookup pay for it. */
function loadValidators(): NonNullable<typeof validators> {
  if (validators) return validators
  const {Ajv2020} = createRequire(import.meta.url)('ajv/dist/2020') as typeof import('ajv/dist/2020.js')
  const ajv = new Ajv2020({allErrors: false, discriminator: true, strict: true})
  const dir = schemaDir()
  const read = (name: string) => JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as object
  ajv.addSchema(read('plan.schema.json'), 'plan.schema.json')
  validators = {journalLine: ajv.compile(read('journal-line.schema.json')), plan: ajv.getSchema('plan.schema.json') as ValidateFunction}
  return validators
}

/** The first (deepest) reason, as "/moves/3/slot must be <= 16383". */
function describe(errors: ErrorObject[] | null | undefined): string {
  const error = [...(errors ?? [])].sort((a, b) => b.instancePath.length - a.instancePath.length)[0]
  if (!error) return 'does not match the schema'
  const where = error.instancePath || '(top level)'
  if (error.keyword === 'pattern' && where.endsWith('/slots')) return `${where} is not a list of slot ranges (e.g. 0-99,512; slots 0 to 16383)`
  const extra = error.keyword === 'additionalProperties' ? ` ('${String(error.params.additionalProperty)}')` : error.keyword === 'enum' ? ` (${(error.params.allowedValues as unknown[]).join(', ')})` : ''
  return `${where} ${error.message ?? 'is invalid'}${extra}`
}

/** Rules a schema cannot say: each slot moves once, never to its own source. */
function checkMoves(plan: MigrationPlan, file: string, ranges = false): void {
  const seen = new Set<number>()
  for (const [i, move] of plan.moves.entries()) {
    const where = ranges ? '/transfers' : `/moves/${i}`
    if (seen.has(move.slot)) throw usageError(`${file}: ${ranges ? '/transfers: slot' : `${where}/slot`} ${move.slot} is moved twice`)
    if (move.sourceId === move.targetId) throw usageError(`${file}: ${where} moves slot ${move.slot} to its own source`)
    seen.add(move.slot)
  }
}

export function validatePlan(value: unknown, file: string): MigrationPlan {
  return validatePlanDocument(value, file).plan
}

/** One source/target pair of a plan file: the slots it moves, as ranges ("0-99,512"). */
export interface PlanTransfer {
  sourceId: string
  targetId: string
  slots: string
  /** how many slots `slots` names (for a reader; checked) */
  count: number
}

/**
 * The plan file as written since version 2: moves grouped per source/target pair as slot
 * ranges (a 4096-move plan is a few lines a reviewer can read), plus what a summary needs.
 * Version 1 files (one object per slot) are still read.
 */
export interface PlanFileV2 {
  version: 2
  kind: MigrationPlan['kind']
  createdAt: string
  /** the cluster the plan was made for: the lowest node id among its masters then */
  clusterId?: string
  nodes: PlanNode[]
  transfers: PlanTransfer[]
  /** keys in the slots to move when the plan was made */
  keys?: number
  /** the plan is the reverse of another (plan invert / apply --reverse): sources and targets swapped */
  inverted?: boolean
  bigKeys?: BigKey[]
}

/** Plan-file facts beyond the moves (a version 1 file has none of them). */
export interface PlanMeta {
  version: 1 | 2
  clusterId?: string
  keys?: number
  inverted?: boolean
}

/** Groups moves per source/target pair, in the order pairs first appear; slots as ranges. */
export function transfersOf(moves: readonly SlotMove[]): PlanTransfer[] {
  const pairs = new Map<string, {sourceId: string; targetId: string; slots: number[]}>()
  for (const move of moves) {
    const key = `${move.sourceId} ${move.targetId}`
    let pair = pairs.get(key)
    if (!pair) pairs.set(key, (pair = {slots: [], sourceId: move.sourceId, targetId: move.targetId}))
    pair.slots.push(move.slot)
  }
  // this key order in the file: who to whom, then how many and which
  return [...pairs.values()].map(({slots, sourceId, targetId}) => ({sourceId, targetId, count: slots.length, slots: formatSlots(slots)}))
}

export function toPlanFile(plan: MigrationPlan, meta: Omit<PlanMeta, 'version'> = {}): PlanFileV2 {
  return {
    version: 2,
    kind: plan.kind,
    createdAt: plan.createdAt,
    ...(meta.clusterId ? {clusterId: meta.clusterId} : {}),
    ...(meta.keys === undefined ? {} : {keys: meta.keys}),
    ...(meta.inverted ? {inverted: true} : {}),
    nodes: plan.nodes,
    transfers: transfersOf(plan.moves),
    ...(plan.bigKeys?.length ? {bigKeys: plan.bigKeys} : {}),
  }
}

/** The file's text: one line per transfer, so that a diff or a review shows pairs, not braces. */
export function planFileText(file: PlanFileV2): string {
  const {bigKeys, nodes, transfers, ...head} = file
  const lines = [
    ...Object.entries(head).map(([key, value]) => `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`),
    `  "nodes": [\n${nodes.map((node) => `    ${JSON.stringify(node)}`).join(',\n')}\n  ]`,
    `  "transfers": [\n${transfers.map((transfer) => `    ${JSON.stringify(transfer)}`).join(',\n')}\n  ]`,
    ...(bigKeys ? [`  "bigKeys": [\n${bigKeys.map((key) => `    ${JSON.stringify(key)}`).join(',\n')}\n  ]`] : []),
  ]
  return `{\n${lines.join(',\n')}\n}\n`
}

/** A transfer's slots, each named once: "5-3", "99999" or a slot twice are refused by the caller's message. */
function expandTransfer(transfer: PlanTransfer, where: string): number[] {
  const slots: number[] = []
  for (const part of transfer.slots.split(',')) {
    const [start, end = start] = part.split('-').map(Number)
    if (end < start) throw usageError(`${where}/slots: range ${part} runs backwards`)
    for (let slot = start; slot <= end; slot++) slots.push(slot)
  }
  if (slots.length !== transfer.count) throw usageError(`${where}: count is ${transfer.count} but slots names ${slots.length}`)
  return slots
}

function fromPlanFile(file: PlanFileV2, where: string): MigrationPlan {
  const moves = file.transfers.flatMap((transfer, i) => expandTransfer(transfer, `${where}: /transfers/${i}`).map((slot) => ({slot, sourceId: transfer.sourceId, targetId: transfer.targetId})))
  return {createdAt: file.createdAt, kind: file.kind, moves, nodes: file.nodes, version: 1, ...(file.bigKeys ? {bigKeys: file.bigKeys} : {})}
}

/** A plan file of either version: the plan to run, and what the file says about it. */
export function validatePlanDocument(value: unknown, file: string): {plan: MigrationPlan; meta: PlanMeta} {
  const {plan: validate} = loadValidators()
  if (!validate(value)) throw usageError(`${file} is not a valid slotctl plan: ${describe(validate.errors)}`)
  if ((value as {version: number}).version === 1) {
    const plan = value as MigrationPlan
    checkMoves(plan, file)
    return {meta: {version: 1}, plan}
  }
  const document = value as PlanFileV2
  const plan = fromPlanFile(document, file)
  checkMoves(plan, file, true)
  return {meta: {clusterId: document.clusterId, inverted: document.inverted, keys: document.keys, version: 2}, plan}
}

export function readPlanDocument(file: string): {plan: MigrationPlan; meta: PlanMeta} {
  let text: string
  try {
    text = readRegularFileSync(file, MAX_PLAN_BYTES).toString('utf8')
  } catch (error) {
    throw usageError(`cannot read plan '${file}': ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw usageError(`${file} is not JSON: ${(error as Error).message}`)
  }
  return validatePlanDocument(value, file)
}

/** The moves of a plan the other way: each slot from where the plan sent it back to where it came from. */
export function invertPlan(plan: MigrationPlan, now = new Date()): MigrationPlan {
  return {...plan, createdAt: now.toISOString(), moves: plan.moves.map(({slot, sourceId, targetId}) => ({slot, sourceId: targetId, targetId: sourceId}))}
}

export function readPlanFile(file: string): MigrationPlan {
  return readPlanDocument(file).plan
}

/** Checks one parsed journal line; `where` names it in the message ("journal.jsonl line 3"). */
export function validateJournalLine(value: unknown, where: string): void {
  const {journalLine: validate} = loadValidators()
  if (validate(value)) return
  throw usageError(`${where} is not a valid slotctl journal line: ${describe(validate.errors)}`)
}
