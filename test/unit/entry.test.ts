import {readdirSync} from 'node:fs'
import path from 'node:path'

import {expect} from 'chai'

import {COMMANDS, commandNotFound} from '../../src/slotctl.js'
import hook from '../../src/hooks/command-not-found.js'
import {root} from '../helpers/schema.js'

describe('the bundle entry (src/slotctl.ts) lists every command', () => {
  it('one entry per file under src/commands, under the id oclif gives it (sandbox/start.ts is sandbox:start)', () => {
    const dir = path.join(root, 'src', 'commands')
    const ids = readdirSync(dir, {recursive: true})
      .map(String)
      .filter((file) => file.endsWith('.ts'))
      .map((file) => file.replace(/\.ts$/, '').split(path.sep).join(':'))
    expect(Object.keys(COMMANDS).sort()).to.deep.equal(ids.sort())
    for (const [id, command] of Object.entries(COMMANDS)) expect(typeof command.run, id).to.equal('function')
  })

  it('exports the command_not_found hook that package.json names', () => {
    expect(commandNotFound).to.equal(hook)
  })
})
