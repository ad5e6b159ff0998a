/**
 * Big keys, before they hurt: found before anything moves (also in --dry-run and the plan
 * file), refused when moving one would block its master longer than half of
 * cluster-node-timeout, moved alone with --allow-big-keys. The first part lowers the assumed
 * MIGRATE rate so that keys of a few MB count as "big"; the second builds real keys of 1-2M
 * elements, which the default estimate must refuse under a 2000 ms node timeout (a 96 MiB
 * hash of 1.5M fields once blocked its master for 3 s, estimated at 961 ms by its bytes).
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import type {Redis} from 'ioredis'

import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {keySlot} from '../../src/lib/core/slots.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'
import {readPlanFile} from '../../src/lib/plan/plan-file.js'

describe('big keys (real servers, lowered node timeout)', () => {
  let cluster: TestCluster
  let dir: string
  let original: {digest: string; keys: number}
  let owner: ClusterNode
  let target: ClusterNode
  // three big values in one slot range: a hash, a list and a sorted set of about 3-6 MB each
  const bigKeys = ['{big}:hash', '{big}:list', '{big}:zset']
  const slot = keySlot(Buffer.from('{big}'))
  // at an assumed 1 MB/s, a 2 MB key blocks about 2 s; the limit is half of a 2000 ms node timeout
  const estimate = ['--big-key-bytes', '1mb', '--assumed-migrate-rate', '1mb']

  before(async function () {
    this.timeout(300_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bigkeys-'))
    cluster = await TestCluster.start({masters: 3, nodeTimeoutMs: 2000, replicas: 0})
    const writer = cluster.clusterClient()
    await writeDataset(writer, {keys: 5000})
    for (let start = 0; start < 60_000; start += 5000) {
      const fields: Record<string, string> = {}
      const members: Array<number | string> = []
      const items: string[] = []
      for (let i = start; i < start + 5000; i++) {
        fields[`field:${i}`] = `value-${i}-${'x'.repeat(20)}`
        members.push(i, `member:${i}:${'y'.repeat(20)}`)
        items.push(`item:${i}:${'z'.repeat(20)}`)
      }
      await writer.hset(bigKeys[0], fields)
      await writer.rpush(bigKeys[1], ...items)
      await writer.zadd(bigKeys[2], ...members)
    }
    original = await clusterDigest(cluster)
    const masters = mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))
    owner = masters.find((node) => node.slots.some(([start, end]) => slot >= start && slot <= end))!
    target = masters.find((node) => node.id !== owner.id)!
  })

  after(async () => {
    await cluster?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  const range = () => `${slot - 10}-${slot + 10}`

  it('--dry-run lists them with size and estimate, and the plan file keeps them', async function () {
    this.timeout(120_000)
    const planFile = path.join(dir, 'plan.json')
    const dry = await runCli(['reshard', cluster.seed, '--to', target.id, '--slot-range', range(), ...estimate, '--legacy-migrate', '--dry-run', '--out', planFile])
    expect(dry.exitCode, dry.stderr).to.equal(0)
    for (const key of bigKeys) expect(dry.stderr).to.match(new RegExp(`big key: \\{big\\}:${key.split(':')[1]} in slot ${slot} \\((hash|list|zset) of 60000 element\\(s\\), \\d+(\\.\\d)? MiB, about \\d`))
    expect(dry.stderr, dry.stderr).to.match(/the run would refuse: 3 key\(s\) would block their master longer than half of cluster-node-timeout/)
    const plan = readPlanFile(planFile)
    expect(plan.bigKeys?.map((key) => key.key).sort()).to.deep.equal([...bigKeys].sort())
    expect(plan.bigKeys?.every((key) => key.blockLimitMs === 1000 && key.estimatedBlockMs > 1000 && key.bytes > 1_048_576 && key.elements === 60_000)).to.equal(true)
  })

  it('a run is refused before anything moves, naming the keys', async function () {
    this.timeout(120_000)
    const before = String(await cluster.client().call('CLUSTER', 'SLOTS'))
    const refused = await runCli(['reshard', cluster.seed, '--to', target.id, '--slot-range', range(), ...estimate, '--legacy-migrate', '--yes', '--journal', path.join(dir, 'refused.jsonl')])
    expectOneCleanLine(refused, 1, /refusing to move slots: 3 key\(s\) would block their master longer than half of cluster-node-timeout while MIGRATE moves them: \{big\}:/)
    expect(String(await cluster.client().call('CLUSTER', 'SLOTS'))).to.equal(before)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('--allow-big-keys moves each alone with its own timeout, and every value arrives intact', async function () {
    this.timeout(120_000)
    const moved = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--to', target.id, '--slot-range', `${slot}-${slot + 10}`, ...estimate, '--allow-big-keys', '--legacy-migrate', '--yes', '--journal', path.join(dir, 'allowed.jsonl')])
    expect(moved.exitCode, moved.stdout).to.equal(0)
    expect(moved.json.slotsMoved).to.equal(11)
    const owners = mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))
    expect(owners.find((node) => node.id === target.id)!.slots.some(([start, end]) => slot >= start && slot <= end)).to.equal(true)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('keys that move within the limit are listed, not refused (at the default 100 MB/s they take milliseconds)', async function () {
    this.timeout(120_000)
    const back = await runCli(['reshard', cluster.seed, '--to', owner.id, '--slot-range', String(slot), '--big-key-bytes', '1mb', '--legacy-migrate', '--yes', '--journal', path.join(dir, 'back.jsonl')])
    expect(back.exitCode, back.stderr).to.equal(0)
    expect(back.stderr).to.match(/big key: \{big\}:/)
    expect(back.stderr).to.not.match(/would block/)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })
})

describe('big keys of 1-2M elements (real servers, 2000 ms node timeout, default estimate)', () => {
  let cluster: TestCluster
  let dir: string
  let owner: ClusterNode
  let target: ClusterNode
  const tag = '{huge}'
  const slot = keySlot(Buffer.from(tag))
  // 1-1.5M elements each, built server-side in pieces short enough not to block the node for long
  const specs = [
    {elements: 1_000_000, key: `${tag}:hash`, length: 'HLEN', type: 'hash', write: "redis.call('HSET', KEYS[1], 'field:' .. i, 'value-' .. i .. '-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')"},
    {elements: 1_500_000, key: `${tag}:list`, length: 'LLEN', type: 'list', write: "redis.call('RPUSH', KEYS[1], 'item:' .. i .. ':zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz')"},
    {elements: 1_000_000, key: `${tag}:set`, length: 'SCARD', type: 'set', write: "redis.call('SADD', KEYS[1], 'member:' .. i)"},
    {elements: 1_000_000, key: `${tag}:zset`, length: 'ZCARD', type: 'zset', write: "redis.call('ZADD', KEYS[1], i, 'member:' .. i)"},
  ]
  // one script call per piece, never pipelined: the node answers its cluster bus in between
  const PIECE = 5000

  async function lengths(): Promise<number[]> {
    const client = cluster.client(owner.address)
    return Promise.all(specs.map(async ({key, length}) => Number(await client.call(length, key))))
  }

  /** Every node sees cluster_state:ok (within 30 s: a busy machine may delay a ping). */
  async function expectClusterOk(): Promise<void> {
    const deadline = Date.now() + 30_000
    for (const address of cluster.addresses) {
      let info = ''
      while (!(info = String(await cluster.client(address).call('CLUSTER', 'INFO'))).includes('cluster_state:ok') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200))
      expect(info, address).to.match(/cluster_state:ok/)
    }
  }

  /** Every node: cluster_state ok, no slot migrating or importing, the same slot map as before. */
  async function expectUntouched(slotsBefore: string): Promise<void> {
    await expectClusterOk()
    for (const address of cluster.addresses) expect(String(await cluster.client(address).call('CLUSTER', 'NODES')), address).to.not.match(/\[\d+-[<>]-/)
    expect(JSON.stringify(await cluster.client().call('CLUSTER', 'SLOTS'))).to.equal(slotsBefore)
    expect(await lengths()).to.deep.equal(specs.map(({elements}) => elements))
  }

  /** A refused script did not run (CLUSTERDOWN while a busy machine delays pings): it is sent again, for at most 30 s. */
  async function writePiece(client: Redis, script: string, key: string, first: number, last: number): Promise<void> {
    const deadline = Date.now() + 30_000
    for (;;) {
      const error = await client.eval(script, 1, key, first, last).then(() => undefined, (error_: Error) => error_)
      if (!error) return
      if (!/^CLUSTERDOWN/.test(error.message) || Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }

  before(async function () {
    this.timeout(300_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-hugekeys-'))
    cluster = await TestCluster.start({masters: 3, nodeTimeoutMs: 2000, replicas: 0})
    await writeDataset(cluster.clusterClient(), {keys: 2000})
    const masters = mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))
    owner = masters.find((node) => node.slots.some(([start, end]) => slot >= start && slot <= end))!
    target = masters.find((node) => node.id !== owner.id)!
    const client = cluster.client(owner.address)
    for (const {elements, key, write} of specs) {
      const script = `for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do ${write} end`
      for (let start = 0; start < elements; start += PIECE) await writePiece(client, script, key, start, Math.min(elements, start + PIECE) - 1)
    }
    expect(await lengths()).to.deep.equal(specs.map(({elements}) => elements))
    await expectClusterOk()
  })

  after(async () => {
    await cluster?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('--dry-run finds each, with its type and element count, estimated above half the node timeout (some below --big-key-bytes)', async function () {
    this.timeout(120_000)
    const planFile = path.join(dir, 'plan.json')
    const dry = await runCli(['reshard', cluster.seed, '--to', target.id, '--slot-range', `${slot}-${slot + 2}`, '--legacy-migrate', '--dry-run', '--out', planFile])
    expect(dry.exitCode, dry.stderr).to.equal(0)
    expect(dry.stderr, dry.stderr).to.match(/the run would refuse: 4 key\(s\) would block their master longer than half of cluster-node-timeout/)
    const plan = readPlanFile(planFile)
    const found = new Map(plan.bigKeys?.map((key) => [key.key, key]))
    for (const spec of specs) {
      const big = found.get(spec.key)
      expect(big, spec.key).to.include({blockLimitMs: 1000, elements: spec.elements, slot, type: spec.type})
      expect(big!.estimatedBlockMs, spec.key).to.be.above(1000)
    }
    // the set weighs less than the 64 MiB of --big-key-bytes: found by what it costs, not by its size
    expect(found.get(`${tag}:set`)!.bytes).to.be.below(64 * 1024 * 1024)
  })

  it('a run is refused before anything moves: no slot opened, every key at its source, no CLUSTERDOWN', async function () {
    this.timeout(120_000)
    const slotsBefore = JSON.stringify(await cluster.client().call('CLUSTER', 'SLOTS'))
    const refused = await runCli(['reshard', cluster.seed, '--to', target.id, '--slot-range', `${slot}-${slot + 2}`, '--legacy-migrate', '--yes', '--journal', path.join(dir, 'refused.jsonl')])
    expectOneCleanLine(refused, 1, /refusing to move slots: 4 key\(s\) would block their master longer than half of cluster-node-timeout while MIGRATE moves them: \{huge\}:\w+ in slot \d+ \((hash|list|set|zset) of \d+ element\(s\), .*; nothing was changed/)
    await expectUntouched(slotsBefore)
  })

  it('a rebalance that would move the slot is refused the same way', async function () {
    this.timeout(120_000)
    const slotsBefore = JSON.stringify(await cluster.client().call('CLUSTER', 'SLOTS'))
    // weight 0 drains the owner: its {huge} slot is among the moved ones
    const refused = await runCli(['rebalance', cluster.seed, '--weight', `${owner.id}=0`, '--legacy-migrate', '--yes', '--journal', path.join(dir, 'rebalance.jsonl')])
    expect(refused.exitCode, refused.stderr).to.equal(1)
    expect(refused.stderr).to.match(/refusing to move slots: \d+ key\(s\) would block their master/)
    await expectUntouched(slotsBefore)
  })
})
