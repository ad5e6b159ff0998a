/**
 * Behaviour Redis's and Valkey's own cluster tests expect: create on a custom cluster-port
 * and with 1 or 2 masters, failovers that count as done only when every reachable node's own
 * view agrees, --force that does not wait for the master it bypasses, a failover that already
 * happened being a success, and add-node keeping function libraries consistent.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {NodePool} from '../../src/lib/cluster/connection.js'
import {loadCluster} from '../../src/lib/cluster/loader.js'
import {type RunningServer, findFreePorts, startServer, stopServer} from '../../src/lib/local/servers.js'
import {runFailover} from '../../src/lib/nodes/failover.js'
import {chooseReplica} from '../../src/lib/plan/failover.js'
import {type ClusterNode, myselfOf, parseClusterNodes, slotCount} from '../../src/lib/cluster/topology.js'
import {waitUntil} from '../../src/lib/cluster/wait.js'
import {TestCluster, testServerBinary} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli} from '../helpers/cli.js'

async function nodesOf(address: string, password?: string): Promise<ClusterNode[]> {
  const pool = new NodePool({commandTimeoutMs: 5000, connectTimeoutMs: 2000, password})
  try {
    return parseClusterNodes(String(await (await pool.client(address)).call('CLUSTER', 'NODES')))
  } finally {
    await pool.closeAll()
  }
}

async function clusterInfo(address: string): Promise<string> {
  const pool = new NodePool()
  try {
    return String(await (await pool.client(address)).call('CLUSTER', 'INFO'))
  } finally {
    await pool.closeAll()
  }
}

/** Every given node's own view: `promoted` is a master owning `slots` slots, `old` owns none. */
async function expectAgreedEverywhere(addresses: readonly string[], promotedId: string, oldId: string, slots: number): Promise<void> {
  for (const address of addresses) {
    const nodes = await nodesOf(address)
    const promoted = nodes.find((node) => node.id === promotedId)
    const old = nodes.find((node) => node.id === oldId)
    expect(promoted?.role, `${address} sees the promoted node as`).to.equal('master')
    expect(slotCount(promoted as ClusterNode), `${address}: slots of the promoted node`).to.equal(slots)
    expect(old ? slotCount(old) : 0, `${address}: slots of the old master`).to.equal(0)
  }
}

describe('create: custom cluster-port, and clusters of 1 or 2 masters', function () {
  this.timeout(180_000)
  let dir: string
  const servers: RunningServer[] = []
  let single: TestCluster
  let pair: TestCluster

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-busport-'))
    const ports = await findFreePorts(6)
    // bus ports that are not port+10000: only a MEET that names them reaches them
    for (const [index, port] of ports.slice(0, 3).entries()) {
      servers.push(await startServer({binary: testServerBinary, dir: path.join(dir, String(port)), extraArgs: ['--cluster-port', String(ports[3 + index])], nodeTimeoutMs: 2000, port}))
    }
    single = await TestCluster.start({form: false, nodes: 1})
    pair = await TestCluster.start({form: false, nodes: 4})
  })

  after(async () => {
    await Promise.all(servers.map((server) => stopServer(server)))
    await single?.stop()
    await pair?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('nodes on a custom cluster-port meet: CLUSTER MEET names the bus port', async () => {
    const result = await runCli(['create', ...servers.map((server) => server.address), '--yes', '--wait-timeout', '20'])
    expect(result.exitCode, result.stderr).to.equal(0)
    for (const server of servers) {
      const nodes = await nodesOf(server.address)
      expect(nodes.filter((node) => !node.handshake), server.address).to.have.length(3)
      expect(/cluster_state:ok/.test(await clusterInfo(server.address)), server.address).to.equal(true)
    }
  })

  it('one master: created with a warning that it cannot fail over', async () => {
    const result = await runCli(['create', single.seed, '--yes'])
    expect(result.exitCode, result.stderr).to.equal(0)
    expect(result.stderr).to.match(/\[WARN\] 1 master\(s\) cannot fail over on their own/)
    const self = myselfOf(await nodesOf(single.seed)) as ClusterNode
    expect(slotCount(self)).to.equal(16_384)
    expect(await clusterInfo(single.seed)).to.include('cluster_state:ok')
  })

  it('two masters with a replica each: created with the same warning', async () => {
    const result = await runCli(['create', ...pair.addresses, '--replicas', '1', '--yes'])
    expect(result.exitCode, result.stderr).to.equal(0)
    expect(result.stderr).to.match(/\[WARN\] 2 master\(s\) cannot fail over on their own/)
    const nodes = await nodesOf(pair.seed)
    expect(nodes.filter((node) => node.role === 'master').map((node) => slotCount(node)).sort()).to.deep.equal([8192, 8192])
    expect(nodes.filter((node) => node.role === 'replica')).to.have.length(2)
  })

  it('zero masters is still refused, with one line', async () => {
    expectOneCleanLine(await runCli(['create', single.seed, '--replicas', '1', '--yes']), 2, /make no master; a cluster needs at least 1/)
  })
})

