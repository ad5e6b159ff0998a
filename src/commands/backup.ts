import {rmSync} from 'node:fs'
import {lstat, readdir, stat} from 'node:fs/promises'
import path from 'node:path'

import {Args, Flags} from '@oclif/core'

import {BaseCommand, ignoreLockFlag} from '../lib/cli/base-command.js'
import type {ClusterSnapshot} from '../lib/cluster/loader.js'
import {formatBytes, formatDuration, paint, table} from '../lib/cli/render.js'
import {ExitCode, SlotctlError, errorMessage, usageError} from '../lib/core/errors.js'
import {ensurePrivateDir, refuseKernelPath} from '../lib/files.js'
import {requireServerBinary} from '../lib/local/servers.js'
import {durationFlag} from '../lib/cli/duration.js'
import {sizeFlag} from '../lib/cli/size.js'
import {DEFAULT_SYNC_TIMEOUT_MS} from '../lib/transfer/rdb-fetch.js'
import {type BackupFileResult, chooseSources, runBackup} from '../lib/transfer/backup.js'
import {type Issue, type NodeRef, byFirstSlot} from '../lib/core/result.js'
import {MANIFEST_FILE, NODES_FILE, removeQuietly} from '../lib/transfer/manifest.js'
import {refuseUnsafeCluster} from '../lib/check/gate.js'

/** One file of the backup: the master whose slots it holds, and the node it was taken from. */
export interface BackupFileView {
  file: string
  masterId: string
  masterAddress: string
  sourceId: string
  sourceAddress: string
  sourceRole: string
  slots: Array<[number, number]>
  slotCount: number
  bytes: number
  sha256: string
  format: string
  keys: number | null
  keysWithExpiry: number | null
  digest: string | null
  serverVersion: string | null
  /** taking the file */
  elapsedMs: number
  /** loading, counting and digesting it locally; null when not verified */
  verifyElapsedMs: number | null
}

export interface BackupResult {
  status: 'done' | 'failed'
  dir: string
  seed: NodeRef
  fromReplicas: boolean
  /** paths of the files written; null when the backup did not finish */
  manifest: string | null
  nodesFile: string | null
  files: BackupFileView[]
  totals: {files: number; bytes: number; keys: number | null}
  elapsedMs: number
  warnings: Issue[]
  errors: Issue[]
}

function fileView({master, nodeKeysWithoutExpiry: _node, takenFrom, ...file}: BackupFileResult): BackupFileView {
  return {...file, masterAddress: master.address, masterId: master.id, sourceAddress: takenFrom.address, sourceId: takenFrom.id, sourceRole: takenFrom.role}
}

/** A symlink in the backup directory could point anywhere: slotctl writes through none (the files it replaces are its own). */
async function refuseSymlinksIn(dir: string, entries: readonly string[]): Promise<void> {
  for (const entry of entries) {
    const stats = await lstat(path.join(dir, entry)).catch(() => undefined)
    if (stats?.isSymbolicLink()) throw usageError(`'${path.join(dir, entry)}' is a symlink: slotctl writes no backup into a directory holding one`, ['remove it, or choose an empty directory'])
  }
}

