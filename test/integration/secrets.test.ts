/**
 * A password never leaks. Every verb runs on a success and a failure path, human and --json,
 * with and without --verbose, with a recognisable password given each way (-a, REDISCLI_AUTH,
 * a redis:// URL); the password must appear nowhere: stdout, stderr, the files slotctl wrote,
 * and what the servers saw (MONITOR, SLOWLOG GET, CLIENT LIST).
 */
import {mkdtemp, readFile, readdir, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'
import {execa} from 'execa'
import {Redis} from 'ioredis'

import {mapLimit} from '../../src/lib/cluster/connection.js'
import {type RunningServer, findFreePorts, startServer, stopServer} from '../../src/lib/local/servers.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {TestCluster, testServerBinary} from '../helpers/cluster-harness.js'
import {AUTH_WARNING, type CliResult, runCli, stateHome} from '../helpers/cli.js'

/** `/`, `:` and `@` make it a hard case for URLs too. */
const PASSWORD = 'Sekr3t/Pw:x@42-slotctl'
const FORMS = [PASSWORD, encodeURIComponent(PASSWORD), JSON.stringify(PASSWORD).slice(1, -1)]

type Way = '-a' | 'env' | 'url'
interface Combo {
  way: Way
  json: boolean
  verbose: boolean
}
const WAYS: Way[] = ['-a', 'env', 'url']

/**
 * Six runs per verb: each way in human and in --json mode, with and without --verbose. Which
 * mode goes with --verbose alternates from verb to verb, so that over the verbs every way
 * meets every pairing of output mode and --verbose.
 */
let verbIndex = 0
function combosForNextVerb(): Combo[] {
  const flip = verbIndex++ % 2 === 1
  return WAYS.flatMap((way) => [{json: false, verbose: !flip, way}, {json: true, verbose: flip, way}])
}

/** An address argument that the URL way turns into `redis://:PASSWORD@address` (raw or percent-encoded, alternately). */
type Arg = string | {address: string}
let urlCount = 0
function url(address: string): string {
  const password = urlCount++ % 2 === 0 ? PASSWORD : encodeURIComponent(PASSWORD)
  return `redis://:${password}@${address}`
}

function expectNoPassword(text: string, where: string): void {
  for (const form of FORMS) expect(text.includes(form), `${where} holds the password: ${text.slice(0, 2000)}`).to.equal(false)
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const bin = path.join(root, 'bin', process.env.SLOTCTL_TEST_DEV === '1' ? 'dev.js' : 'run.js')

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true}).catch(() => [])
  return entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name))
}

