#!/usr/bin/env node
import {readFileSync} from 'node:fs'

import {execute} from '@oclif/core'

// package.json points oclif at the bundle (dist/slotctl.cjs); here it reads the TypeScript
// entry instead, through tsx, with the oclif copy imported above
const root = new URL('..', import.meta.url).pathname
const pjson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
pjson.oclif.commands.target = './src/slotctl.ts'
pjson.oclif.hooks.command_not_found.target = './src/slotctl.ts'

await execute({development: true, dir: import.meta.url, loadOptions: {pjson, root}})
