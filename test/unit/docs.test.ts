/**
 * The generated parts of docs/ match what generates them: the command reference matches the
 * CLI's manifest (after a build; npm run docs rewrites it), and README links only to docs
 * that exist.
 */
import {existsSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'

import {type Manifest, commandReference} from '../../scripts/docs/commands.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

describe('docs/', () => {
  it('docs/commands.md is the reference the built manifest generates (npm run docs)', function () {
    const manifestFile = path.join(root, 'oclif.manifest.json')
    // the manifest is a build output: npm test builds first
    if (!existsSync(manifestFile)) this.skip()
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest
    expect(Object.keys(manifest.commands).length).to.be.greaterThan(10)
    expect(readFileSync(path.join(root, 'docs/commands.md'), 'utf8')).to.equal(commandReference(manifest))
  })

  it('every relative link of README.md, CONTRIBUTING.md and docs/*.md names a file that exists', () => {
    const files = ['README.md', 'CONTRIBUTING.md', ...['acl', 'architecture', 'benchmarks', 'commands', 'error-codes', 'json', 'known-limitations', 'migration-engine', 'servers', 'usage', 'verbs'].map((name) => `docs/${name}.md`)]
    for (const file of files) {
      const text = readFileSync(path.join(root, file), 'utf8')
      for (const [, target] of text.matchAll(/\]\(([^)#:]+)(?:#[^)]*)?\)/g)) expect(existsSync(path.join(root, path.dirname(file), target)), `${file} links to ${target}`).to.equal(true)
    }
  })
})
