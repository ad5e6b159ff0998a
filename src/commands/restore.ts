import {readdir} from 'node:fs/promises'
import path from 'node:path'

import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'
import {ProgressReporter} from '../lib/cli/progress.js'
import {MigrationCommand, adminTimeoutMs} from '../lib/cli/migration-command.js'
import {formatDuration, paint, table} from '../lib/cli/render.js'
import {runChecks, splitFindings} from '../lib/check/checks.js'
import {type Issue, type NodeRef, byAddress} from '../lib/core/result.js'
import {durationFlag} from '../lib/cli/duration.js'
import {NodePool} from '../lib/cluster/connection.js'
import {parseAddress} from '../lib/cluster/address.js'
import {loadCluster} from '../lib/cluster/loader.js'
import {countSlots} from '../lib/core/slots.js'
import {ExitCode, SlotctlError, errorMessage, usageError} from '../lib/core/errors.js'
import {requireServerBinary} from '../lib/local/servers.js'
import {Throttle} from '../lib/migrate/throttle.js'
import {type ConflictView, conflictViews} from '../lib/transfer/import.js'
import {type Manifest, readManifest, verifyChecksums} from '../lib/transfer/manifest.js'
import {refuseUnsafeCluster} from '../lib/check/gate.js'
import {keysPerMaster, ownerTable} from '../lib/transfer/preconditions.js'
import {type Expected, type RestoredFile, type StartedNode, type Verification, mastersWithSlots, restoreInto, startFromBackup, verifyCluster} from '../lib/transfer/restore.js'

/** A local server restore --start runs: it holds the file and the slots of the backed-up master (source). */
export interface StartedNodeView extends NodeRef {
  pid: number
  sourceId: string
  sourceAddress: string
  slots: Array<[number, number]>
  slotCount: number
}

export interface RestoredFileView {
  file: string
  /** the backed-up master whose keys the file holds */
  masterId: string
  masterAddress: string
  keys: number
  keysRestored: number
  elapsedMs: number
}

export interface RestoreResult {
  status: 'done' | 'failed' | 'interrupted' | 'partial'
  mode: 'into' | 'start'
  dir: string
  /** --into: the node given; --start: the first new server */
  seed: NodeRef
  /** --start: where the servers live, what they are, how to stop them */
  started: {dir: string; stopCommand: string; nodes: StartedNodeView[]} | null
  files: RestoredFileView[]
  verification: Verification | null
  check: {healthy: boolean; errors: Issue[]; warnings: Issue[]} | null
  conflicts: {count: number; keys: ConflictView[]}
  elapsedMs: number
  warnings: Issue[]
  errors: Issue[]
}

function fileView({master, ...file}: RestoredFile): RestoredFileView {
  return {...file, masterAddress: master.address, masterId: master.id}
}

function startedView(node: StartedNode): StartedNodeView {
  return {address: node.address, id: node.id, pid: node.pid, slotCount: countSlots(node.slots), slots: node.slots, sourceAddress: node.from.address, sourceId: node.from.id}
}

export default class Restore extends BaseCommand<typeof Restore> {
  static override args = {
    dir: Args.string({description: 'a backup written by slotctl backup', required: true}),
  }

  static override changesCluster = true

  static override summary = 'Restore a backup into an empty cluster, or start it locally'

  static override description = BaseCommand.withExitCodes(
    [
      'Restore a backup made by slotctl backup. Every RDB is first checked against the SHA-256 in the manifest: a damaged file stops the restore before anything is loaded.',
      '--into CLUSTER_NODE: load the keys into a new, empty cluster. Each file is loaded by a local throw-away server (--server-binary) and its keys move into the masters that own their slots, as import does, so the new cluster may have another number of masters or another layout.',
      '--start DIR2: start one local server per file in DIR2, each loading its file, and form them into a cluster with the saved slot map, for a quick look. They keep running; stop them with `slotctl sandbox stop --dir DIR2`.',
      'Both end by comparing the key count and the content digest with the manifest, then run the check.',
    ].join('\n'),
    {
      0: 'restored; key count and digest equal the backup\'s; check clean',
      1: 'damaged backup (nothing loaded), refused cluster, or a mismatch',
      3: 'restored and verified, but the check found problems',
      4: 'a confirmation was needed, but there is no terminal and no --yes',
      130: 'interrupted: the cluster holds part of the backup',
    },
  )

  static override examples = [
    '<%= config.bin %> restore /backups/2026-11-22 --into 10.0.0.21:7000 --yes',
    '<%= config.bin %> restore /backups/2026-11-22 --start /tmp/look',
  ]

