/**
 * backup and restore: a 3+3 cluster holding 200k keys of every type is backed up (from the
 * masters, and from the replicas), restored into a new 3-master cluster and into a 4-master
 * one, and started as local servers; key count and a digest of every value (DEBUG
 * DIGEST-VALUE, independent of slotctl's own digest) must equal the original's. A damaged
 * file is refused before anything is loaded.
 */
import {createHash} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {cp, mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import {Redis} from 'ioredis'

import type {BackupResult} from '../../src/commands/backup.js'
import type {RestoreResult} from '../../src/commands/restore.js'
import {isAlive} from '../../src/lib/local/servers.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import type {Manifest, NodesFile} from '../../src/lib/transfer/manifest.js'
import {TestCluster, testServerBinary} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'
import {clusterDigest, serversDigest, writeDataset} from '../helpers/dataset.js'
import {expectContract} from '../helpers/schema.js'

const KEYS = 200_000
const BIG_HASH_FIELDS = 20_000
/** valkey lanes load the files with the lane's own server, as an operator would pass it */
const serverFlag = testServerBinary ? ['--server-binary', testServerBinary] : []

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')

async function masterCount(cluster: TestCluster): Promise<number> {
  return parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))).filter((node) => node.role === 'master').length
}

async function keysIn(cluster: TestCluster): Promise<number> {
  const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))).filter((node) => node.role === 'master')
  let total = 0
  for (const node of nodes) total += Number(await cluster.client(node.address).dbsize())
  return total
}

