import {expect} from 'chai'

import {readNodeState} from '../../src/lib/cluster/loader.js'
import {NodePool} from '../../src/lib/cluster/connection.js'
import {parseInfo} from '../../src/lib/cluster/topology.js'
import {waitUntil} from '../../src/lib/cluster/wait.js'
import {runCli, runCliJson} from '../helpers/cli.js'
import {TestCluster} from '../helpers/cluster-harness.js'

interface CreateJson {
  status: string
  plan?: {masters: Array<{address: string; host: string; zone?: string}>; replicas: Array<{address: string; host: string; masterAddress: string; zone?: string}>}
  findings?: Array<{severity: string}>
  warnings: Array<{code: string; message: string}>
  errors: Array<{code: string; message: string}>
  nodes?: Array<{address: string}>
}

/** What each node says about itself and its peers: any change made by create shows up here. */
async function fingerprint(pool: NodePool, addresses: string[]): Promise<string[]> {
  return Promise.all(
    addresses.map(async (address) => {
      const client = await pool.client(address)
      const nodes = String(await client.call('CLUSTER', 'NODES'))
        .split('\n')
        .filter(Boolean)
        // ping/pong times and the link state vary on their own (a busy machine drops links)
        .map((line) => line.split(' ').filter((_, i) => i !== 4 && i !== 5 && i !== 7).join(' '))
        .sort()
      return `${address} keys=${await client.dbsize()} ${nodes.join(' | ')}`
    }),
  )
}

describe('create (real servers on three loopback hosts)', () => {
  let cluster: TestCluster
  const pool = new NodePool()

  before(async () => {
    // protected mode would refuse replication from 127.0.0.2/3, which it does not count as loopback
    cluster = await TestCluster.start({extraArgs: ['--protected-mode', 'no'], form: false, hosts: ['127.0.0.1', '127.0.0.2', '127.0.0.3'], nodes: 6})
  })

  after(async () => {
    await pool.closeAll()
    await cluster?.stop()
  })

  it('--dry-run prints a plan with masters on three hosts and changes nothing', async () => {
    const before = await fingerprint(pool, cluster.addresses)
    const {exitCode, json} = await runCliJson<CreateJson>(['create', ...cluster.addresses, '--replicas', '1', '--dry-run'])
    expect(exitCode).to.equal(0)
    expect(json.status).to.equal('planned')
    expect(new Set(json.plan!.masters.map((master) => master.host)).size).to.equal(3)
    const hostOf = new Map(json.plan!.masters.map((master) => [master.address, master.host]))
    for (const replica of json.plan!.replicas) expect(replica.host).to.not.equal(hostOf.get(replica.masterAddress))
    expect(await fingerprint(pool, cluster.addresses)).to.deep.equal(before)
  })

  it('--dry-run with zones puts masters in both zones and reports the same-zone replica it cannot avoid', async () => {
    const zones = ['--zone', '127.0.0.1=zone-a', '--zone', '127.0.0.2=zone-a', '--zone', '127.0.0.3=zone-b']
    const {exitCode, json} = await runCliJson<CreateJson & {plan: {masters: Array<{zone: string}>; replicas: Array<{zone: string; masterAddress: string}>}}>([
      'create', ...cluster.addresses, '--replicas', '1', '--dry-run', ...zones,
    ])
    expect(exitCode).to.equal(0)
    const plan = json.plan
    expect(new Set(plan.masters.map((master) => master.zone))).to.deep.equal(new Set(['zone-a', 'zone-b']))
    const zoneOf = new Map([...plan.masters, ...plan.replicas].map((node) => [(node as unknown as {address: string}).address, node.zone]))
    const sameZone = plan.replicas.filter((replica) => replica.zone === zoneOf.get(replica.masterAddress))
    // two masters in zone-a but only one spare node in zone-b: exactly one same-zone pair, and it is reported
    expect(sameZone).to.have.length(1)
    expect(json.warnings.some((warning) => warning.code === 'ANTI_AFFINITY' && warning.message.includes('same zone'))).to.equal(true)
  })

  it('without a terminal and without --yes exits 4 and changes nothing', async () => {
    const before = await fingerprint(pool, cluster.addresses)
    const result = await runCli(['create', ...cluster.addresses, '--replicas', '1'])
    expect(result.exitCode).to.equal(4)
    expect(result.stderr).to.match(/--yes/)
    expect(await fingerprint(pool, cluster.addresses)).to.deep.equal(before)
  })

  it('creates 3+3: cluster_state:ok everywhere, every replica linked, no replica on its master host', async () => {
    const {exitCode, json, stderr} = await runCliJson<CreateJson>(['create', ...cluster.addresses, '--replicas', '1', '--yes'])
    expect(exitCode, stderr).to.equal(0)
    expect(json.status).to.equal('created')
    expect(json.errors).to.deep.equal([])
    expect(json.nodes!.map((node) => node.address).sort()).to.deep.equal([...cluster.addresses].sort())
    for (const address of cluster.addresses) {
      const state = await readNodeState(await pool.client(address), address)
      expect(state.clusterInfo.cluster_state, address).to.equal('ok')
      expect(state.nodes.filter((node) => !node.handshake)).to.have.length(6)
      const self = state.nodes.find((node) => node.myself)!
      if (self.role === 'replica') {
        const info = parseInfo(String(await (await pool.client(address)).info('replication')))
        expect(info.master_link_status, address).to.equal('up')
        const master = state.nodes.find((node) => node.id === self.masterId)!
        expect(master.host).to.not.equal(self.host)
      }
    }
    const masters = (await readNodeState(await pool.client(cluster.seed), cluster.seed)).nodes.filter((node) => node.role === 'master')
    expect(masters).to.have.length(3)
    expect(new Set(masters.map((master) => master.host)).size).to.equal(3)
    expect(masters.map((master) => master.slots).sort()).to.deep.equal([[[0, 5460]], [[10_923, 16_383]], [[5461, 10_922]]])
  })

  it('running create again on the cluster it formed is a no-op that exits 0', async () => {
    const before = await fingerprint(pool, cluster.addresses)
    const {exitCode, json} = await runCliJson<CreateJson>(['create', ...cluster.addresses, '--replicas', '1', '--yes'])
    expect(exitCode).to.equal(0)
    expect(json.status).to.equal('exists')
    expect(await fingerprint(pool, cluster.addresses)).to.deep.equal(before)
  })
})

