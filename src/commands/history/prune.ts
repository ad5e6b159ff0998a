import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {formatBytes, table} from '../../lib/cli/render.js'
import type {VerbResult} from '../../lib/core/result.js'
import {usageError} from '../../lib/core/errors.js'
import {type PruneOutcome, pruneHistory} from '../../lib/history/prune.js'

export interface HistoryPruneResult extends VerbResult, PruneOutcome {
  /** pruned: removed; planned: --dry-run, nothing was removed */
  status: 'planned' | 'pruned'
  olderThanMs: number
  keep: number
}

const AGE_UNIT_MS: Record<string, number> = {d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, w: 7 * 86_400_000}

/** "30d", "12h", "2w", "1d12h": an age of journals and records, not a timeout (so days and weeks). */
export function parseAge(text: string): number | undefined {
  const trimmed = text.trim().toLowerCase()
  if (!/^(\d+(s|m|h|d|w))+$/.test(trimmed)) return undefined
  let total = 0
  for (const [, amount, unit] of trimmed.matchAll(/(\d+)(s|m|h|d|w)/g)) total += Number(amount) * AGE_UNIT_MS[unit]
  return Number.isSafeInteger(total) ? total : undefined
}

const DEFAULT_AGE = '30d'
const DEFAULT_KEEP = 10

const ageFlag = Flags.custom<number>({
  default: parseAge(DEFAULT_AGE),
  defaultHelp: async () => DEFAULT_AGE,
  description: 'remove journals and records older than this (e.g. 30d, 12h, 2w)',
  helpValue: 'AGE',
  async parse(input) {
    const ms = parseAge(input)
    if (ms === undefined) throw usageError(`--older-than '${input}' is not an age: use e.g. 30d, 12h, 2w`)
    return ms
  },
})

export default class HistoryPrune extends BaseCommand<typeof HistoryPrune> {
  static override summary = 'Remove old journals and old audit-log records'

  static override description = BaseCommand.withExitCodes(
    [
      `Remove migration and import journals, and records of the audit log, older than --older-than (default ${DEFAULT_AGE}); the newest --keep (default ${DEFAULT_KEEP}) of each always stay.`,
      'Only journals slotctl named itself in its journals folder (<kind>-<time>.jsonl) and owned by you are removed; symlinks and any other file are never touched. Says what it removed; --dry-run says what it would remove.',
      'A journal is what --resume and fix need after an interrupted run: prune after such runs are finished.',
    ].join('\n'),
  )

  static override examples = ['<%= config.bin %> history prune --dry-run', '<%= config.bin %> history prune --older-than 7d --keep 5']

  static override flags = {
    'older-than': ageFlag(),
    keep: Flags.integer({default: DEFAULT_KEEP, description: 'always keep this many newest journals and this many newest records', min: 0}),
    'dry-run': Flags.boolean({description: 'remove nothing: list what would be removed'}),
  }

  async run(): Promise<HistoryPruneResult> {
    const olderThanMs = this.flags['older-than'] as number
    const {keep} = this.flags
    const dryRun = this.flags['dry-run']
    const outcome = await pruneHistory({dryRun, keep, olderThanMs})
    this.render(outcome, dryRun)
    return {...outcome, errors: [], keep, olderThanMs, status: dryRun ? 'planned' : 'pruned', warnings: []}
  }

  private render(outcome: PruneOutcome, dryRun: boolean): void {
    const verb = dryRun ? 'would remove' : 'removed'
    if (outcome.journalsRemoved.length > 0) {
      this.log(table(['journal', 'modified', 'size'], outcome.journalsRemoved.map((journal) => [journal.path, journal.modifiedAt, formatBytes(journal.bytes)])))
    }
    this.log(`${dryRun ? '--dry-run: nothing was removed. ' : ''}Journals: ${verb} ${outcome.journalsRemoved.length} (${formatBytes(outcome.bytesFreed)}), kept ${outcome.journalsKept} in ${outcome.journalDir}.`)
    this.log(`History: ${verb} ${outcome.recordsRemoved} record(s), kept ${outcome.recordsKept} in ${outcome.historyFile}.`)
    if (outcome.foreignFiles > 0) this.note(`${outcome.foreignFiles} other file(s) in ${outcome.journalDir} are not slotctl's journals: left alone`)
  }
}
