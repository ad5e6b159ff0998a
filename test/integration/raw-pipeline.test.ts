/**
 * NodePool.readMany on real servers: long batches go over a raw connection of its own
 * (raw-pipeline.ts), which must authenticate as the pooled client does (password, ACL user,
 * a password the server does not need), give the same replies in the same order, and treat
 * a node that stops answering as hung.
 */
import {expect} from 'chai'

import {DEFAULT_CONNECTION, NodePool} from '../../src/lib/cluster/connection.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {expandRanges} from '../../src/lib/core/slots.js'
import {SlotctlError} from '../../src/lib/core/errors.js'
import {TestCluster} from '../helpers/cluster-harness.js'

const PASSWORD = 'raw-pipeline-pw-7c1'

describe('readMany: long read batches on a raw connection', function () {
  this.timeout(120_000)
  let cluster: TestCluster
  let master: ClusterNode

  const counts = (slots: readonly number[]) => slots.map((slot) => ['CLUSTER', 'COUNTKEYSINSLOT', slot])

  before(async () => {
    cluster = await TestCluster.start({masters: 3, password: PASSWORD, replicas: 0})
    master = mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))[0]
    const writer = cluster.clusterClient()
    await Promise.all(Array.from({length: 2000}, (_, i) => writer.set(`raw:${i}`, 'v')))
    await cluster.client(master.address).call('ACL', 'SETUSER', 'counter', 'on', `>${PASSWORD}`, '-@all', '+cluster|countkeysinslot', '+info', '+client|setname')
  })

  after(async () => {
    await cluster?.stop()
  })

  async function withPool<T>(settings: Partial<typeof DEFAULT_CONNECTION>, use: (pool: NodePool) => Promise<T>): Promise<T> {
    const pool = new NodePool({...DEFAULT_CONNECTION, ...settings})
    try {
      return await use(pool)
    } finally {
      await pool.closeAll()
    }
  }

  it('the replies of every command, in order, as the pooled client reads them (password, then ACL user)', async () => {
    const slots = expandRanges(master.slots)
    const client = cluster.client(master.address)
    const pipeline = client.pipeline()
    for (const slot of slots) pipeline.call('CLUSTER', 'COUNTKEYSINSLOT', slot)
    const expected = ((await pipeline.exec()) ?? []).map(([, count]) => count)
    expect(expected.some((count) => Number(count) > 0)).to.equal(true)
    const connections = async () => Number(/total_connections_received:(\d+)/.exec(String(await client.info('stats')))?.[1])
    for (const username of [undefined, 'counter']) {
      const before = await connections()
      const replies = await withPool({password: PASSWORD, username}, (pool) => pool.readMany(master.address, [['INFO', 'keyspace'], ...counts(slots)]))
      // the pooled client's connection and the raw one: no fallback to the pooled client
      expect((await connections()) - before, username ?? 'default user').to.equal(2)
      expect(replies).to.have.length(slots.length + 1)
      expect(String(replies[0][1])).to.match(/^db0:keys=\d+/m)
      expect(replies.slice(1).map(([error, count]) => [error, count]), username ?? 'default user').to.deep.equal(expected.map((count) => [null, count]))
    }
  })

  it('a command the server refuses is an error in its place; the rest are answered', async () => {
    const replies = await withPool({password: PASSWORD, username: 'counter'}, (pool) => pool.readMany(master.address, [...counts(Array.from({length: 150}, (_, i) => i)), ['DBSIZE'], ['CLUSTER', 'COUNTKEYSINSLOT', 0]]))
    expect(replies).to.have.length(152)
    expect(replies[150][0]?.message).to.match(/NOPERM/)
    expect(replies[151]).to.deep.equal([null, replies[0][1]])
  })

  it('a password the node does not need is fine, as for the pooled client', async () => {
    const client = cluster.client(master.address)
    await client.call('CONFIG', 'SET', 'requirepass', '')
    try {
      const replies = await withPool({password: 'not-needed'}, (pool) => pool.readMany(master.address, counts(Array.from({length: 200}, (_, i) => i))))
      expect(replies.every(([error]) => error === null)).to.equal(true)
    } finally {
      await client.call('CONFIG', 'SET', 'requirepass', PASSWORD)
    }
  })

  it('a node that stops answering after connecting is hung: E_HUNG, and remembered', async () => {
    const pid = cluster.server(master.address).pid
    await withPool({password: PASSWORD, readTimeoutMs: 1000}, async (pool) => {
      await pool.client(master.address)
      process.kill(pid, 'SIGSTOP')
      try {
        const failure = await pool.readMany(master.address, counts(expandRanges(master.slots))).then(() => undefined, (error: unknown) => error)
        expect(failure).to.be.instanceOf(SlotctlError)
        expect((failure as SlotctlError).code).to.equal('E_HUNG')
        expect(pool.isHung(master.address)).to.equal(true)
      } finally {
        process.kill(pid, 'SIGCONT')
      }
    })
  })
})
