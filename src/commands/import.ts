import path from 'node:path'

import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'
import {ProgressReporter} from '../lib/cli/progress.js'
import {escapeControl} from '../lib/core/escape.js'
import {type Need, describeMissing, findMissingPermissions, importNeeds, refuseMissingPermissions} from '../lib/acl/preflight.js'
import type {ClusterSnapshot} from '../lib/cluster/loader.js'
import {mastersOf} from '../lib/cluster/topology.js'
import {MigrationCommand, adminTimeoutMs} from '../lib/cli/migration-command.js'
import {formatDuration, paint, table} from '../lib/cli/render.js'
import {type Issue, type NodeRef, byAddress} from '../lib/core/result.js'
import {type NodeAddress, formatAddress, parseAddress} from '../lib/cluster/address.js'
import {ExitCode, SlotctlError, usageError} from '../lib/core/errors.js'
import {refuseKernelPath} from '../lib/files.js'
import {defaultJournalPath} from '../lib/migrate/journal.js'
import {Throttle} from '../lib/migrate/throttle.js'
import {type ImportResult, conflictViews, keyName, surveySource} from '../lib/transfer/import.js'
import {ImportJournal, type ImportJournalState, type ImportSettings, readImportJournal} from '../lib/transfer/journal.js'
import {type Conflict, transferKeys} from '../lib/transfer/mover.js'
import {refuseUnsafeCluster} from '../lib/check/gate.js'
import {ownerTable} from '../lib/transfer/preconditions.js'
import {type SourceInfo, connectSource, inspectSource, selectDb} from '../lib/transfer/source.js'

export default class Import extends BaseCommand<typeof Import> {
  static override seedFromContext = true

  static override args = {
    address: Args.string({description: 'any node of the cluster to import into (HOST:PORT)', required: true}),
  }

  static override changesCluster = true

  static override summary = 'Move or copy the keys of a standalone server into the cluster'

  static override description = BaseCommand.withExitCodes(
    [
      'Import the keys of a standalone server into a cluster: SCAN the source (never KEYS), group the keys by the master owning their slot, and let the source MIGRATE them in batches straight into each master, pipelined and to every master at once. TTLs are kept; key names may be binary.',
      'Without --copy the keys move (they leave the source); with --copy the source keeps them. A key the cluster already has with an equal value is skipped; with a different value it is reported as a conflict and left alone (exit 1) unless --replace.',
      'Writes that land on the source during the import are your concern: a key written after it was moved stays behind. To switch over safely, import with --copy while the source is live, stop its writers, then run a second pass with --copy --replace (or without --copy to empty the source).',
      'Ctrl-C finishes the batches in flight, records where the SCAN got to in the journal, and exits 130; --resume JOURNAL continues, also after a crash.',
    ].join('\n'),
    {
      0: 'every key imported (with --dry-run: counted)',
      1: 'failed (--resume continues), or conflicts were left alone',
      4: 'a confirmation was needed, but there is no terminal and no --yes',
      130: 'interrupted: batches in flight finished; --resume continues',
    },
  )

  static override examples = [
    '<%= config.bin %> import 10.0.0.1:7000 --from 10.0.0.9:6379 --copy --yes',
    '<%= config.bin %> import 10.0.0.1:7000 --from redis://:secret@10.0.0.9:6379 --from-db 2 --match "user:*" --dry-run',
    '<%= config.bin %> import 10.0.0.1:7000 --from 10.0.0.9:6379 --max-keys-per-sec 20000 --yes',
    '<%= config.bin %> import 10.0.0.1:7000 --resume ~/.local/state/slotctl/journals/import-2026-11-22T10-00-00-000Z.jsonl --yes',
  ]

