import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import type {VerbResult} from '../../lib/core/result.js'
import {SlotctlError, usageError} from '../../lib/core/errors.js'
import {writeOutputFile} from '../../lib/files.js'
import {invertPlan, planFileText, readPlanDocument, toPlanFile} from '../../lib/plan/plan-file.js'

export interface PlanInvertResult extends VerbResult {
  status: 'written'
  file: string
  out: string
  slots: number
  pairs: number
}

export default class PlanInvert extends BaseCommand<typeof PlanInvert> {
  static override args = {
    file: Args.string({description: 'the plan to invert', required: true}),
  }

  static override summary = 'Write the reverse of a plan: every slot back to where it came from'

  static override description = BaseCommand.withExitCodes(
    [
      'Write a new plan that moves every slot of FILE from its planned target back to its planned source: the undo of a finished run, to review (plan show) and run later (apply). `apply FILE --reverse` runs it directly.',
      'Like any plan, apply checks it against the live cluster: a slot that is not on its planned target any more is refused.',
    ].join('\n'),
  )

  static override examples = ['<%= config.bin %> plan invert plan.json --out undo.json && <%= config.bin %> apply undo.json --seed 127.0.0.1:7000']

  static override flags = {
    out: Flags.string({description: 'the new plan file', required: true}),
    overwrite: Flags.boolean({description: 'replace the --out file if it exists (a symlink is never written through)'}),
  }

  async run(): Promise<PlanInvertResult> {
    const {file} = this.args
    const {out, overwrite} = this.flags
    const {meta, plan} = readPlanDocument(file)
    const inverse = invertPlan(plan)
    const document = toPlanFile(inverse, {clusterId: meta.clusterId, inverted: !meta.inverted, keys: meta.keys})
    try {
      await writeOutputFile(out, planFileText(document), {overwrite, overwriteFlag: '--overwrite'})
    } catch (error) {
      if (error instanceof SlotctlError) throw error
      throw usageError(`cannot write the plan to '${out}': ${(error as Error).message}`)
    }
    this.log(`${out}: ${inverse.moves.length} slot(s) in ${document.transfers.length} pair(s), each from its planned target back to its planned source (run it with apply, or apply ${file} --reverse)`)
    return {errors: [], file, out, pairs: document.transfers.length, slots: inverse.moves.length, status: 'written', warnings: []}
  }
}
