/**
 * Nodes that do not behave: one that accepts connections and never answers (a stopped
 * process), and one whose password differs from the others' (a rotation in progress).
 * Every read has a deadline, the node is named for what it is, and the rest goes on.
 */
import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {InfoResult} from '../../src/commands/info.js'
import {DEFAULT_CONNECTION, NodePool} from '../../src/lib/cluster/connection.js'
import {countKeysInSlots} from '../../src/lib/cluster/slot-stats.js'
import {type ClusterNode, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {SlotctlError} from '../../src/lib/core/errors.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'

/** Before the deadline, a hung node held check for 35 s and fix --dry-run for 200 s; the default deadline is 5 s. */
const BOUND_MS = 20_000
/** The rest of the runs use a shorter deadline, to keep the test quick. */
const FAST = ['--read-timeout', '1500']

async function timed<T>(run: () => Promise<T>): Promise<{ms: number; value: T}> {
  const started = Date.now()
  const value = await run()
  return {ms: Date.now() - started, value}
}

describe('a hung node: accepts connections, never answers', function () {
  this.timeout(180_000)
  let cluster: TestCluster
  let hung: ClusterNode

  before(async () => {
    // a long node timeout: the cluster must not fail the stopped master over during the test
    cluster = await TestCluster.start({masters: 3, nodeTimeoutMs: 60_000, replicas: 1})
    const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
    hung = nodes.find((node) => node.role === 'master' && !node.myself) as ClusterNode
    process.kill(cluster.server(hung.address).pid, 'SIGSTOP')
  })

  after(async () => {
    if (hung) process.kill(cluster.server(hung.address).pid, 'SIGCONT')
    await cluster?.stop()
  })

  it('check names the hung master within the deadline and still reads every other node', async () => {
    const {ms, value: result} = await timed(() => runCliJson<CheckResult>(['check', cluster.seed]))
    expect(ms).to.be.lessThan(BOUND_MS)
    expect(result.exitCode, result.stderr).to.equal(3)
    const finding = result.json.errors.find((f) => f.code === 'MASTER_UNREACHABLE')
    expect(finding?.message).to.match(new RegExp(`master ${hung.address} \\(${hung.id.slice(0, 8)}\\) is hung: .*did not answer within 5000 ms`))
    expect(result.json.nodes.filter((node) => node.reachable)).to.have.length(5)
    const human = await runCli(['check', cluster.seed, ...FAST])
    expect(human.stdout).to.match(/\[ERR\] master .* is hung/)
  })

  it('info reports the master it could not read as hung and totals the others', async () => {
    const {ms, value: result} = await timed(() => runCliJson<InfoResult>(['info', cluster.seed, ...FAST]))
    expect(ms).to.be.lessThan(BOUND_MS)
    expect(result.exitCode).to.equal(1)
    const row = result.json.masters.find((master) => master.id === hung.id)
    expect(row?.reachable).to.equal(false)
    expect(result.json.errors.map((issue) => issue.message).join('\n')).to.match(new RegExp(`${hung.address}.*is hung`))
    expect(result.json.masters.filter((master) => master.reachable)).to.have.length(2)
  })

  it('fix and fix --dry-run print their findings at once, naming the hung master', async () => {
    for (const args of [['--dry-run'], ['--yes']]) {
      const {ms, value: result} = await timed(() => runCli(['fix', cluster.seed, ...args, ...FAST]))
      expect(ms, args[0]).to.be.lessThan(BOUND_MS)
      expect(result.exitCode, result.stderr).to.equal(3)
      expect(result.stdout).to.match(new RegExp(`\\[ERR\\] master ${hung.address} .* is hung`))
      expect(result.stdout).to.match(/nothing fix can do about the errors above/)
    }
  })

  it('with something to fix, fix --dry-run shows it and says fix would refuse; fix refuses at once, naming the hung master', async () => {
    const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
    const [importer, owner] = nodes.filter((node) => node.role === 'master' && node.id !== hung.id)
    const slot = owner.slots[0][0]
    const importerClient = cluster.client(importer.address)
    await importerClient.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
    try {
      const dry = await timed(() => runCli(['fix', cluster.seed, '--dry-run', ...FAST]))
      expect(dry.ms).to.be.lessThan(BOUND_MS)
      expect(dry.value.stdout).to.match(new RegExp(`${slot} .*importing`))
      expect(dry.value.stderr).to.match(/fix would refuse: masters owning slots are unreachable/)
      const refused = await timed(() => runCli(['fix', cluster.seed, '--yes', ...FAST]))
      expect(refused.ms).to.be.lessThan(BOUND_MS)
      expect(refused.value.exitCode).to.equal(1)
      expect(refused.value.stderr).to.include(hung.address)
      expect(String(await importerClient.call('CLUSTER', 'NODES'))).to.include(`[${slot}-<-${owner.id}]`)
    } finally {
      await importerClient.call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    }
  })

  it('call runs on the other nodes, names the hung one, and exits 1', async () => {
    const {ms, value: result} = await timed(() => runCliJson<{replies: Array<{address: string; reply: string}>}>(['call', cluster.seed, 'PING', ...FAST]))
    expect(ms).to.be.lessThan(BOUND_MS)
    expect(result.exitCode).to.equal(1)
    expect(result.json.replies.map((reply) => reply.reply)).to.deep.equal(Array(5).fill('PONG'))
    const human = await runCli(['call', cluster.seed, 'PING', ...FAST])
    expect(human.exitCode).to.equal(1)
    expect(human.stderr).to.match(new RegExp(`not run on ${hung.address}: .*is hung`))
  })

  it('a hung seed: one line naming it, exit 1', async () => {
    const {ms, value: result} = await timed(() => runCli(['check', hung.address]))
    expect(ms).to.be.lessThan(BOUND_MS)
    expectOneCleanLine(result, 1, new RegExp(`${hung.address} is hung: it accepts connections but did not answer within 5000 ms`))
  })
})

describe('a node that stops answering after slotctl connected to it', function () {
  this.timeout(60_000)
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({masters: 1, nodeTimeoutMs: 60_000, replicas: 0})
  })

  after(async () => {
    process.kill(cluster.server(cluster.seed).pid, 'SIGCONT')
    await cluster?.stop()
  })

  it('the next read gives up at the read deadline (COUNTKEYSINSLOT included), and every later use fails at once', async () => {
    const pool = new NodePool({...DEFAULT_CONNECTION, readTimeoutMs: 1000})
    try {
      expect(await countKeysInSlots(pool, cluster.seed, [0, 1, 2])).to.deep.equal([0, 0, 0])
      process.kill(cluster.server(cluster.seed).pid, 'SIGSTOP')
      const {ms, value: error} = await timed(() => countKeysInSlots(pool, cluster.seed, [0, 1, 2]).catch((caught: unknown) => caught as SlotctlError))
      expect(error).to.be.instanceOf(SlotctlError)
      expect(error).to.include({code: 'E_HUNG'})
      expect(ms).to.be.within(900, 10_000)
      const again = await timed(() => pool.client(cluster.seed).catch((caught: unknown) => caught as SlotctlError))
      expect(again.value).to.include({code: 'E_HUNG'})
      expect(again.ms).to.be.lessThan(500)
    } finally {
      await pool.closeAll()
    }
  })
})

