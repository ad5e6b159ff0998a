/**
 * Issue "Durable moves": a key leaves its source only when the target's replicas hold it.
 * The case measured on every server (with a third master, so that the cluster can elect the
 * target's replica without help): the target with one replica, 3000 keys of
 * 2 KB in slots 0-1023 moved to the target; the target's replica stalls (SIGSTOP) before the
 * run or once slots are importing; then the target dies (kill -9) and its replica takes over;
 * slotctl's own hints are followed. Every key and value, and every write a client saw
 * acknowledged, must be there afterwards; and the run never exits 0 unprotected.
 */
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {delay} from '../../src/lib/cluster/connection.js'
import {parseClusterNodes, parseInfo} from '../../src/lib/cluster/topology.js'
import {tagForSlot} from '../../src/lib/migrate/durable.js'
import {TestCluster, isValkeyAtLeast} from '../helpers/cluster-harness.js'
import {runCli, runCliJson, spawnCli, waitForJournalLines} from '../helpers/cli.js'
import {type RecordingWriter, startRecordingWriter} from '../helpers/writer.js'

const KEYS = 3000
const SLOTS = 1024

interface Layout {
  source: string
  sourceId: string
  target: string
  targetId: string
  replica: string
}

async function layout(cluster: TestCluster): Promise<Layout> {
  const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
  const source = nodes.find((node) => node.role === 'master' && node.slots.some(([start]) => start === 0))
  const target = nodes.find((node) => node.role === 'master' && node !== source)
  const replica = nodes.find((node) => node.masterId === target?.id)
  if (!source || !target || !replica) throw new Error('unexpected layout')
  return {replica: replica.address, source: source.address, sourceId: source.id, target: target.address, targetId: target.id}
}

/** 3000 keys of 2 KB, spread over slots 0-1023 (each named into its slot with a hash tag). */
async function writeKeys(cluster: TestCluster): Promise<Map<string, Buffer>> {
  const client = cluster.clusterClient()
  const expected = new Map<string, Buffer>()
  for (let start = 0; start < KEYS; start += 500) {
    const writes: Array<Promise<unknown>> = []
    for (let i = start; i < start + 500; i++) {
      const key = `k:${i}:{${tagForSlot(i % SLOTS)}}`
      const value = randomBytes(2048)
      expected.set(key, value)
      writes.push(client.set(key, value))
    }
    await Promise.all(writes)
  }
  return expected
}

/** Every key with its value, read from whichever master serves it now. */
async function expectAllKeys(cluster: TestCluster, expected: Map<string, Buffer>): Promise<void> {
  const client = cluster.clusterClient()
  const keys = [...expected.keys()]
  const missing: string[] = []
  const changed: string[] = []
  for (let start = 0; start < keys.length; start += 200) {
    const batch = keys.slice(start, start + 200)
    const values = await Promise.all(batch.map((key) => client.getBuffer(key)))
    for (const [i, key] of batch.entries()) {
      if (values[i] === null) missing.push(key)
      else if (!values[i]?.equals(expected.get(key) as Buffer)) changed.push(key)
    }
  }
  expect({changed: changed.length, missing: missing.length, sample: missing.slice(0, 3)}).to.deep.equal({changed: 0, missing: 0, sample: []})
}

/** Every acknowledged write is there with its value or a later one of the same writer. */
async function expectAcknowledgedWrites(cluster: TestCluster, writer: RecordingWriter): Promise<void> {
  const client = cluster.clusterClient()
  const lost: string[] = []
  for (const [key, value] of writer.acknowledged) {
    const now = await client.get(key)
    if (now === null || Number(now.slice(1)) < Number(value.slice(1))) lost.push(`${key}: ${value} → ${now}`)
  }
  expect(writer.acknowledged.size, 'the writer saw writes acknowledged').to.be.greaterThan(0)
  expect(lost, `${lost.length} of ${writer.acknowledged.size} acknowledged writes lost`).to.deep.equal([])
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await delay(200)
  }
}

async function isMaster(cluster: TestCluster, address: string): Promise<boolean> {
  return parseInfo(String(await cluster.client(address).info('replication'))).role === 'master'
}

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

  for (const protocol of ['legacy', 'atomic'] as const) {
    it(`the replica stalls once slots are importing (${protocol}), a writer writes throughout, then the target dies: no key and no acknowledged write is lost, and the run exits non-zero`, async function () {
      if (protocol === 'atomic' && !isValkeyAtLeast(9)) this.skip()
      const writerKeys = Array.from({length: 400}, (_, i) => `w:${i}:{${tagForSlot((i * 7) % SLOTS)}}`)
      const writer = startRecordingWriter(nodes.source, writerKeys, {maxMs: 120_000})
      const journal = path.join(dir, `stall-${protocol}-${Date.now()}.journal`)
      const throttle = protocol === 'legacy' ? ['--legacy-migrate', '--max-keys-per-sec', '1500'] : []
      const run = spawnCli(['reshard', nodes.source, '--from', nodes.sourceId, '--to', nodes.targetId, '--slot-range', `0-${SLOTS - 1}`, '--yes', '--journal', journal, '--replica-wait', '3s', ...throttle])
      if (protocol === 'legacy') await waitForJournalLines(journal, 3)
      else await waitUntil('the atomic job to start', async () => String(await cluster.client(nodes.source).call('CLUSTER', 'GETSLOTMIGRATIONS')).length > 0, 30_000).catch(() => undefined)
      process.kill(cluster.server(nodes.replica).pid, 'SIGSTOP')
      const result = await run
      expect(result.exitCode, `${result.stdout}\n${result.stderr}`).to.not.equal(0)
      await killTargetAndRepair(cluster, nodes)
      await writer.stop()
      await expectAllKeys(cluster, expected)
      await expectAcknowledgedWrites(cluster, writer)
    })
  }
})
