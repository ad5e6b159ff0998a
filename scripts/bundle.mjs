#!/usr/bin/env node
/**
 * Bundles the CLI (src/slotctl.ts and all it imports: oclif, ioredis, chalk, every command)
 * into one ES module, dist/slotctl.js, over the file tsc wrote there. Node then reads and
 * compiles one file at start-up instead of resolving and loading some 250 modules.
 *
 * Left out, loaded from node_modules when a verb needs them: @inquirer/prompts (prompts),
 * execa (sandbox servers), ajv (plan files, required at run time), and what oclif only
 * requires for TypeScript in development. The oclif plugins (help, autocomplete) are found
 * by oclif through their package.json, as before.
 */
import {build} from 'esbuild'

await build({
  // the CommonJS packages inside (oclif, ioredis) call require() for Node's modules
  banner: {js: "import {createRequire as __slotctlCreateRequire} from 'node:module'; const require = __slotctlCreateRequire(import.meta.url);"},
  bundle: true,
  entryPoints: ['src/slotctl.ts'],
  external: ['@inquirer/prompts', 'execa', 'ajv', 'typescript', 'ts-node', 'tsx'],
  format: 'esm',
  legalComments: 'none',
  logLevel: 'warning',
  minify: true,
  // class and function names stay: errors and oclif's messages show them
  keepNames: true,
  outfile: 'dist/slotctl.js',
  platform: 'node',
  target: 'node20',
})