  static override flags = {
    into: Flags.string({description: 'any node of the (empty) cluster to restore into (HOST:PORT)'}),
    start: Flags.string({description: 'start local servers from the files in this (empty) directory, with the saved slot map'}),
    'ignore-lock': MigrationCommand.migrationFlags['ignore-lock'],
    force: MigrationCommand.migrationFlags.force,
    'server-binary': Flags.string({description: 'redis-server or valkey-server that loads the files (default: found on PATH); must read the backup\'s RDB version', env: 'SLOTCTL_SERVER_BINARY'}),
    host: Flags.string({default: '127.0.0.1', description: '--start: local address the servers bind and announce'}),
    'wait-timeout': durationFlag({defaultMs: 60_000, description: '--start: how long to wait for the cluster to form', minMs: 1, plainUnit: 's'}),
    'max-keys-per-sec': MigrationCommand.migrationFlags['max-keys-per-sec'],
    pipeline: MigrationCommand.migrationFlags.pipeline,
    timeout: MigrationCommand.migrationFlags.timeout,
    progress: MigrationCommand.migrationFlags.progress,
  }

  protected override finishInFlightOnInterrupt = true

  private startProgress(keys: number): ProgressReporter {
    this.progress = new ProgressReporter({keys, slots: 0}, ProgressReporter.modeFor(this.flags.progress, false))
    return this.progress
  }

  async run(): Promise<RestoreResult> {
    if (!this.flags.into === !this.flags.start) throw usageError('say where to restore: --into CLUSTER_NODE (a running, empty cluster) or --start DIR2 (new local servers), one of them')
    const dir = path.resolve(this.args.dir)
    const manifest = await readManifest(dir)
    const binary = requireServerBinary(this.flags['server-binary'])
    await verifyChecksums(dir, manifest)
    return this.flags.into ? this.restoreInto(dir, manifest, binary) : this.startLocal(dir, manifest, binary)
  }

  private async restoreInto(dir: string, manifest: Manifest, binary: string): Promise<RestoreResult> {
    const started = Date.now()
    const seed = this.parseSeed([this.flags.into as string])
    const pool = this.pool(seed, adminTimeoutMs(this.flags.timeout))
    const snapshot = await this.loadCluster(seed)
    const result = this.emptyResult('into', dir, {address: snapshot.seedAddress, id: snapshot.seedId})
    await this.refuseIfOtherRun(snapshot)
    refuseUnsafeCluster(snapshot, 'restore into this cluster', (args) => this.commandHint(args))
    const before = (await keysPerMaster(pool, snapshot)).reduce((sum, entry) => sum + entry.keys, 0)
    if (before > 0) {
      throw new SlotctlError(`the cluster at ${snapshot.seedAddress} already holds ${before} key(s): restore --into fills an empty cluster`, {
        code: 'E_NOT_EMPTY',
        suggestions: ['restore into a new cluster (or empty this one: FLUSHALL on every master); to add keys to a cluster in use, restore --start a copy and import from its servers'],
      })
    }
    const total = manifest.files.reduce((sum, entry) => sum + (entry.keys ?? 0), 0)
    this.log(`restore ${total > 0 ? `${total} key(s) from ` : ''}${manifest.files.length} file(s) (taken ${manifest.createdAt} from ${manifest.seed}; checksums match) into ${mastersWithSlots(snapshot).length} masters of ${snapshot.seedAddress}`)
    if (!(await this.confirm('Restore the backup into this cluster now?'))) throw new SlotctlError('cancelled: nothing was changed', {code: 'E_CANCELLED'})
    await this.lockUnchanged(snapshot)
    const progress = this.startProgress(total)
    const maxKeysPerSec = this.flags['max-keys-per-sec']
    let outcome: Awaited<ReturnType<typeof restoreInto>>
    try {
      outcome = await restoreInto(pool, ownerTable(snapshot), manifest, {
        batchKeys: this.flags.pipeline,
        dir,
        onBatch: (keys) => progress.onEvent({bytes: 0, keys, slot: 0, type: 'batch'}),
        onFile: (file) => progress.say(`${file.file}: ${file.keysRestored} of ${file.keys} key(s) restored in ${formatDuration(file.elapsedMs)}`),
        replace: false,
        serverBinary: binary,
        signal: this.stopRequest.signal,
        throttle: maxKeysPerSec ? new Throttle({maxKeysPerSec}) : undefined,
        timeoutMs: this.flags.timeout,
      })
    } finally {
      progress.stop()
      this.progress = undefined
    }
    Object.assign(result, {conflicts: {count: outcome.conflicts.length, keys: conflictViews(outcome.conflicts)}, files: outcome.files.map((file) => fileView(file))})
    const again = 'the cluster holds part of the backup: empty it (FLUSHALL on every master) and run the restore again'
    if (outcome.failure) throw new SlotctlError(outcome.failure.message, {code: outcome.failure.code, suggestions: [...outcome.failure.suggestions, again]})
    if (outcome.interrupted) {
      this.note(paint.warn(`interrupted: the batches in flight finished; ${again}`))
      this.resultExitCode = ExitCode.interrupted
      return {...result, elapsedMs: Date.now() - started, status: 'interrupted'}
    }
    result.verification = await this.verify(pool, mastersWithSlots(snapshot), outcome.expected, result)
    result.check = await this.checkAfter(pool, seed)
    return this.finish(result, started)
  }

