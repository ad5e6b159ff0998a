/**
 * Benchmark dispatcher: `node bench/run.js [name ...]` runs bench/<name>.bench.js, or every
 * bench/*.bench.js when no name is given. Each file's default export is an async function;
 * they run one after another, because benchmarks sharing the machine would time each other.
 * `npm run bench -- check-info` builds first, then runs one.
 */
import {existsSync, readdirSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const SUFFIX = '.bench.js'

function available() {
  return readdirSync(here)
    .filter((file) => file.endsWith(SUFFIX))
    .map((file) => file.slice(0, -SUFFIX.length))
    .sort()
}

async function main(names) {
  const all = available()
  const unknown = names.filter((name) => !all.includes(name))
  if (unknown.length > 0) {
    console.error(`unknown benchmark: ${unknown.join(', ')}; available: ${all.join(', ') || '(none)'}`)
    return 2
  }
  if (!existsSync(path.join(here, '..', 'dist', 'lib'))) {
    console.error('dist/ is missing: run npm run build first (npm run bench does)')
    return 2
  }
  let failed = 0
  for (const name of names.length > 0 ? names : all) {
    console.log(`\n== ${name}`)
    const started = Date.now()
    try {
      const {default: bench} = await import(pathToFileURL(path.join(here, `${name}${SUFFIX}`)).href)
      if (typeof bench !== 'function') throw new Error(`bench/${name}${SUFFIX} has no default export function`)
      await bench()
      console.log(`== ${name} done in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    } catch (error) {
      failed++
      console.error(`== ${name} failed: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  return failed > 0 ? 1 : 0
}

process.exitCode = await main(process.argv.slice(2).filter((arg) => arg !== '--'))