describe('failover: agreed in every view, --force without waiting, already done is done', function () {
  this.timeout(180_000)
  let cluster: TestCluster
  /** One shard per test: masters refuse to vote twice for one master's replicas within 2 × node timeout. */
  let shards: Array<{master: ClusterNode; replica: ClusterNode}>

  before(async () => {
    // a long node timeout: no failover the cluster decides on its own while a master is stopped
    cluster = await TestCluster.start({masters: 3, nodeTimeoutMs: 30_000, replicas: 1})
    const nodes = await nodesOf(cluster.seed)
    const masters = nodes.filter((node) => node.role === 'master').sort((a, b) => Number(b.address === cluster.seed) - Number(a.address === cluster.seed))
    shards = masters.map((master) => ({master, replica: nodes.find((node) => node.masterId === master.id) as ClusterNode}))
  })

  after(async () => {
    for (const server of cluster?.servers ?? []) process.kill(server.pid, 'SIGCONT')
    await cluster?.stop()
  })

  it('a graceful failover returns only once every node, replicas included, sees the switch', async () => {
    const {master, replica} = shards[1]
    for (const [from, to] of [[master, replica], [replica, master]]) {
      const result = await runCli(['failover', cluster.seed, '--master', from.id])
      expect(result.exitCode, result.stderr).to.equal(0)
      // read right after it returned: no node may still name the old master as owner
      await expectAgreedEverywhere(cluster.addresses, to.id, from.id, slotCount(master))
    }
  })

  it('--force does not wait for the stopped master it bypasses, and every other node agrees', async () => {
    const {master, replica} = shards[2]
    const stopped = cluster.server(master.address)
    process.kill(stopped.pid, 'SIGSTOP')
    try {
      const started = Date.now()
      const result = await runCli(['failover', cluster.seed, '--master', master.id, '--force'])
      const elapsed = Date.now() - started
      expect(result.exitCode, result.stderr).to.equal(0)
      // a direct CLUSTER FAILOVER FORCE takes about 1 s; waiting for the stopped master took 34 s
      expect(elapsed).to.be.lessThan(15_000)
      await expectAgreedEverywhere(cluster.addresses.filter((address) => address !== master.address), replica.id, master.id, slotCount(master))
    } finally {
      process.kill(stopped.pid, 'SIGCONT')
    }
    // back, the old master learns it lost its slots and follows the new one
    await waitUntil('the old master follows the promoted replica', 20_000, async () => {
      const self = myselfOf(await nodesOf(master.address))
      return {done: self?.role === 'replica' && self.masterId === replica.id}
    })
  })

  it('a replica that is already master when asked (the failover happened): success, not "send CLUSTER FAILOVER to a replica"', async () => {
    const {master, replica} = shards[0]
    const pool = new NodePool()
    try {
      const [host, port] = cluster.seed.split(':')
      const stale = await loadCluster(pool, {host, port: Number(port)})
      const step = chooseReplica(stale.nodes.find((node) => node.id === master.id) as ClusterNode, stale.nodes, () => ({lag: 0, linkUp: true}))
      expect(step.replicaId).to.equal(replica.id)
      // the switch happens between slotctl's look at the cluster and its request
      await (await pool.client(replica.address)).call('CLUSTER', 'FAILOVER')
      await waitUntil('the replica is master', 20_000, async () => ({done: myselfOf(await nodesOf(replica.address))?.role === 'master'}))
      const outcome = await runFailover(pool, stale, step, 'force', 20_000)
      expect(outcome.replicaId).to.equal(replica.id)
      await expectAgreedEverywhere(cluster.addresses, replica.id, master.id, slotCount(master))
    } finally {
      await pool.closeAll()
    }
  })
})

describe('add-node and function libraries', function () {
  this.timeout(120_000)
  let cluster: TestCluster
  let spare: TestCluster
  const library = (version: string) => `#!lua name=slotctllib\nredis.register_function('slotctl_version', function(keys, args) return '${version}' end)`

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 0})
    spare = await TestCluster.start({form: false, nodes: 3})
    for (const address of cluster.addresses) await cluster.client(address).call('FUNCTION', 'LOAD', library('v1'))
  })

  after(async () => {
    await cluster?.stop()
    await spare?.stop()
  })

  const memberCount = async () => (await nodesOf(cluster.seed)).length

  it('refuses a new master holding another version of a cluster library, changing nothing', async () => {
    const [node] = spare.addresses
    await spare.client(node).call('FUNCTION', 'LOAD', library('v2'))
    expectOneCleanLine(await runCli(['add-node', node, cluster.seed]), 1, new RegExp(`${node} has function libraries that differ from the cluster's: slotctllib`))
    expect(await memberCount()).to.equal(3)
    expect(await spare.client(node).call('FCALL', 'slotctl_version', '0')).to.equal('v2')
  })

  it('refuses a new master holding a library the cluster does not have', async () => {
    const node = spare.addresses[1]
    await spare.client(node).call('FUNCTION', 'LOAD', "#!lua name=otherlib\nredis.register_function('other_fn', function() return 1 end)")
    expectOneCleanLine(await runCli(['add-node', node, cluster.seed]), 1, /differ from the cluster's: otherlib/)
    expect(await memberCount()).to.equal(3)
  })

  it('accepts a new master that already has the very same libraries', async () => {
    const node = spare.addresses[2]
    await spare.client(node).call('FUNCTION', 'LOAD', library('v1'))
    const result = await runCli(['add-node', node, cluster.seed])
    expect(result.exitCode, result.stderr).to.equal(0)
    expect(await memberCount()).to.equal(4)
    expect(await spare.client(node).call('FCALL', 'slotctl_version', '0')).to.equal('v1')
  })
})
