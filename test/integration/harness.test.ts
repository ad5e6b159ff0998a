import {expect} from 'chai'

import {readNodeState} from '../../src/lib/cluster/loader.js'
import {NodePool} from '../../src/lib/cluster/connection.js'
import {parseInfo} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'

describe('test harness (real servers)', () => {
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 1})
  })

  after(async () => {
    await cluster?.stop()
  })

  it('starts 6 servers, each answering with its own pid', async () => {
    expect(cluster.servers).to.have.length(6)
    for (const server of cluster.servers) {
      const info = parseInfo(String(await cluster.client(server.address).info('server')))
      expect(Number(info.process_id)).to.equal(server.pid)
    }
  })

  it('forms a 3+3 cluster that reports cluster_state:ok on every node', async () => {
    const pool = new NodePool()
    try {
      for (const address of cluster.addresses) {
        const state = await readNodeState(await pool.client(address), address)
        expect(state.clusterInfo.cluster_state).to.equal('ok')
        expect(state.nodes).to.have.length(6)
        expect(state.nodes.filter((node) => node.role === 'master')).to.have.length(3)
      }
    } finally {
      await pool.closeAll()
    }
  })
})
