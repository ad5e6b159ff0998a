/**
 * Redis 8's data: hashes with per-field TTLs (HPEXPIRE: Redis >= 7.4, Valkey >= 9) and vector
 * sets (VADD: Redis 8) keep every value and every field expiry time through an import, a
 * reshard (legacy MIGRATE; atomic too on Valkey 9) and a backup restored into a new cluster.
 * slotctl's value digest (the BUSYKEY comparison, and backup/restore's verification) compares
 * them: equal copies are equal even where their DUMPs differ, a key changed only in a field's
 * TTL or a vector element's attributes is different. Each suite is skipped on a server without
 * its type, saying so in its titles. Values are read back with the type's own commands, not
 * with slotctl's digest.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import type {Cluster, Redis} from 'ioredis'

import type {BackupResult} from '../../src/commands/backup.js'
import type {RestoreResult} from '../../src/commands/restore.js'
import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {expandRanges, formatSlots} from '../../src/lib/core/slots.js'
import {mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {combineDigests, digestServer} from '../../src/lib/keys/digest.js'
import type {ImportResult} from '../../src/lib/transfer/import.js'
import {TestCluster, isValkeyAtLeast, serverUnderTest, skipUnlessCommands, testServerBinary} from '../helpers/cluster-harness.js'
import {runCli, runCliJson} from '../helpers/cli.js'
import {StandaloneServer} from '../helpers/standalone.js'

type Client = Cluster | Redis

interface TypeCase {
  /** as titles name it */
  name: string
  /** the commands a server needs for it */
  commands: string[]
  keys: string[]
  write(client: Redis): Promise<void>
  /** A key's value as its own commands read it, in a fixed order: equal means the same data. */
  read(client: Client, key: string): Promise<unknown>
  /** A change only the digest's new parts see: [the key, what changed]. */
  change(client: Redis): Promise<[string, string]>
}

/** Absolute expiry times, hours away: nothing expires during the run, and times compare exactly. */
const AT = Date.now() + 3 * 3_600_000

const fieldTtls: TypeCase = {
  name: 'hashes with per-field TTLs',
  commands: ['HPEXPIREAT', 'HPEXPIRETIME'],
  keys: [...Array.from({length: 200}, (_, i) => `hfe:${i}`), 'hfe:big'],
  async write(client) {
    const pipeline = client.pipeline()
    for (let i = 0; i < 200; i++) {
      pipeline.hset(`hfe:${i}`, 'f1', `v1-${i}`, 'f2', `v2-${i}`, 'f3', `v3-${i}`)
      pipeline.call('HPEXPIREAT', `hfe:${i}`, AT + i, 'FIELDS', 1, 'f1')
      // seconds too, and one hash whose only TTL was removed again
      if (i % 2 === 1) pipeline.call('HEXPIREAT', `hfe:${i}`, Math.floor(AT / 1000) + 60, 'FIELDS', 1, 'f2')
      if (i === 198) pipeline.call('HPERSIST', `hfe:${i}`, 'FIELDS', 1, 'f1')
    }
    // big enough for a hash table rather than a listpack: the other encoding of field TTLs
    const fields = Array.from({length: 600}, (_, i) => `field:${i}`)
    pipeline.hset('hfe:big', ...fields.flatMap((field) => [field, `value of ${field}`]))
    pipeline.call('HPEXPIREAT', 'hfe:big', AT, 'FIELDS', 300, ...fields.filter((_, i) => i % 2 === 0))
    await pipeline.exec()
  },
  async read(client, key) {
    const flat = (await client.call('HGETALL', key)) as string[]
    const fields = flat.filter((_, i) => i % 2 === 0)
    const times = (await client.call('HPEXPIRETIME', key, 'FIELDS', fields.length, ...fields)) as number[]
    return fields.map((field, i) => [field, flat[i * 2 + 1], times[i]]).sort((a, b) => String(a[0]).localeCompare(String(b[0])))
  },
  async change(client) {
    await client.call('HPEXPIREAT', 'hfe:7', AT + 999, 'FIELDS', 1, 'f1')
    return ['hfe:7', 'a field TTL']
  },
}

