/**
 * Hostile inputs, round two (issue 20, part A): output files planted with symlinks or
 * existing files, backups whose manifest names files outside it or special files, fake
 * import sources whose SCAN never ends or that lie about MIGRATE, and fake cluster nodes whose
 * SYNC never ends, is too big, never starts or sends a forged file. Each ends within a bound
 * (asserted) with an error line and no stack trace, the cluster unchanged, and no file
 * outside the named place touched.
 */
import {execFileSync} from 'node:child_process'
import {chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {createHash} from 'node:crypto'

import {expect} from 'chai'

import type {ImportResult} from '../../src/lib/transfer/import.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {TestCluster, testServerBinary} from '../helpers/cluster-harness.js'
import {type CliResult, expectOneCleanLine, runCli, runCliJson, spawnCli} from '../helpers/cli.js'
import {type FakeServer, type SyncMode, fakeImportSource, fakeSyncNode} from '../helpers/fake-servers.js'
import {readPlanFile} from '../../src/lib/plan/plan-file.js'

/** Every run here ends within this (they used to run until killed); generous for a loaded machine. */
const BOUND_MS = 20_000
/** After SIGTERM, the process is gone within this. */
const SIGNAL_BOUND_MS = 10_000
const serverFlag = testServerBinary ? ['--server-binary', testServerBinary] : []

async function timed(run: () => Promise<CliResult>): Promise<CliResult & {ms: number}> {
  const started = Date.now()
  const result = await run()
  return {...result, ms: Date.now() - started}
}

/** A failed run: the exit code, an error line matching `pattern`, no stack trace, within the bound. */
function expectFailure(result: CliResult & {ms: number}, exitCode: number, pattern: RegExp): void {
  expect(result.exitCode, result.stderr).to.equal(exitCode)
  expect(result.ms, 'the run ends within its bound').to.be.lessThan(BOUND_MS)
  const errors = result.stderr.split('\n').filter((line) => line.startsWith('slotctl: error: '))
  expect(errors.some((line) => pattern.test(line)), result.stderr).to.equal(true)
  expect(result.stderr + result.stdout).to.not.match(/\n\s+at |TypeError|Cannot read properties/)
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

async function keysIn(cluster: TestCluster): Promise<number> {
  const masters = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))).filter((node) => node.role === 'master')
  let total = 0
  for (const master of masters) total += Number(await cluster.client(master.address).dbsize())
  return total
}

async function masterIds(cluster: TestCluster): Promise<string[]> {
  return parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
    .filter((node) => node.role === 'master')
    .map((node) => node.id)
}

