import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {FixResult} from '../../src/commands/fix.js'
import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {keySlot} from '../../src/lib/core/slots.js'
import {mastersOf, parseClusterNodes, parseInfo} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

const PASSWORD = 'migrate-secret-7f3a'
const withPassword = {env: {REDISCLI_AUTH: PASSWORD}}

/** Moving slots on a cluster with requirepass: MIGRATE must authenticate at the target. */
describe('migration on a password-protected cluster', () => {
  let cluster: TestCluster
  let original: {digest: string; keys: number}

  const masters = async () => mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))

  before(async function () {
    this.timeout(120_000)
    cluster = await TestCluster.start({masters: 3, password: PASSWORD, replicas: 0})
    await writeDataset(cluster.clusterClient(), {keys: 10_000})
    original = await clusterDigest(cluster)
    // log every command, so a password in any argument would show up in SLOWLOG
    for (const master of await masters()) await cluster.client(master.address).call('CONFIG', 'SET', 'slowlog-log-slower-than', '0', 'slowlog-max-len', '1000000')
  })

  after(async () => {
    await cluster?.stop()
  })

  it('reshard moves every key with MIGRATE ... AUTH, and the password appears in no SLOWLOG entry', async () => {
    const [target] = await masters()
    // MIGRATE is what this is about: --legacy-migrate keeps it so whatever --durability says
    const {exitCode, json, stderr} = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--from', 'all', '--to', target.id, '--slots', '2000', '--yes', '--legacy-migrate', '--journal', `${cluster.dir}/auth.jsonl`], withPassword)
    expect(exitCode, stderr).to.equal(0)
    expect(json.keysMoved).to.be.greaterThan(500)
    let migrates = 0
    for (const master of await masters()) {
      const client = cluster.client(master.address)
      const log = JSON.stringify(await client.call('SLOWLOG', 'GET', '-1'))
      expect(log, master.address).to.not.include(PASSWORD)
      migrates += (log.match(/"MIGRATE"/g) ?? []).length
      // with a password, batches go through slotctl, never through a script argument
      expect(parseInfo(String(await client.info('commandstats')))).to.not.have.property('cmdstat_eval')
    }
    expect(migrates, 'the slowlog saw the MIGRATE calls').to.be.greaterThan(100)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
    const check = await runCliJson<CheckResult>(['check', cluster.seed], withPassword)
    expect(check.exitCode).to.equal(0)
  })

  it('fix moves a stray key into its owner through MIGRATE ... AUTH', async () => {
    const name = 'stray:auth'
    const slot = keySlot(name)
    const all = await masters()
    const owner = all.find((m) => m.slots.some(([a, b]) => slot >= a && slot <= b))!
    const stranger = all.find((m) => m.id !== owner.id)!
    const client = cluster.client(stranger.address)
    await client.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
    await client.pipeline().call('ASKING').set(name, 'kept').exec()
    await client.call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    const {exitCode, json, stderr} = await runCliJson<FixResult>(['fix', cluster.seed, '--yes', '--search-multiple-owners'], withPassword)
    expect(exitCode, stderr).to.equal(0)
    expect(json.keysMoved).to.equal(1)
    expect(await cluster.client(owner.address).get(name)).to.equal('kept')
    expect(JSON.stringify(await client.call('SLOWLOG', 'GET', '-1'))).to.not.include(PASSWORD)
  })
})
