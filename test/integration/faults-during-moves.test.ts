/**
 * Issue "Kills and failovers during moves, with a live writer": the CI-sized fault suite.
 * 3 masters with a replica each; 3000 keys of 2 KB in slots 0-1023 move from the master that
 * owns slot 0 to another, throttled so that the fault lands mid-run, while a writer records
 * every write a master acknowledged with a replica's WAIT confirmation. One fault per case;
 * then slotctl's own hints are followed (the printed --resume command, then fix). Afterwards
 * every key and value is there, and every acknowledged write (its value or a later one).
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {parseClusterNodes, parseInfo} from '../../src/lib/cluster/topology.js'
import {tagForSlot} from '../../src/lib/migrate/durable.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCli, spawnCli, waitForJournalLines} from '../helpers/cli.js'
import {type Layout, SLOTS, expectAcknowledgedWrites, expectAllKeys, isMaster, layout, waitForOneView, waitUntil, writeKeys} from '../helpers/moves.js'
import {startRecordingWriter} from '../helpers/writer.js'

type Fault = 'kill-target' | 'kill-source' | 'stop-source' | 'failover-target-shard' | 'failover-source-shard' | 'kill-slotctl'

async function replicaOf(cluster: TestCluster, masterAddress: string): Promise<string> {
  const nodes = parseClusterNodes(String(await cluster.client(masterAddress).call('CLUSTER', 'NODES')))
  const master = nodes.find((node) => node.address === masterAddress)
  const replica = nodes.find((node) => node.masterId === master?.id && !node.failed)
  if (!replica) throw new Error(`no replica of ${masterAddress}`)
  return replica.address
}

/** A live master other than the ones named: a seed for what follows the fault. */
async function liveSeed(cluster: TestCluster, avoid: string[]): Promise<string> {
  const nodes = parseClusterNodes(String(await cluster.client(cluster.seed).call('CLUSTER', 'NODES')))
  const seed = nodes.find((node) => node.role === 'master' && !node.failed && !node.suspectedFailed && !avoid.includes(node.address))
  if (!seed) throw new Error('no live master')
  return seed.address
}

/** Injects the fault; returns the nodes not to use as a seed afterwards. */
async function injectFault(cluster: TestCluster, fault: Fault, nodes: Layout, run: ReturnType<typeof spawnCli>): Promise<string[]> {
  switch (fault) {
    case 'kill-target':
      cluster.kill(nodes.target)
      await waitUntil('the target\'s replica to take over', () => isMaster(cluster, nodes.replica))
      return [nodes.target]
    case 'kill-source': {
      const replica = await replicaOf(cluster, nodes.source)
      cluster.kill(nodes.source)
      await waitUntil('the source\'s replica to take over', () => isMaster(cluster, replica))
      return [nodes.source]
    }
    case 'stop-source': {
      const replica = await replicaOf(cluster, nodes.source)
      process.kill(cluster.server(nodes.source).pid, 'SIGSTOP')
      await waitUntil('the source\'s replica to take over', () => isMaster(cluster, replica))
      process.kill(cluster.server(nodes.source).pid, 'SIGCONT')
      await waitUntil('the old source to rejoin as a replica', async () => !(await isMaster(cluster, nodes.source)))
      // alive, but its view may lag behind for a moment: not a seed
      return [nodes.source]
    }
    case 'failover-target-shard':
      await failOverGracefully(cluster, nodes.replica, 'the graceful failover in the target\'s shard')
      return []
    case 'failover-source-shard':
      await failOverGracefully(cluster, await replicaOf(cluster, nodes.source), 'the graceful failover in the source\'s shard')
      return []
    case 'kill-slotctl':
      run.kill('SIGKILL')
      return []
  }
}

/**
 * CLUSTER FAILOVER on `replica`, asked again while it is not master yet: a manual failover
 * that does not complete within 5 s (a busy machine, a replica still catching up) is dropped
 * by the server, as an operator would see and ask again.
 */