describe('a node whose password differs (a rotation in progress)', function () {
  this.timeout(120_000)
  const PASSWORD = 'rotation-old-7c1d'
  let cluster: TestCluster
  let rotated: ClusterNode

  before(async () => {
    cluster = await TestCluster.start({masters: 3, password: PASSWORD, replicas: 0})
    const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
    rotated = nodes.find((node) => !node.myself) as ClusterNode
    await cluster.client(rotated.address).call('CONFIG', 'SET', 'requirepass', 'rotation-new-55aa')
  })

  after(async () => {
    await cluster?.stop()
  })

  it('check says authentication failed at that node, never "Stream isn\'t writeable"', async () => {
    const result = await runCliJson<CheckResult>(['check', cluster.seed], {env: {REDISCLI_AUTH: PASSWORD}})
    expect(result.exitCode).to.equal(3)
    const finding = result.json.errors.find((f) => f.nodes?.some((node) => node.id === rotated.id))
    expect(finding?.code).to.equal('MASTER_AUTH_FAILED')
    expect(finding?.message).to.equal(`master ${rotated.address} (${rotated.id.slice(0, 8)}) refuses this login (authentication failed at ${rotated.address}: wrong user name or password)`)
    expect(result.stdout + result.stderr).to.not.match(/Stream isn't writeable/)
    expect(result.stdout + result.stderr).to.not.include(PASSWORD)
  })

  it('the same node as seed: one line, exit 1', async () => {
    expectOneCleanLine(await runCli(['info', rotated.address], {env: {REDISCLI_AUTH: PASSWORD}}), 1, new RegExp(`^slotctl: error: authentication failed at ${rotated.address}: wrong user name or password$`), [PASSWORD])
  })
})
