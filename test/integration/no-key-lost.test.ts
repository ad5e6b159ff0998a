/**
 * Issue "No key is ever lost": the data-loss cases found on real servers, each run against
 * the server under test (SLOTCTL_TEST_SERVER). Every case compares the key count and a
 * digest of every value before and after, and checks all 16384 slots covered, none open.
 */
import {readFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {type Server, createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {mastersOf, parseClusterNodes, parseInfo, slotCount} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson, spawnCli, waitForJournalLines} from '../helpers/cli.js'
import {clusterDigest, servedDigest, writeDataset} from '../helpers/dataset.js'
import {readPlanFile} from '../../src/lib/plan/plan-file.js'

async function expectHealthy(cluster: TestCluster, auth: string[] = []): Promise<void> {
  const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed, ...auth])
  expect(json.errors, JSON.stringify(json.errors)).to.deep.equal([])
  expect(exitCode).to.equal(0)
  const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
  expect(mastersOf(nodes).reduce((sum, node) => sum + slotCount(node), 0)).to.equal(16_384)
}

async function configEpoch(cluster: TestCluster, address: string): Promise<number> {
  return Number(parseInfo(String(await cluster.client(address).call('CLUSTER', 'INFO'))).cluster_my_epoch)
}

describe('no key is ever lost (real servers)', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-nokeylost-'))
  })
  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  describe('a source whose config epoch is above the target\'s (the wave-close race)', () => {
    let cluster: TestCluster
    let original: {digest: string; keys: number}

    before(async function () {
      this.timeout(300_000)
      cluster = await TestCluster.start({masters: 3, replicas: 1})
      await writeDataset(cluster.clusterClient(), {keys: 30_000})
      original = await clusterDigest(cluster)
    })
    after(async () => {
      await cluster?.stop()
    })

    // Each round bumps the source's epoch above everyone's, then moves 4096 slots into a
    // master with a replica: the target's epoch is lower when the wave closes.
    for (const round of [1, 2, 3]) {
      it(`round ${round}: reshard of 4096 slots from a higher-epoch source keeps every key`, async function () {
        this.timeout(300_000)
        const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
        const masters = mastersOf(nodes).sort((a, b) => slotCount(b) - slotCount(a))
        const [source, target] = [masters[0], masters[masters.length - 1]]
        await cluster.client(source.address).call('CLUSTER', 'BUMPEPOCH')
        expect(await configEpoch(cluster, source.address)).to.be.greaterThan(await configEpoch(cluster, target.address))
        const {exitCode, json, stderr} = await runCliJson<MigrationResult>([
          // the SETSLOT protocol on every server, whatever --durability says
          'reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '4096', '--legacy-migrate', '--yes', '--journal', path.join(dir, `race-${round}.jsonl`),
        ])
        expect(exitCode, stderr).to.equal(0)
        expect(json.slotsMoved).to.equal(4096)
        await expectHealthy(cluster)
        expect(await clusterDigest(cluster)).to.deep.equal(original)
      })
    }
  })

  describe('a failed listing or count never reads as "empty" (password-protected cluster)', () => {
    const PASSWORD = 'nokeylost-Pw-7731'
    const auth = ['-a', PASSWORD]
    let cluster: TestCluster
    let original: {digest: string; keys: number}

    before(async function () {
      this.timeout(300_000)
      // a node timeout above the source's 8 s sleep: the stall must not turn into a failover
      cluster = await TestCluster.start({masters: 3, nodeTimeoutMs: 20_000, password: PASSWORD, replicas: 1})
      await writeDataset(cluster.clusterClient(), {keys: 20_000})
      original = await clusterDigest(cluster)
    })
    after(async () => {
      await cluster?.stop()
    })

    const mastersNow = async () => mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))

    it('an ACL user without cluster|getkeysinslot is refused up front; one that loses it mid-run stops with the slots open, nothing lost, fix completes', async function () {
      this.timeout(300_000)
      const setUser = async (...rules: string[]) => {
        for (const address of cluster.addresses) await cluster.client(address).call('ACL', 'SETUSER', 'mover', 'on', '>mover-pw-1', '+@all', '~*', '&*', ...rules)
      }
      const [source, target] = await mastersNow()
      const asMover = ['--user', 'mover', '-a', 'mover-pw-1', '--no-auth-warning']
      // the pre-flight sees the missing right before anything changes
      await setUser('-cluster|getkeysinslot')
      const refused = await runCliJson<MigrationResult>(['reshard', cluster.seed, ...asMover, '--from', source.id, '--to', target.id, '--slots', '20', '--legacy-migrate', '--yes', '--journal', path.join(dir, 'acl-refused.jsonl')])
      expect(refused.exitCode, refused.stdout).to.equal(1)
      expect(refused.stdout).to.match(/getkeysinslot/i)
      // a right taken away mid-run (the engine's own guarantee): every listing that fails fails its slot
      await setUser()
      const journal = path.join(dir, 'acl.jsonl')
      const child = spawnCli(['reshard', cluster.seed, ...asMover, '--from', source.id, '--to', target.id, '--slots', '3000', '--legacy-migrate', '--max-keys-per-sec', '4000', '--yes', '--journal', journal, '--json'])
      await waitForJournalLines(journal, 1)
      await setUser('-cluster|getkeysinslot')
      const run = await child
      expect(run.exitCode, String(run.stderr)).to.equal(1)
      const json = JSON.parse(String(run.stdout)) as MigrationResult
      expect(json.status).to.equal('failed')
      expect(json.slotsMoved).to.be.below(3000)
      expect(json.errors.map((error) => error.message).join('\n')).to.match(/GETKEYSINSLOT/)
      expect(await clusterDigest(cluster)).to.deep.equal(original)
      const fixed = await runCli(['fix', cluster.seed, ...auth, '--yes', '--journal', journal])
      expect(fixed.exitCode, fixed.stderr + fixed.stdout).to.equal(0)
      await expectHealthy(cluster, auth)
      expect(await clusterDigest(cluster)).to.deep.equal(original)
    })

    it('a source stalled past the admin timeout: the run stops, nothing is lost, --resume completes it', async function () {
      this.timeout(300_000)
      const [source, target] = await mastersNow()
      const journal = path.join(dir, 'stall.jsonl')
      // --timeout 100 gives admin connections 5.4 s; the source then sleeps 8 s mid-run
      const child = spawnCli(['reshard', cluster.seed, ...auth, '--from', source.id, '--to', target.id, '--slots', '1500', '--timeout', '100', '--max-keys-per-sec', '1500', '--yes', '--journal', journal, '--json'])
      await waitForJournalLines(journal, 20)
      await cluster.client(source.address).call('DEBUG', 'SLEEP', 8)
      const run = await child
      expect(run.exitCode, String(run.stderr)).to.equal(1)
      const json = JSON.parse(String(run.stdout)) as MigrationResult
      expect(json.status).to.equal('failed')
      expect(json.errors[0].message).to.match(/timed out/i)
      // a batch copied but not yet deleted at the stalled source is at both ends: clients see the source's
      expect(await servedDigest(cluster)).to.deep.equal(original)
      const resumed = await runCliJson<MigrationResult>(['reshard', cluster.seed, ...auth, '--resume', journal, '--yes'])
      expect(resumed.exitCode, JSON.stringify(resumed.json)).to.equal(0)
      await expectHealthy(cluster, auth)
      expect(await clusterDigest(cluster)).to.deep.equal(original)
    })
  })

  describe('one run at a time, and files that carry intent, not addresses', () => {
    let cluster: TestCluster
    let original: {digest: string; keys: number}
    let fake: Server
    let fakePort: number
    let fakeConnections = 0

    before(async function () {
      this.timeout(300_000)
      cluster = await TestCluster.start({masters: 3, replicas: 1})
      await writeDataset(cluster.clusterClient(), {keys: 20_000})
      original = await clusterDigest(cluster)
      // a server that would accept anything: slotctl must never connect to it
      fake = createServer((socket) => {
        fakeConnections++
        socket.on('data', () => socket.write('+OK\r\n'))
      })
      await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve))
      fakePort = (fake.address() as {port: number}).port
    })
    after(async () => {
      fake?.close()
      await cluster?.stop()
    })

    const mastersNow = async () => mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))

    it('a second run while one is moving is refused, naming it; the first completes with every key', async function () {
      this.timeout(300_000)
      const [a, b, c] = await mastersNow()
      const journal = path.join(dir, 'first.jsonl')
      // about 1500 keys at 150 keys/s: ten seconds of moving
      const first = spawnCli(['reshard', cluster.seed, '--from', a.id, '--to', b.id, '--slots', '1200', '--max-keys-per-sec', '150', '--yes', '--journal', journal])
      await waitForJournalLines(journal, 5)
      const second = await runCli(['rebalance', cluster.seed, '--weight', `${c.id}=3`, '--yes', '--journal', path.join(dir, 'second.jsonl')])
      expectOneCleanLine(second, 1, new RegExp(`another slotctl run is changing this cluster: 'reshard' from pid ${first.pid} on `))
      expectOneCleanLine(await runCli(['fix', cluster.seed, '--yes']), 1, /another slotctl run is changing this cluster: 'reshard'/)
      expectOneCleanLine(await runCli(['reshard', cluster.seed, '--from', c.id, '--to', a.id, '--slots', '5', '--dry-run']), 1, /another slotctl run is changing this cluster/)
      const done = await first
      expect(done.exitCode, String(done.stderr)).to.equal(0)
      await expectHealthy(cluster)
      expect(await clusterDigest(cluster)).to.deep.equal(original)
    })

    it('two crossing runs started together: at most one moves, both end, nothing is lost', async function () {
      this.timeout(300_000)
      const [a, b] = await mastersNow()
      const runs = await Promise.all([
        spawnCli(['reshard', cluster.seed, '--from', a.id, '--to', b.id, '--slots', '500', '--yes', '--journal', path.join(dir, 'cross-1.jsonl')]),
        spawnCli(['reshard', cluster.seed, '--from', b.id, '--to', a.id, '--slots', '500', '--yes', '--journal', path.join(dir, 'cross-2.jsonl')]),
      ])
      const refused = runs.filter((run) => run.exitCode === 1 && /another slotctl run/.test(String(run.stderr)))
      expect(refused.length, runs.map((run) => String(run.stderr)).join('\n')).to.be.at.least(1)
      for (const run of runs) expect([0, 1], String(run.stderr)).to.include(run.exitCode)
      await expectHealthy(cluster)
      expect(await clusterDigest(cluster)).to.deep.equal(original)
    })

    it('a dead run leaves no lock behind', async function () {
      this.timeout(300_000)
      const [a, b] = await mastersNow()
      const journal = path.join(dir, 'dead.jsonl')
      const child = spawnCli(['reshard', cluster.seed, '--from', a.id, '--to', b.id, '--slots', '1000', '--max-keys-per-sec', '1500', '--yes', '--journal', journal])
      await waitForJournalLines(journal, 3)
      child.kill('SIGKILL')
      await child
      const resumed = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--resume', journal, '--yes'])
      expect(resumed.exitCode, resumed.stdout).to.equal(0)
      await expectHealthy(cluster)
      expect(await clusterDigest(cluster)).to.deep.equal(original)
    })

    it('apply and --resume use the live address of each node id, never one written in the file', async function () {
      this.timeout(300_000)
      const [a, b] = await mastersNow()
      const planFile = path.join(dir, 'plan.json')
      const dry = await runCli(['reshard', cluster.seed, '--from', a.id, '--to', b.id, '--slots', '30', '--dry-run', '--out', planFile])
      expect(dry.exitCode, dry.stderr).to.equal(0)
      const plan = JSON.parse(readFileSync(planFile, 'utf8'))
      for (const node of plan.nodes) node.address = `127.0.0.1:${fakePort}`
      await writeFile(planFile, JSON.stringify(plan))
      const applied = await runCliJson<MigrationResult>(['apply', planFile, '--seed', cluster.seed, '--yes', '--journal', path.join(dir, 'edited.jsonl')])
      expect(applied.exitCode, applied.stderr).to.equal(0)
      expect(applied.json.slotsMoved).to.equal(30)
      expect(applied.json.warnings?.map((w) => w.message)).to.include(`the plan says ${a.id.slice(0, 8)} is at 127.0.0.1:${fakePort}; the cluster has it at ${a.address}, which is used`)
      // a journal whose plan names the fake address resumes against the live nodes too
      const journal = path.join(dir, 'edited-resume.jsonl')
      const child = spawnCli(['reshard', cluster.seed, '--from', a.id, '--to', b.id, '--slots', '800', '--max-keys-per-sec', '1500', '--yes', '--journal', journal])
      await waitForJournalLines(journal, 3)
      child.kill('SIGKILL')
      await child
      const lines = readFileSync(journal, 'utf8').split('\n')
      const head = JSON.parse(lines[0])
      for (const node of head.plan.nodes) node.address = `127.0.0.1:${fakePort}`
      await writeFile(journal, [JSON.stringify(head), ...lines.slice(1)].join('\n'))
      const resumed = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--resume', journal, '--yes'])
      expect(resumed.exitCode, resumed.stdout).to.equal(0)
      expect(fakeConnections).to.equal(0)
      await expectHealthy(cluster)
      expect(await clusterDigest(cluster)).to.deep.equal(original)
    })

    it('a plan or journal naming a node the cluster does not have is refused whole; nothing moves', async function () {
      this.timeout(300_000)
      const [a, b] = await mastersNow()
      const planFile = path.join(dir, 'unknown.json')
      await runCli(['reshard', cluster.seed, '--from', a.id, '--to', b.id, '--slots', '10', '--dry-run', '--out', planFile])
      // edited as a version 1 plan (one entry per slot), which apply still reads
      const plan = readPlanFile(planFile)
      const stranger = 'f'.repeat(40)
      plan.moves[5].targetId = stranger
      plan.nodes.push({address: `127.0.0.1:${fakePort}`, id: stranger})
      await writeFile(planFile, JSON.stringify(plan))
      const before = String(await cluster.client().call('CLUSTER', 'SLOTS'))
      expectOneCleanLine(await runCli(['apply', planFile, '--seed', cluster.seed, '--yes']), 1, new RegExp(`the plan names node ${stranger}, which this cluster does not have; nothing was changed`))
      const journal = path.join(dir, 'unknown.jsonl')
      await writeFile(journal, `${JSON.stringify({plan, type: 'plan'})}\n`)
      expectOneCleanLine(await runCli(['reshard', cluster.seed, '--resume', journal, '--yes']), 1, /which this cluster does not have/)
      expectOneCleanLine(await runCli(['apply', planFile, '--yes']), 2, /--seed/)
      expect(String(await cluster.client().call('CLUSTER', 'SLOTS'))).to.equal(before)
      expect(fakeConnections).to.equal(0)
      expect(await clusterDigest(cluster)).to.deep.equal(original)
    })
  })
})
