/**
 * The JSON contract in tests: every file in schemas/ compiled with Ajv (draft 2020-12), and a
 * check that a verb's --json output matches its schema (or the error envelope's).
 */
import {readFileSync, readdirSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {Ajv2020} from 'ajv/dist/2020.js'
import {expect} from 'chai'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const schemaDir = path.join(root, 'schemas')

/** `sandbox:start` → sandbox-start.schema.json */
export function schemaFileFor(commandId: string): string {
  return `${commandId.replaceAll(':', '-')}.schema.json`
}

export function schemaFiles(): string[] {
  return readdirSync(schemaDir).filter((file) => file.endsWith('.schema.json')).sort()
}

let ajv: Ajv2020 | undefined

/** One Ajv holding every schema (they refer to common.schema.json by relative $ref). */
export function contract(): Ajv2020 {
  if (ajv) return ajv
  ajv = new Ajv2020({allErrors: true, discriminator: true, strict: true})
  for (const file of schemaFiles()) ajv.addSchema(JSON.parse(readFileSync(path.join(schemaDir, file), 'utf8')), file)
  return ajv
}

/** Asserts that `json` is a valid result of `commandId` (or, with status "error", a valid error document). */
export function expectContract(commandId: string, json: unknown): void {
  const file = (json as {status?: string})?.status === 'error' ? 'error.schema.json' : schemaFileFor(commandId)
  const validate = contract().getSchema(file)
  expect(validate, `no schema ${file}`).to.not.equal(undefined)
  const valid = validate!(json)
  expect(valid, `${commandId} output does not match ${file}: ${JSON.stringify(validate!.errors, null, 1)}\n${JSON.stringify(json).slice(0, 1500)}`).to.equal(true)
}
