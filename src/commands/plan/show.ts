import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {formatDuration, paint, table} from '../../lib/cli/render.js'
import type {VerbResult} from '../../lib/core/result.js'
import {readPlanDocument} from '../../lib/plan/plan-file.js'
import {type PlanSummary, formatAge, summarizePlan} from '../../lib/plan/summary.js'

export interface PlanShowResult extends VerbResult, PlanSummary {
  status: 'ok'
  file: string
}

/** The ranges of a pair as shown in the table: whole with --verbose, else cut to a line. */
const RANGES_SHOWN = 60

export default class PlanShow extends BaseCommand<typeof PlanShow> {
  static override args = {
    file: Args.string({description: 'a plan file (reshard/rebalance --dry-run --out, plan invert)', required: true}),
  }

  static override summary = 'Summarize a plan file: kind, age, cluster, pairs, slots, keys, expected time'

  static override description = BaseCommand.withExitCodes(
    [
      'A summary of a plan file for review: its kind, when it was made, the cluster it was made for, each source/target pair with its slot ranges, the slot and key counts, and a rough time at a nominal rate.',
      'Reads both plan formats (version 2, ranges per pair, written since; version 1, one entry per slot). Connects to nothing.',
    ].join('\n'),
  )

  static override examples = ['<%= config.bin %> plan show plan.json', '<%= config.bin %> plan show plan.json --json']

  async run(): Promise<PlanShowResult> {
    const file = this.args.file
    const {meta, plan} = readPlanDocument(file)
    const summary = summarizePlan(plan, meta)
    this.render(summary)
    return {...summary, errors: [], file, status: 'ok', warnings: []}
  }

  private render(summary: PlanSummary): void {
    const node = (address: string, id: string) => `${address || '?'} (${id.slice(0, 8)})`
    const ranges = (slots: string) => (this.flags.verbose || slots.length <= RANGES_SHOWN ? slots : `${slots.slice(0, RANGES_SHOWN)}...`)
    this.log(`${summary.kind} plan (format version ${summary.version})${summary.inverted ? paint.warn(', inverted (undoes another plan)') : ''}`)
    this.log(`made:     ${summary.createdAt}${summary.ageMs === undefined ? '' : ` (${formatAge(summary.ageMs)} ago)`}`)
    this.log(`cluster:  ${summary.clusterId ?? 'not recorded (a version 1 plan)'}`)
    this.log(table(['from', 'to', 'slots', 'which'], summary.pairs.map((pair) => [node(pair.sourceAddress, pair.sourceId), node(pair.targetAddress, pair.targetId), pair.slotCount, ranges(pair.slots)]), ['left', 'left', 'right', 'left']))
    const keys = summary.keys === undefined ? 'keys not recorded' : `${summary.keys} key(s) when made`
    const time = summary.expectedMs === undefined ? '' : `; about ${formatDuration(summary.expectedMs)} at a nominal ${summary.nominalKeysPerSec} keys/s`
    this.log(`${summary.pairs.length} pair(s), ${summary.slots} slot(s), ${keys}${time}${summary.bigKeys > 0 ? `; ${summary.bigKeys} big key(s)` : ''}`)
  }
}
