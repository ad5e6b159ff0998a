import {rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import type {Redis} from 'ioredis'

import {readNodeState} from '../../src/lib/cluster/loader.js'
import {NodePool} from '../../src/lib/cluster/connection.js'
import type {RebalanceCommandResult} from '../../src/commands/rebalance.js'
import {keySlot} from '../../src/lib/core/slots.js'
import {waitUntil} from '../../src/lib/cluster/wait.js'
import {type ClusterNode, mastersOf, parseClusterNodes, slotCount, slotMapSignature} from '../../src/lib/cluster/topology.js'
import {runCli, runCliJson, spawnCli} from '../helpers/cli.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'
import {readPlanFile} from '../../src/lib/plan/plan-file.js'

const BASE_KEYS = 24_000

/**
 * The slot map as one node sees it. A drained master turns into a replica and reloads its
 * data (Redis 8 answers LOADING meanwhile): the next node is asked then.
 */
async function nodesOf(cluster: TestCluster): Promise<ClusterNode[]> {
  const pool = new NodePool()
  try {
    let lastError: unknown
    for (const address of cluster.addresses) {
      try {
        return (await readNodeState(await pool.client(address), address)).nodes
      } catch (error) {
        if (!/LOADING/.test(String(error))) throw error
        lastError = error
      }
    }
    throw lastError
  } finally {
    await pool.closeAll()
  }
}

async function ownerClients(cluster: TestCluster, addresses: string[]): Promise<{clientOf: (key: Buffer | string) => Redis; masters: string[]}> {
  const nodes = await nodesOf(cluster)
  const owner = new Map<number, string>()
  for (const node of mastersOf(nodes)) for (const [a, b] of node.slots) for (let s = a; s <= b; s++) owner.set(s, node.id)
  const byId = new Map(nodes.map((node) => [node.id, addresses.find((address) => address.endsWith(`:${node.port}`))!]))
  const clients = new Map<string, Redis>()
  const clientOf = (key: Buffer | string) => {
    const address = byId.get(owner.get(keySlot(key))!)!
    if (!clients.has(address)) clients.set(address, cluster.client(address))
    return clients.get(address)!
  }
  return {clientOf, masters: mastersOf(nodes).filter((n) => n.slots.length > 0).map((n) => byId.get(n.id)!)}
}

/** Writes string keys straight to the masters that own them, pipelined. */
async function writeKeys(cluster: TestCluster, addresses: string[], names: Array<Buffer | string>, value: (i: number) => string): Promise<void> {
  const {clientOf} = await ownerClients(cluster, addresses)
  for (let first = 0; first < names.length; first += 2000) {
    const pipelines = new Map<Redis, ReturnType<Redis['pipeline']>>()
    for (let i = first; i < Math.min(names.length, first + 2000); i++) {
      const client = clientOf(names[i])
      if (!pipelines.has(client)) pipelines.set(client, client.pipeline())
      pipelines.get(client)!.set(names[i], value(i))
    }
    await Promise.all([...pipelines.values()].map((p) => p.exec()))
  }
}

/**
 * Redis 7 turns a master whose last slot left into a replica of the receiving master; until
 * the seed sees that, a digest would count the replica's copy as a master's data.
 */
async function waitUntilDrainedSettles(cluster: TestCluster, addresses: string[], id: string): Promise<void> {
  const port = (await nodesOf(cluster)).find((node) => node.id === id)!.port
  const own = cluster.client(addresses.find((address) => address.endsWith(`:${port}`))!)
  await waitUntil(`${id.slice(0, 8)} is seen as a replica or holds no keys`, 20_000, async () => {
    if ((await nodesOf(cluster)).find((node) => node.id === id)!.role === 'replica') return {done: true}
    const role = String(((await own.call('ROLE')) as unknown[])[0])
    return {done: role === 'master' && Number(await own.dbsize()) === 0, lagging: `its role is ${role}`}
  })
}

function slotCounts(nodes: ClusterNode[]): number[] {
  return mastersOf(nodes)
    .filter((node) => node.slots.length > 0)
    .map((node) => slotCount(node))
    .sort((a, b) => a - b)
}

describe('rebalance (real servers)', function () {
  this.timeout(180_000)
  let cluster: TestCluster
  let spare: TestCluster
  let all: string[]
  let newId: string
  let original: {digest: string; keys: number}

  before(async () => {
    ;[cluster, spare] = await Promise.all([TestCluster.start({masters: 3, replicas: 0}), TestCluster.start({form: false, nodes: 1})])
    all = [...cluster.addresses, ...spare.addresses]
    // every type, binary names, hash tags and a big hash (the large data-safety run is reshard's)
    await writeDataset(cluster.clusterClient(), {bigHashFields: 20_000, keys: BASE_KEYS})
    original = await clusterDigest(cluster)
    const added = await runCli(['add-node', spare.seed, cluster.seed])
    expect(added.exitCode, added.stderr).to.equal(0)
    newId = String(await spare.client(spare.seed).call('CLUSTER', 'MYID'))
  })

  after(async () => {
    await Promise.all([cluster?.stop(), spare?.stop()])
  })

  it('rejects bad input with one line and exit 2', async () => {
    for (const args of [
      ['--weight', 'ffffff=1'],
      ['--weight', `${newId.slice(0, 10)}=-1`],
      ['--threshold', '-1'],
    ]) {
      const result = await runCli(['rebalance', cluster.seed, ...args, '--yes'])
      expect(result.exitCode, `${args.join(' ')}: ${result.stderr}`).to.equal(2)
      expect(result.stderr.trim().split('\n')[0]).to.match(/^slotctl: error: /)
      expect(result.stderr).to.not.match(/at .*\.ts:\d+/)
    }
  })

  it('leaves the empty master out without --use-empty-masters and reports balanced', async () => {
    const result = await runCliJson<RebalanceCommandResult>(['rebalance', cluster.seed])
    expect(result.exitCode, result.stderr).to.equal(0)
    expect(result.json.status).to.equal('balanced')
    expect(result.json.nodes.find((node) => node.id === newId)!.participating).to.equal(false)
    // and says what would include it
    expect(result.json.warnings.map((warning) => warning.code)).to.deep.equal(['EMPTY_MASTERS_SKIPPED'])
    const human = await runCli(['rebalance', cluster.seed])
    expect(human.stderr).to.match(new RegExp(`1 master\\(s\\) without slots take no part \\(${spare.seed}\\): --use-empty-masters would give them their share`))
  })

  it('--dry-run shows the new master receiving 4096 slots (0 → 4096), and the others off by +1365 against their target', async () => {
    const human = await runCli(['rebalance', cluster.seed, '--use-empty-masters', '--dry-run'])
    expect(human.exitCode, human.stderr).to.equal(0)
    const row = (address: string) => human.stdout.split('\n').find((line) => line.includes(`│ ${address} `))!
    expect(row(spare.seed)).to.match(/│ +0 → 4096 │ +-4096 \(-100\.0%\) │$/)
    for (const address of cluster.addresses) expect(row(address)).to.match(/│ +546[12] → 4096 │ +\+136[56] \(\+33\.3%\) │$/)
    const {json} = await runCliJson<RebalanceCommandResult>(['rebalance', cluster.seed, '--use-empty-masters', '--dry-run'])
    const receiver = json.nodes.find((node) => node.id === newId)!
    expect(receiver).to.include({offBy: -4096, offByPct: -100, slotsAfter: 4096, slotsBefore: 0, target: 4096})
    expect(json.nodes.reduce((sum, node) => sum + node.slotsAfter, 0)).to.equal(16_384)
    expect(json.nodes.map((node) => node.address)).to.deep.equal([...all].sort((a, b) => a.localeCompare(b, 'en', {numeric: true})))
    expect(json.moves).to.deep.equal(json.moves.map((pair) => ({...pair, targetAddress: spare.seed, targetId: newId})))
    expect(json.moves.reduce((sum, pair) => sum + pair.slotCount, 0)).to.equal(4096)
  })

  it('--dry-run --out writes the 4096-slot plan and changes nothing', async () => {
    const out = path.join(tmpdir(), `slotctl-rebalance-plan-${process.pid}.json`)
    const signature = slotMapSignature(await nodesOf(cluster))
    try {
      const result = await runCli(['rebalance', cluster.seed, '--use-empty-masters', '--dry-run', '--out', out])
      expect(result.exitCode, result.stderr).to.equal(0)
      const plan = readPlanFile(out)
      expect(plan.kind).to.equal('rebalance')
      expect(plan.moves).to.have.length(4096)
      expect(plan.moves.every((move) => move.targetId === newId)).to.equal(true)
      expect(slotMapSignature(await nodesOf(cluster))).to.equal(signature)
      expect((await clusterDigest(cluster)).digest).to.equal(original.digest)
    } finally {
      await rm(out, {force: true})
    }
  })

  it('moves 4096 slots to the new master under client traffic: nothing lost, nothing failed', async () => {
    const client = cluster.clusterClient()
    const acknowledged = new Map<string, string>()
    const errors: string[] = []
    let stop = false
    const traffic = (async () => {
      for (let i = 0; !stop; i++) {
        const key = `traffic:${i}`
        try {
          await client.set(key, `t${i}`)
          acknowledged.set(key, `t${i}`)
          // writeDataset makes every 8th key a string str:N
          const probe = `str:${8 * (i % (BASE_KEYS / 8))}`
          if ((await client.get(probe)) === null) errors.push(`${probe} read as missing`)
        } catch (error) {
          errors.push((error as Error).message)
        }
      }
    })()
    let result
    try {
      result = await runCliJson(['rebalance', cluster.seed, '--use-empty-masters', '--yes'])
    } finally {
      stop = true
      await traffic
    }
    expect(result.exitCode, result.stderr).to.equal(0)
    expect(errors.slice(0, 5)).to.deep.equal([])
    expect(acknowledged.size).to.be.greaterThan(0)
    const values = await Promise.all([...acknowledged.keys()].map((key) => client.get(key)))
    expect(values).to.deep.equal([...acknowledged.values()])

    const nodes = await nodesOf(cluster)
    expect(slotCounts(nodes)).to.deep.equal([4096, 4096, 4096, 4096])
    const json = result.json as RebalanceCommandResult
    expect(json.nodes.find((node) => node.id === newId)).to.include({slotsAfter: 4096, slotsBefore: 0})
    expect(json).to.include({slotsMoved: 4096, status: 'done'})
    // the traffic keys came on top: count and digest the original keys only
    await Promise.all([...acknowledged.keys()].map((key) => client.del(key)))
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('a weight of 0 drains a master and keeps every key', async () => {
    const result = await runCliJson<RebalanceCommandResult>(['rebalance', cluster.seed, '--weight', `${newId.slice(0, 12)}=0`, '--yes'])
    expect(result.exitCode, result.stderr).to.equal(0)
    // emptied, it turned replica (the server's doing): the result says so
    const self = parseClusterNodes(String(await spare.client(spare.seed).call('CLUSTER', 'NODES'))).find((node) => node.myself)!
    expect(self.role).to.equal('replica')
    const turned = result.json.warnings.filter((warning) => warning.code === 'MASTER_TURNED_REPLICA')
    expect(turned.map((warning) => warning.message.split(' lost')[0])).to.deep.equal([`${spare.seed} (${newId.slice(0, 8)})`])
    const nodes = await nodesOf(cluster)
    expect(slotCount(nodes.find((node) => node.id === newId)!)).to.equal(0)
    const counts = slotCounts(nodes)
    expect(counts.reduce((a, b) => a + b, 0)).to.equal(16_384)
    expect(Math.max(...counts) - Math.min(...counts)).to.be.at.most(1)
    await waitUntilDrainedSettles(cluster, all, newId)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('--by keys evens out a skewed key distribution', async () => {
    // pile 9000 extra keys into 150 hash tags that all live on one master
    const {masters} = await ownerClients(cluster, all)
    const heavy = (await nodesOf(cluster)).find((node) => node.role === 'master' && node.slots.length > 0 && all.find((a) => a.endsWith(`:${node.port}`)) === masters[0])!
    const tags: string[] = []
    for (let t = 0; tags.length < 150; t++) {
      const slot = keySlot(`t${t}`)
      if (heavy.slots.some(([a, b]) => slot >= a && slot <= b)) tags.push(`t${t}`)
    }
    const names = Array.from({length: 9000}, (_, i) => `{${tags[i % tags.length]}}:skew:${i}`)
    await writeKeys(cluster, all, names, (i) => `s${i}`)
    const keysPerMaster = async () => {
      const {masters: now} = await ownerClients(cluster, all)
      return Promise.all(now.map(async (address) => Number(await cluster.client(address).dbsize())))
    }
    const spread = (values: number[]) => Math.max(...values) - Math.min(...values)
    const skewed = await keysPerMaster()
    const digest = await clusterDigest(cluster)

    const bySlots = await runCliJson<RebalanceCommandResult>(['rebalance', cluster.seed])
    expect(bySlots.json.status).to.equal('balanced')
    const result = await runCliJson<RebalanceCommandResult>(['rebalance', cluster.seed, '--by', 'keys', '--yes'])
    expect(result.exitCode, result.stderr).to.equal(0)
    expect(result.json.slotsToMove).to.be.greaterThan(0)
    const balanced = await keysPerMaster()
    expect(spread(balanced)).to.be.below(spread(skewed) / 4)
    expect(balanced.reduce((a, b) => a + b, 0)).to.equal(skewed.reduce((a, b) => a + b, 0))
    expect(await clusterDigest(cluster)).to.deep.equal(digest)
  })

  it('Ctrl-C in the middle exits 130 with no open slot, and --resume completes the rebalance', async () => {
    const digest = await clusterDigest(cluster)
    const masters = mastersOf(await nodesOf(cluster)).filter((node) => node.slots.length > 0)
    const victim = masters[0]
    const journal = path.join(tmpdir(), `slotctl-rebalance-journal-${process.pid}.jsonl`)
    try {
      // throttled so the run is still going when the signal comes
      const args = ['rebalance', cluster.seed, '--weight', `${victim.id}=0`, '--max-keys-per-sec', '2000', '--journal', journal, '--yes']
      const child = spawnCli(args)
      let stderr = ''
      await new Promise<void>((resolve) => {
        child.stderr!.on('data', (chunk) => {
          stderr += String(chunk)
          if (/journal:/.test(stderr)) setTimeout(resolve, 800)
        })
        void child.then(() => resolve())
      })
      child.kill('SIGINT')
      const interrupted = await child
      expect(interrupted.exitCode, String(interrupted.stderr)).to.equal(130)
      const midway = await nodesOf(cluster)
      expect(midway.some((node) => Object.keys(node.migrating).length + Object.keys(node.importing).length > 0)).to.equal(false)
      expect(slotCount(midway.find((node) => node.id === victim.id)!)).to.be.greaterThan(0)

      const resumed = await runCli(['rebalance', cluster.seed, '--resume', journal, '--yes'])
      expect(resumed.exitCode, resumed.stderr).to.equal(0)
      const after = await nodesOf(cluster)
      expect(slotCount(after.find((node) => node.id === victim.id)!)).to.equal(0)
      await waitUntilDrainedSettles(cluster, all, victim.id)
      expect(await clusterDigest(cluster)).to.deep.equal(digest)
    } finally {
      await rm(journal, {force: true})
    }
  })
})
