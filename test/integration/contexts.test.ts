import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {ContextResult} from '../../src/lib/cli/context-command.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'

const PASSWORD = 'ctx-Pa55-word-zq'

describe('contexts on a password-protected cluster', () => {
  let cluster: TestCluster
  let other: TestCluster
  let home: string
  let env: Record<string, string>

  before(async function () {
    this.timeout(180_000)
    cluster = await TestCluster.start({masters: 3, password: PASSWORD, replicas: 0})
    other = await TestCluster.start({masters: 3, replicas: 0})
  })

  after(async () => {
    await cluster?.stop()
    await other?.stop()
  })

  beforeEach(() => {
    home = mkdtempSync(path.join(tmpdir(), 'slotctl-ctx-home-'))
    // REDISCLI_AUTH empty: the context, not the environment, gives the password
    env = {HOME: home, XDG_CONFIG_HOME: path.join(home, 'config')}
  })

  afterEach(() => rmSync(home, {force: true, recursive: true}))

  const file = () => path.join(home, 'config', 'slotctl', 'contexts.json')
  const cli = (args: string[], extra: Record<string, string> = {}) => runCli(args, {env: {...env, ...extra}})
  const cliJson = <T>(args: string[], extra: Record<string, string> = {}) => runCliJson<T>(args, {env: {...env, ...extra}})

  it('add, list, use and remove: the first is current, the file is 0600 and holds the source, never the password', async () => {
    const added = await cliJson<ContextResult>(['context', 'add', 'prod', cluster.seed, '--password-env', 'PROD_PASS'])
    expect(added.exitCode, added.stderr).to.equal(0)
    expect(added.json).to.include({current: 'prod', name: 'prod'})
    expect((await cli(['context', 'add', 'dev', other.seed])).exitCode).to.equal(0)
    const text = readFileSync(file(), 'utf8')
    expect(statSync(file()).mode & 0o777).to.equal(0o600)
    expect(statSync(path.dirname(file())).mode & 0o777).to.equal(0o700)
    expect(text).to.include('"env": "PROD_PASS"')
    expect(text).to.not.include(PASSWORD)

    const listed = await cliJson<ContextResult>(['context', 'list'])
    expect(listed.json.current).to.equal('prod')
    expect(listed.json.contexts.map((context) => [context.name, context.current, context.seed])).to.deep.equal([
      ['dev', false, other.seed],
      ['prod', true, cluster.seed],
    ])
    const human = await cli(['context', 'list'], {COLUMNS: '80'})
    expect(human.stdout).to.match(/│ \* +│ prod +│/)
    expect(human.stdout).to.include('env PROD_PASS')

    expect((await cli(['context', 'use', 'dev'])).stdout).to.include('current context: dev')
    expect((await cliJson<ContextResult>(['context', 'list'])).json.current).to.equal('dev')
    const removed = await cliJson<ContextResult>(['context', 'remove', 'dev'])
    expect(removed.json.current).to.equal(null)
    expect(removed.json.contexts.map((context) => context.name)).to.deep.equal(['prod'])
  })

  it('refuses a password on the command line, a name taken (without --overwrite), an unknown context, a missing address with no current context', async () => {
    expectOneCleanLine(await cli(['info']), 2, /^slotctl: error: missing required argument: address \(any node of the cluster \(HOST:PORT\)\)$/)
    expectOneCleanLine(await cli(['context', 'add', 'prod', cluster.seed, '-a', PASSWORD, '--no-auth-warning']), 2, /a context never stores a password/, [PASSWORD])
    expectOneCleanLine(await cli(['context', 'add', 'prod', `redis://:${PASSWORD}@${cluster.seed}`]), 2, /a context never stores a password/, [PASSWORD])
    expect((await cli(['context', 'add', 'prod', cluster.seed])).exitCode).to.equal(0)
    expectOneCleanLine(await cli(['context', 'add', 'prod', other.seed]), 2, /a context named 'prod' exists/)
    expect((await cli(['context', 'add', 'prod', other.seed, '--overwrite'])).exitCode).to.equal(0)
    expectOneCleanLine(await cli(['context', 'use', 'nope']), 2, /no context named 'nope'/)
    expectOneCleanLine(await cli(['check', '--context', 'nope']), 2, /no context named 'nope'/)
    // verbs that reach no cluster of the operator's take no context
    const version = await cli(['version'], {SLOTCTL_CONTEXT: 'nope'})
    expect(version.exitCode, version.stderr).to.equal(0)
  })

  it('the current context is the default seed and gives its password (env var, file); --context and SLOTCTL_CONTEXT pick another', async () => {
    const passwordFile = path.join(home, 'pass')
    writeFileSync(passwordFile, `${PASSWORD}\n`, {mode: 0o600})
    expect((await cli(['context', 'add', 'prod', cluster.seed, '--password-env', 'PROD_PASS'])).exitCode).to.equal(0)
    expect((await cli(['context', 'add', 'prod-file', cluster.seed, '--password-file', passwordFile])).exitCode).to.equal(0)
    expect((await cli(['context', 'add', 'dev', other.seed])).exitCode).to.equal(0)

    const fromCurrent = await cliJson<CheckResult>(['check'], {PROD_PASS: PASSWORD})
    expect(fromCurrent.exitCode, fromCurrent.stderr).to.equal(0)
    expect(fromCurrent.json.seed.address).to.equal(cluster.seed)
    expect(fromCurrent.stdout + fromCurrent.stderr).to.not.include(PASSWORD)

    // the variable unset: one clear line, not an attempt without a password
    expectOneCleanLine(await cli(['check']), 2, /context 'prod' takes its password from \$PROD_PASS, which is not set/)

    const fromFile = await cliJson<CheckResult>(['check', '--context', 'prod-file'])
    expect(fromFile.exitCode, fromFile.stderr).to.equal(0)
    expect(fromFile.json.seed.address).to.equal(cluster.seed)

    const fromEnv = await cliJson<CheckResult>(['info'], {SLOTCTL_CONTEXT: 'dev'})
    expect(fromEnv.exitCode, fromEnv.stderr).to.equal(0)
    expect((fromEnv.json as unknown as {seed: {address: string}}).seed.address).to.equal(other.seed)
  })

  it('a flag given wins over the context, and an address typed without --context never gets the current context\'s credentials', async () => {
    expect((await cli(['context', 'add', 'prod', cluster.seed, '--password-env', 'PROD_PASS'])).exitCode).to.equal(0)
    // the current context's password source is not consulted for another cluster's address
    const elsewhere = await cliJson<CheckResult>(['check', other.seed])
    expect(elsewhere.exitCode, elsewhere.stderr).to.equal(0)
    expect(elsewhere.json.seed.address).to.equal(other.seed)
    // an explicit password (REDISCLI_AUTH) wins over the context's source (PROD_PASS unset)
    const explicit = await cliJson<CheckResult>(['check'], {REDISCLI_AUTH: PASSWORD})
    expect(explicit.exitCode, explicit.stderr).to.equal(0)
    // a wrong explicit password is used, not replaced by the context's right one
    const wrong = await cli(['check'], {PROD_PASS: PASSWORD, REDISCLI_AUTH: 'wrong-one'})
    expect(wrong.exitCode).to.equal(1)
    expect(wrong.stderr).to.match(/WRONGPASS|invalid password|NOAUTH|auth/i)
  })
})
