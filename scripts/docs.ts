/**
 * Generates the parts of docs/ that come from the code (npm run docs, after npm run build):
 * the error code table from the registry (src/lib/core/error-codes.ts) and the command
 * reference from oclif.manifest.json.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {type Manifest, commandReference} from './docs/commands.js'
import {withErrorCodeTable} from './docs/error-codes.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

function rewrite(file: string, change: (text: string) => string): void {
  const full = path.join(root, file)
  let before = ''
  try {
    before = readFileSync(full, 'utf8')
  } catch {
    // a new file
  }
  const after = change(before)
  if (after !== before) writeFileSync(full, after)
  console.log(`${file}: ${after === before ? 'up to date' : 'written'}`)
}

rewrite('docs/error-codes.md', withErrorCodeTable)
const manifest = JSON.parse(readFileSync(path.join(root, 'oclif.manifest.json'), 'utf8')) as Manifest
rewrite('docs/commands.md', () => commandReference(manifest))
