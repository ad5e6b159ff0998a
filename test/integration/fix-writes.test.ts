/**
 * fix must not lose a key it moves, nor a write a client saw acknowledged while it runs
 * (issues 18 and 25): a slot that fails half-way stays reachable and survives a restart;
 * an owner keeps no write fix did not count; a migration refuses to start while keys sit on
 * a node that neither owns nor imports their slot.
 */
import {expect} from 'chai'
import type {Redis} from 'ioredis'

import type {CheckResult} from '../../src/commands/check.js'
import type {FixResult} from '../../src/commands/fix.js'
import {keySlot} from '../../src/lib/core/slots.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {AckedWriter} from '../helpers/acked-writer.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCli, runCliJson, spawnCli} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

const delay = (ms: number) =>
  new Promise((resolve) => {
    setTimeout(resolve, ms)
  })

async function mastersOfCluster(cluster: TestCluster): Promise<ClusterNode[]> {
  return mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))
}

function ownerOf(masters: readonly ClusterNode[], slot: number): ClusterNode {
  return masters.find((master) => master.slots.some(([start, end]) => slot >= start && slot <= end))!
}

async function ownView(client: Redis): Promise<ClusterNode> {
  return parseClusterNodes(String(await client.call('CLUSTER', 'NODES'))).find((node) => node.myself)!
}

async function keysIn(client: Redis, slot: number): Promise<number> {
  return Number(await client.call('CLUSTER', 'COUNTKEYSINSLOT', slot))
}

/** Writes a key of `slot` on a node that does not own it (as a crash or a half-done repair leaves it). */
async function strayWrite(client: Redis, owner: ClusterNode, slot: number, key: string, value: string): Promise<void> {
  await client.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
  const replies = await client.pipeline().call('ASKING').set(key, value).exec()
  if (replies?.[1]?.[0]) throw replies[1][0]
  await client.call('CLUSTER', 'SETSLOT', slot, 'STABLE')
}

async function waitForClusterOk(cluster: TestCluster, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const states = await Promise.all(cluster.addresses.map(async (address) => String(await cluster.client(address).call('CLUSTER', 'INFO').catch(() => ''))))
    if (states.every((info) => /cluster_state:ok/.test(info))) return
    await delay(100)
  }
  throw new Error('the cluster did not report cluster_state:ok')
}

async function expectCheckClean(seed: string): Promise<void> {
  const {json} = await runCliJson<CheckResult>(['check', seed, '--search-multiple-owners'])
  expect(json.errors, JSON.stringify(json.errors)).to.deep.equal([])
}