const vectorSets: TypeCase = {
  name: 'vector sets',
  commands: ['VADD', 'VEMB', 'VGETATTR', 'VRANDMEMBER'],
  keys: Array.from({length: 40}, (_, i) => `vset:${i}`),
  async write(client) {
    const pipeline = client.pipeline()
    for (let i = 0; i < 40; i++) {
      // the default 8-bit quantization, no quantization, and binary
      const quantization = [[], ['NOQUANT'], ['BIN']][i % 3]
      for (let e = 0; e < 25; e++) {
        const vector = [Math.sin(i + e), Math.cos(e), (e % 7) / 7, i / 40]
        const attributes = e % 2 === 0 ? ['SETATTR', JSON.stringify({e, i})] : []
        pipeline.call('VADD', `vset:${i}`, 'VALUES', 4, ...vector.map(String), `element:${e}`, ...quantization, ...attributes)
      }
    }
    await pipeline.exec()
  },
  async read(client, key) {
    const elements = ((await client.call('VRANDMEMBER', key, 2 ** 31 - 1)) as string[]).sort()
    const each = await Promise.all(elements.map(async (element) => [element, await client.call('VEMB', key, element, 'RAW'), await client.call('VGETATTR', key, element)]))
    return [await client.call('VDIM', key), each]
  },
  async change(client) {
    await client.call('VSETATTR', 'vset:7', 'element:2', JSON.stringify({changed: true}))
    return ['vset:7', 'an element\'s attributes']
  },
}

/** Every key of the case, as read from `client`. */
async function readAll(typeCase: TypeCase, client: Client): Promise<unknown[]> {
  return Promise.all(typeCase.keys.map(async (key) => typeCase.read(client, key)))
}

async function clusterDigest(cluster: TestCluster): Promise<{digest: string; keys: number}> {
  const masters = mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))
  const digests = await Promise.all(masters.map(async (master) => digestServer(cluster.client(master.address))))
  return {digest: combineDigests(digests.map((digest) => digest.digest)), keys: digests.reduce((sum, digest) => sum + digest.keys, 0)}
}

/** The lane's own server loads the backup's files: a Redis 8 RDB needs a Redis 8 server. */
const serverFlag = testServerBinary ? ['--server-binary', testServerBinary] : []

