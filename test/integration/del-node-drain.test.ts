import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {DelNodeResult} from '../../src/commands/del-node.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

describe('del-node --drain', () => {
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({masters: 4, replicas: 0})
    await writeDataset(cluster.clusterClient(), {keys: 8000})
  })

  after(async () => {
    await cluster?.stop()
  })

  it('moves every slot of a master evenly to the others, then removes it; no key lost or changed', async () => {
    const before = await clusterDigest(cluster)
    const victim = cluster.addresses[3]
    const victimId = cluster.ids.get(victim) as string
    const seed = cluster.addresses[0]
    const {exitCode, json, stderr} = await runCliJson<DelNodeResult>(['del-node', seed, victimId.slice(0, 12), '--drain', '--yes'])
    expect(exitCode, stderr).to.equal(0)
    expect(json.status).to.equal('removed')
    expect(json.drain?.slotsMoved).to.equal(4096)
    // the server made the emptied master a replica of the node that took its last slot: said, not left to be found
    const turned = json.drain?.warnings.filter((warning) => warning.code === 'MASTER_TURNED_REPLICA') ?? []
    expect(turned, JSON.stringify(json.drain?.warnings)).to.have.length(1)
    expect(turned[0].message).to.match(new RegExp(`^${victim} \\(${victimId.slice(0, 8)}\\) lost its last slot and is now a replica of 127\\.0\\.0\\.1:\\d+ `))
    expect(json.role).to.equal('replica')
    const check = await runCliJson<CheckResult>(['check', seed])
    expect(check.exitCode, JSON.stringify(check.json.errors)).to.equal(0)
    expect(check.json.nodes.map((node) => node.id)).to.not.include(victimId)
    const masters = check.json.nodes.filter((node) => node.role === 'master')
    expect(masters).to.have.length(3)
    for (const master of masters) expect(master.slotCount).to.be.within(5461, 5462)
    expect(await clusterDigest(cluster)).to.deep.equal(before)
  })
})