describe('fix keeps every key it moves and every acknowledged write', () => {
  it('a key conflict half-way through a roll-forward leaves the slot open and every key reachable, also after a restart of the target', async function () {
    this.timeout(180_000)
    // the target must keep its data over a restart: append-only file, fsync always
    const cluster = await TestCluster.start({extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always'], masters: 3, replicas: 0})
    try {
      await writeDataset(cluster.clusterClient(), {keys: 2000})
      const slot = keySlot('{rollback}')
      const masters = await mastersOfCluster(cluster)
      const owner = ownerOf(masters, slot)
      const target = masters.find((master) => master.id !== owner.id)!
      const names = Array.from({length: 10}, (_, i) => `{rollback}:${i}`)
      for (const [i, name] of names.entries()) await cluster.client(owner.address).set(name, `owner-${i}`)
      // the target holds a key of its own and a different copy of the last one: the move stops there
      await strayWrite(cluster.client(target.address), owner, slot, '{rollback}:target-only', 'target')
      await strayWrite(cluster.client(target.address), owner, slot, names[9], 'target-copy')
      await cluster.client(owner.address).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
      const before = await clusterDigest(cluster)

      const failed = await runCliJson<FixResult>(['fix', cluster.seed, '--yes'])
      expect(failed.exitCode, failed.stderr).to.equal(1)
      expect(failed.json.fixes[0]).to.include({action: 'roll-forward', targetId: target.id})
      expect(failed.json.errors.filter((error) => error.code === 'E_FIX_FAILED').map((error) => error.message).join()).to.match(/different values/)
      // the keys that moved are counted as moved, not "0"
      expect(failed.json.keysMoved).to.be.greaterThan(0)
      // the target keeps importing the keys it took: without the marker they are unreachable
      // (ASK at the owner, MOVED at the target) and deleted when it restarts
      expect((await ownView(cluster.client(target.address))).importing[slot]).to.equal(owner.id)
      expect(await keysIn(cluster.client(target.address), slot)).to.equal(2 + failed.json.keysMoved)

      const expectEveryKeyReachable = async () => {
        const client = cluster.clusterClient()
        for (const [i, name] of names.entries()) expect(await client.get(name), name).to.equal(`owner-${i}`)
        expect(await client.get('{rollback}:target-only')).to.equal('target')
        expect(await clusterDigest(cluster)).to.deep.equal(before)
      }
      await expectEveryKeyReachable()
      cluster.kill(target.address)
      await cluster.restart(target.address)
      await waitForClusterOk(cluster)
      await expectEveryKeyReachable()

      // --replace finishes it: the moved copy wins, nothing else changes
      const finished = await runCliJson<FixResult>(['fix', cluster.seed, '--yes', '--replace'])
      expect(finished.exitCode, finished.stderr).to.equal(0)
      expect(ownerOf(await mastersOfCluster(cluster), slot).id).to.equal(target.id)
      const client = cluster.clusterClient()
      for (const [i, name] of names.entries()) expect(await client.get(name), name).to.equal(`owner-${i}`)
      expect(await client.get('{rollback}:target-only')).to.equal('target')
      expect(await keysIn(cluster.client(owner.address), slot)).to.equal(0)
      expect((await clusterDigest(cluster)).keys).to.equal(before.keys - 1)
      await expectCheckClean(cluster.seed)
    } finally {
      await cluster.stop()
    }
  })

  it('importing-only slots with a client writing during fix: the owner is marked migrating before its keys are counted, no acknowledged write is lost', async function () {
    this.timeout(180_000)
    const cluster = await TestCluster.start({masters: 3, replicas: 0})
    try {
      await writeDataset(cluster.clusterClient(), {keys: 6000})
      const masters = await mastersOfCluster(cluster)
      const [owner, target] = masters.filter((master) => master.address !== cluster.seed)
      const ownerClient = cluster.client(owner.address)
      const targetClient = cluster.client(target.address)
      // 100 slots whose keys all moved to the target, which imports them; the owner no longer
      // migrates them (its SETSLOT MIGRATING is lost, as after a failover on Redis 7)
      const slots: number[] = []
      for (let slot = owner.slots[0][0]; slots.length < 100; slot++) if ((await keysIn(ownerClient, slot)) > 0) slots.push(slot)
      for (const slot of slots) {
        await targetClient.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
        await ownerClient.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
        const keys = (await ownerClient.callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, 1000)) as Buffer[]
        await ownerClient.callBuffer('MIGRATE', target.host, target.port, '', 0, 5000, 'KEYS', ...keys)
        await ownerClient.call('CLUSTER', 'SETSLOT', slot, 'STABLE')
      }
      const before = await clusterDigest(cluster)

      // The writer starts once fix has counted the keys (its plan is printed), and the target
      // sleeps for half a second then: new keys reach the owner between fix's count and the
      // close of the slots (the writer's client knows the slot map already).
      // (each key is written once, so a write stranded where no client reads it shows as lost)
      const writerClient = cluster.clusterClient()
      await writerClient.get('warm-up')
      const writer = new AckedWriter(writerClient, {keys: 6000, lanes: 8, maxMs: 30_000, maxWrites: 6000, pauseMs: 2, slots})
      const child = spawnCli(['fix', cluster.seed, '--yes'])
      let started = false
      child.stdout?.on('data', () => {
        if (!started) {
          started = true
          void targetClient.call('DEBUG', 'SLEEP', '0.5')
          writer.start()
        }
      })
      const run = await child
      await delay(500)
      await writer.stop()
      expect(started, String(run.stdout)).to.equal(true)
      expect(run.exitCode, `${run.stdout}\n${run.stderr}`).to.equal(0)
      expect(String(run.stdout)).to.match(/\[OK\] check after fixing/)
      expect(writer.acknowledged).to.be.greaterThan(1000)
      const reader = cluster.clusterClient()
      expect(await writer.lostWrites(reader)).to.deep.equal([])
      for (const slot of slots) expect(await keysIn(ownerClient, slot), `slot ${slot} at the former owner`).to.equal(0)
      await expectCheckClean(cluster.seed)
      await writer.cleanUp(reader)
      expect(await clusterDigest(cluster)).to.deep.equal(before)
    } finally {
      await cluster.stop()
    }
  })

  it('open migrations that never got going, with a client writing during fix: keys sent on to the target with ASK come back, the close-back strands none', async function () {
    this.timeout(180_000)
    const cluster = await TestCluster.start({masters: 3, replicas: 0})
    try {
      await writeDataset(cluster.clusterClient(), {keys: 6000})
      const masters = await mastersOfCluster(cluster)
      const [owner, target] = masters.filter((master) => master.address !== cluster.seed)
      const third = masters.find((master) => master.address === cluster.seed)!
      const ownerClient = cluster.client(owner.address)
      const targetClient = cluster.client(target.address)
      // 100 slots opened from the owner to the target, no key moved yet: fix closes them back
      const slots: number[] = []
      for (let slot = owner.slots[0][0]; slots.length < 100; slot++) if ((await keysIn(ownerClient, slot)) > 0) slots.push(slot)
      for (const slot of slots) {
        await targetClient.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
        await ownerClient.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
      }
      const before = await clusterDigest(cluster)

      // New keys are sent on to the target (ASK) and acknowledged there after fix counted it
      // empty: the writer starts with fix's plan, and the third master sleeps for half a second
      // then, which holds fix (it reads every master) while the writes arrive.
      // (each key is written once, so a write stranded where no client reads it shows as lost)
      const writerClient = cluster.clusterClient()
      await writerClient.get('warm-up')
      const writer = new AckedWriter(writerClient, {keys: 6000, lanes: 8, maxMs: 30_000, maxWrites: 6000, pauseMs: 2, prefix: 'back', slots})
      const child = spawnCli(['fix', cluster.seed, '--yes'])
      let started = false
      child.stdout?.on('data', () => {
        if (!started) {
          started = true
          void cluster.client(third.address).call('DEBUG', 'SLEEP', '0.5')
          writer.start()
        }
      })
      const run = await child
      await delay(500)
      await writer.stop()
      expect(run.exitCode, `${run.stdout}\n${run.stderr}`).to.equal(0)
      expect(String(run.stdout)).to.match(/close-back/)
      expect(writer.acknowledged).to.be.greaterThan(1000)
      const reader = cluster.clusterClient()
      expect(await writer.lostWrites(reader)).to.deep.equal([])
      const after = await mastersOfCluster(cluster)
      for (const slot of slots) {
        expect(ownerOf(after, slot).id, `slot ${slot}`).to.equal(owner.id)
        expect(await keysIn(targetClient, slot), `slot ${slot} at the target`).to.equal(0)
      }
      await expectCheckClean(cluster.seed)
      await writer.cleanUp(reader)
      expect(await clusterDigest(cluster)).to.deep.equal(before)
    } finally {
      await cluster.stop()
    }
  })

  it('a migration refuses to start while a master holds keys of a slot it neither owns nor imports; after fix it runs', async function () {
    this.timeout(180_000)
    const cluster = await TestCluster.start({masters: 3, replicas: 0})
    try {
      await writeDataset(cluster.clusterClient(), {keys: 3000})
      const masters = await mastersOfCluster(cluster)
      const [owner, stranger, receiver] = masters
      const slot = owner.slots[0][0] + 5
      let name = ''
      for (let i = 0; keySlot(name) !== slot; i++) name = `stray:${i}`
      await strayWrite(cluster.client(stranger.address), owner, slot, name, 'acknowledged-on-the-wrong-node')
      const before = await clusterDigest(cluster)

      // check finds it without --search-multiple-owners
      const check = await runCliJson<CheckResult>(['check', cluster.seed])
      expect(check.exitCode).to.equal(3)
      expect(check.json.errors.map((error) => error.code)).to.include('MULTIPLE_OWNERS')
      for (const args of [['reshard', cluster.seed, '--from', owner.id, '--to', receiver.id, '--slots', '20', '--yes'], ['rebalance', cluster.seed, '--weight', `${receiver.id}=3`, '--yes']]) {
        const refused = await runCli(args)
        expect(refused.exitCode, `${args[0]}: ${refused.stderr}`).to.equal(1)
        expect(refused.stderr).to.match(new RegExp(`refusing to move slots: slot ${slot} has keys on ${stranger.address}, which do not own it`))
        expect(refused.stderr).to.not.match(/\n\s+at /)
      }
      expect(await clusterDigest(cluster)).to.deep.equal(before)
      expect(await keysIn(cluster.client(stranger.address), slot)).to.equal(1)

      const fixed = await runCliJson<FixResult>(['fix', cluster.seed, '--yes', '--search-multiple-owners'])
      expect(fixed.exitCode, fixed.stderr).to.equal(0)
      expect(await cluster.clusterClient().get(name)).to.equal('acknowledged-on-the-wrong-node')
      const moved = await runCli(['reshard', cluster.seed, '--from', owner.id, '--to', receiver.id, '--slots', '20', '--yes'])
      expect(moved.exitCode, moved.stderr).to.equal(0)
      await expectCheckClean(cluster.seed)
      expect(await clusterDigest(cluster)).to.deep.equal(before)
    } finally {
      await cluster.stop()
    }
  })
})
