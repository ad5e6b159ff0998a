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
import type {MigrationPlan} from './types.js'
import {readRegularFileSync} from '../files.js'

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
  const extra = error.keyword === 'additionalProperties' ? ` ('${String(error.params.additionalProperty)}')` : error.keyword === 'enum' ? ` (${(error.params.allowedValues as unknown[]).join(', ')})` : ''
  return `${where} ${error.message ?? 'is invalid'}${extra}`
}

/** Rules a schema cannot say: each slot moves once, never to its own source. */
function checkMoves(plan: MigrationPlan, file: string): void {
  const seen = new Set<number>()
  for (const [i, move] of plan.moves.entries()) {
    if (seen.has(move.slot)) throw usageError(`${file}: /moves/${i}/slot ${move.slot} is moved twice`)
    if (move.sourceId === move.targetId) throw usageError(`${file}: /moves/${i} moves slot ${move.slot} to its own source`)
    seen.add(move.slot)
  }
}

export function validatePlan(value: unknown, file: string): MigrationPlan {
  const {plan: validate} = loadValidators()
  if (!validate(value)) throw usageError(`${file} is not a valid slotctl plan: ${describe(validate.errors)}`)
  const plan = value as MigrationPlan
  checkMoves(plan, file)
  return plan
}

export function readPlanFile(file: string): MigrationPlan {
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
  return validatePlan(value, file)
}

/** Checks one parsed journal line; `where` names it in the message ("journal.jsonl line 3"). */
export function validateJournalLine(value: unknown, where: string): void {
  const {journalLine: validate} = loadValidators()
  if (validate(value)) return
  throw usageError(`${where} is not a valid slotctl journal line: ${describe(validate.errors)}`)
}
