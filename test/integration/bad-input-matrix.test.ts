/**
 * The bad-input matrix: malformed addresses, flag values oclif rejects, unknown or wrong-role
 * node ids, changes without confirmation, TLS files that are no use, bad plan and journal
 * paths, across the verbs. Every case must give its documented exit code, one `slotctl:
 * error:` line (plus hints), no stack trace, no password, and leave the cluster exactly as it
 * was: the same slot map in every node's view, no open slot, the same keys and values.
 */
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {findFreePorts} from '../../src/lib/local/servers.js'
import {type ClusterNode, openSlotsOf, parseClusterNodes, slotMapSignature} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

const PASSWORD = 'matrix-Secret/42'

interface Case {
  name: string
  args: () => string[]
  exitCode: number
  message: RegExp
}

describe('bad-input matrix: one clean line, the documented exit code, the cluster unchanged', function () {
  this.timeout(180_000)
  let cluster: TestCluster
  let spare: TestCluster
  let dir: string
  let refused: string
  let master: ClusterNode
  let otherMaster: ClusterNode
  let replica: ClusterNode
  let unchanged: {digest: {digest: string; keys: number}; signatures: string[]}

  const file = (name: string) => path.join(dir, name)

  /** Every node's own slot map, and the digest of every key and value. */
  async function fingerprint(): Promise<{digest: {digest: string; keys: number}; signatures: string[]}> {
    const signatures: string[] = []
    for (const address of cluster.addresses) {
      const nodes = parseClusterNodes(String(await cluster.client(address).call('CLUSTER', 'NODES')))
      expect(nodes.flatMap((node) => openSlotsOf(node)), `open slots seen by ${address}`).to.deep.equal([])
      signatures.push(slotMapSignature(nodes))
    }
    return {digest: await clusterDigest(cluster), signatures}
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-matrix-'))
    cluster = await TestCluster.start({masters: 3, replicas: 1})
    spare = await TestCluster.start({form: false, nodes: 1})
    refused = `127.0.0.1:${(await findFreePorts(1))[0]}`
    await writeDataset(cluster.clusterClient(), {keys: 2000})
    const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
    ;[master, otherMaster] = nodes.filter((node) => node.role === 'master')
    replica = nodes.find((node) => node.masterId === master.id) as ClusterNode
    await writeFile(file('not-a-pem.txt'), 'no certificate here\n')
    await writeFile(file('cert-only.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
    await writeFile(file('not-a-plan.json'), '{"hello": "world"}\n')
    await writeFile(file('not-json.json'), 'moves: all of them\n')
    await writeFile(file('zones.txt'), 'this line has no equals sign\n')
    unchanged = await fingerprint()
  })

  after(async () => {
    await cluster?.stop()
    await spare?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  const seed = () => cluster.seed
  const cases: Case[] = [
    // addresses and URLs
    {args: () => ['check', 'localhost'], exitCode: 2, message: /invalid address 'localhost': missing port/, name: 'an address without port'},
    {args: () => ['check', '127.0.0.1:99999'], exitCode: 2, message: /port 99999 is out of range/, name: 'a port out of range'},
    {args: () => ['check', '::1:7000'], exitCode: 2, message: /write IPv6 addresses in brackets/, name: 'IPv6 without brackets'},
    {args: () => ['info', '127.0.0.1', 'seven'], exitCode: 2, message: /port 'seven' is not a number/, name: 'the host port form with a word as port'},
    {args: () => ['check', `REDIS://u:${PASSWORD}@127.0.0.1:abc`], exitCode: 2, message: /invalid address 'REDIS:\/\/u:\*\*\*@127\.0\.0\.1:abc': port 'abc' is not a number/, name: 'an upper-case URL with a bad port'},
    {args: () => ['check', `redis://u:PASS/WORD@${refused}`], exitCode: 1, message: /cannot connect to 127\.0\.0\.1:\d+: connection refused/, name: 'a URL whose password holds a slash, to a closed port'},
    {args: () => ['check', `redis://u:${PASSWORD}@`], exitCode: 2, message: /no host/, name: 'a URL without host'},
    {args: () => ['check', seed(), '7000', `redis://u:${PASSWORD}@127.0.0.1:7000`], exitCode: 2, message: /Unexpected argument: redis:\/\/u:\*\*\*@127\.0\.0\.1:7000/, name: "oclif's unexpected argument, masked"},
    {args: () => ['check', refused], exitCode: 1, message: /connection refused/, name: 'a closed port'},
    // flag values oclif rejects, in one line
    {args: () => ['check', seed(), '--connect-timeout', '0'], exitCode: 2, message: /--connect-timeout 0 is too short: at least 1ms/, name: '--connect-timeout 0'},
    {args: () => ['info', seed(), '--read-timeout', 'soon'], exitCode: 2, message: /--read-timeout 'soon' is not a duration/, name: '--read-timeout not a number'},
    {args: () => ['reshard', seed(), '--from', 'all', '--to', master.id, '--slots', 'many', '--yes'], exitCode: 2, message: /--slots: expected an integer but received: many/, name: '--slots not a number'},
    {args: () => ['failover', seed(), '--master', master.id, '--force', '--takeover'], exitCode: 2, message: /The following errors occurred: --(force|takeover)=true cannot also be provided when using --(force|takeover); --(force|takeover)=true cannot also be provided when using --(force|takeover)$/, name: '--force with --takeover'},
    {args: () => ['failover', seed(), '--master', master.id, '--timeout', '0'], exitCode: 2, message: /--timeout 0 is too short/, name: 'failover --timeout 0'},
    {args: () => ['check'], exitCode: 2, message: /missing required argument: address \(any node of the cluster/, name: 'check without address'},
    {args: () => ['add-node', spare.seed], exitCode: 2, message: /missing required argument: existing \(any node of the cluster/, name: 'add-node without the existing node'},
    {args: () => ['del-node', seed()], exitCode: 2, message: /missing required argument: nodeId \(id/, name: 'del-node without node id'},
    {args: () => ['check', seed(), '--bogus'], exitCode: 2, message: /Nonexistent flag: --bogus/, name: 'an unknown flag'},
    {args: () => ['rebalance', seed(), '--by', 'weight', '--yes'], exitCode: 2, message: /Expected --by=weight to be one of: slots, keys, memory/, name: 'rebalance --by with a value not offered'},
    {args: () => ['fix', seed(), '--pipeline', '0', '--yes'], exitCode: 2, message: /--pipeline: expected an integer greater than or equal to 1 but received: 0/, name: 'fix --pipeline 0'},
    // verb arguments
    {args: () => ['call', seed()], exitCode: 2, message: /missing command to run/, name: 'call without command'},
    {args: () => ['set-timeout', seed(), '50'], exitCode: 2, message: /invalid timeout '50'.*at least 100/, name: 'set-timeout under 100 ms'},
    {args: () => ['set-timeout', seed(), 'soon'], exitCode: 2, message: /invalid timeout 'soon'/, name: 'set-timeout not a number'},
    {args: () => ['reshard', seed(), '--to', master.id, '--slot-range', '16000-17000', '--yes'], exitCode: 2, message: /--slot-range '16000-17000' is not a slot range/, name: 'a slot range past 16383'},
    {args: () => ['rebalance', seed(), '--threshold', 'high', '--yes'], exitCode: 2, message: /--threshold 'high' is not a number/, name: 'rebalance --threshold not a number'},
    {args: () => ['rebalance', seed(), '--weight', 'zzz=1', '--yes'], exitCode: 2, message: /'zzz' is not a node id/, name: 'rebalance --weight with a bad id'},
    {args: () => ['create', spare.seed, spare.seed, '--yes'], exitCode: 2, message: /node 127\.0\.0\.1:\d+ is given more than once/, name: 'create with a node twice'},
    {args: () => ['create', spare.seed, '--replicas', '1', '--yes'], exitCode: 2, message: /make no master; a cluster needs at least 1/, name: 'create without a master'},
    {args: () => ['failover', seed(), '--master', master.id, '--zones-file', file('zones.txt')], exitCode: 2, message: /zones/, name: 'a zones file without HOST=ZONE lines'},
    // node ids and roles
    {args: () => ['del-node', seed(), 'abc123', '--yes'], exitCode: 2, message: /unknown node id 'abc123'/, name: 'del-node an unknown id'},
    {args: () => ['del-node', seed(), 'not-an-id', '--yes'], exitCode: 2, message: /'not-an-id' is not a node id/, name: 'del-node a word'},
    {args: () => ['del-node', seed(), master.id, '--yes'], exitCode: 1, message: /still owns \d+ slot\(s\)/, name: 'del-node a master with slots'},
    {args: () => ['failover', seed(), '--master', replica.id], exitCode: 2, message: /is a replica, not a master/, name: 'failover --master of a replica'},
    {args: () => ['failover', seed()], exitCode: 2, message: /say what to fail over/, name: 'failover without a node'},
    {args: () => ['reshard', seed(), '--from', 'all', '--to', '0000ffff', '--slots', '5', '--yes'], exitCode: 2, message: /unknown node id '0000ffff'/, name: 'reshard to an unknown id'},
    {args: () => ['reshard', seed(), '--from', 'all', '--to', replica.id, '--slots', '5', '--yes'], exitCode: 2, message: /is a replica: slots can only move to a master/, name: 'reshard to a replica'},
    {args: () => ['add-node', spare.seed, seed(), '--master-id', master.id], exitCode: 2, message: /--master-id needs --replica/, name: 'add-node --master-id without --replica'},
    {args: () => ['add-node', seed(), seed()], exitCode: 2, message: /the new node and the existing node are the same address/, name: 'add-node of the seed itself'},
    {args: () => ['add-node', refused, seed()], exitCode: 1, message: /unreachable|cannot connect/, name: 'add-node of a closed port'},
    {args: () => ['create', master.address, refused, '--yes'], exitCode: 1, message: /cannot create/, name: 'create with a cluster member and a closed port'},
    // changes without confirmation and without a terminal
    {args: () => ['call', seed(), 'FLUSHALL'], exitCode: 4, message: /FLUSHALL may change data or configuration \(server flags: write, dangerous\): running it on 6 node\(s\) needs confirmation/, name: 'call FLUSHALL without --yes'},
    {args: () => ['call', seed(), 'CONFIG', 'SET', 'maxmemory', '1'], exitCode: 4, message: /CONFIG SET may change data or configuration/, name: 'call CONFIG SET without --yes'},
    {args: () => ['call', seed(), 'DEL', 'str:0', '--masters'], exitCode: 4, message: /DEL may change data or configuration \(server flags: write\): running it on 3 node\(s\)/, name: 'call DEL without --yes'},
    {args: () => ['call', seed(), 'EVAL', "return redis.call('flushall')", '0'], exitCode: 4, message: /EVAL may change data or configuration \(server flags: scripting\)/, name: 'call EVAL without --yes'},
    {args: () => ['reshard', seed(), '--from', 'all', '--to', master.id, '--slots', '5'], exitCode: 4, message: /needs confirmation/, name: 'reshard without --yes'},
    {args: () => ['failover', seed(), '--replica', replica.id, '--takeover'], exitCode: 4, message: /needs confirmation/, name: 'failover --takeover without --yes'},
    {args: () => ['del-node', seed(), otherMaster.id], exitCode: 1, message: /still owns/, name: 'del-node without --yes of a master with slots'},
    // TLS files and ports
    {args: () => ['check', seed(), '--cacert', file('missing.pem')], exitCode: 2, message: /cannot read the --cacert file '.*missing\.pem'/, name: 'a missing CA file'},
    {args: () => ['check', seed(), '--cacert', file('not-a-pem.txt')], exitCode: 2, message: /the --cacert file '.*' is not a PEM file/, name: 'a CA file that is not PEM'},
    {args: () => ['check', seed(), '--cert', file('cert-only.pem')], exitCode: 2, message: /--cert needs --key/, name: 'a certificate without its key'},
    {args: () => ['check', seed(), '--tls', '--connect-timeout', '500'], exitCode: 1, message: /does not speak TLS/, name: 'TLS to a plain port'},
    {args: () => ['check', seed(), '--askpass'], exitCode: 2, message: /--askpass needs a terminal to ask on/, name: '--askpass without a terminal'},
    // files
    {args: () => ['apply', file('missing.json'), '--seed', seed(), '--yes'], exitCode: 2, message: /cannot read plan '.*missing\.json'/, name: 'apply a missing plan'},
    {args: () => ['apply', file('not-a-plan.json'), '--seed', seed(), '--yes'], exitCode: 2, message: /is not a valid slotctl plan/, name: 'apply a JSON file that is no plan'},
    {args: () => ['apply', file('not-json.json'), '--seed', seed(), '--yes'], exitCode: 2, message: /not-json\.json is not JSON: .* is not valid JSON$/, name: 'apply a file that is not JSON (its content quoted in one line)'},
    {args: () => ['apply', file('not-a-plan.json'), '--yes'], exitCode: 2, message: /apply needs --seed/, name: 'apply without --seed'},
    {args: () => ['fix', seed(), '--journal', file('missing.jsonl'), '--yes'], exitCode: 2, message: /cannot read journal/, name: 'fix with a missing journal'},
    {args: () => ['reshard', seed(), '--resume', file('not-a-plan.json'), '--yes'], exitCode: 2, message: /is not a valid slotctl journal line/, name: 'reshard --resume of a file that is no journal'},
    {args: () => ['reshard', seed(), '--from', 'all', '--to', master.id, '--slots', '5', '--dry-run', '--out', path.join(dir, 'no-such-dir', 'plan.json')], exitCode: 2, message: /cannot write the plan to/, name: 'a plan file in a missing directory'},
  ]

  it(`has at least 40 cases across the verbs`, () => {
    expect(cases.length).to.be.at.least(40)
    expect(new Set(cases.map((c) => c.args()[0])).size).to.be.at.least(10)
  })

  for (const c of cases) {
    it(`${c.name}: exit ${c.exitCode}`, async () => {
      const result = await runCli(c.args(), {env: {REDISCLI_AUTH: PASSWORD}})
      expectOneCleanLine(result, c.exitCode, c.message, [PASSWORD, 'PASS/WORD'])
      expect(await fingerprint()).to.deep.equal(unchanged)
    })
  }

  it('call: reads run without asking; a change runs with --yes, on every node', async () => {
    for (const command of [['CONFIG', 'GET', 'maxmemory'], ['INFO', 'server'], ['ROLE'], ['CLUSTER', 'NODES'], ['DBSIZE']]) {
      const result = await runCli(['call', seed(), ...command])
      expect(result.exitCode, `${command.join(' ')}: ${result.stderr}`).to.equal(0)
    }
    const changed = await runCli(['call', seed(), 'CONFIG', 'SET', 'maxmemory-samples', '7', '--yes'])
    expect(changed.exitCode, changed.stderr).to.equal(0)
    try {
      for (const address of cluster.addresses) expect(await cluster.client(address).call('CONFIG', 'GET', 'maxmemory-samples'), address).to.deep.equal(['maxmemory-samples', '7'])
    } finally {
      for (const address of cluster.addresses) await cluster.client(address).call('CONFIG', 'SET', 'maxmemory-samples', '5')
    }
  })

  it('the spare node was not touched either', async () => {
    expect(parseClusterNodes(String(await spare.client().call('CLUSTER', 'NODES')))).to.have.length(1)
  })
})
