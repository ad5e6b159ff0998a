/**
 * docs/error-codes.md lists every error code (generated from the registry, src/lib/core/error-codes.ts),
 * warning code and check finding code the sources can produce: a new code without its meaning
 * there fails here.
 */
import {readFileSync, readdirSync, statSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'

import {ERROR_CODES, ExitCode} from '../../src/lib/core/error-codes.js'
import {SlotctlError, failure, usageError} from '../../src/lib/core/errors.js'
import {withErrorCodeTable} from '../../scripts/docs/error-codes.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name)
    return statSync(file).isDirectory() ? sources(file) : file.endsWith('.ts') ? [file] : []
  })
}

describe('error codes: the registry and docs/error-codes.md', () => {
  const doc = readFileSync(path.join(root, 'docs/error-codes.md'), 'utf8')
  const text = sources(path.join(root, 'src')).map((file) => readFileSync(file, 'utf8')).join('\n')

  it('the table in docs/error-codes.md is the one the registry generates (npm run docs)', () => {
    expect(withErrorCodeTable(doc)).to.equal(doc)
  })

  it('every error code (E_...) in src/ is in the registry, and every registered code is used', () => {
    const used = new Set([...text.matchAll(/'(E_[A-Z0-9_]+)'/g)].map((match) => match[1]))
    expect(used.size).to.be.greaterThan(30)
    for (const code of used) expect(ERROR_CODES, code).to.have.property(code)
    for (const code of Object.keys(ERROR_CODES)) expect(used.has(code), `${code} is registered but nothing uses it`).to.equal(true)
  })

  it('a SlotctlError exits with its code\'s exit code unless its thrower says otherwise', () => {
    expect(new SlotctlError('x', {code: 'E_UNKNOWN_NODE'}).exitCode).to.equal(ExitCode.usage)
    expect(new SlotctlError('x', {code: 'E_NEEDS_CONFIRMATION'}).exitCode).to.equal(ExitCode.needsConfirmation)
    expect(new SlotctlError('x', {code: 'E_NOT_A_BACKUP', exitCode: ExitCode.failed}).exitCode).to.equal(ExitCode.failed)
    expect(new SlotctlError('x').exitCode).to.equal(ExitCode.failed)
    expect(usageError('x').exitCode).to.equal(ExitCode.usage)
    expect(failure('x', 'E_LOCKED').exitCode).to.equal(ExitCode.failed)
  })

  it('every check finding code and warning code has a meaning in docs/error-codes.md', () => {
    const union = /export type FindingCode =([\s\S]*?)\n\n/.exec(readFileSync(path.join(root, 'src/lib/check/checks.ts'), 'utf8'))![1]
    const findings = [...union.matchAll(/'([A-Z_]+)'/g)].map((match) => match[1])
    expect(findings.length).to.be.greaterThan(10)
    const warnings = [...text.matchAll(/(?:issue\(|code: )'([A-Z][A-Z_]+)'/g)].map((match) => match[1]).filter((code) => !code.startsWith('E_'))
    for (const code of [...findings, ...warnings]) expect(doc, code).to.include(`\`${code}\``)
  })
})
