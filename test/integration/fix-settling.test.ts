/**
 * fix on a cluster with nothing to repair that is still settling: a master that has just
 * restarted reports cluster_state:fail for its first two seconds (both servers keep a fresh
 * master out of service for a moment, CLUSTER_WRITABLE_DELAY). Found in a CI run right after
 * a restart from the AOF: fix said "nothing fix can do about the errors above" and exited 3.
 */
import {expect} from 'chai'

import type {FixResult} from '../../src/commands/fix.js'
import {parseInfo} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCliJson} from '../helpers/cli.js'

describe('fix while the cluster settles by itself', function () {
  this.timeout(120_000)
  let cluster: TestCluster | undefined

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 0})
  })

  after(async () => cluster?.stop())

  it('a master that has just restarted (cluster_state:fail for a moment) is waited for: clean, exit 0, nothing changed', async () => {
    const restarted = cluster!.addresses[0]
    const nodesBefore = String(await cluster!.client(cluster!.addresses[1]).call('CLUSTER', 'NODES'))
    cluster!.kill(restarted)
    await cluster!.restart(restarted)
    // the state this test is about: the fresh master keeps itself out of service
    expect(parseInfo(String(await cluster!.client(restarted).call('CLUSTER', 'INFO'))).cluster_state).to.equal('fail')
    const fixed = await runCliJson<FixResult>(['fix', restarted, '--yes'])
    expect(fixed.exitCode, fixed.stdout + fixed.stderr).to.equal(0)
    expect(fixed.json.status).to.equal('clean')
    expect(fixed.json.errors).to.deep.equal([])
    expect(fixed.json.fixes).to.deep.equal([])
    expect(parseInfo(String(await cluster!.client(restarted).call('CLUSTER', 'INFO'))).cluster_state).to.equal('ok')
    // the same owners as before: waiting changed nothing
    const owners = (text: string) =>
      text
        .split('\n')
        .map((line) =>
          line
            .split(' ')
            .filter((_, i) => i === 0 || i >= 8)
            .join(' '),
        )
        .sort()
        .join('\n')
    expect(owners(String(await cluster!.client(cluster!.addresses[1]).call('CLUSTER', 'NODES')))).to.equal(owners(nodesBefore))
  })
})