  static override flags = {
    from: Flags.string({description: 'the standalone server to import from: HOST:PORT or redis://[user:password@]HOST:PORT'}),
    'from-db': Flags.integer({description: 'the source db to import (needed when the source has keys in a db other than 0)', min: 0}),
    'from-user': Flags.string({description: 'ACL user name at the source', helpGroup: 'CONNECTION'}),
    'from-password': Flags.string({description: 'password at the source (the cluster\'s password is never sent to the source)', env: 'SLOTCTL_FROM_AUTH', helpGroup: 'CONNECTION'}),
    copy: Flags.boolean({description: 'copy the keys: the source keeps them (MIGRATE COPY)'}),
    replace: Flags.boolean({description: 'overwrite keys the cluster already has with different values'}),
    match: Flags.string({description: 'import only keys matching this glob pattern (SCAN MATCH)'}),
    'max-keys-per-sec': MigrationCommand.migrationFlags['max-keys-per-sec'],
    pipeline: MigrationCommand.migrationFlags.pipeline,
    timeout: MigrationCommand.migrationFlags.timeout,
    progress: MigrationCommand.migrationFlags.progress,
    journal: Flags.string({description: 'journal file (default: under ~/.local/state/slotctl/journals)'}),
    resume: Flags.string({description: 'continue an interrupted import from its journal, with its settings'}),
    'ignore-lock': MigrationCommand.migrationFlags['ignore-lock'],
    force: MigrationCommand.migrationFlags.force,
    'dry-run': Flags.boolean({description: 'count the keys per master and those the cluster already has; change nothing'}),
  }

  protected override finishInFlightOnInterrupt = true

  private startProgress(keys: number): ProgressReporter {
    this.progress = new ProgressReporter({keys, slots: 0}, ProgressReporter.modeFor(this.flags.progress, false))
    return this.progress
  }

  async run(): Promise<ImportResult> {
    this.refuseSettingsOnResume()
    const resumed = this.flags.resume ? readImportJournal(this.flags.resume) : undefined
    if (!this.flags.from && !resumed) throw usageError('missing --from: the standalone server to import from', ['e.g. --from 10.0.0.9:6379'])
    const seed = this.parseSeed([this.args.address])
    const pool = this.pool(seed, adminTimeoutMs(this.flags.timeout))
    const sourceAddress = this.sourceAddress(resumed)
    const snapshot = await this.loadCluster(seed)
    const settings = this.settings(snapshot.seedAddress, sourceAddress, resumed)
    const result = this.emptyResult(settings, snapshot.seedId, resumed)
    if (resumed?.complete) {
      this.log(`the import recorded in ${this.flags.resume} is complete: nothing to do`)
      return {...result, status: 'nothing-to-do'}
    }
    await this.refuseIfOtherRun(snapshot)
    refuseUnsafeCluster(snapshot, 'import', (args) => this.commandHint(args))
    const owners = ownerTable(snapshot)
    const source = await connectSource(pool, sourceAddress)
    const info = await inspectSource(source, settings.source, {db: this.flags['from-db'] ?? resumed?.settings.db, move: !settings.copy})
    await selectDb(source, settings.source, settings.db)
    result.source = {address: settings.source, db: settings.db, keys: info.keys, version: info.version}
    result.warnings.push(...this.sourceWarnings(info))
    if (info.keys === 0) {
      this.log(`the source ${settings.source} has no keys in db ${settings.db}: nothing to import`)
      return {...result, status: 'nothing-to-do'}
    }
    const masters = new Set(owners.map((owner) => owner.id)).size
    this.log(`${settings.copy ? 'copy' : 'move'} ${resumed ? 'the rest of ' : ''}${info.keys} key(s)${settings.match ? ` matching '${settings.match}'` : ''} from ${settings.source} db ${settings.db} (${info.version}) into ${masters} masters of ${snapshot.seedAddress}`)

    const needs = this.permissionNeeds(snapshot, owners)
    if (this.flags['dry-run']) {
      const missing = await findMissingPermissions(pool, needs)
      if (missing.length > 0) this.note(paint.warn(`import would refuse: ${describeMissing(pool.settings.username ?? 'default', missing).message}`))
      const survey = await surveySource(source, pool, owners, {address: settings.source, keys: info.keys, match: settings.match, signal: this.stopRequest.signal})
      this.log(table(['master', 'keys'], [...survey.perOwner].sort(([a], [b]) => byAddress(a, b)).map(([owner, keys]) => [owner.address, keys]), ['left', 'right']))
      this.log(`${survey.keys} key(s) would be imported; the cluster already has ${survey.present} of them (equal values are skipped, different ones are conflicts${settings.replace ? ' that --replace overwrites' : ''})`)
      return {...result, keysAlreadyInCluster: survey.present, keysPlanned: survey.keys, owners: [...survey.perOwner].map(([node, keys]) => ({...node, keys})).sort(byAddress), status: 'planned'}
    }
    // before the question: a journal that cannot be created must not wait for a yes
    if (!resumed) refuseKernelPath(this.flags.journal ?? defaultJournalPath('import'))
    await refuseMissingPermissions(pool, needs)
    if (!(await this.confirm(`${settings.copy ? 'Copy' : 'Move'} ${info.keys} key(s) into the cluster now?`))) throw new SlotctlError('cancelled: nothing was changed', {code: 'E_CANCELLED'})
    await this.lockUnchanged(snapshot)

    const journalPath = this.flags.resume ?? this.flags.journal ?? defaultJournalPath('import')
    this.historyJournal = path.resolve(journalPath)
    const resumeCommand = this.resumeCommand(snapshot.seedAddress, journalPath, sourceAddress)
    const journal = resumed ? ImportJournal.reopen(journalPath) : ImportJournal.create(journalPath, settings, resumeCommand)
    this.note(`journal: ${journalPath}`)
    const progress = this.startProgress(info.keys)
    const maxKeysPerSec = this.flags['max-keys-per-sec'] ?? settings.maxKeysPerSec
    let outcome: Awaited<ReturnType<typeof transferKeys>>
    try {
      outcome = await transferKeys(source, pool, owners, {
        batchKeys: settings.pipeline,
        copy: settings.copy,
        cursor: resumed?.cursor,
        match: settings.match,
        onBatch: (keys) => progress.onEvent({bytes: 0, keys, slot: 0, type: 'batch'}),
        onCheckpoint: (checkpoint) => journal.checkpoint(checkpoint),
        replace: settings.replace,
        signal: this.stopRequest.signal,
        sourceAddress: `the source ${settings.source}`,
        sourceKeys: info.keys,
        throttle: maxKeysPerSec ? new Throttle({maxKeysPerSec}) : undefined,
        timeoutMs: settings.timeoutMs,
      })
    } finally {
      progress.stop()
      this.progress = undefined
    }
    if (outcome.complete) journal.complete()
    const conflicts: Conflict[] = [...(resumed?.conflicts ?? []), ...outcome.conflicts]
    Object.assign(result, {
      conflicts: {count: conflicts.length, keys: conflictViews(conflicts)},
      elapsedMs: outcome.elapsedMs,
      journal: journalPath,
      keysImported: (resumed?.keys ?? 0) + outcome.keys,
      owners: [...outcome.perOwner].map(([id, keys]) => ({address: owners.find((owner) => owner.id === id)?.address ?? '', id, keys})).sort(byAddress),
    })
    this.log(`${settings.copy ? 'copied' : 'moved'} ${outcome.keys} key(s) in ${formatDuration(outcome.elapsedMs)} (${Math.round(outcome.keys / Math.max(outcome.elapsedMs / 1000, 0.001))} keys/s)${resumed ? `, ${result.keysImported} in all` : ''}`)
    return this.finish(result, outcome, conflicts, resumeCommand)
  }

