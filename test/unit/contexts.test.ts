import {chmodSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {contextViews, contextsFilePath, parseContextsFile, passwordFileWarning, passwordFromSource, readContexts, writeContexts} from '../../src/lib/context/contexts.js'
import {SlotctlError} from '../../src/lib/core/errors.js'

const rejects = (run: () => unknown, pattern: RegExp) => {
  let caught: unknown
  try {
    run()
  } catch (error) {
    caught = error
  }
  expect(caught, 'an error').to.be.instanceOf(SlotctlError)
  expect((caught as SlotctlError).message).to.match(pattern)
  expect((caught as SlotctlError).exitCode).to.equal(2)
}

describe('contexts: the file', () => {
  let dir: string

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'slotctl-contexts-'))
  })

  afterEach(() => rmSync(dir, {force: true, recursive: true}))

  it('lives under XDG_CONFIG_HOME, else ~/.config', () => {
    expect(contextsFilePath({XDG_CONFIG_HOME: '/cfg'})).to.equal('/cfg/slotctl/contexts.json')
    expect(contextsFilePath({})).to.match(/\/\.config\/slotctl\/contexts\.json$/)
  })

  it('a missing file is no contexts', () => {
    expect(readContexts(path.join(dir, 'none.json'))).to.deep.equal({contexts: {}})
  })

  it('is written owner-only (0600) in a 0700 directory, and reads back the same', async () => {
    const file = path.join(dir, 'cfg', 'slotctl', 'contexts.json')
    const contexts = {contexts: {prod: {password: {env: 'PROD_PASS'}, seed: '10.0.0.1:7000', tls: true, user: 'ops'}}, current: 'prod'}
    await writeContexts(contexts, file)
    expect(statSync(file).mode & 0o777).to.equal(0o600)
    expect(statSync(path.dirname(file)).mode & 0o777).to.equal(0o700)
    expect(readContexts(file)).to.deep.equal(contexts)
  })

  it('refuses a symlink at its name: never writes through it', async () => {
    const target = path.join(dir, 'elsewhere.txt')
    writeFileSync(target, 'not yours')
    const file = path.join(dir, 'contexts.json')
    symlinkSync(target, file)
    // refused: slotctl never writes through a symlink
    let caught: unknown
    await writeContexts({contexts: {}}, file).catch((error: unknown) => {
      caught = error
    })
    expect((caught as Error | undefined)?.message).to.match(/is a symlink/)
    expect(readFileSync(target, 'utf8')).to.equal('not yours')
    expect(lstatSync(file).isSymbolicLink()).to.equal(true)
  })

  it('refuses a password in plain text, unknown password sources, bad names and a current that names nothing', () => {
    const file = 'contexts.json'
    rejects(() => parseContextsFile(JSON.stringify({contexts: {prod: {password: 'hunter2', seed: 'a:1'}}}), file), /holds a password in plain text/)
    rejects(() => parseContextsFile(JSON.stringify({contexts: {prod: {password: {value: 'hunter2'}, seed: 'a:1'}}}), file), /must be \{"env": NAME\}/)
    rejects(() => parseContextsFile(JSON.stringify({contexts: {prod: {password: {env: 'A', file: 'b'}, seed: 'a:1'}}}), file), /exactly one/)
    rejects(() => parseContextsFile(JSON.stringify({contexts: {'../x': {seed: 'a:1'}}}), file), /invalid context name/)
    rejects(() => parseContextsFile(JSON.stringify({contexts: {prod: {seed: 'a:1'}}, current: 'dev'}), file), /current names no context/)
    rejects(() => parseContextsFile('{', file), /not a valid contexts file/)
    rejects(() => parseContextsFile(JSON.stringify({contexts: {prod: {seed: 'a:1', tls: 'yes'}}}), file), /tls must be true or false/)
  })

  it('lists contexts with their password source, never a password', () => {
    const views = contextViews({contexts: {a: {password: {file: '/p'}, seed: 'a:1'}, b: {seed: 'b:1'}}, current: 'b'})
    expect(views).to.deep.equal([
      {current: false, name: 'a', passwordSource: {file: '/p'}, seed: 'a:1'},
      {current: true, name: 'b', passwordSource: null, seed: 'b:1'},
    ])
  })
})

describe('contexts: password sources', () => {
  let dir: string

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'slotctl-contexts-'))
  })

  afterEach(() => rmSync(dir, {force: true, recursive: true}))

  it('reads an environment variable, and refuses an unset one', () => {
    expect(passwordFromSource({env: 'P'}, 'prod', {P: 's3cret'})).to.equal('s3cret')
    rejects(() => passwordFromSource({env: 'P'}, 'prod', {}), /context 'prod' takes its password from \$P, which is not set/)
  })

  it('reads a file without its final newline, refuses an empty or missing one, and warns when others can read it', () => {
    const file = path.join(dir, 'pass')
    writeFileSync(file, 's3cret\n', {mode: 0o600})
    chmodSync(file, 0o600)
    expect(passwordFromSource({file}, 'prod')).to.equal('s3cret')
    expect(passwordFileWarning(file)).to.equal(undefined)
    chmodSync(file, 0o644)
    expect(passwordFileWarning(file)).to.match(/readable by others \(mode 0644\)/)
    writeFileSync(file, '')
    rejects(() => passwordFromSource({file}, 'prod'), /which is empty/)
    rejects(() => passwordFromSource({file: path.join(dir, 'none')}, 'prod'), /cannot read it \(no such file\)/)
  })
})
