/**
 * import: a standalone server (100k keys of every type, TTLs, binary names, a big hash) into a
 * 3-master cluster, checked with a digest of every value (DEBUG DIGEST-VALUE, independent of
 * slotctl's own digest); conflicts with and without --replace; Ctrl-C and --resume; bad input.
 */
import {readFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import type {Redis} from 'ioredis'

import type {ImportResult} from '../../src/lib/transfer/import.js'
import {parseClusterNodes, parseInfo} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson, spawnCli} from '../helpers/cli.js'
import {clusterDigest, serversDigest, writeDataset} from '../helpers/dataset.js'
import {expectContract} from '../helpers/schema.js'
import {StandaloneServer} from '../helpers/standalone.js'

const KEYS = 100_000
const BIG_HASH_FIELDS = 50_000
const SECRET = 'import-source-secret-do-not-print'

/** Keys with a TTL, from INFO keyspace of each client's db 0. */
async function keysWithExpiry(clients: Redis[]): Promise<number> {
  let total = 0
  for (const client of clients) total += Number(/expires=(\d+)/.exec(parseInfo(String(await client.info('keyspace'))).db0 ?? '')?.[1] ?? 0)
  return total
}

/** Gives every 10th key a TTL of 2000-3000 s, whatever its type and name. */
async function addTtls(client: Redis): Promise<Buffer[]> {
  const chosen: Buffer[] = []
  let cursor = '0'
  let seen = 0
  do {
    const [next, keys] = (await client.callBuffer('SCAN', cursor, 'COUNT', 1000)) as [Buffer, Buffer[]]
    cursor = next.toString()
    const pipeline = client.pipeline()
    for (const key of keys) {
      if (seen++ % 10 !== 0) continue
      chosen.push(key)
      pipeline.pexpire(key, 2_000_000 + (seen % 1_000_000))
    }
    await pipeline.exec()
  } while (cursor !== '0')
  return chosen
}

async function keysIn(clients: Redis[]): Promise<number> {
  let total = 0
  for (const client of clients) total += Number(await client.dbsize())
  return total
}

function journalLines(file: string): number {
  try {
    return readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('"checkpoint"')).length
  } catch {
    return 0
  }
}

