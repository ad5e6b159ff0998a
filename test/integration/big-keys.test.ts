/**
 * Big keys, before they hurt: found before anything moves (also in --dry-run and the plan
 * file), refused when moving one would block its master longer than half of
 * cluster-node-timeout, moved alone with --allow-big-keys. The estimate uses an assumed
 * MIGRATE rate; the test lowers it so that keys of a few MB count as "big".
 */
import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {keySlot} from '../../src/lib/cluster/slots.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import type {MigrationPlan} from '../../src/lib/plan/types.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

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
    for (const key of bigKeys) expect(dry.stderr).to.match(new RegExp(`big key: \\{big\\}:${key.split(':')[1]} in slot ${slot} \\(\\d+(\\.\\d)? MiB, about \\d`))
    expect(dry.stderr, dry.stderr).to.match(/the run would refuse: 3 key\(s\) would block their master longer than half of cluster-node-timeout/)
    const plan = JSON.parse(readFileSync(planFile, 'utf8')) as MigrationPlan
    expect(plan.bigKeys?.map((key) => key.key).sort()).to.deep.equal([...bigKeys].sort())
    expect(plan.bigKeys?.every((key) => key.blockLimitMs === 1000 && key.estimatedBlockMs > 1000 && key.bytes > 1_048_576)).to.equal(true)
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