describe('create refuses unfit nodes (real servers)', () => {
  let fresh: TestCluster
  let plain: TestCluster
  const pool = new NodePool()

  before(async () => {
    fresh = await TestCluster.start({form: false, nodes: 4})
    plain = await TestCluster.start({extraArgs: ['--cluster-enabled', 'no'], form: false, nodes: 1})
  })

  after(async () => {
    await pool.closeAll()
    await fresh?.stop()
    await plain?.stop()
  })

  function errorLines(stderr: string): string[] {
    return stderr.split('\n').filter((line) => line.startsWith('slotctl:'))
  }

  it('refuses a non-cluster node: one line naming it, non-zero exit, nothing changed', async () => {
    const [, b, c, d] = fresh.addresses
    const before = await fingerprint(pool, [b, c, d])
    const result = await runCli(['create', plain.seed, b, c, '--yes'])
    expect(result.exitCode).to.equal(1)
    expect(errorLines(result.stderr)).to.have.length(1)
    expect(result.stderr).to.include(plain.seed).and.to.match(/not cluster-enabled/)
    expect(await fingerprint(pool, [b, c, d])).to.deep.equal(before)
  })

  it('refuses a node that holds keys: one line naming it, non-zero exit, nothing changed', async () => {
    const [a, b, c] = fresh.addresses
    const client = await pool.client(a)
    await client.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383')
    await waitUntil('the lone node serves its slots', 10_000, async () => ({done: parseInfo(String(await client.call('CLUSTER', 'INFO'))).cluster_state === 'ok'}))
    await client.set('somekey', 'value')
    const before = await fingerprint(pool, [a, b, c])
    const result = await runCli(['create', a, b, c, '--yes'])
    expect(result.exitCode).to.equal(1)
    expect(errorLines(result.stderr)).to.have.length(1)
    expect(result.stderr).to.include(a).and.to.match(/not empty: it holds 1 key/)
    expect(await fingerprint(pool, [a, b, c])).to.deep.equal(before)
    expect(await client.get('somekey')).to.equal('value')
  })

  it('reports a half-formed cluster (slots assigned, never met) with the next step', async () => {
    const [, b, c, d] = fresh.addresses
    await (await pool.client(b)).call('CLUSTER', 'ADDSLOTSRANGE', '0', '100')
    const before = await fingerprint(pool, [b, c, d])
    const result = await runCli(['create', b, c, d, '--yes'])
    expect(result.exitCode).to.equal(1)
    expect(result.stderr).to.match(/half-formed/).and.to.include(b).and.to.match(/hint: .*CLUSTER RESET HARD/)
    expect(await fingerprint(pool, [b, c, d])).to.deep.equal(before)
  })
})

describe('create on one host: the ending is one line of placement advice', () => {
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({form: false, nodes: 6})
  })

  after(async () => {
    await cluster?.stop()
  })

  it('the plan groups its unavoidable placements in one line; --verbose lists each (dry run)', async () => {
    const plain = await runCli(['create', ...cluster.addresses, '--replicas', '1', '--dry-run'], {env: {COLUMNS: '80'}})
    expect(plain.exitCode, plain.stderr).to.equal(0)
    expect(plain.stderr.split('\n').filter((line) => line.includes('[WARN]'))).to.have.length(1)
    const verbose = await runCli(['create', ...cluster.addresses, '--replicas', '1', '--dry-run', '--verbose'], {env: {COLUMNS: '80'}})
    expect(verbose.exitCode, verbose.stderr).to.equal(0)
    expect(verbose.stderr.split('\n').filter((line) => /\[WARN\] unavoidable with these nodes: replica /.test(line))).to.have.length(3)
  })

  it('ends with [OK] and one advice line with a --verbose pointer (80 columns); check still lists each finding', async () => {
    const result = await runCli(['create', ...cluster.addresses, '--replicas', '1', '--yes'], {env: {COLUMNS: '80'}})
    expect(result.exitCode, result.stderr).to.equal(0)
    const out = result.stdout.trimEnd().split('\n')
    expect(out.at(-2)).to.match(/^\[OK\] cluster created: 3 masters, 3 replicas/)
    expect(out.at(-1)).to.equal('advice: 3 replicas share a host with their master (--verbose says what to do)')
    // the per-replica findings of the check after creating are not repeated, at either end
    expect(result.stdout + result.stderr).to.not.match(/is on the same host as its master .*\(/)
    expect(result.stdout + result.stderr).to.not.include('add a replica on another host')
    // the plan's unavoidable placements: one grouped line, at most 80 columns
    const grouped = result.stderr.split('\n').filter((line) => line.includes('replicas unavoidably beside their master'))
    expect(grouped).to.have.length(1)
    expect(grouped[0].length).to.be.at.most(80)
    const check = await runCliJson<{warnings: Array<{code: string; hint?: string}>}>(['check', cluster.addresses[0]])
    expect(check.json.warnings.filter((warning) => warning.code === 'REPLICA_SAME_HOST')).to.have.length(3)
  })

})