  private async startLocal(dir: string, manifest: Manifest, binary: string): Promise<RestoreResult> {
    const started = Date.now()
    const target = path.resolve(this.flags.start as string)
    const entries = await readdir(target).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return []
      throw usageError(`cannot use '${target}': ${errorMessage(error)}`)
    })
    if (entries.length > 0) throw usageError(`'${target}' is not empty`, ['--start needs an empty (or new) directory for the servers\' files'])
    this.note(`the checksums match; starting ${manifest.files.length} local server(s) in ${target} from the backup...`)
    const {nodes, state} = await startFromBackup(manifest, {dir, host: this.flags.host, serverBinary: binary, target, waitTimeoutMs: this.flags['wait-timeout']})
    const stopCommand = `${this.config.bin} sandbox stop --dir ${target}`
    const result = this.emptyResult('start', dir, {address: nodes[0].address, id: nodes[0].id})
    result.started = {dir: target, nodes: nodes.map((node) => startedView(node)).sort(byAddress), stopCommand}
    // the new servers have no password, whatever the global flags say
    const local = new NodePool({commandTimeoutMs: 60_000, connectTimeoutMs: this.flags['connect-timeout']})
    try {
      const expected = manifest.files.filter((entry) => entry.keys !== null && entry.digest !== null).map((entry): Expected => ({digest: entry.digest as string, keys: entry.keys as number, keysWithExpiry: entry.keysWithExpiry ?? 0}))
      if (expected.length === manifest.files.length) result.verification = await this.verify(local, nodes, expected, result)
      else result.warnings.push({code: 'NOT_VERIFIED', message: 'the backup was not verified when it was taken (no key counts and digests in the manifest): nothing to compare with'})
      result.check = await this.checkAfter(local, parseAddress(state.seed))
    } finally {
      await local.closeAll()
    }
    this.log(table(['address', 'id', 'slots', 'from master'], nodes.map((node) => [node.address, node.id.slice(0, 8), countSlots(node.slots), node.from.address]), ['left', 'left', 'right', 'left']))
    this.log(`seed: ${state.seed}`)
    this.log(`stop: ${stopCommand}`)
    return this.finish(result, started)
  }

  private async verify(pool: NodePool, masters: Parameters<typeof verifyCluster>[1], expected: Expected[], result: RestoreResult): Promise<Verification> {
    const verification = await verifyCluster(pool, masters, expected)
    const mayExpire = expected.reduce((sum, entry) => sum + entry.keysWithExpiry, 0)
    if (!verification.keysMatch) {
      const why = mayExpire > 0 ? ` (${mayExpire} key(s) of the backup had a TTL and may have expired since)` : ''
      result.errors.push({code: 'E_VERIFY_KEYS', message: `the cluster holds ${verification.actual.keys} key(s), the backup ${verification.expected.keys}${why}`})
    }
    if (!verification.digestMatch) result.errors.push({code: 'E_VERIFY_DIGEST', message: `the content digest of the cluster (${verification.actual.digest.slice(0, 12)}...) differs from the backup's (${verification.expected.digest.slice(0, 12)}...)`})
    if (verification.keysMatch && verification.digestMatch) this.log(paint.good(`[OK] ${verification.actual.keys} keys, content digest ${verification.actual.digest.slice(0, 12)}... equal to the backup`))
    return verification
  }

  private async checkAfter(pool: NodePool, seed: Parameters<typeof loadCluster>[1]): Promise<RestoreResult['check']> {
    const {errors, warnings} = splitFindings(runChecks(await loadCluster(pool, seed)))
    const check = {errors, healthy: errors.length === 0, warnings}
    if (check.healthy) this.log(paint.good(`[OK] check: all 16384 slots covered, no open slots, all nodes agree${check.warnings.length > 0 ? ` (${check.warnings.length} warning(s))` : ''}`))
    else for (const error of check.errors) this.log(paint.bad(`  [ERR] ${error.message}`))
    return check
  }

  private finish(result: RestoreResult, started: number): RestoreResult {
    result.elapsedMs = Date.now() - started
    if (result.conflicts.count > 0) result.errors.push({code: 'E_CONFLICTS', message: `${result.conflicts.count} key(s) were written into the cluster by someone else during the restore, with other values: the backup's values were not written`})
    for (const error of result.errors) this.note(`slotctl: error: ${error.message}`)
    if (result.errors.length > 0) {
      this.resultExitCode = ExitCode.failed
      return {...result, status: result.errors.some((error) => error.code.startsWith('E_VERIFY')) ? 'failed' : 'partial'}
    }
    if (result.check && !result.check.healthy) this.resultExitCode = ExitCode.checkProblems
    this.log(paint.good(`restored in ${formatDuration(result.elapsedMs)}`))
    return {...result, status: 'done'}
  }

  private emptyResult(mode: RestoreResult['mode'], dir: string, seed: NodeRef): RestoreResult {
    return {check: null, conflicts: {count: 0, keys: []}, dir, elapsedMs: 0, errors: [], files: [], mode, seed, started: null, status: 'done', verification: null, warnings: []}
  }
}
