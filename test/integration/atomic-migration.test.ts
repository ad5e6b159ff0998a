/**
 * Atomic slot migration (Valkey >= 9: CLUSTER MIGRATESLOTS): used by default where both ends
 * have it; Ctrl-C cancels (the servers roll back); a killed slotctl resumes; a killed source
 * or target leaves every key where the servers put it. Skipped on other servers.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {type ClusterNode, mastersOf, parseClusterNodes, slotCount} from '../../src/lib/cluster/topology.js'
import {TestCluster, skipUnlessValkey} from '../helpers/cluster-harness.js'
import {runCli, runCliJson, spawnCli} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

async function waitForOutput(child: ReturnType<typeof spawnCli>, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  let seen = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in: ${seen}`)), timeoutMs)
    child.stderr?.on('data', (chunk: Buffer) => {
      seen += chunk.toString()
      if (pattern.test(seen)) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
}

describe('atomic slot migration (Valkey >= 9)', () => {
  let cluster: TestCluster
  let original: {digest: string; keys: number}
  let dir: string

  const masters = async (): Promise<ClusterNode[]> => mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))).filter((node) => !node.failed)
  const largestAndSmallest = async () => {
    const sorted = (await masters()).sort((a, b) => slotCount(b) - slotCount(a))
    return [sorted[0], sorted[sorted.length - 1]]
  }
  const expectHealthy = async () => {
    const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed])
    expect(json.errors, JSON.stringify(json.errors)).to.deep.equal([])
    expect(exitCode).to.equal(0)
  }

  before(async function () {
    this.timeout(300_000)
    skipUnlessValkey(this, 9)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-asm-'))
    cluster = await TestCluster.start({masters: 3, nodeTimeoutMs: 3000, replicas: 1})
    // enough data that a job runs for a moment: something to cancel and to kill under
    await writeDataset(cluster.clusterClient(), {bigHashFields: 300_000, keys: 60_000})
    original = await clusterDigest(cluster)
  })

  after(async () => {
    await cluster?.stop()
    if (dir) await rm(dir, {force: true, recursive: true})
  })

  it('reshard uses CLUSTER MIGRATESLOTS by default, says so, and moves every key', async function () {
    this.timeout(300_000)
    const [source, target] = await largestAndSmallest()
    const run = await runCli(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '2000', '--yes', '--journal', path.join(dir, 'asm.jsonl'), '--durability', 'server'])
    expect(run.exitCode, run.stderr).to.equal(0)
    expect(run.stderr).to.match(/moving with CLUSTER MIGRATESLOTS \(atomic slot migration\)/)
    expect(run.stderr).to.match(/atomic migration .* \(2000 slot\(s\)\): success/)
    expect(run.stdout).to.match(/2000 slot\(s\)/)
    await expectHealthy()
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('--legacy-migrate and a throttle use SETSLOT + MIGRATE instead, and say why', async function () {
    this.timeout(300_000)
    const [source, target] = await largestAndSmallest()
    const legacy = await runCli(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '50', '--legacy-migrate', '--yes', '--journal', path.join(dir, 'legacy.jsonl')])
    expect(legacy.exitCode, legacy.stderr).to.equal(0)
    expect(legacy.stderr).to.match(/moving with MIGRATE \(CLUSTER SETSLOT\)/)
    const throttled = await runCli(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '50', '--max-keys-per-sec', '50000', '--yes', '--journal', path.join(dir, 'throttled.jsonl')])
    expect(throttled.exitCode, throttled.stderr).to.equal(0)
    expect(throttled.stderr).to.match(/a throttle needs the legacy protocol/)
    await expectHealthy()
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('Ctrl-C cancels the job: exit 130, the servers roll back, nothing half-moved; --resume completes it', async function () {
    this.timeout(300_000)
    const [source, target] = await largestAndSmallest()
    const before = slotCount(target)
    const journal = path.join(dir, 'cancel.jsonl')
    const child = spawnCli(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '3000', '--yes', '--journal', journal, '--durability', 'server'])
    await waitForOutput(child, /atomic migration .*: /)
    // hold the target still so the job is surely in flight when Ctrl-C arrives
    void cluster.client(target.address).call('DEBUG', 'SLEEP', 3)
    child.kill('SIGINT')
    const run = await child
    expect(run.exitCode, String(run.stderr)).to.equal(130)
    expect(String(run.stderr)).to.match(/cancelled/)
    const after = (await masters()).find((node) => node.id === target.id)!
    expect(slotCount(after), 'no slot changed hands').to.equal(before)
    await expectHealthy()
    expect(await clusterDigest(cluster)).to.deep.equal(original)
    const resumed = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--resume', journal, '--yes'])
    expect(resumed.exitCode, resumed.stderr).to.equal(0)
    expect(resumed.json.slotsMoved).to.equal(3000)
    await expectHealthy()
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('kill -9 of slotctl mid-job: the servers finish or roll back on their own, --resume completes the plan', async function () {
    this.timeout(300_000)
    const [source, target] = await largestAndSmallest()
    const journal = path.join(dir, 'kill.jsonl')
    const child = spawnCli(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '2500', '--yes', '--journal', journal, '--durability', 'server'])
    await waitForOutput(child, /atomic migration .*: /)
    child.kill('SIGKILL')
    await child
    // a job still running is the servers' business: check calls the cluster busy until it ends
    for (let i = 0; i < 100; i++) {
      const check = await runCliJson<CheckResult>(['check', cluster.seed])
      if (!check.json.errors.some((f) => f.code === 'SLOT_MIGRATION_RUNNING')) break
      await new Promise((resolve) => {
        setTimeout(resolve, 200)
      })
    }
    const resumed = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--resume', journal, '--yes'])
    expect(resumed.exitCode, resumed.stderr).to.equal(0)
    await expectHealthy()
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('a source or a target killed mid-job: slotctl stops (exit 1) and every key is still in the cluster', async function () {
    this.timeout(300_000)
    for (const victim of ['target', 'source'] as const) {
      const [source, target] = await largestAndSmallest()
      const killed = victim === 'source' ? source : target
      const child = spawnCli(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '2500', '--yes', '--journal', path.join(dir, `killed-${victim}.jsonl`), '--durability', 'server'])
      await waitForOutput(child, /atomic migration .*: /)
      cluster.kill(killed.address)
      const run = await child
      expect(run.exitCode, `${victim}: ${String(run.stderr)}`).to.equal(1)
      // the dead master's replica takes over; then the cluster is whole again without it
      await waitUntilHealthyWithout(cluster, killed.address)
      expect(await clusterDigest(cluster), `${victim} killed`).to.deep.equal(original)
      const removed = await runCli(['del-node', cluster.seed, killed.id, '--yes'])
      expect(removed.exitCode, removed.stderr).to.equal(0)
    }
  })
})

async function waitUntilHealthyWithout(cluster: TestCluster, dead: string): Promise<void> {
  // not just "not this one": a node killed earlier in the same test is gone too
  const seed = cluster.seed
  expect(seed).to.not.equal(dead)
  let last = ''
  for (let i = 0; i < 150; i++) {
    const check = await runCliJson<CheckResult>(['check', seed])
    last = check.stdout
    const blocking = (check.json.errors ?? [{code: 'NO_RESULT'}]).filter((f) => !(f.code === 'MASTER_UNREACHABLE' || f.code === 'MASTER_FAILED'))
    const nodes = parseClusterNodes(String(await cluster.client(seed).call('CLUSTER', 'NODES')))
    // covered without the dead node: its replica has taken over its slots
    const covered = mastersOf(nodes).filter((node) => !node.failed && !node.suspectedFailed && node.address !== dead).reduce((sum, node) => sum + slotCount(node), 0)
    if (blocking.length === 0 && covered === 16_384) return
    await new Promise((resolve) => {
      setTimeout(resolve, 200)
    })
  }
  throw new Error(`the cluster did not become whole after ${dead} died: ${last}`)
}
