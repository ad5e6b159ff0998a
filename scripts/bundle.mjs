#!/usr/bin/env node
/**
 * Bundles the CLI (src/slotctl.ts and all it imports: oclif, ioredis, chalk, every command)
 * into one CommonJS file, dist/slotctl.cjs, and writes V8's code cache for it,
 * dist/slotctl.cjs.cache (bin/bundle-loader.cjs reads both). Node then reads one file at
 * start-up, already compiled, instead of resolving, reading and compiling some 250 modules.
 *
 * CommonJS, not an ES module: Node 20 can only cache the compiled code of scripts
 * (vm.Script), not of ES modules. Left out, loaded from node_modules when a verb needs them:
 * @inquirer/prompts (prompts), execa (local servers), ajv (plan files), and what oclif only
 * loads for TypeScript in development. The oclif plugins (help, autocomplete) are found by
 * oclif through their package.json, as before.
 */
import {execFileSync} from 'node:child_process'
import {readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'

import {build} from 'esbuild'

const {BUNDLE, CODE_CACHE} = createRequire(import.meta.url)('../bin/bundle-loader.cjs')

/**
 * oclif sorts the command ids with localeCompare on every start, and the first localeCompare
 * of a process loads ICU's collation data (7–20 ms here). The ids are ASCII words, so
 * code-unit order sorts them the same. A newer oclif without this line stops the build, so
 * that the saving is not lost unnoticed.
 */
const OCLIF_SORT = '.sort((a, b) => a.id.localeCompare(b.id))'
const oclifSortWithoutIcu = {
  name: 'oclif-sort-without-icu',
  setup(builder) {
    builder.onLoad({filter: /@oclif[\\/]core[\\/]lib[\\/]config[\\/]plugin\.js$/}, (args) => {
      const source = readFileSync(args.path, 'utf8')
      if (source.split(OCLIF_SORT).length !== 2) throw new Error(`bundle: ${args.path} no longer has ${OCLIF_SORT} once: look again at what start-up pays for it`)
      return {contents: source.replace(OCLIF_SORT, '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))'), loader: 'js'}
    })
  },
}

// a cache of an older bundle would only be refused
rmSync(CODE_CACHE, {force: true})

const {outputFiles} = await build({
  bundle: true,
  // the sources are ES modules: import.meta.url is the bundle's own URL (set in PRELUDE)
  define: {'import.meta.url': '__slotctlModuleUrl'},
  entryPoints: ['src/slotctl.ts'],
  external: ['@inquirer/prompts', 'execa', 'ajv', 'typescript', 'ts-node', 'tsx'],
  format: 'cjs',
  // class and function names stay: errors and oclif's messages show them
  keepNames: true,
  legalComments: 'none',
  logLevel: 'warning',
  // SLOTCTL_BUNDLE_READABLE=1: names and lines kept, to read a profile
  minify: !process.env.SLOTCTL_BUNDLE_READABLE,
  outfile: BUNDLE,
  platform: 'node',
  plugins: [oclifSortWithoutIcu],
  target: 'node20',
  write: false,
})

/**
 * import() calls (oclif loading its ESM plugins, prompts, execa) become calls of the function
 * bin/bundle-loader.cjs hands the bundle, or of a plain import() when something require()s
 * the file directly (oclif manifest). "import()" itself (a word in an error message) stays.
 */
const PRELUDE =
  'var __slotctlModuleUrl=require("node:url").pathToFileURL(__filename).href;' +
  'var __slotctlImport=typeof __slotctlDynamicImport=="function"?__slotctlDynamicImport:(s)=>import(s);'
const STRICT = '"use strict";'
const [{text}] = outputFiles
if (!text.startsWith(STRICT)) throw new Error(`bundle: expected the output to start with ${STRICT}`)
let rewritten = 0
const body = text.slice(STRICT.length).replaceAll(/(?<![\w$.])import\((?!\))/g, () => {
  rewritten++
  return '__slotctlImport('
})
if (rewritten === 0) throw new Error('bundle: no import() found to rewrite: has the bundle changed shape?')
writeFileSync(BUNDLE, `${STRICT}${PRELUDE}${body}`)

// The cache holds what V8 compiled while the bundle's top level ran (oclif, ioredis and every
// module's definitions), made in a fresh Node with no flags, as bin/run.js runs: V8 refuses a
// cache made under other flags.
execFileSync(process.execPath, ['-e', `
  const {loadBundle, CODE_CACHE} = require(${JSON.stringify(createRequire(import.meta.url).resolve('../bin/bundle-loader.cjs'))})
  const {script} = loadBundle({useCache: false})
  if (script) require('node:fs').writeFileSync(CODE_CACHE, script.createCachedData())
  process.exit()
`], {env: {...process.env, NODE_OPTIONS: '', OCLIF_DISABLE_ENGINE_WARNING: '1'}, stdio: 'inherit'})