function describeType(typeCase: TypeCase): void {
  describe(`${typeCase.name}: import, reshard, backup/restore and the value digest`, () => {
    let cluster: TestCluster
    let source: StandaloneServer
    let sourceClient: Redis
    let dir: string
    let expected: unknown[]

    before(async function () {
      this.timeout(120_000)
      source = await StandaloneServer.start()
      sourceClient = source.client()
      await skipUnlessCommands(this, sourceClient, typeCase.commands, typeCase.name)
      dir = await mkdtemp(path.join(tmpdir(), 'slotctl-new-types-'))
      cluster = await TestCluster.start({masters: 3, replicas: 0})
      await typeCase.write(sourceClient)
      expected = await readAll(typeCase, sourceClient)
    })

    after(async () => {
      await Promise.all([cluster?.stop(), source?.stop()])
      if (dir) await rm(dir, {force: true, recursive: true})
    })

    it('import --copy: every key arrives with its value (and field TTLs); slotctl\'s digest of the cluster equals the source\'s', async function () {
      this.timeout(120_000)
      const {exitCode, json, stderr} = await runCliJson<ImportResult>(['import', cluster.seed, '--from', source.address, '--copy', '--yes', '--journal', path.join(dir, 'copy.jsonl')])
      expect(exitCode, stderr).to.equal(0)
      expect(json.keysImported).to.equal(typeCase.keys.length)
      expect(await readAll(typeCase, cluster.clusterClient())).to.deep.equal(expected)
      expect(await clusterDigest(cluster)).to.deep.equal(await digestServer(sourceClient))
    })

    it('a second import --copy: equal copies are skipped, a key changed only in its new parts is a conflict; --replace then copies it', async function () {
      this.timeout(120_000)
      const [changed, what] = await typeCase.change(sourceClient)
      const second = await runCliJson<ImportResult>(['import', cluster.seed, '--from', source.address, '--copy', '--yes', '--journal', path.join(dir, 'second.jsonl')])
      expect(second.exitCode, `${what} changed: ${second.stderr}`).to.equal(1)
      expect(second.json.conflicts.count, what).to.equal(1)
      expect(second.json.conflicts.keys.map((entry) => entry.key)).to.deep.equal([changed])
      const replaced = await runCliJson<ImportResult>(['import', cluster.seed, '--from', source.address, '--copy', '--replace', '--yes', '--journal', path.join(dir, 'replace.jsonl')])
      expect(replaced.exitCode, replaced.stderr).to.equal(0)
      expected = await readAll(typeCase, sourceClient)
      expect(await readAll(typeCase, cluster.clusterClient())).to.deep.equal(expected)
      expect(await clusterDigest(cluster)).to.deep.equal(await digestServer(sourceClient))
    })

    const reshard = async (legacy: boolean) => {
      // half of one master's slots: not all, or Redis turns the emptied master into a replica
      // of the one that took its last slot, and the masters read here would change under us
      const [from, to] = mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))).filter((node) => node.slots.length > 0)
      const owned = expandRanges(from.slots)
      const args = ['reshard', cluster.seed, '--to', to.id, '--slot-range', formatSlots(owned.slice(0, Math.floor(owned.length / 2))), '--yes', '--journal', path.join(dir, `reshard-${legacy}.jsonl`), ...(legacy ? ['--legacy-migrate'] : ['--durability', 'server'])]
      const {exitCode, json, stderr} = await runCliJson<MigrationResult>(args)
      expect(exitCode, stderr).to.equal(0)
      expect(json.keysMoved).to.be.greaterThan(0)
      expect(await readAll(typeCase, cluster.clusterClient())).to.deep.equal(expected)
      expect(await clusterDigest(cluster)).to.deep.equal(await digestServer(sourceClient))
      expect((await runCli(['check', cluster.seed])).exitCode).to.equal(0)
    }

    it('reshard --legacy-migrate (SETSLOT + MIGRATE) of half a master\'s slots: every value moves', async function () {
      this.timeout(180_000)
      await reshard(true)
    })

    it('reshard with atomic slot migration (Valkey >= 9): every value moves', async function () {
      this.timeout(180_000)
      if (!isValkeyAtLeast(9)) {
        const server = serverUnderTest()
        this.test!.title += ` [skipped: needs Valkey >= 9.0 (CLUSTER MIGRATESLOTS); the server under test is ${server.product} ${server.version}]`
        this.skip()
      }
      await reshard(false)
    })

    it('backup, then restore --into a new cluster: every value, and the restore\'s own digest check passes', async function () {
      this.timeout(240_000)
      const backupDir = path.join(dir, 'backup')
      const backup = await runCliJson<BackupResult>(['backup', cluster.seed, backupDir, ...serverFlag])
      expect(backup.exitCode, backup.stderr + JSON.stringify(backup.json?.errors)).to.equal(0)
      const target = await TestCluster.start({masters: 3, replicas: 0})
      try {
        const {exitCode, json, stderr} = await runCliJson<RestoreResult>(['restore', backupDir, '--into', target.seed, '--yes', ...serverFlag])
        expect(exitCode, stderr).to.equal(0)
        expect(json.verification).to.include({digestMatch: true, keysMatch: true})
        expect(await readAll(typeCase, target.clusterClient())).to.deep.equal(expected)
      } finally {
        await target.stop()
      }
    })
  })
}

describeType(fieldTtls)
describeType(vectorSets)