  /** The command that continues: connection flags as given, passwords through the environment. */
  private resumeCommand(seed: string, journal: string, source: NodeAddress): string {
    const sourceSecret = source.password && !process.env.SLOTCTL_FROM_AUTH ? 'SLOTCTL_FROM_AUTH=<source password> ' : ''
    const user = source.username ? ` --from-user ${source.username}` : ''
    return `${sourceSecret}${this.commandHint(`import ${seed} --resume ${journal} --yes${user}`)}`
  }

  /** A resumed import keeps the settings recorded in its journal. */
  private refuseSettingsOnResume(): void {
    if (!this.flags.resume) return
    const given = (['copy', 'replace', 'match', 'from-db', 'journal'] as const).filter((flag) => this.flags[flag] !== undefined && this.flags[flag] !== false)
    if (given.length > 0) throw usageError(`--resume continues with the settings in its journal: ${given.map((flag) => `--${flag}`).join(', ')} cannot be given with it`)
  }

  private finish(result: ImportResult, outcome: Awaited<ReturnType<typeof transferKeys>>, conflicts: Conflict[], resumeCommand: string): ImportResult {
    this.reportConflicts(conflicts, result)
    if (outcome.failure) {
      this.note(`slotctl: error: ${outcome.failure.message}`)
      for (const hint of outcome.failure.suggestions) this.note(`  hint: ${hint}`)
      this.note(`after resolving it, continue with: ${resumeCommand}`)
      result.errors.push({code: outcome.failure.code, message: outcome.failure.message})
      this.resultExitCode = ExitCode.failed
      return {...result, resumeCommand, status: 'failed'}
    }
    if (outcome.interrupted) {
      this.note(paint.warn(`interrupted: the batches in flight finished; continue with: ${resumeCommand}`))
      this.resultExitCode = ExitCode.interrupted
      return {...result, resumeCommand, status: 'interrupted'}
    }
    if (conflicts.length > 0) {
      this.resultExitCode = ExitCode.failed
      return {...result, status: 'partial'}
    }
    return {...result, status: 'done'}
  }