async function failOverGracefully(cluster: TestCluster, replica: string, what: string): Promise<void> {
  let askedAt = 0
  await waitUntil(what, async () => {
    if (await isMaster(cluster, replica)) return true
    if (Date.now() - askedAt > 8000) {
      askedAt = Date.now()
      await cluster.client(replica).call('CLUSTER', 'FAILOVER')
    }
    return false
  })
}

/**
 * What slotctl tells an operator after a stopped run: continue with --resume JOURNAL (it
 * refuses a plan the fault made stale, and changes nothing then), then fix. Neither may end
 * in a stack trace.
 */
async function followHints(seed: string, journal: string): Promise<void> {
  const resumed = await runCli(['reshard', seed, '--resume', journal, '--yes'], {timeoutMs: 180_000})
  expect(resumed.stderr).not.to.match(/at .*\.js:\d+/)
  // the run's own hint: "or let fix finish them: slotctl fix SEED --journal JOURNAL"
  const fixed = await runCli(['fix', seed, '--yes', '--journal', journal], {timeoutMs: 180_000})
  if (process.env.SLOTCTL_TEST_DEBUG) process.stderr.write(`[debug] resume: ${resumed.exitCode} ${resumed.stderr}\n[debug] fix: ${fixed.exitCode} ${fixed.stdout}\n${fixed.stderr}\n`)
  expect(fixed.stderr).not.to.match(/at .*\.js:\d+/)
}

describe('faults during moves, with a live writer: no key and no acknowledged write is lost', function () {
  this.timeout(400_000)
  let dir: string
  let cluster: TestCluster | undefined

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-faults-'))
  })
  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })
  afterEach(async () => {
    for (const server of cluster?.servers ?? []) {
      try {
        process.kill(server.pid, 'SIGCONT')
      } catch {
        // already gone
      }
    }
    await cluster?.stop()
    cluster = undefined
  })

  const faults: Fault[] = ['kill-target', 'kill-source', 'stop-source', 'failover-target-shard', 'failover-source-shard', 'kill-slotctl']
  for (const fault of faults) {
    // Valkey >= 8: a target killed while it claims slots lost keys here until the target
    // claimed them before handing SETSLOT NODE to its replicas (slot-protocol.ts, claimThenHandDown)
    it(fault, async function () {
      cluster = await TestCluster.start({masters: 3, nodeTimeoutMs: 2000, replicas: 1})
      const nodes = await layout(cluster)
      const expected = await writeKeys(cluster)
      const writerKeys = Array.from({length: 300}, (_, i) => `w:${i}:{${tagForSlot((i * 11) % SLOTS)}}`)
      const writer = startRecordingWriter(cluster.addresses, writerKeys, {maxMs: 300_000})
      const journal = path.join(dir, `${fault}.journal`)
      const run = spawnCli(['reshard', nodes.source, '--from', nodes.sourceId, '--to', nodes.targetId, '--slot-range', `0-${SLOTS - 1}`, '--yes', '--journal', journal, '--max-keys-per-sec', '1000', '--replica-wait', '5s'])
      await waitForJournalLines(journal, 4)
      const unfit = await injectFault(cluster, fault, nodes, run)
      const result = await run
      expect(String(result.stderr)).not.to.match(/at .*\.js:\d+/)
      const seed = await liveSeed(cluster, unfit)
      // what an operator sees settle before acting; fix copes with what has not
      await waitUntil('cluster_state:ok', async () => parseInfo(String(await cluster!.client(seed).call('CLUSTER', 'INFO'))).cluster_state === 'ok', 30_000).catch(() => undefined)
      if (process.env.SLOTCTL_TEST_DEBUG) process.stderr.write(`[debug] run: exit ${result.exitCode}\n${result.stderr}\n`)
      await followHints(seed, journal)
      // fix's own check ran; clients read once the cluster says it serves every slot again
      await waitUntil('cluster_state:ok after fix', async () => parseInfo(String(await cluster!.client(seed).call('CLUSTER', 'INFO'))).cluster_state === 'ok', 30_000)
      await writer.stop()
      await waitForOneView(cluster)
      await expectAllKeys(cluster, expected)
      await expectAcknowledgedWrites(cluster, writer)
    })
  }
})
