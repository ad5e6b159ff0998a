/**
 * Generates the parts of docs/ that come from the code (npm run docs): the error code table
 * from the registry. Run after changing src/lib/core/error-codes.ts.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {withErrorCodeTable} from './docs/error-codes.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

function rewrite(file: string, change: (text: string) => string): void {
  const full = path.join(root, file)
  const before = readFileSync(full, 'utf8')
  const after = change(before)
  if (after !== before) writeFileSync(full, after)
  console.log(`${file}: ${after === before ? 'up to date' : 'written'}`)
}

rewrite('docs/error-codes.md', withErrorCodeTable)