async function waitForCheckpoints(file: string, count: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (journalLines(file) < count) {
    if (Date.now() > deadline) throw new Error(`journal ${file} did not reach ${count} checkpoints`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('import: a standalone server into a cluster', () => {
  let cluster: TestCluster
  let source: StandaloneServer
  let sourceClient: Redis
  let dir: string
  let original: {digest: string; keys: number}
  let volatile: Buffer[]

  const masters = async () => mastersOf(cluster)
  const clusterClients = async () => (await masters()).map((address) => cluster.client(address))
  const sourceDigest = () => serversDigest([sourceClient])

  before(async function () {
    this.timeout(300_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-import-'))
    ;[cluster, source] = await Promise.all([TestCluster.start({masters: 3, replicas: 0}), StandaloneServer.start()])
    sourceClient = source.client()
    await writeDataset(sourceClient, {bigHashFields: BIG_HASH_FIELDS, keys: KEYS})
    volatile = await addTtls(sourceClient)
    original = await sourceDigest()
    expect(original.keys).to.equal(KEYS + 1)
  })

  after(async () => {
    await Promise.all([cluster?.stop(), source?.stop()])
    await rm(dir, {force: true, recursive: true})
  })

  it('--copy: every key, value and TTL arrives (binary names, every type, a 50k-field hash); the source keeps its keys', async () => {
    const {exitCode, json, stderr} = await runCliJson<ImportResult>(['import', cluster.seed, '--from', source.address, '--copy', '--yes', '--journal', path.join(dir, 'copy.jsonl')])
    expect(exitCode, stderr).to.equal(0)
    expectContract('import', json)
    expect(json).to.include({mode: 'copy', schemaVersion: 1, status: 'done'})
    expect(json.keysImported).to.equal(KEYS + 1)
    expect(json.owners.map((owner) => owner.keys).reduce((a, b) => a + b, 0)).to.equal(KEYS + 1)
    expect(json.conflicts.count).to.equal(0)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
    expect(await sourceDigest()).to.deep.equal(original)
    expect(await cluster.clusterClient().hlen('big:hash')).to.equal(BIG_HASH_FIELDS)
    // TTLs: as many volatile keys as at the source, each with about the source's remaining time
    expect(await keysWithExpiry(await clusterClients())).to.equal(volatile.length)
    const client = cluster.clusterClient()
    for (const key of volatile.slice(0, 200)) {
      const [there, here] = await Promise.all([client.pttl(key), sourceClient.pttl(key)])
      expect(there).to.be.within(here - 60_000, here + 1000)
    }
    const check = await runCli(['check', cluster.seed])
    expect(check.exitCode, check.stdout).to.equal(0)
  })

  it('a second --copy pass skips equal keys; different values are conflicts, listed and left alone; --replace overwrites them', async () => {
    const binaryName = Buffer.from([0xff, 0xfe, 0x80 + (1 % 64), ...Buffer.from('1')])
    expect(await sourceClient.exists(binaryName)).to.equal(1)
    await sourceClient.set('str:0', 'changed at the source')
    await sourceClient.set(binaryName, 'changed too')
    await sourceClient.hset('big:hash', 'field:7', 'changed')
    const clusterClient = cluster.clusterClient()

    const second = await runCliJson<ImportResult>(['import', cluster.seed, '--from', source.address, '--copy', '--yes', '--journal', path.join(dir, 'second.jsonl')])
    expect(second.exitCode, second.stderr).to.equal(1)
    expectContract('import', second.json)
    expect(second.json.status).to.equal('partial')
    expect(second.json.conflicts.count).to.equal(3)
    const listed = second.json.conflicts.keys.map((entry) => `${entry.encoding}:${entry.key}`).sort()
    expect(listed).to.deep.equal([`hex:${binaryName.toString('hex')}`, 'utf8:big:hash', 'utf8:str:0'])
    expect(second.json.errors.map((error) => error.code)).to.include('E_CONFLICTS')
    expect(await clusterClient.get('str:0')).to.not.equal('changed at the source')
    expect(await clusterClient.hget('big:hash', 'field:7')).to.equal('v7')
    expect(await clusterDigest(cluster)).to.deep.equal(original)

    const replaced = await runCliJson<ImportResult>(['import', cluster.seed, '--from', source.address, '--copy', '--replace', '--yes', '--journal', path.join(dir, 'replace.jsonl')])
    expect(replaced.exitCode, replaced.stderr).to.equal(0)
    expect(replaced.json.status).to.equal('done')
    expect(await clusterClient.getBuffer(binaryName)).to.deep.equal(Buffer.from('changed too'))
    expect(await clusterDigest(cluster)).to.deep.equal(await sourceDigest())
    original = await sourceDigest()
  })

  it('--dry-run counts the keys per master and those the cluster already has, and changes nothing', async () => {
    await sourceClient.set('only-at-source', 'x')
    const keysBefore = await keysIn(await clusterClients())
    const {exitCode, json} = await runCliJson<ImportResult>(['import', cluster.seed, '--from', source.address, '--dry-run'])
    expect(exitCode).to.equal(0)
    expectContract('import', json)
    expect(json.status).to.equal('planned')
    expect(json.keysPlanned).to.equal(KEYS + 2)
    expect(json.keysAlreadyInCluster).to.equal(KEYS + 1)
    expect(json.owners).to.have.length(3)
    expect(json.owners.reduce((sum, owner) => sum + owner.keys, 0)).to.equal(KEYS + 2)
    expect(await keysIn(await clusterClients())).to.equal(keysBefore)
    expect(await cluster.clusterClient().exists('only-at-source')).to.equal(0)
    expect(Number(await sourceClient.dbsize())).to.equal(KEYS + 2)
    await sourceClient.del('only-at-source')
  })

  it('a move: Ctrl-C finishes the batches in flight and exits 130 with nothing lost; --resume moves the rest and empties the source', async () => {
    for (const client of await clusterClients()) await client.flushall()
    const volatileNow = await keysWithExpiry([sourceClient])
    const journal = path.join(dir, 'move.jsonl')
    const child = spawnCli(['import', cluster.seed, '--from', source.address, '--max-keys-per-sec', '20000', '--pipeline', '500', '--yes', '--journal', journal, '--json'])
    await waitForCheckpoints(journal, 3)
    child.kill('SIGINT')
    const outcome = await child
    expect(outcome.exitCode, String(outcome.stderr)).to.equal(130)
    expect(String(outcome.stderr)).to.include('finishing the work in flight')
    const interrupted = JSON.parse(String(outcome.stdout)) as ImportResult
    expectContract('import', interrupted)
    expect(interrupted.status).to.equal('interrupted')
    expect(interrupted.resumeCommand).to.include(`import ${cluster.seed} --resume ${journal} --yes`)
    // every key is on exactly one side, with its value
    const left = Number(await sourceClient.dbsize())
    expect(left).to.be.greaterThan(0).and.lessThan(KEYS + 1)
    const mid = await clusterDigest(cluster)
    expect(mid.keys + left).to.equal(KEYS + 1)

    const resumed = await runCliJson<ImportResult>(['import', cluster.seed, '--resume', journal, '--yes'])
    expect(resumed.exitCode, resumed.stderr).to.equal(0)
    expectContract('import', resumed.json)
    // the journal's throttle holds on --resume: no faster than 20000 keys/s on average
    expect(left / (resumed.json.elapsedMs / 1000)).to.be.at.most(20_000 * 1.1)
    expect(resumed.json.status).to.equal('done')
    expect(resumed.json.mode).to.equal('move')
    expect(resumed.json.keysImported).to.equal(KEYS + 1)
    expect(Number(await sourceClient.dbsize())).to.equal(0)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
    expect(await keysWithExpiry(await clusterClients())).to.equal(volatileNow)
    const again = await runCliJson<ImportResult>(['import', cluster.seed, '--resume', journal, '--yes'])
    expectContract('import', again.json)
    expect(again.json.status).to.equal('nothing-to-do')
  })

  describe('refusals and bad input', () => {
    let other: StandaloneServer

    before(async () => {
      other = await StandaloneServer.start({password: SECRET})
    })

    after(async () => {
      await other?.stop()
    })

    it('refuses a cluster node as the source', async () => {
      expectOneCleanLine(await runCli(['import', cluster.seed, '--from', cluster.addresses[1], '--yes']), 1, /is a cluster node: import reads a standalone server/)
      const document = await runCliJson(['import', cluster.seed, '--from', cluster.addresses[1], '--yes'])
      expectContract('import', document.json)
      expect(document.json).to.deep.include({status: 'error'})
      expect((document.json as {error: {code: string}}).error.code).to.equal('E_SOURCE_IS_CLUSTER')
    })

    it('refuses a source with keys in another db unless --from-db names it; --from-db imports that db', async () => {
      const db3 = other.client(3)
      await db3.set('in-db-3', 'three')
      await db3.set(Buffer.from([0xc3, 0x28, 0x01]), 'binary in db 3')
      const env = {env: {SLOTCTL_FROM_AUTH: SECRET}}
      expectOneCleanLine(await runCli(['import', cluster.seed, '--from', other.address, '--yes'], env), 2, /has keys in db 3 \(2\), and a cluster has only db 0/, [SECRET])
      const {exitCode, json, stderr} = await runCliJson<ImportResult>(['import', cluster.seed, '--from', other.address, '--from-db', '3', '--yes', '--journal', path.join(dir, 'db3.jsonl')], env)
      expect(exitCode, stderr).to.equal(0)
      expect(json.keysImported).to.equal(2)
      expect(json.source).to.include({db: 3})
      expect(await cluster.clusterClient().get('in-db-3')).to.equal('three')
      expect(Number(await db3.dbsize())).to.equal(0)
      expect(JSON.stringify(json)).to.not.include(SECRET)
      expectOneCleanLine(await runCli(['import', cluster.seed, '--from', other.address, '--from-db', '99', '--yes'], env), 2, /has no db 99/, [SECRET])
    })

    it('refuses while the cluster is not healthy (an open slot), pointing at check and fix', async () => {
      const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
      const [a, b] = nodes.filter((node) => node.role === 'master')
      const slot = a.slots[0][0]
      const client = cluster.client(a.address)
      await client.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', b.id)
      try {
        const result = await runCli(['import', cluster.seed, '--from', source.address, '--copy', '--yes'])
        expectOneCleanLine(result, 1, /refusing to import: .*migrating state/)
        expect(result.stderr).to.include('slotctl fix')
      } finally {
        await client.call('CLUSTER', 'SETSLOT', slot, 'STABLE')
      }
    })

    it('into a cluster with a password: the source presents it inside MIGRATE, and it is printed nowhere', async function () {
      this.timeout(180_000)
      const secured = await TestCluster.start({masters: 3, password: SECRET, replicas: 0})
      const plain = await StandaloneServer.start()
      try {
        const client = plain.client()
        await writeDataset(client, {keys: 2000})
        const before = await serversDigest([client])
        const result = await runCliJson<ImportResult>(['import', secured.seed, '--from', plain.address, '--copy', '--yes', '--journal', path.join(dir, 'secured.jsonl')], {env: {REDISCLI_AUTH: SECRET}})
        expect(result.exitCode, result.stderr).to.equal(0)
        expect(result.json.keysImported).to.equal(2000)
        expect(await clusterDigest(secured)).to.deep.equal(before)
        expect(result.stdout + result.stderr + readFileSync(path.join(dir, 'secured.jsonl'), 'utf8')).to.not.include(SECRET)
      } finally {
        await Promise.all([secured.stop(), plain.stop()])
      }
    })

    it('bad input: one clean line, the documented exit code, no password anywhere', async () => {
      expectOneCleanLine(await runCli(['import', cluster.seed, '--yes']), 2, /missing --from/)
      expectOneCleanLine(await runCli(['import', cluster.seed, '--from', 'nohost', '--yes']), 2, /invalid address 'nohost'/)
      expectOneCleanLine(await runCli(['import', cluster.seed, '--from', `redis://:${SECRET}@127.0.0.1:1`, '--yes']), 1, /cannot connect to 127\.0\.0\.1:1/, [SECRET])
      expectOneCleanLine(await runCli(['import', cluster.seed, '--from', `redis://:wrong-${SECRET}@${other.address}`, '--yes']), 1, /authentication failed|password/, [SECRET])
      await other.client().set('waits-for-confirmation', '1')
      expectOneCleanLine(await runCli(['import', cluster.seed, '--from', `redis://:${SECRET}@${other.address}`]), 4, /needs confirmation/, [SECRET])
      const notJournal = path.join(dir, 'not-a-journal.jsonl')
      await writeFile(notJournal, '{"type":"plan"}\n')
      expectOneCleanLine(await runCli(['import', cluster.seed, '--resume', notJournal, '--yes']), 2, /not a slotctl import journal/)
      expectOneCleanLine(await runCli(['import', cluster.seed, '--resume', notJournal, '--copy', '--yes']), 2, /--resume continues with the settings in its journal: --copy cannot be given with it/)
    })
  })
})

async function mastersOf(cluster: TestCluster): Promise<string[]> {
  const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
  return nodes.filter((node) => node.role === 'master' && node.slots.length > 0).map((node) => node.address)
}
