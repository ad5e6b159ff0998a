import {Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'
import {paint, table} from '../lib/cli/render.js'
import type {VerbResult} from '../lib/core/result.js'
import {type HistoryRecord, historyFile, matchesCluster, readHistory} from '../lib/history/audit-log.js'
import {readErrorText} from '../lib/files.js'
import {usageError} from '../lib/core/errors.js'

export interface HistoryResult extends VerbResult {
  status: 'ok'
  file: string
  /** oldest first */
  records: HistoryRecord[]
  /** lines of the log that are not records (a line torn by a crash) */
  unreadable: number
}

/** "2026-12-06 21:02:37" in UTC: the log's times are UTC. */
function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')
}

export default class History extends BaseCommand<typeof History> {
  static override summary = 'List the runs that changed a cluster (the audit log)'

  static override description = BaseCommand.withExitCodes(
    [
      'List the records of the audit log: one per run of a verb that changes a cluster (create, fix, reshard, rebalance, apply, failover, add-node, del-node, set-timeout, import, restore, and call of a command that may write), written when the run ends: time, user, host, verb, arguments (passwords masked), cluster, outcome and journal.',
      'The log is history.jsonl in the state directory ($XDG_STATE_HOME/slotctl, else ~/.local/state/slotctl). Remove old records and journals with `slotctl history prune`.',
    ].join('\n'),
  )

  static override examples = ['<%= config.bin %> history', '<%= config.bin %> history --cluster 127.0.0.1:7000 --limit 20', '<%= config.bin %> history --json']

  static override flags = {
    cluster: Flags.string({description: 'only runs on this cluster: a node address it had (HOST:PORT) or the start of its cluster id'}),
    limit: Flags.integer({description: 'only the newest N records', min: 1}),
    verb: Flags.string({description: 'only runs of this verb (e.g. failover)'}),
  }

  async run(): Promise<HistoryResult> {
    const file = historyFile()
    let read: ReturnType<typeof readHistory>
    try {
      read = readHistory(file)
    } catch (error) {
      throw usageError(`cannot read the history log '${file}': ${readErrorText(error)}`)
    }
    const {cluster, limit, verb} = this.flags
    let records = read.records.filter((record) => (!cluster || matchesCluster(record, cluster)) && (!verb || record.verb === verb))
    if (limit !== undefined) records = records.slice(-limit)
    this.render(records, file, read.unreadable)
    return {errors: [], file, records, status: 'ok', unreadable: read.unreadable, warnings: []}
  }

  private render(records: HistoryRecord[], file: string, unreadable: number): void {
    if (records.length === 0) {
      this.log(`no records in ${file}${this.flags.cluster || this.flags.verb ? ' for that filter' : ''}`)
      return
    }
    const outcome = (record: HistoryRecord) => (record.outcome === 'ok' ? 'ok' : paint.bad(`${record.outcome} (${record.exitCode})`))
    const rows = records.map((record) => [
      shortTime(record.time),
      `${record.user}@${record.host}`,
      record.cluster?.seed ?? '',
      outcome(record),
      [record.verb, ...record.args].join(' '),
    ])
    this.log(table(['time (UTC)', 'who', 'cluster', 'outcome', 'command'], rows))
    if (this.flags.verbose) {
      for (const record of records.filter((entry) => entry.journal || entry.error)) {
        this.log(`${shortTime(record.time)} ${record.verb}:${record.journal ? ` journal ${record.journal}` : ''}${record.error ? ` error: ${record.error}` : ''}`)
      }
    }
    if (unreadable > 0) this.note(paint.warn(`${unreadable} line(s) of ${file} are not records (torn by a crash?): left out`))
  }
}
