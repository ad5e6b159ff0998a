'use strict'
/**
 * Loads the bundled CLI, dist/slotctl.cjs, as Node's CommonJS loader would, but with V8's
 * code cache (dist/slotctl.cjs.cache, written by `npm run build`): V8 then reads the compiled
 * bytecode instead of parsing and compiling 800 KB of JavaScript on every start. V8 checks
 * that the cache fits this exact source, Node version and set of V8 flags, and ignores it
 * (compiling as usual) when it does not.
 *
 * Registered in require's cache under its path, so that oclif, which require()s the same
 * file to find the commands and the hook, gets this instance.
 *
 * Code compiled through vm cannot call import() on Node 20 (the one way, a vm constant of
 * 20.12, is experimental, warns on stderr, and is lost with a code cache), so the bundle's
 * import() calls go through a function it is handed: dynamicImport, compiled as usual here.
 */
const {readFileSync} = require('node:fs')
const Module = require('node:module')
const path = require('node:path')
const vm = require('node:vm')

const BUNDLE = path.join(__dirname, '..', 'dist', 'slotctl.cjs')
const CODE_CACHE = `${BUNDLE}.cache`

/** The bundle's import(): scripts/bundle.mjs rewrites its import() calls to use this parameter. */
const dynamicImport = (specifier) => import(specifier)

function wrap(source) {
  return `(function (exports, require, module, __filename, __dirname, __slotctlDynamicImport) {${source}\n})`
}

function readCodeCache() {
  try {
    return readFileSync(CODE_CACHE)
  } catch {
    return undefined
  }
}

/** {exports, script, cacheRejected}; `useCache: false` compiles from source (to write a new cache). */
function loadBundle({useCache = true} = {}) {
  const cachedData = useCache ? readCodeCache() : undefined
  const script = new vm.Script(wrap(readFileSync(BUNDLE, 'utf8')), {cachedData, filename: BUNDLE})
  const bundle = new Module(BUNDLE, module)
  bundle.filename = BUNDLE
  bundle.paths = Module._nodeModulePaths(path.dirname(BUNDLE))
  Module._cache[BUNDLE] = bundle
  try {
    script.runInThisContext().call(bundle.exports, bundle.exports, Module.createRequire(BUNDLE), bundle, BUNDLE, path.dirname(BUNDLE), dynamicImport)
  } catch (error) {
    delete Module._cache[BUNDLE]
    throw error
  }
  bundle.loaded = true
  return {cacheRejected: cachedData ? script.cachedDataRejected : undefined, exports: bundle.exports, script}
}

module.exports = {BUNDLE, CODE_CACHE, loadBundle}