/** Sends SIGTERM once `ready` holds, and measures how long the process takes to go. */
async function terminateWhen(args: string[], ready: () => boolean): Promise<{exitCode: number; stderr: string; afterSignalMs: number}> {
  const child = spawnCli(args)
  const deadline = Date.now() + BOUND_MS
  while (!ready() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  expect(ready(), 'the run got under way').to.equal(true)
  const signalled = Date.now()
  child.kill('SIGTERM')
  const result = await Promise.race([child, new Promise<null>((resolve) => setTimeout(() => resolve(null), SIGNAL_BOUND_MS * 3))])
  if (!result) child.kill('SIGKILL')
  return {afterSignalMs: Date.now() - signalled, exitCode: result?.exitCode ?? -1, stderr: String(result?.stderr ?? '')}
}

describe('hostile files and fake servers (issue 20 A)', function () {
  this.timeout(300_000)
  let cluster: TestCluster
  let dir: string

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 0})
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-hostile-files-'))
  })

  after(async () => {
    await cluster?.stop()
    if (dir) await rm(dir, {force: true, recursive: true})
  })

  describe('output files: never over an existing file unless asked, never through a symlink, atomic', () => {
    const reshard = async (out: string, ...extra: string[]) => {
      const [from, to] = await masterIds(cluster)
      return timed(() => runCli(['reshard', cluster.seed, '--from', from, '--to', to, '--slots', '5', '--dry-run', '--out', out, ...extra]))
    }

    it('an existing file is refused, its content and mode unchanged', async () => {
      const file = path.join(dir, 'passwd')
      writeFileSync(file, 'root:x:0:0\n', {mode: 0o644})
      chmodSync(file, 0o644)
      const result = await reshard(file)
      expectOneCleanLine(result, 2, /'.*passwd' already exists/)
      expect(result.stderr).to.match(/--overwrite/)
      expect(readFileSync(file, 'utf8')).to.equal('root:x:0:0\n')
      expect(statSync(file).mode & 0o777).to.equal(0o644)
      const [heavy] = await masterIds(cluster)
      const rebalance = await timed(() => runCli(['rebalance', cluster.seed, '--weight', `${heavy}=2`, '--dry-run', '--out', file]))
      expectOneCleanLine(rebalance, 2, /already exists/)
      expect(readFileSync(file, 'utf8')).to.equal('root:x:0:0\n')
    })

    it('a symlink is never written through, even with --overwrite', async () => {
      const victim = path.join(dir, 'victim-of-link')
      writeFileSync(victim, 'precious\n', {mode: 0o644})
      const link = path.join(dir, 'plan-link.json')
      symlinkSync(victim, link)
      for (const extra of [[], ['--overwrite']]) {
        const result = await reshard(link, ...extra)
        expectOneCleanLine(result, 2, /is a symlink/)
      }
      expect(readFileSync(victim, 'utf8')).to.equal('precious\n')
      expect(statSync(victim).mode & 0o777).to.equal(0o644)
      expect(lstatSync(link).isSymbolicLink()).to.equal(true)
    })

    it('--overwrite replaces a regular file whole: the plan, mode 0600, no temp file left', async () => {
      const planDir = path.join(dir, 'plans')
      mkdirSync(planDir)
      const file = path.join(planDir, 'plan.json')
      writeFileSync(file, 'old\n', {mode: 0o644})
      const result = await reshard(file, '--overwrite')
      expect(result.exitCode, result.stderr).to.equal(0)
      expect(readPlanFile(file).moves).to.have.length(5)
      expect(statSync(file).mode & 0o777).to.equal(0o600)
      expect(readdirSync(planDir)).to.deep.equal(['plan.json'])
      // a new file needs no flag
      const fresh = await reshard(path.join(planDir, 'new.json'))
      expect(fresh.exitCode, fresh.stderr).to.equal(0)
    })
  })

  describe('input files that are FIFOs or devices are refused at once (a blocking read would ignore every signal)', () => {
    const cases: Array<{name: string; args: (fifo: string) => string[]; message: RegExp}> = [
      {args: (fifo) => ['apply', fifo, '--seed', cluster.seed, '--yes'], message: /cannot read plan '.*': it is not a regular file/, name: 'apply a FIFO plan'},
      {args: () => ['apply', '/dev/zero', '--seed', cluster.seed, '--yes'], message: /cannot read plan '\/dev\/zero': it is not a regular file/, name: 'apply /dev/zero'},
      {args: (fifo) => ['reshard', cluster.seed, '--resume', fifo, '--yes'], message: /cannot read journal '.*': it is not a regular file/, name: 'reshard --resume a FIFO'},
      {args: (fifo) => ['import', cluster.seed, '--resume', fifo, '--yes'], message: /cannot read journal '.*': it is not a regular file/, name: 'import --resume a FIFO'},
      {args: (fifo) => ['check', cluster.seed, '--cacert', fifo], message: /cannot read the --cacert file '.*': it is not a regular file/, name: '--cacert a FIFO'},
      {args: (fifo) => ['create', cluster.seed, '--zones-file', fifo, '--yes'], message: /cannot read --zones-file '.*': it is not a regular file/, name: '--zones-file a FIFO'},
    ]
    for (const c of cases) {
      it(`${c.name}: exit 2 within the bound`, async () => {
        const fifo = path.join(dir, `fifo-${c.name.replaceAll(/\W+/g, '-')}`)
        execFileSync('mkfifo', [fifo])
        const result = await timed(() => runCli(c.args(fifo), {timeoutMs: BOUND_MS * 2}))
        expect(result.ms).to.be.lessThan(BOUND_MS)
        expectOneCleanLine(result, 2, c.message)
      })
    }
  })

  describe('restore: the manifest names only regular files inside DIR, and at least one', () => {
    const outside = () => path.join(dir, 'outside.rdb')
    const rdb = Buffer.concat([Buffer.from('REDIS0009'), Buffer.from([0xff]), Buffer.alloc(8)])
    const entry = (file: string, bytes = rdb) => ({
      bytes: bytes.length,
      digest: null,
      file,
      format: 'REDIS0009',
      keys: null,
      keysWithExpiry: null,
      master: {address: '127.0.0.1:7000', id: 'a'.repeat(40)},
      serverVersion: null,
      sha256: sha256(bytes),
      slotCount: 16_384,
      slots: [[0, 16_383]],
      takenFrom: {address: '127.0.0.1:7000', id: 'a'.repeat(40), role: 'master'},
    })
    const backupDir = (name: string, files: unknown[], setup?: (at: string) => void) => {
      const at = path.join(dir, name)
      mkdirSync(at)
      setup?.(at)
      const manifest = {createdAt: new Date().toISOString(), digestAlgorithm: 'slotctl-content-v2', files, fromReplicas: false, kind: 'slotctl-backup', schemaVersion: 1, seed: '127.0.0.1:7000', slotctlVersion: '0.0.0'}
      if (!existsSync(path.join(at, 'manifest.json'))) writeFileSync(path.join(at, 'manifest.json'), JSON.stringify(manifest))
      return at
    }
    const restore = (at: string) => timed(() => runCli(['restore', at, '--into', cluster.seed, '--yes', ...serverFlag]))

    before(() => {
      writeFileSync(outside(), rdb)
    })

    afterEach(async () => {
      expect(await keysIn(cluster), 'the cluster is unchanged').to.equal(0)
    })

    const cases: Array<{name: string; files: () => unknown[]; setup?: (at: string) => void; exitCode: number; message: RegExp}> = [
      {exitCode: 1, files: () => [entry('../outside.rdb')], message: /file entry 1 names '\.\.\/outside\.rdb', which is not a file inside the backup directory; nothing was loaded/, name: 'a ../ path'},
      {exitCode: 1, files: () => [entry(outside())], message: /which is not a file inside the backup directory/, name: 'an absolute path'},
      {exitCode: 1, files: () => [entry('a.rdb')], message: /checksum mismatch: a\.rdb cannot be read \(it is a symlink\).*nothing was loaded/, name: 'a symlink to a file outside', setup: (at) => symlinkSync(outside(), path.join(at, 'a.rdb'))},
      {exitCode: 1, files: () => [entry('z.rdb')], message: /z\.rdb cannot be read \(it is a symlink\)/, name: 'a symlink to /dev/zero', setup: (at) => symlinkSync('/dev/zero', path.join(at, 'z.rdb'))},
      {exitCode: 1, files: () => [entry('f.rdb')], message: /f\.rdb cannot be read \(it is not a regular file\)/, name: 'a FIFO', setup: (at) => execFileSync('mkfifo', [path.join(at, 'f.rdb')])},
      {exitCode: 1, files: () => [entry('m.rdb')], message: /cannot read .*manifest\.json: it is not a regular file/, name: 'a FIFO as manifest.json', setup: (at) => execFileSync('mkfifo', [path.join(at, 'manifest.json')])},
      {exitCode: 1, files: () => [entry('big.rdb')], message: /big\.rdb \(more than the 18 bytes the manifest says\)/, name: 'a file longer than the manifest says', setup: (at) => writeFileSync(path.join(at, 'big.rdb'), Buffer.concat([rdb, Buffer.alloc(1024 * 1024)]))},
      {exitCode: 1, files: () => [], message: /lists no files/, name: 'an empty manifest'},
      {exitCode: 1, files: () => [null], message: /file entry 1 is null, not a file entry/, name: 'a null entry'},
      {exitCode: 1, files: () => [{...entry('x.rdb'), sha256: 5}], message: /x\.rdb has no valid sha256/, name: 'an entry without a checksum'},
    ]
    for (const c of cases) {
      it(`${c.name}: refused with one line, nothing loaded`, async () => {
        const at = backupDir(c.name.replaceAll(/\W+/g, '-'), c.files(), c.setup)
        const result = await restore(at)
        expect(result.ms).to.be.lessThan(BOUND_MS)
        expectOneCleanLine(result, c.exitCode, c.message)
      })
    }
  })

  describe('import from a fake source', () => {
    let source: FakeServer | undefined

    afterEach(async () => {
      await source?.close()
      source = undefined
      expect(await keysIn(cluster), 'the cluster is unchanged').to.equal(0)
    })

    it('a SCAN that never returns cursor 0: --dry-run and the import stop with one line', async () => {
      source = await fakeImportSource({keys: 159, scan: 'endless'})
      const dry = await timed(() => runCli(['import', cluster.seed, '--from', source!.address, '--dry-run']))
      expectFailure(dry, 1, /the source .* does not finish its SCAN: \d+ SCAN calls \(COUNT 2000\) have not covered the 159 key\(s\) it reports/)
      const run = await timed(() => runCli(['import', cluster.seed, '--from', source!.address, '--copy', '--yes', '--progress', 'none', '--journal', path.join(dir, 'endless.jsonl')]))
      expectFailure(run, 1, /does not finish its SCAN/)
    })

    it('a SCAN whose cursor comes back stops at once', async () => {
      source = await fakeImportSource({keys: 159, scan: 'repeat'})
      const run = await timed(() => runCli(['import', cluster.seed, '--from', source!.address, '--copy', '--yes', '--progress', 'none', '--journal', path.join(dir, 'repeat.jsonl')]))
      expectFailure(run, 1, /does not finish its SCAN: its cursor 1 came back after 2 call\(s\)/)
    })

    it('a source that answers MIGRATE with OK and sends nothing: no key is counted as imported', async () => {
      source = await fakeImportSource({keys: 159, scan: 'once'})
      const args = ['import', cluster.seed, '--from', source.address, '--copy', '--yes', '--progress', 'none']
      const run = await timed(() => runCli([...args, '--journal', path.join(dir, 'liar.jsonl')]))
      expectFailure(run, 1, /the source reported \d+ key\(s\) migrated into .*, which holds 0 of the 16 looked up/)
      expect(run.stdout).to.match(/copied 0 key\(s\)/)
      const json = await runCliJson<ImportResult>([...args, '--journal', path.join(dir, 'liar-json.jsonl')])
      expect(json.exitCode).to.equal(1)
      expect(json.json).to.deep.include({keysImported: 0, status: 'failed'})
      expect(json.json.errors.map((error) => error.code)).to.include('E_KEYS_MISSING')
    })

    for (const dryRun of [true, false]) {
      it(`SIGTERM during a SCAN that never ends${dryRun ? ' (--dry-run)' : ''}: the run exits 130 within seconds`, async () => {
        const fake = await fakeImportSource({keys: 159, scan: 'slow-endless'})
        source = fake
        const scans = () => fake.commands.filter((args) => args[0].toUpperCase() === 'SCAN').length
        const mode = dryRun ? ['--dry-run'] : ['--copy', '--yes', '--progress', 'lines', '--journal', path.join(dir, `sigterm-${process.pid}.jsonl`)]
        const result = await terminateWhen(['import', cluster.seed, '--from', fake.address, ...mode], () => scans() >= 5)
        expect(result.exitCode, result.stderr).to.equal(130)
        expect(result.afterSignalMs).to.be.lessThan(SIGNAL_BOUND_MS)
        expect(result.stderr).to.not.match(/\n\s+at /)
      })
    }
  })

  describe('backup from a node that misbehaves', () => {
    let single: TestCluster
    let proxy: FakeServer | undefined
    let backups: string

    before(async () => {
      single = await TestCluster.start({masters: 1, replicas: 0})
      const client = single.client()
      for (let i = 0; i < 100; i++) await client.set(`key:{a}:${i}`, String(i))
      backups = path.join(dir, 'backups')
      mkdirSync(backups)
    })

    afterEach(async () => {
      if (proxy) {
        await proxy.close()
        proxy = undefined
        await single.client().call('CONFIG', 'SET', 'cluster-announce-port', '0')
      }
      expect(Number(await single.client().dbsize())).to.equal(100)
    })

    after(async () => {
      await single?.stop()
    })

    const noBackupIn = (at: string) => {
      const left = existsSync(at) ? readdirSync(at) : []
      expect(left.filter((name) => name === 'manifest.json' || name.endsWith('.partial')), `left in ${at}: ${left.join(', ')}`).to.deep.equal([])
    }

    it('--server-binary /bin/true: no server loaded the file, so no backup is written (exit 1)', async () => {
      const at = path.join(backups, 'bin-true')
      const result = await timed(() => runCli(['backup', single.seed, at, '--server-binary', '/bin/true']))
      expectFailure(result, 1, /a local server could not load [0-9a-f]{40}\.rdb/)
      noBackupIn(at)
    })

    const modes: Array<{mode: SyncMode; extra: string[]; message: RegExp}> = [
      {extra: [], message: /sent an RDB of more than \d+ bytes, the limit for this node \(--max-rdb-bytes\)/, mode: 'endless'},
      {extra: [], message: /announced an RDB of more than \d+ bytes/, mode: 'huge-length'},
      {extra: ['--sync-timeout', '3s'], message: /did not send a whole RDB within 3000 ms \(--sync-timeout\)/, mode: 'keepalive'},
      {extra: serverFlag, message: /a local server could not load [0-9a-f]{40}\.rdb/, mode: 'forged'},
      {extra: serverFlag, message: /[0-9a-f]{40}\.rdb holds 0 keys once loaded, but .* held 100 keys without a TTL right before/, mode: 'empty-rdb'},
    ]
    for (const {extra, message, mode} of modes) {
      it(`a node whose SYNC is ${mode}: one error line within the bound, no backup written`, async () => {
        const [host, port] = single.seed.split(':')
        proxy = await fakeSyncNode({host, port: Number(port)}, mode)
        const at = path.join(backups, mode)
        const result = await timed(() => runCli(['backup', proxy!.address, at, ...extra]))
        expectFailure(result, 1, message)
        noBackupIn(at)
      })
    }

    it('SIGTERM while a node sends keep-alives forever: exit 130 within seconds, no file left in the making', async () => {
      const [host, port] = single.seed.split(':')
      const fake = await fakeSyncNode({host, port: Number(port)}, 'keepalive')
      proxy = fake
      const at = path.join(backups, 'sigterm')
      const result = await terminateWhen(['backup', fake.address, at], () => fake.commands.some((args) => args[0].toUpperCase() === 'SYNC'))
      expect(result.exitCode, result.stderr).to.equal(130)
      expect(result.afterSignalMs).to.be.lessThan(SIGNAL_BOUND_MS)
      noBackupIn(at)
    })

    it('backup --force into a directory with planted symlinks writes through none of them', async () => {
      const [id] = await masterIds(single)
      const at = path.join(backups, 'planted')
      mkdirSync(at)
      const victims = ['rdb-victim', 'manifest-victim'].map((name) => path.join(dir, name))
      for (const victim of victims) writeFileSync(victim, 'precious\n', {mode: 0o644})
      symlinkSync(victims[0], path.join(at, `${id}.rdb`))
      symlinkSync(victims[1], path.join(at, 'manifest.json'))
      const result = await timed(() => runCli(['backup', single.seed, at, '--force', ...serverFlag]))
      expectOneCleanLine(result, 2, /is a symlink: slotctl writes no backup into a directory holding one/)
      for (const victim of victims) {
        expect(readFileSync(victim, 'utf8')).to.equal('precious\n')
        expect(statSync(victim).mode & 0o777).to.equal(0o644)
      }
    })

    it('a real backup still verifies and writes its manifest', async () => {
      const at = path.join(backups, 'real')
      const result = await timed(() => runCli(['backup', single.seed, at, ...serverFlag]))
      expect(result.exitCode, result.stderr).to.equal(0)
      expect(JSON.parse(readFileSync(path.join(at, 'manifest.json'), 'utf8')).files[0].keys).to.equal(100)
    })
  })
})