export default class Backup extends BaseCommand<typeof Backup> {
  static override args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
    dir: Args.string({description: 'directory to write the backup into (created if missing; must be empty unless --force)', required: true}),
  }

  static override summary = 'A point-in-time RDB of every master, with a manifest'

  static override description = BaseCommand.withExitCodes(
    [
      'Back up a cluster: a point-in-time RDB of every master (or, with --from-replicas, of one healthy replica of each, to spare the masters), taken over the replication protocol as a replica would (SYNC), so remote nodes work too; several at once (--parallel).',
      'Writes <master-id>.rdb per master, nodes.json (every node: id, address, role, master, slot ranges, config epoch, server version) and, last, manifest.json with the SHA-256 of each file. Each file is written under a temp name and renamed when complete.',
      'Each file is then loaded by a local throw-away redis-server/valkey-server (--server-binary) to count and digest its keys, so restore can prove it restored everything; a file it cannot load, or that holds far fewer keys than the node did, fails the backup (--no-verify skips this). A node that sends more than --max-rdb-bytes, or not all of its file within --sync-timeout, fails too. Each file is consistent in itself; files of different masters are taken seconds apart, so stop writers first for a cluster-wide consistent copy.',
    ].join('\n'),
    {
      0: 'every file taken (and verified), the manifest written',
      1: 'a file not taken, or not loadable by a server: no manifest written',
      2: 'bad input (address, non-empty dir, symlink in it, no server binary)',
      130: 'interrupted: the directory holds no finished backup',
    },
  )

  static override examples = [
    '<%= config.bin %> backup 10.0.0.1:7000 /backups/2026-11-22',
    '<%= config.bin %> backup 10.0.0.1:7000 /backups/nightly --from-replicas --force --json',
  ]

  static override flags = {
    'from-replicas': Flags.boolean({description: 'take each file from a healthy replica of the master (the master itself when it has none)'}),
    'ignore-lock': ignoreLockFlag,
    force: Flags.boolean({description: 'write into a non-empty directory (files of the same name are replaced; an old manifest is removed first)'}),
    parallel: Flags.integer({default: 4, description: 'files taken at once', min: 1}),
    verify: Flags.boolean({allowNo: true, default: true, description: 'load each file locally to count and digest its keys (--no-verify skips it)'}),
    'server-binary': Flags.string({description: 'redis-server or valkey-server that loads the files (default: found on PATH); must read the cluster\'s RDB version', env: 'SLOTCTL_SERVER_BINARY'}),
    'max-rdb-bytes': sizeFlag({defaultHelp: '2 x the node\'s used_memory + 64mb', description: 'refuse a file larger than this (a node that announces or sends more is not sending its data)'}),
    'sync-timeout': durationFlag({defaultMs: DEFAULT_SYNC_TIMEOUT_MS, description: 'give up on a node that has not sent its whole file within this time', minMs: 1, plainUnit: 's'}),
  }

  private readonly partialFiles = new Set<string>()
  private readonly abort = new AbortController()

  async run(): Promise<BackupResult> {
    const started = Date.now()
    const dir = path.resolve(this.args.dir)
    refuseKernelPath(dir)
    const seed = this.parseSeed([this.args.address])
    const serverBinary = this.serverBinary()
    const snapshot = await this.loadCluster(seed)
    await this.refuseWhileChanging(snapshot)
    refuseUnsafeCluster(snapshot, 'back up', (args) => this.commandHint(args))
    await this.prepareDir(dir)
    const pool = this.pool()
    const {sources, warnings} = await chooseSources(pool, snapshot, Boolean(this.flags['from-replicas']))
    this.note(`taking ${sources.length} RDB file(s) from ${sources.map((source) => `${source.from.address}${source.from.role === 'replica' ? ' (replica)' : ''}`).join(', ')} into ${dir}`)
    const outcome = await runBackup(pool, snapshot, sources, {
      dir,
      fromReplicas: Boolean(this.flags['from-replicas']),
      onFetched: (file) => this.note(`${file.takenFrom.address}: ${formatBytes(file.bytes)} in ${formatDuration(file.elapsedMs)}`),
      parallel: this.flags.parallel,
      partialFiles: this.partialFiles,
      maxRdbBytes: this.flags['max-rdb-bytes'],
      serverBinary,
      signal: this.abort.signal,
      slotctlVersion: this.config.version,
      syncTimeoutMs: this.flags['sync-timeout'],
    })
    const allWarnings = [...warnings, ...outcome.warnings]
    for (const warning of allWarnings) this.note(paint.warn(`warning: ${warning.message}`))
    const keys = outcome.files.every((file) => file.keys !== null) ? outcome.files.reduce((sum, file) => sum + (file.keys ?? 0), 0) : null
    const result: BackupResult = {
      seed: {address: snapshot.seedAddress, id: snapshot.seedId},
      dir,
      elapsedMs: Date.now() - started,
      errors: outcome.failures.map((failure) => ({code: failure.code, message: `${failure.node.address}: ${failure.message}`, nodes: [failure.node]})),
      files: outcome.files.map((file) => fileView(file)).sort((a, b) => byFirstSlot({address: a.masterAddress, slots: a.slots}, {address: b.masterAddress, slots: b.slots})),
      fromReplicas: Boolean(this.flags['from-replicas']),
      manifest: outcome.manifest ? path.join(dir, MANIFEST_FILE) : null,
      nodesFile: outcome.manifest ? path.join(dir, NODES_FILE) : null,
      status: outcome.manifest ? 'done' : 'failed',
      totals: {bytes: outcome.files.reduce((sum, file) => sum + file.bytes, 0), files: outcome.files.length, keys},
      warnings: allWarnings,
    }
    this.render(result)
    if (!outcome.manifest) {
      for (const error of result.errors) this.note(`slotctl: error: ${error.message}`)
      this.note(`slotctl: error: the backup in ${dir} is incomplete (no ${MANIFEST_FILE} was written)`)
      this.resultExitCode = ExitCode.failed
    }
    return result
  }

  /**
   * A reshard while files are taken would move keys between files taken at different moments.
   * Backup changes nothing, so when it cannot look (an ACL without CLIENT LIST), or sees a
   * marker no live run holds (stale or forged), it only warns.
   */
  private async refuseWhileChanging(snapshot: ClusterSnapshot): Promise<void> {
    try {
      await this.refuseIfOtherRun(snapshot, true)
    } catch (error) {
      if (!(error instanceof SlotctlError) || !error.message.startsWith('cannot check for other slotctl runs')) throw error
      this.note(paint.warn(`warning: ${error.message}`))
    }
  }

  protected override lastInterruptMessage(signal: NodeJS.Signals): string {
    return `${super.lastInterruptMessage(signal)}: the backup in ${path.resolve(this.args.dir)} is incomplete (no ${MANIFEST_FILE} was written)`
  }

  /** Ctrl-C: stop every transfer, remove the files in the making, exit 130. */
  protected override async onInterrupt(signal: NodeJS.Signals): Promise<void> {
    this.abort.abort()
    for (const file of this.partialFiles) rmSync(file, {force: true})
    await super.onInterrupt(signal)
  }

  /** A backup is verified by loading it: without a server to load it, refused before anything is taken. */
  private serverBinary(): string | null {
    if (!this.flags.verify) return null
    try {
      return requireServerBinary(this.flags['server-binary'])
    } catch (error) {
      if (!(error instanceof SlotctlError)) throw error
      throw new SlotctlError(`${error.message}: a backup is verified by loading each file into a local server`, {code: error.code, exitCode: ExitCode.usage, suggestions: ['give one with --server-binary PATH (or SLOTCTL_SERVER_BINARY), or skip the check with --no-verify']})
    }
  }

  private async prepareDir(dir: string): Promise<void> {
    const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return []
      if (error.code === 'ENOTDIR') throw usageError(`'${dir}' is a file, not a directory`)
      throw usageError(`cannot read '${dir}': ${errorMessage(error)}`)
    })
    if (entries.length > 0 && !this.flags.force) throw usageError(`'${dir}' is not empty`, ['choose an empty directory, or pass --force to write into it'])
    await refuseSymlinksIn(dir, entries)
    try {
      await ensurePrivateDir(dir)
      if (!(await stat(dir)).isDirectory()) throw new Error('not a directory')
    } catch (error) {
      throw usageError(`cannot create '${dir}': ${errorMessage(error)}`)
    }
    // an old manifest must not vouch for a mix of old and new files if this run fails
    await removeQuietly(path.join(dir, MANIFEST_FILE))
  }

  private render(result: BackupResult): void {
    const rows = result.files.map((file) => [
      file.masterAddress,
      file.sourceRole === 'replica' ? file.sourceAddress : 'master',
      file.slotCount,
      file.keys ?? '?',
      formatBytes(file.bytes),
      formatDuration(file.elapsedMs),
      file.verifyElapsedMs === null ? '-' : formatDuration(file.verifyElapsedMs),
      file.file,
    ])
    if (rows.length > 0) this.log(table(['master', 'taken from', 'slots', 'keys', 'size', 'time', 'verify', 'file'], rows, ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'left']))
    if (result.status !== 'done') return
    const keys = result.totals.keys === null ? '' : `, ${result.totals.keys} keys`
    this.log(paint.good(`backup of ${result.files.length} master(s) written to ${result.dir}: ${formatBytes(result.totals.bytes)}${keys} in ${formatDuration(result.elapsedMs)}`))
  }
}