describe('backup and restore', () => {
  let cluster: TestCluster
  let dir: string
  let backupDir: string
  let replicaDir: string
  let original: {digest: string; keys: number}

  before(async function () {
    this.timeout(300_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-backup-'))
    backupDir = path.join(dir, 'backup')
    replicaDir = path.join(dir, 'from-replicas')
    cluster = await TestCluster.start({masters: 3, replicas: 1})
    await writeDataset(cluster.clusterClient(), {bigHashFields: BIG_HASH_FIELDS, keys: KEYS})
    original = await clusterDigest(cluster)
    expect(original.keys).to.equal(KEYS + 1)
  })

  after(async () => {
    await cluster?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('backup: one RDB per master, nodes.json and a manifest whose checksums, counts and digests match', async () => {
    const {exitCode, json, stderr} = await runCliJson<BackupResult>(['backup', cluster.seed, backupDir, ...serverFlag])
    expect(exitCode, stderr).to.equal(0)
    expectContract('backup', json)
    expect(json).to.include({schemaVersion: 1, status: 'done'})
    expect(json.files.map((file) => file.sourceRole)).to.deep.equal(['master', 'master', 'master'])
    expect(json.files).to.have.length(3)
    expect(json.totals.keys).to.equal(KEYS + 1)
    const manifest = JSON.parse(readFileSync(path.join(backupDir, 'manifest.json'), 'utf8')) as Manifest
    expect(manifest.files.reduce((sum, file) => sum + (file.keys ?? 0), 0)).to.equal(KEYS + 1)
    for (const file of manifest.files) {
      expect(sha256(path.join(backupDir, file.file)), file.file).to.equal(file.sha256)
      expect(file.takenFrom.role).to.equal('master')
      expect(file.digest).to.match(/^[0-9a-f]{40}$/)
    }
    expect(manifest.files.reduce((sum, file) => sum + file.slotCount, 0)).to.equal(16_384)
    const nodes = JSON.parse(readFileSync(path.join(backupDir, 'nodes.json'), 'utf8')) as NodesFile
    expect(nodes.nodes).to.have.length(6)
    for (const node of nodes.nodes) {
      expect(node.id).to.match(/^[0-9a-f]{40}$/)
      expect(node.serverVersion).to.match(/^(redis|valkey) \d+\.\d+/)
      expect(node.configEpoch).to.be.a('number')
      if (node.role === 'replica') expect(manifest.files.map((file) => file.master.id)).to.include(node.master?.id)
    }
    expect(nodes.nodes.filter((node) => node.role === 'master').every((node) => node.slots.length > 0)).to.equal(true)
    // no temp file is left behind, and a second backup does not overwrite this one by accident
    expect((await readdir(backupDir)).filter((name) => name.endsWith('.partial'))).to.deep.equal([])
    expectOneCleanLine(await runCli(['backup', cluster.seed, backupDir]), 2, /is not empty/)
    const refused = await runCliJson(['backup', cluster.seed, backupDir])
    expectContract('backup', refused.json)
    expect(refused.json).to.deep.include({status: 'error'})
  })

  it('backup --from-replicas --no-verify takes each file from a healthy replica, without counting its keys', async () => {
    const {exitCode, json, stderr} = await runCliJson<BackupResult>(['backup', cluster.seed, replicaDir, '--from-replicas', '--no-verify'])
    expect(exitCode, stderr).to.equal(0)
    expectContract('backup', json)
    expect(json.files.map((file) => file.sourceRole)).to.deep.equal(['replica', 'replica', 'replica'])
    expect(json.files.map((file) => file.keys)).to.deep.equal([null, null, null])
    expect(json.warnings.map((warning) => warning.code)).to.deep.equal(['NOT_VERIFIED'])
    const nodes = JSON.parse(readFileSync(path.join(replicaDir, 'nodes.json'), 'utf8')) as NodesFile
    for (const file of json.files) expect(nodes.nodes.find((node) => node.id === file.sourceId)?.master?.id).to.equal(file.masterId)
  })

  it('a damaged file is refused before anything is loaded; so is a directory without a manifest', async function () {
    this.timeout(180_000)
    const target = await TestCluster.start({masters: 3, replicas: 0})
    try {
      const damaged = path.join(dir, 'damaged')
      await cp(backupDir, damaged, {recursive: true})
      const manifest = JSON.parse(readFileSync(path.join(damaged, 'manifest.json'), 'utf8')) as Manifest
      const victim = path.join(damaged, manifest.files[1].file)
      const bytes = readFileSync(victim)
      bytes[Math.floor(bytes.length / 2)] ^= 0xff
      await writeFile(victim, bytes)
      const result = await runCli(['restore', damaged, '--into', target.seed, '--yes', ...serverFlag])
      expectOneCleanLine(result, 1, new RegExp(`checksum mismatch: ${manifest.files[1].file}.*nothing was loaded`))
      expect(await keysIn(target)).to.equal(0)
      const document = await runCliJson(['restore', damaged, '--into', target.seed, '--yes', ...serverFlag])
      expectContract('restore', document.json)
      expect(document.json).to.deep.include({error: {code: 'E_CHECKSUM', exitCode: 1, message: JSON.parse(document.stdout).error.message, suggestions: ['restore from another copy of the backup']}})
      await rm(path.join(damaged, 'manifest.json'))
      expectOneCleanLine(await runCli(['restore', damaged, '--into', target.seed, '--yes', ...serverFlag]), 2, /has no manifest\.json/)
      expectOneCleanLine(await runCli(['restore', backupDir, '--yes']), 2, /--into CLUSTER_NODE .* or --start DIR2/)
      expectOneCleanLine(await runCli(['restore', backupDir, '--into', target.seed, '--start', path.join(dir, 'never')]), 2, /one of them/)
      expectOneCleanLine(await runCli(['restore', backupDir, '--start', damaged]), 2, /is not empty/)
      expectOneCleanLine(await runCli(['restore', backupDir, '--start', path.join(dir, 'never'), '--server-binary', '/nonexistent/redis-server']), 2, /server binary '\/nonexistent\/redis-server' does not exist/)
      expectOneCleanLine(await runCli(['backup', cluster.seed, path.join(damaged, 'manifest-gone', '..', manifest.files[0].file)]), 2, /is a file, not a directory/)
    } finally {
      await target.stop()
    }
  })

  // the 4-master restore uses the backup taken from the replicas, which the restore counts itself
  for (const [masters, from] of [[3, 'masters'], [4, 'replicas']] as const) {
    it(`restore --into a new ${masters}-master cluster (the backup of the ${from}): key count and digest equal, the check is clean`, async function () {
      this.timeout(240_000)
      const target = await TestCluster.start({masters, replicas: 0})
      try {
        expect(await masterCount(target)).to.equal(masters)
        const source = from === 'masters' ? backupDir : replicaDir
        const {exitCode, json, stderr} = await runCliJson<RestoreResult>(['restore', source, '--into', target.seed, '--yes', ...serverFlag])
        expect(exitCode, stderr).to.equal(0)
        expectContract('restore', json)
        expect(json).to.include({mode: 'into', schemaVersion: 1, status: 'done'})
        expect(json.verification).to.include({digestMatch: true, keysMatch: true})
        expect(json.check?.healthy).to.equal(true)
        expect(json.files.reduce((sum, file) => sum + file.keysRestored, 0)).to.equal(KEYS + 1)
        expect(await clusterDigest(target)).to.deep.equal(original)
        if (masters === 4) {
          // not into a cluster that already holds keys, unless --force
          expectOneCleanLine(await runCli(['restore', backupDir, '--into', target.seed, '--yes', ...serverFlag]), 1, /already holds 200001 key\(s\)/)
        }
      } finally {
        await target.stop()
      }
    })
  }

  it('restore --start: local servers with the saved slot map, the same keys; sandbox stop ends them', async function () {
    this.timeout(180_000)
    const target = path.join(dir, 'look')
    const {exitCode, json, stderr} = await runCliJson<RestoreResult>(['restore', backupDir, '--start', target, ...serverFlag])
    const pids = (json.started?.nodes ?? []).map((node) => node.pid)
    try {
      expect(exitCode, stderr).to.equal(0)
      expectContract('restore', json)
      expect(json).to.include({mode: 'start', status: 'done'})
      expect(json.verification).to.include({digestMatch: true, keysMatch: true})
      const manifest = JSON.parse(readFileSync(path.join(backupDir, 'manifest.json'), 'utf8')) as Manifest
      const started = json.started?.nodes ?? []
      const clients = started.map((node) => {
        const [host, port] = node.address.split(':')
        return new Redis({host, port: Number(port)})
      })
      try {
        for (const [i, client] of clients.entries()) {
          const self = parseClusterNodes(String(await client.call('CLUSTER', 'NODES'))).find((node) => node.myself)
          const saved = manifest.files.find((file) => file.master.id === started[i].sourceId)
          expect(self?.slots, started[i].address).to.deep.equal(saved?.slots)
        }
        expect(await serversDigest(clients)).to.deep.equal(original)
      } finally {
        for (const client of clients) client.disconnect()
      }
    } finally {
      const stop = await runCli(['sandbox', 'stop', '--dir', target])
      expect(stop.exitCode, stop.stderr).to.equal(0)
    }
    expect(pids).to.have.length(3)
    expect(pids.filter((pid) => isAlive(pid))).to.deep.equal([])
    expect(existsSync(path.join(target, 'sandbox.json'))).to.equal(false)
  })
})
