/**
 * The JSON contract (docs/json.md): every schema in schemas/ compiles, every verb in
 * the manifest has one, and the real --json output of every verb, on success, on partial
 * failure and on failure, matches its schema (or the error envelope's).
 */
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {configFile} from '../../src/lib/local/servers.js'
import {mastersOf, parseClusterNodes, replicasOf} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {type CliResult, runCliJson} from '../helpers/cli.js'
import {contract, expectContract, root, schemaFileFor, schemaFiles} from '../helpers/schema.js'

interface Manifest {
  commands: Record<string, {id: string; flags: Record<string, unknown>}>
}

async function manifest(): Promise<Manifest> {
  return JSON.parse(await readFile(path.join(root, 'oclif.manifest.json'), 'utf8')) as Manifest
}

/** Runs a verb with --json and checks its output against the contract; returns the run. */
async function checked(commandId: string, args: string[], exitCode: number, env?: Record<string, string>): Promise<CliResult & {json: Record<string, unknown>}> {
  const result = await runCliJson<Record<string, unknown>>(args, {env})
  expect(result.exitCode, `${args.join(' ')}: ${result.stderr}`).to.equal(exitCode)
  expectContract(commandId, result.json)
  expect(result.json.schemaVersion).to.equal(1)
  return result
}

describe('the JSON contract: schemas/ and every verb\'s --json output', () => {
  it('every schema file compiles (draft 2020-12), and every verb in the manifest has one', async () => {
    const files = schemaFiles()
    for (const file of files) expect(contract().getSchema(file), file).to.not.equal(undefined)
    const ids = Object.keys((await manifest()).commands)
    expect(ids.length).to.be.greaterThan(10)
    for (const id of ids) expect(files, `schemas/${schemaFileFor(id)} for ${id}`).to.include(schemaFileFor(id))
    expect(files).to.include('error.schema.json')
  })

  it('rejects outputs that break the contract (the schemas are not permissive)', () => {
    const validate = contract().getSchema('check.schema.json')!
    expect(validate({status: 'ok', warnings: 0, errors: [], seed: {id: '', address: 'x'}, healthy: true, nodes: [], schemaVersion: 1})).to.equal(false)
    expect(validate({status: 'ok', warnings: [], errors: [], seed: {id: '', address: 'x'}, healthy: true, nodes: [], schemaVersion: 1, extra: 1})).to.equal(false)
    expect(validate({status: 'ok', warnings: [], errors: [], seed: {id: '', address: 'x'}, healthy: true, nodes: [], schemaVersion: 1})).to.equal(true)
  })

  describe('on real servers', () => {
    let cluster: TestCluster
    let spare: TestCluster
    let dir: string

    const nodes = async () => parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))

    before(async function () {
      this.timeout(180_000)
      dir = await mkdtemp(path.join(tmpdir(), 'slotctl-contract-'))
      cluster = await TestCluster.start({masters: 3, replicas: 1})
      spare = await TestCluster.start({form: false, nodes: 4})
    })

    after(async () => {
      await cluster?.stop()
      await spare?.stop()
      await rm(dir, {force: true, recursive: true})
    })

    it('version, check, info, call (ok and partial), and errors as the error envelope', async () => {
      await checked('version', ['version'], 0)
      const check = await checked('check', ['check', cluster.seed], 0)
      expect(check.json.status).to.be.oneOf(['ok', 'warnings'])
      await checked('info', ['info', cluster.seed], 0)
      await checked('call', ['call', cluster.seed, 'PING'], 0)
      const partial = await checked('call', ['call', cluster.seed, 'NOSUCHCOMMAND', '--yes'], 1)
      expect(partial.json.status).to.equal('partial')
      expect(partial.json.errors).to.have.length(6)
      // failures of the whole verb: unreachable seed (1), malformed address (2), missing flag (2), unknown verb (2)
      await checked('check', ['check', '127.0.0.1:1'], 1)
      await checked('info', ['info', 'not an address'], 2)
      await checked('reshard', ['reshard', cluster.seed, '--slots', '5'], 2)
      await checked('chek', ['chek', cluster.seed], 2)
    })

    it('context add, use, list, remove, and info --map with the seed from the current context', async () => {
      // a config home of this test's own: a current context must not reach other tests
      const env = {XDG_CONFIG_HOME: path.join(dir, 'config')}
      await checked('context:add', ['context', 'add', 'contract', cluster.seed, '--password-env', 'CONTRACT_PASS'], 0, env)
      await checked('context:add', ['context', 'add', 'plain', cluster.seed], 0, env)
      await checked('context:use', ['context', 'use', 'plain'], 0, env)
      const list = await checked('context:list', ['context', 'list'], 0, env)
      expect(list.json.current).to.equal('plain')
      const info = await checked('info', ['info', '--map'], 0, env)
      expect((info.json.map as {owners: unknown[]}).owners).to.have.length(3)
      await checked('context:remove', ['context', 'remove', 'contract'], 0, env)
      await checked('context:use', ['context', 'use', 'nope'], 2, env)
    })

    it('set-timeout: ok, and partial (a node cannot persist) with errors and exit 1', async () => {
      await checked('set-timeout', ['set-timeout', cluster.seed, '2500ms'], 0)
      const file = configFile(cluster.server(cluster.addresses[1]))
      const original = await readFile(file, 'utf8')
      await rm(file)
      await mkdir(file)
      try {
        const partial = await checked('set-timeout', ['set-timeout', cluster.seed, '2600'], 1)
        expect(partial.json.status).to.equal('partial')
        expect((partial.json.errors as Array<{code: string}>).map((error) => error.code)).to.deep.equal(['E_NOT_PERSISTED'])
      } finally {
        await rm(file, {force: true, recursive: true})
        await writeFile(file, original)
      }
    })

    it('create (planned, created, exists, refused) and add-node', async () => {
      const three = spare.addresses.slice(0, 3)
      await checked('create', ['create', ...three, '--dry-run'], 0)
      const created = await checked('create', ['create', ...three, '--yes'], 0)
      expect(created.json.status).to.equal('created')
      await checked('create', ['create', ...three, '--yes'], 0)
      // one node is a cluster of one master now (issue 13): refused is a node count that makes no master
      await checked('create', ['create', spare.addresses[3], '--replicas', '1', '--yes'], 2)
      const added = await checked('add-node', ['add-node', spare.addresses[3], cluster.seed], 0)
      expect(added.json.status).to.equal('added')
      await checked('add-node', ['add-node', spare.addresses[3], cluster.seed], 0)
    })

    it('rebalance, reshard, apply (planned, balanced, done) and del-node (planned, removed)', async () => {
      const out = path.join(dir, 'plan.json')
      await checked('rebalance', ['rebalance', cluster.seed], 0)
      await checked('rebalance', ['rebalance', cluster.seed, '--use-empty-masters', '--dry-run', '--out', out], 0)
      const target = (await nodes()).find((node) => node.address === spare.addresses[3])!
      await checked('reshard', ['reshard', cluster.seed, '--to', target.id, '--from', 'all', '--slots', '6', '--journal', path.join(dir, 'r.jsonl'), '--yes'], 0)
      await checked('apply', ['apply', out, '--seed', cluster.seed, '--yes'], 1)
      await checked('apply', ['apply', out, '--yes'], 2)
      const small = path.join(dir, 'small.json')
      await checked('reshard', ['reshard', cluster.seed, '--to', target.id, '--from', 'all', '--slots', '6', '--dry-run', '--out', small], 0)
      const applied = await checked('apply', ['apply', small, '--seed', cluster.seed, '--journal', path.join(dir, 'a.jsonl'), '--yes'], 0)
      expect(applied.json).to.include({slotsMoved: 6, status: 'done'})
      const drained = await checked('del-node', ['del-node', cluster.seed, target.id, '--drain', '--dry-run'], 0)
      expect(drained.json.status).to.equal('planned')
      const removed = await checked('del-node', ['del-node', cluster.seed, target.id, '--drain', '--journal', path.join(dir, 'd.jsonl'), '--yes'], 0)
      expect(removed.json.status).to.equal('removed')
      await checked('del-node', ['del-node', cluster.seed, 'ffffffff'], 2)
    })

    it('failover (planned, done) and fix (clean, planned, fixed)', async () => {
      const all = await nodes()
      const master = mastersOf(all).find((node) => node.slots.length > 0 && replicasOf(all, node.id).length > 0)!
      await checked('failover', ['failover', cluster.seed, '--master', master.id, '--dry-run'], 0)
      const done = await checked('failover', ['failover', cluster.seed, '--master', master.id], 0)
      expect(done.json.status).to.equal('done')
      // --replica naming the node now master: already master, a success
      const promoted = (done.json.done as Array<{replicaId: string}>)[0].replicaId
      const already = await checked('failover', ['failover', cluster.seed, '--replica', promoted], 0)
      expect((already.json.alreadyMaster as {id: string}).id).to.equal(promoted)
      await checked('fix', ['fix', cluster.seed], 0)
      const [first, second] = mastersOf(await nodes()).filter((node) => node.slots.length > 0)
      const slot = first.slots[0][0]
      await cluster.client(second.address).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', first.id)
      await checked('fix', ['fix', cluster.seed, '--dry-run'], 3)
      await checked('fix', ['fix', cluster.seed, '--yes'], 0)
    })

    it('sandbox start, status and stop (and status with nothing recorded)', async function () {
      this.timeout(180_000)
      const sandbox = path.join(dir, 'sandbox')
      await checked('sandbox:status', ['sandbox', 'status', '--dir', sandbox], 1)
      try {
        await checked('sandbox:start', ['sandbox', 'start', '--dir', sandbox, '--replicas', '0', '--keys', '100'], 0)
        await checked('sandbox:status', ['sandbox', 'status', '--dir', sandbox], 0)
        await checked('sandbox:start', ['sandbox', 'start', '--dir', sandbox, '--tls'], 2)
      } finally {
        await checked('sandbox:stop', ['sandbox', 'stop', '--dir', sandbox], 0)
      }
    })
  })
})
