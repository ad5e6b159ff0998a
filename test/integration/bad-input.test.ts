/**
 * Bad input that errors.test.ts does not cover: node ids, URLs carrying a password, invalid
 * values of verb arguments and global flags. Each must give one line on stderr (plus hints),
 * the documented exit code, no stack trace, and never the password.
 */
import {expect} from 'chai'

import {findFreePorts} from '../../src/lib/local/servers.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {type CliResult, expectOneCleanLine as expectCleanError, runCli} from '../helpers/cli.js'

const PASSWORD = 'hunter2-must-not-leak'
const expectOneCleanLine = (result: CliResult, exitCode: number, pattern: RegExp) => expectCleanError(result, exitCode, pattern, [PASSWORD])
const withSecret = {env: {REDISCLI_AUTH: PASSWORD}}


function expectJsonEnvelope(result: CliResult, exitCode: number, code: string, pattern: RegExp): void {
  expect(result.exitCode, result.stderr).to.equal(exitCode)
  expect(result.stdout + result.stderr).to.not.include(PASSWORD)
  const {error} = JSON.parse(result.stdout) as {error: {code: string; exitCode: number; message: string}}
  expect(error).to.include({code, exitCode})
  expect(error.message).to.match(pattern)
}

describe('bad input: node ids, URLs with passwords, argument values', () => {
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 0})
  })

  after(async () => {
    await cluster?.stop()
  })

  const knownNodes = async () => String(await cluster.client().call('CLUSTER', 'NODES')).trim().split('\n').length

  it('an unknown node id: exit 2 with a hint, and nothing is removed', async () => {
    expectOneCleanLine(await runCli(['del-node', cluster.seed, 'abc123', '--yes']), 2, /unknown node id 'abc123'/)
    expectOneCleanLine(await runCli(['del-node', cluster.seed, 'not-an-id', '--yes']), 2, /'not-an-id' is not a node id/)
    expect(await knownNodes()).to.equal(3)
  })

  it('an unknown node id in --json mode: the envelope carries E_UNKNOWN_NODE and exit 2', async () => {
    expectJsonEnvelope(await runCli(['del-node', cluster.seed, 'abc123', '--yes', '--json'], withSecret), 2, 'E_UNKNOWN_NODE', /unknown node id/)
  })

  it('a redis:// URL with a password: errors never echo it', async () => {
    const [port] = await findFreePorts(1)
    expectOneCleanLine(await runCli(['check', `redis://ops:${PASSWORD}@127.0.0.1:${port}`]), 1, /cannot connect to 127\.0\.0\.1:\d+: connection refused/)
    expectOneCleanLine(await runCli(['check', `redis://ops:${PASSWORD}@127.0.0.1:99999`]), 2, /invalid address 'redis:\/\/ops:\*\*\*@127\.0\.0\.1:99999'/)
    expectJsonEnvelope(await runCli(['info', `redis://ops:${PASSWORD}@127.0.0.1:99999`, '--json']), 2, 'E_USAGE', /\*\*\*/)
  })

  it('the host port form with a bad port: exit 2', async () => {
    expectOneCleanLine(await runCli(['info', '127.0.0.1', 'seven']), 2, /port 'seven' is not a number/)
  })

  it('invalid verb arguments and global flag values: exit 2, also in --json mode', async () => {
    expectOneCleanLine(await runCli(['set-timeout', cluster.seed, '50'], withSecret), 2, /invalid timeout '50'.*at least 100/)
    expectJsonEnvelope(await runCli(['set-timeout', cluster.seed, 'soon', '--json'], withSecret), 2, 'E_USAGE', /invalid timeout 'soon'/)
    expectOneCleanLine(await runCli(['check', cluster.seed, '--connect-timeout', '0'], withSecret), 2, /connect-timeout/)
    expectOneCleanLine(await runCli(['call', cluster.seed], withSecret), 2, /missing command to run/)
  })

  it('fix: a missing or foreign journal, a bad flag value: exit 2, one line, nothing changed', async () => {
    expectOneCleanLine(await runCli(['fix', cluster.seed, '--yes', '--journal', '/nonexistent/j.jsonl'], withSecret), 2, /cannot read journal '\/nonexistent\/j.jsonl'/)
    expectOneCleanLine(await runCli(['fix', cluster.seed, '--yes', '--journal', '/etc/hostname'], withSecret), 2, /is not a slotctl journal/)
    expectOneCleanLine(await runCli(['fix', cluster.seed, '--pipeline', '0'], withSecret), 2, /pipeline/)
    expectJsonEnvelope(await runCli(['fix', cluster.seed, '--journal', '/nonexistent/j.jsonl', '--json'], withSecret), 2, 'E_USAGE', /cannot read journal/)
  })
})
