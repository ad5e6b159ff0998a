import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {type RunningServer, findFreePorts, startServer, stopServer} from '../../src/lib/local/servers.js'
import {TestCluster, testServerBinary} from '../helpers/cluster-harness.js'
import {type CliResult, expectOneCleanLine as expectCleanError, runCli} from '../helpers/cli.js'

const PASSWORD = 'pa55-never-printed'
const expectOneCleanLine = (result: CliResult, exitCode: number, pattern: RegExp) => expectCleanError(result, exitCode, pattern, [PASSWORD])


describe('bad input, end to end through the binary', () => {
  let dir: string
  let plain: RunningServer
  let secured: RunningServer
  let cluster: TestCluster

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-errors-'))
    const [plainPort, securedPort] = await findFreePorts(2)
    plain = await startServer({binary: testServerBinary, cluster: false, dir: path.join(dir, 'plain'), port: plainPort})
    secured = await startServer({binary: testServerBinary, dir: path.join(dir, 'secured'), extraArgs: ['--requirepass', PASSWORD], password: PASSWORD, port: securedPort})
    cluster = await TestCluster.start({masters: 3, replicas: 0})
  })

  after(async () => {
    await Promise.all([plain, secured].filter(Boolean).map((server) => stopServer(server)))
    await cluster?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('an unreachable address: exit 1, one line', async () => {
    const [port] = await findFreePorts(1)
    expectOneCleanLine(await runCli(['check', `127.0.0.1:${port}`]), 1, /cannot connect to 127\.0\.0\.1:\d+: connection refused/)
  })

  it('a node that is not cluster-enabled: exit 1, one line naming it', async () => {
    expectOneCleanLine(await runCli(['check', plain.address]), 1, new RegExp(`${plain.address} is not a cluster node`))
  })

  it('a wrong password and a missing password: exit 1, never echoing the password', async () => {
    expectOneCleanLine(await runCli(['info', secured.address, '-a', 'wrong-password']), 1, /authentication failed/)
    expectOneCleanLine(await runCli(['info', secured.address]), 1, /requires a password/)
    const ok = await runCli(['call', secured.address, 'PING', '--json'], {env: {REDISCLI_AUTH: PASSWORD}})
    expect(ok.exitCode, ok.stderr).to.equal(0)
    expect(JSON.parse(ok.stdout).replies[0].reply).to.equal('PONG')
    expect(ok.stdout + ok.stderr).to.not.include(PASSWORD)
  })

  it('a password supplied to a server without one: no ioredis warning noise', async () => {
    const result = await runCli(['check', cluster.seed, '-a', PASSWORD])
    expect(result.exitCode).to.be.oneOf([0, 3])
    expect(result.stderr).to.not.include('[WARN]')
    expect(result.stdout + result.stderr).to.not.include(PASSWORD)
  })

  it('malformed addresses: exit 2, one line', async () => {
    expectOneCleanLine(await runCli(['check', 'localhost']), 2, /missing port/)
    expectOneCleanLine(await runCli(['check', '127.0.0.1:99999']), 2, /out of range/)
    expectOneCleanLine(await runCli(['check', '::1:7000']), 2, /brackets/)
  })

  it('a bad flag in --json mode: exit 2 with a small envelope that never contains the password', async () => {
    const result = await runCli(['check', cluster.seed, '--bogus', '--json'], {env: {REDISCLI_AUTH: PASSWORD}})
    expect(result.exitCode).to.equal(2)
    expect(result.stdout).to.not.include(PASSWORD)
    const envelope = JSON.parse(result.stdout)
    expect(envelope).to.include({schemaVersion: 1, status: 'error'})
    expect(Object.keys(envelope).sort()).to.deep.equal(['error', 'schemaVersion', 'status'])
    expect(envelope.error).to.include({code: 'E_USAGE', exitCode: 2})
    expect(envelope.error.message).to.match(/Nonexistent flag: --bogus/)
  })

  it('a missing argument: exit 2, one line', async () => {
    // the argument keeps its name (oclif put it on a second line, which the one-line error dropped)
    expectOneCleanLine(await runCli(['check']), 2, /^slotctl: error: missing required argument: address \(any node of the cluster \(HOST:PORT\)\)$/)
    expectOneCleanLine(await runCli(['set-timeout']), 2, /missing required arguments: address .*, milliseconds /)
  })
})