  private reportConflicts(conflicts: readonly Conflict[], result: ImportResult): void {
    if (conflicts.length === 0) return
    const where = result.mode === 'move' ? 'they stay on the source' : 'the cluster keeps its values'
    const message = `${conflicts.length} key(s) exist in the cluster with different values and were not overwritten (${where})`
    result.errors.push({code: 'E_CONFLICTS', message})
    this.note(`${paint.bad(message)}:`)
    for (const {key, owner} of conflicts.slice(0, 20)) {
      const name = keyName(key)
      this.note(`  ${name.encoding === 'hex' ? `0x${name.key}` : escapeControl(name.key)}  (at ${escapeControl(owner.address)})`)
    }
    if (conflicts.length > 20) this.note(`  ... and ${conflicts.length - 20} more (all of them in --json, up to 1000)`)
    this.note('compare them, then run the import again with --replace to overwrite the cluster copies')
  }

  private sourceWarnings(info: SourceInfo): Issue[] {
    const others = info.dbs.filter((entry) => entry.db !== info.db)
    if (others.length === 0) return []
    const warning = {code: 'OTHER_DBS', message: `the source also has keys in ${others.map((entry) => `db ${entry.db} (${entry.keys})`).join(', ')}, not imported by this run`}
    this.note(paint.warn(`warning: ${warning.message}`))
    return [warning]
  }

  /** --from (with --from-user/--from-password), or the journal's source on --resume. */
  /** What the run sends to the cluster (the source's own rights are its operator's). */
  private permissionNeeds(snapshot: ClusterSnapshot, owners: readonly NodeRef[]): Need[] {
    const masters = mastersOf(snapshot.nodes).filter((node) => snapshot.views[node.id]?.reachable).map((node) => node.address)
    // with a cluster password slotctl relays the keys itself (transfer/mover.ts)
    return importNeeds(masters, [...new Set(owners.map((owner) => owner.address))], Boolean(this.pool().settings.password))
  }

  private sourceAddress(resumed?: ImportJournalState): NodeAddress {
    const address = parseAddress(this.flags.from ?? (resumed as ImportJournalState).settings.source)
    if (resumed && this.flags.from && formatAddress(address) !== resumed.settings.source) {
      throw usageError(`--from ${formatAddress(address)} is not the source of the journal (${resumed.settings.source})`)
    }
    return {
      ...address,
      password: this.flags['from-password'] ?? address.password,
      username: this.flags['from-user'] ?? address.username,
    }
  }

  private settings(seed: string, source: NodeAddress, resumed?: ImportJournalState): ImportSettings {
    if (resumed) return resumed.settings
    return {
      copy: Boolean(this.flags.copy),
      db: this.flags['from-db'] ?? 0,
      match: this.flags.match,
      maxKeysPerSec: this.flags['max-keys-per-sec'],
      pipeline: this.flags.pipeline,
      replace: Boolean(this.flags.replace),
      seed,
      source: formatAddress(source),
      timeoutMs: this.flags.timeout,
    }
  }

  private emptyResult(settings: ImportSettings, seedId: string, resumed?: ImportJournalState): ImportResult {
    return {
      seed: {address: settings.seed, id: seedId},
      conflicts: {count: 0, keys: []},
      elapsedMs: 0,
      errors: [],
      keysImported: resumed?.keys ?? 0,
      match: settings.match ?? null,
      mode: settings.copy ? 'copy' : 'move',
      owners: [],
      replace: settings.replace,
      source: {address: settings.source, db: settings.db, keys: 0, version: ''},
      status: 'done',
      warnings: [],
    }
  }
}
