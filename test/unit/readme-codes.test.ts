/**
 * The README's "JSON output" section lists every error code, warning code and check finding
 * code the sources can produce: a new code without its meaning there fails here.
 */
import {readFileSync, readdirSync, statSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name)
    return statSync(file).isDirectory() ? sources(file) : file.endsWith('.ts') ? [file] : []
  })
}

describe('README lists every code', () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## JSON output'), readme.indexOf('## Verbs'))
  const text = sources(path.join(root, 'src')).map((file) => readFileSync(file, 'utf8')).join('\n')

  it('every error code (E_...) in src/ has a meaning in the README', () => {
    const codes = new Set([...text.matchAll(/'(E_[A-Z0-9_]+)'/g)].map((match) => match[1]))
    expect(codes.size).to.be.greaterThan(30)
    for (const code of codes) expect(section, code).to.include(`\`${code}\``)
  })

  it('every check finding code and warning code has a meaning in the README', () => {
    const union = /export type FindingCode =([\s\S]*?)\n\n/.exec(readFileSync(path.join(root, 'src/lib/check/checks.ts'), 'utf8'))![1]
    const findings = [...union.matchAll(/'([A-Z_]+)'/g)].map((match) => match[1])
    expect(findings.length).to.be.greaterThan(10)
    const warnings = [...text.matchAll(/(?:issue\(|code: )'([A-Z][A-Z_]+)'/g)].map((match) => match[1]).filter((code) => !code.startsWith('E_'))
    for (const code of [...findings, ...warnings]) expect(section, code).to.include(`\`${code}\``)
  })
})
