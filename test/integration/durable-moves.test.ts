/**
 * Issue "Durable moves": a key leaves its source only when the target's replicas hold it.
 * The case measured on every server (with a third master, so that the cluster can elect the
 * target's replica without help): the target with one replica, 3000 keys of
 * 2 KB in slots 0-1023 moved to the target; the target's replica stalls (SIGSTOP) before the
 * run or once slots are importing; then the target dies (kill -9) and its replica takes over;
 * slotctl's own hints are followed. Every key and value, and every write a client saw
 * acknowledged, must be there afterwards; and the run never exits 0 unprotected.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {parseClusterNodes, parseInfo} from '../../src/lib/cluster/topology.js'
import {tagForSlot} from '../../src/lib/migrate/durable.js'
import {TestCluster, isValkeyAtLeast} from '../helpers/cluster-harness.js'
import {runCli, runCliJson, spawnCli, waitForJournalLines} from '../helpers/cli.js'
import {KEYS, type Layout, SLOTS, expectAcknowledgedWrites, expectAllKeys, isMaster, layout, waitUntil, writeKeys} from '../helpers/moves.js'
import {startRecordingWriter} from '../helpers/writer.js'

/** kill -9 of the target, the stalled replica resumed and promoted, then slotctl's fix as its hints say. */
async function killTargetAndRepair(cluster: TestCluster, nodes: Layout): Promise<void> {
  cluster.kill(nodes.target)
  process.kill(cluster.server(nodes.replica).pid, 'SIGCONT')
  await waitUntil('the replica to take over', () => isMaster(cluster, nodes.replica))
  await waitUntil('the cluster to see the new master', async () => parseInfo(String(await cluster.client(nodes.source).call('CLUSTER', 'INFO'))).cluster_state === 'ok')
  const fixed = await runCli(['fix', nodes.source, '--yes'], {timeoutMs: 120_000})
  expect(fixed.stderr).not.to.match(/at .*\.js:\d+/)
}

describe('durable moves: a key leaves its source only when the target\'s replicas hold it', function () {
  this.timeout(300_000)
  let dir: string
  let cluster: TestCluster
  let nodes: Layout
  let expected: Map<string, Buffer>

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-durable-'))
  })
  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })
  beforeEach(async () => {
    cluster = await TestCluster.start({masters: 3, nodeTimeoutMs: 2000, replicas: 1})
    nodes = await layout(cluster)
    expected = await writeKeys(cluster)
  })
  afterEach(async () => {
    for (const server of cluster.servers) {
      try {
        process.kill(server.pid, 'SIGCONT')
      } catch {
        // already gone
      }
    }
    await cluster.stop()
  })

  it('a healthy replica: the run says the keys are held by the target and its replica, and every key is there', async () => {
    const {exitCode, json, stdout} = await runCliJson<MigrationResult>(['reshard', nodes.source, '--from', nodes.sourceId, '--to', nodes.targetId, '--slot-range', `0-${SLOTS - 1}`, '--yes', '--legacy-migrate'])
    expect(exitCode, stdout).to.equal(0)
    expect(json.keysMoved).to.equal(KEYS)
    expect(json.heldBy).to.deep.equal([{replicas: 1, target: nodes.target}])
    // the replica holds every moved key before anything else happens to the target
    cluster.kill(nodes.target)
    await waitUntil('the replica to take over', () => isMaster(cluster, nodes.replica))
    await expectAllKeys(cluster, expected)
  })

  it('the replica stalled before the run: it stops before moving anything, naming the replica; nothing is lost when the target then dies', async () => {
    const sourceSlots = parseClusterNodes(String(await cluster.client(nodes.source).call('CLUSTER', 'NODES'))).find((node) => node.id === nodes.sourceId)?.slots[0]
    process.kill(cluster.server(nodes.replica).pid, 'SIGSTOP')
    const started = Date.now()
    const run = await runCli(['reshard', nodes.source, '--from', nodes.sourceId, '--to', nodes.targetId, '--slot-range', `0-${SLOTS - 1}`, '--yes', '--legacy-migrate', '--replica-wait', '3s'])
    expect(run.exitCode, run.stdout).to.equal(1)
    expect(run.stderr).to.include(nodes.replica)
    expect(run.stderr).not.to.match(/at .*\.js:\d+/)
    // bounded by --replica-wait (3 s), with room for a loaded machine
    expect(Date.now() - started).to.be.below(60_000)
    const owners = parseClusterNodes(String(await cluster.client(nodes.source).call('CLUSTER', 'NODES')))
    expect(owners.find((node) => node.id === nodes.sourceId)?.slots[0]).to.deep.equal(sourceSlots)
    await killTargetAndRepair(cluster, nodes)
    await expectAllKeys(cluster, expected)
  })

  it('the replica stalls once slots are importing, a writer writes throughout, then the target dies: no key and no acknowledged write is lost, and the run exits non-zero', async () => {
    const writerKeys = Array.from({length: 400}, (_, i) => `w:${i}:{${tagForSlot((i * 7) % SLOTS)}}`)
    const writer = startRecordingWriter(cluster.addresses, writerKeys, {maxMs: 120_000})
    const journal = path.join(dir, `stall-${Date.now()}.journal`)
    const run = spawnCli(['reshard', nodes.source, '--from', nodes.sourceId, '--to', nodes.targetId, '--slot-range', `0-${SLOTS - 1}`, '--yes', '--journal', journal, '--replica-wait', '3s', '--legacy-migrate', '--max-keys-per-sec', '1500'])
    await waitForJournalLines(journal, 3)
    process.kill(cluster.server(nodes.replica).pid, 'SIGSTOP')
    const result = await run
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).to.equal(1)
    expect(result.stderr).to.match(/replica/)
    await killTargetAndRepair(cluster, nodes)
    await writer.stop()
    await expectAllKeys(cluster, expected)
    await expectAcknowledgedWrites(cluster, writer)
  })

  it('Valkey 9, --durability server (atomic migration): a stalled replica is reported, never a success', async function () {
    if (!isValkeyAtLeast(9)) this.skip()
    const run = spawnCli(['reshard', nodes.source, '--from', nodes.sourceId, '--to', nodes.targetId, '--slot-range', `0-${SLOTS - 1}`, '--yes', '--replica-wait', '2s', '--durability', 'server'])
    await waitUntil('the atomic job to start', async () => String(await cluster.client(nodes.source).call('CLUSTER', 'GETSLOTMIGRATIONS')).length > 0, 30_000).catch(() => undefined)
    process.kill(cluster.server(nodes.replica).pid, 'SIGSTOP')
    const result = await run
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).to.equal(1)
    expect(result.stderr).to.match(/replica/)
    expect(result.stderr).not.to.match(/at .*\.js:\d+/)
  })

  it('the default on Valkey 9 does not migrate atomically (its handoff does not wait for replicas), and says so', async function () {
    if (!isValkeyAtLeast(9)) this.skip()
    const run = await runCli(['reshard', nodes.source, '--from', nodes.sourceId, '--to', nodes.targetId, '--slot-range', '0-99', '--yes'])
    expect(run.exitCode, run.stderr).to.equal(0)
    expect(run.stderr).to.match(/atomic slot migration is not used/)
    expect(run.stderr).to.match(/moving with MIGRATE/)
    expect(run.stdout).to.match(/moved .*; held by the target and 1 replica$/m)
  })
})
