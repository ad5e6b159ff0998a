import {expect} from 'chai'

import type {AddNodeCommandResult} from '../../src/commands/add-node.js'
import type {CreateResult} from '../../src/commands/create.js'
import {mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {TestCluster, skipUnlessValkey} from '../helpers/cluster-harness.js'
import {runCliJson} from '../helpers/cli.js'

/**
 * Valkey ≥ 8 servers report the zone they run in (config availability-zone, INFO server
 * availability_zone): create and add-node use it where the operator names no zone.
 */
describe('availability_zone as the default zone for create and add-node (real valkey-server >= 8)', () => {
  let cluster: TestCluster
  const zoneOf = new Map<string, string>()

  before(async function () {
    skipUnlessValkey(this, 8)
    this.timeout(120_000)
    // one host for all: only the zones can keep a replica away from its master
    cluster = await TestCluster.start({form: false, nodes: 7})
    for (const [index, address] of cluster.addresses.entries()) {
      const zone = `az-${index % 3}`
      await cluster.client(address).call('CONFIG', 'SET', 'availability-zone', zone)
      zoneOf.set(address, zone)
    }
  })

  after(async () => {
    await cluster?.stop()
  })

  const six = () => cluster.addresses.slice(0, 6)

  it('create plans with the zones the servers report: masters in three zones, no replica in its master\'s zone', async () => {
    const {exitCode, json, stderr} = await runCliJson<Required<CreateResult>>(['create', ...six(), '--replicas', '1', '--dry-run'])
    expect(exitCode, stderr).to.equal(0)
    for (const node of [...json.plan.masters, ...json.plan.replicas]) expect(node.zone, node.address).to.equal(zoneOf.get(node.address))
    expect(new Set(json.plan.masters.map((master) => master.zone)).size).to.equal(3)
    for (const replica of json.plan.replicas) expect(replica.zone, replica.address).to.not.equal(zoneOf.get(replica.masterAddress))
    // one host: same-host pairs cannot be avoided, same-zone pairs can
    expect(json.warnings.filter((warning) => /zone/.test(warning.message))).to.deep.equal([])
  })

  it('an explicit --zone wins over the reported one', async () => {
    const [first] = six()
    const {json} = await runCliJson<Required<CreateResult>>(['create', ...six(), '--replicas', '1', '--dry-run', '--zone', `${first}=operator-zone`])
    const planned = [...json.plan.masters, ...json.plan.replicas]
    expect(planned.find((node) => node.address === first)?.zone).to.equal('operator-zone')
    expect(planned.filter((node) => node.address !== first).every((node) => node.zone === zoneOf.get(node.address))).to.equal(true)
  })

  it('add-node --replica picks a master in another zone than the new node reports', async () => {
    const created = await runCliJson<Required<CreateResult>>(['create', ...six(), '--replicas', '1', '--yes'])
    expect(created.exitCode, created.stderr).to.equal(0)
    // Without zones every master ranks the same here (one host, one replica each) and the
    // lowest id wins: put the new node in exactly that master's zone.
    const masters = mastersOf(parseClusterNodes(String(await cluster.client(six()[0]).call('CLUSTER', 'NODES'))))
    const firstById = [...masters].sort((a, b) => a.id.localeCompare(b.id))[0]
    const newcomer = cluster.addresses[6]
    await cluster.client(newcomer).call('CONFIG', 'SET', 'availability-zone', zoneOf.get(firstById.address)!)
    zoneOf.set(newcomer, zoneOf.get(firstById.address)!)

    const {exitCode, json, stderr} = await runCliJson<AddNodeCommandResult>(['add-node', newcomer, six()[0], '--replica'])
    expect(exitCode, stderr).to.equal(0)
    expect(json.role).to.equal('replica')
    expect(zoneOf.get(json.masterAddress!)).to.not.equal(zoneOf.get(newcomer))
    expect(json.warnings.filter((warning) => /zone/.test(warning.message))).to.deep.equal([])
  })
})