describe('secrets: the password appears nowhere, whatever the verb, path, output mode or way it was given', function () {
  this.timeout(600_000)
  let cluster: TestCluster
  let spare: TestCluster
  /** A standalone server with the same password, for import. */
  let source: RunningServer
  let sourceClient: Redis
  let dir: string
  let refused: string
  const monitors: Redis[] = []
  const monitored: string[] = []
  let runs = 0

  const nodes = async () => parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
  const masters = async () => mastersOf(await nodes()).filter((node) => node.slots.length > 0)
  const allServers = () => [...cluster.addresses, ...spare.addresses, source.address]
  const clientOf = (address: string) => (address === source.address ? sourceClient : spare.addresses.includes(address) ? spare.client(address) : cluster.client(address))

  /** Runs one verb with the password given `combo.way`, and checks its output right away. */
  async function run(combo: Combo, args: Arg[], exitCodes: number[], env: Record<string, string> = {}): Promise<CliResult> {
    const argv = args.map((arg) => (typeof arg === 'string' ? arg : combo.way === 'url' ? url(arg.address) : arg.address))
    if (combo.way === '-a') argv.push('-a', PASSWORD)
    if (combo.json) argv.push('--json')
    if (combo.verbose) argv.push('--verbose')
    const result = await runCli(argv, {env: {...(combo.way === 'env' ? {REDISCLI_AUTH: PASSWORD} : {}), ...env}})
    runs++
    const what = `${argv.join(' ').replaceAll(PASSWORD, 'PW')} (${combo.way})`
    expect(exitCodes, `${what} exited ${result.exitCode}: ${result.stderr.replaceAll(PASSWORD, 'PW')}`).to.include(result.exitCode)
    expectNoPassword(result.stdout, `stdout of ${what}`)
    expectNoPassword(result.stderr, `stderr of ${what}`)
    // a password typed on the command line is warned about, once (unless the command line did
    // not even parse); from the environment, not at all
    const warnings = result.stderr.split('\n').filter((line) => AUTH_WARNING.test(line))
    const typed = argv.some((word) => /^(-a|--password)|^redis:\/\/:/.test(word))
    if (typed && exitCodes.includes(0)) expect(warnings, what).to.have.length(1)
    else expect(warnings.length, what).to.be.at.most(typed ? 1 : 0)
    if (combo.json) expect(() => JSON.parse(result.stdout), `${what}: stdout is JSON`).to.not.throw()
    return result
  }

  /**
   * Every way, both output modes, with and without --verbose (see combosForNextVerb), a few at
   * a time; one at a time for a verb that takes the run lock (two at once: one is refused).
   */
  async function everyCombo(args: (combo: Combo) => Arg[], exitCodes: number[], atOnce = 3): Promise<void> {
    await mapLimit(combosForNextVerb(), atOnce, (combo) => run(combo, args(combo), exitCodes))
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-secrets-'))
    cluster = await TestCluster.start({masters: 3, password: PASSWORD, replicas: 1})
    spare = await TestCluster.start({form: false, nodes: 2, password: PASSWORD})
    const [refusedPort, sourcePort] = await findFreePorts(2)
    refused = `127.0.0.1:${refusedPort}`
    source = await startServer({binary: testServerBinary, cluster: false, dir: path.join(dir, 'source'), extraArgs: ['--requirepass', PASSWORD], password: PASSWORD, port: sourcePort})
    sourceClient = new Redis({host: source.host, password: PASSWORD, port: source.port})
    for (let i = 0; i < 50; i++) await sourceClient.set(`imported:${i}`, `value ${i}`)
    const client = cluster.clusterClient()
    for (let i = 0; i < 500; i++) await client.set(`secret-test:${i}`, `value ${i}`)
    for (const address of allServers()) {
      const node = clientOf(address)
      // every command into SLOWLOG, with its arguments
      await node.call('CONFIG', 'SET', 'slowlog-log-slower-than', '0', 'slowlog-max-len', '1000000')
      const monitor = await node.monitor()
      monitor.on('monitor', (_time: string, args: string[]) => monitored.push(args.join(' ')))
      monitors.push(monitor)
    }
  })

  after(async () => {
    for (const monitor of monitors) monitor.disconnect()
    sourceClient?.disconnect()
    if (source) await stopServer(source)
    await cluster?.stop()
    await spare?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('read-only verbs and dry runs succeed each way, with plan files of mode 0600', async () => {
    const [target] = await masters()
    const replica = (await nodes()).find((node) => node.role === 'replica') as ClusterNode
    const seed = {address: cluster.seed}
    await everyCombo(() => ['check', seed], [0])
    await everyCombo(() => ['info', seed], [0])
    await everyCombo(() => ['call', seed, 'PING'], [0])
    await everyCombo(() => ['set-timeout', seed, '2000', '--no-persist'], [0], 1)
    await everyCombo(() => ['fix', seed, '--dry-run'], [0])
    await everyCombo(() => ['failover', seed, '--master', replica.masterId as string, '--dry-run'], [0])
    let plans = 0
    await everyCombo(() => ['reshard', seed, '--from', 'all', '--to', target.id, '--slots', '10', '--dry-run', '--out', path.join(dir, `reshard-${plans++}.json`)], [0])
    await everyCombo(() => ['rebalance', seed, '--weight', `${target.id}=2`, '--dry-run', '--out', path.join(dir, `rebalance-${plans++}.json`)], [0])
    for (const file of (await filesUnder(dir)).filter((name) => name.endsWith('.json'))) expect((await stat(file)).mode & 0o777, file).to.equal(0o600)
  })

  it('-aPASSWORD glued to the flag is a flag, never an argument sent to the nodes', async () => {
    for (const json of [false, true]) {
      const result = await run({json, verbose: false, way: 'env'}, ['call', {address: cluster.seed}, 'ECHO', 'glued', `-a${PASSWORD}`], [0])
      expect(result.stdout).to.include('glued')
      const withEquals = await run({json, verbose: true, way: 'env'}, ['call', {address: cluster.seed}, 'ECHO', 'equals', `--password=${PASSWORD}`], [0])
      expect(withEquals.stdout).to.include('equals')
    }
  })

  it('changes succeed each way: reshard, apply, failover, add-node, del-node, create, import, backup', async () => {
    for (const [index, way] of WAYS.entries()) {
      const combo = {json: index % 2 === 0, verbose: index !== 1, way}
      const [target] = await masters()
      await run(combo, ['reshard', {address: cluster.seed}, '--from', 'all', '--to', target.id, '--slots', '4', '--yes', '--journal', path.join(dir, 'journals', `reshard-${way}.jsonl`)], [0])
      const plan = path.join(dir, `apply-${way}.json`)
      await run(combo, ['reshard', {address: cluster.seed}, '--from', 'all', '--to', target.id, '--slots', '4', '--dry-run', '--out', plan], [0])
      await run(combo, ['apply', plan, '--seed', {address: cluster.seed}, '--yes'], [0])

      const master = (await masters()).find((node) => node.address !== cluster.seed) as ClusterNode
      await run(combo, ['failover', {address: cluster.seed}, '--master', master.id], [0])

      const [newNode, fresh] = spare.addresses
      await run(combo, ['add-node', newNode, {address: cluster.seed}], [0])
      const id = String(await spare.client(newNode).call('CLUSTER', 'MYID'))
      await run(combo, ['del-node', {address: cluster.seed}, id, '--yes'], [0])

      await run(combo, ['create', {address: fresh}, '--yes'], [0])
      await spare.client(fresh).call('CLUSTER', 'RESET', 'HARD')

      // the source's own password (the same one here) is given for the source: the cluster's
      // never goes there, slotctl relays the keys; --copy keeps them for the next way
      await run(combo, ['import', {address: cluster.seed}, '--from', source.address, '--copy', '--yes', '--journal', path.join(dir, 'journals', `import-${way}.jsonl`)], [0], {SLOTCTL_FROM_AUTH: PASSWORD})
      await run(combo, ['backup', {address: cluster.seed}, path.join(dir, `backup-${way}`)], [0])
    }
  })

  it('failure paths fail cleanly each way', async () => {
    const all = await nodes()
    const master = all.find((node) => node.role === 'master' && node.slots.length > 0) as ClusterNode
    const replica = all.find((node) => node.role === 'replica') as ClusterNode
    const seed = {address: cluster.seed}
    await everyCombo(() => ['check', {address: refused}], [1])
    await everyCombo(() => ['info', {address: refused}], [1])
    // unknown to every node's command table: nothing says it is harmless, so it needs a yes
    await everyCombo(() => ['call', seed, 'NOSUCHCOMMAND', 'x'], [4])
    await everyCombo(() => ['set-timeout', seed, '50'], [2])
    await everyCombo(() => ['reshard', seed, '--from', 'all', '--to', '0000ffff', '--slots', '5', '--yes'], [2])
    await everyCombo(() => ['rebalance', seed, '--weight', 'zzz=1', '--yes'], [2])
    await everyCombo(() => ['apply', path.join(dir, 'no-such-plan.json'), '--seed', seed, '--yes'], [2])
    await everyCombo(() => ['fix', seed, '--journal', path.join(dir, 'no-such.jsonl'), '--yes'], [2])
    await everyCombo(() => ['failover', seed, '--master', replica.id], [2])
    await everyCombo(() => ['add-node', refused, seed], [1])
    await everyCombo(() => ['del-node', seed, master.id, '--yes'], [1])
    await everyCombo(() => ['create', {address: master.address}, refused, '--yes'], [1])
    await everyCombo(() => ['import', seed, '--from', refused, '--copy', '--yes'], [1])
    await everyCombo(() => ['backup', {address: refused}, path.join(dir, 'no-backup')], [1])
    await everyCombo(() => ['restore', path.join(dir, 'no-such-backup'), '--into', seed, '--yes'], [1, 2])
    await everyCombo(() => ['check', seed, '--bogus'], [2])
    // oclif's own "Unexpected argument" message quotes the argument
    await everyCombo(() => ['check', seed, '7000', url(cluster.seed)], [2])
  })

  it('--askpass asks on a terminal without echo, and is a usage error without one', async () => {
    const child = execa('script', ['-qfec', [process.execPath, bin, 'check', cluster.seed, '--askpass'].join(' '), '/dev/null'], {
      env: {CI: '', NO_COLOR: '1', TERM: 'dumb', XDG_STATE_HOME: stateHome},
      reject: false,
      stdin: 'pipe',
      timeout: 60_000,
    })
    let screen = ''
    let answered = false
    child.stdout?.on('data', (chunk: Buffer) => {
      screen += chunk.toString()
      if (!answered && /Password/.test(screen)) {
        answered = true
        child.stdin?.write(`${PASSWORD}\r`)
      }
    })
    const result = await child
    expect(result.exitCode, screen).to.equal(0)
    expect(screen).to.match(/all 16384 slots covered/)
    expectNoPassword(screen, 'the terminal')
    const noTerminal = await runCli(['check', cluster.seed, '--askpass'])
    expect(noTerminal.exitCode).to.equal(2)
    expect(noTerminal.stderr).to.match(/^slotctl: error: --askpass needs a terminal to ask on\n {2}hint: pass the password in the REDISCLI_AUTH environment variable instead$/)
  })

  it('nothing slotctl wrote, and nothing the servers saw, holds the password', async () => {
    expect(runs).to.be.greaterThan(150)
    // every file under the test's directory but the source server's own, and the journals
    const written = [...(await filesUnder(dir)), ...(await filesUnder(stateHome))].filter((file) => !file.startsWith(path.join(dir, 'source')))
    expect(written.filter((file) => file.endsWith('manifest.json'))).to.have.length(3)
    for (const file of written) expectNoPassword(await readFile(file, 'utf8'), file)
    expect(monitored.length).to.be.greaterThan(1000)
    expectNoPassword(monitored.join('\n'), 'MONITOR')
    for (const address of allServers()) {
      const client = clientOf(address)
      const slowlog = JSON.stringify(await client.call('SLOWLOG', 'GET', '-1'))
      if (address !== source.address) expect(slowlog).to.include('CLUSTER')
      expectNoPassword(slowlog, `SLOWLOG of ${address}`)
      expectNoPassword(String(await client.call('CLIENT', 'LIST')), `CLIENT LIST of ${address}`)
    }
    // the glued -aPASSWORD and --password= never became ECHO arguments
    const echoes = new Set(monitored.filter((line) => /^echo /i.test(line)).map((line) => line.toLowerCase()))
    expect([...echoes].sort()).to.deep.equal(['echo equals', 'echo glued'])
  })
})
