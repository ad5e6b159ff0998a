import {Args, Flags} from '@oclif/core'

import {usageError} from '../lib/core/errors.js'
import {MIGRATION_EXIT_CODES, MigrationCommand, type MigrationResult} from '../lib/cli/migration-command.js'
import {readJournal} from '../lib/migrate/journal.js'
import {invertPlan, readPlanDocument} from '../lib/plan/plan-file.js'
import type {MigrationPlan} from '../lib/plan/types.js'

export default class Apply extends MigrationCommand<typeof Apply> {
  static override args = {
    plan: Args.string({description: 'plan file written by reshard/rebalance --dry-run --out (not needed with --resume)'}),
  }

  static override changesCluster = true

  static override summary = 'Run a plan saved by reshard or rebalance --dry-run --out'

  static override description = MigrationCommand.withExitCodes(
    [
      'Run a plan written earlier by `reshard` or `rebalance` with --dry-run --out, on the cluster that --seed names.',
      'With --reverse the plan runs backwards (each slot from its planned target back to its planned source): the undo of a finished run, checked like any plan (a slot not on its planned target now is refused).',
      'The plan is checked against its schema first. Its node ids are looked up in the live cluster and their live addresses are used: slotctl never connects to an address read from a file. It refuses (exit 1) a plan naming a node the cluster does not have, or a slot that no longer belongs to its planned source.',
    ].join('\n'),
    MIGRATION_EXIT_CODES,
  )

  static override examples = [
    '<%= config.bin %> rebalance 127.0.0.1:7000 --dry-run --out plan.json && <%= config.bin %> apply plan.json --seed 127.0.0.1:7000 --yes',
    '<%= config.bin %> apply plan.json --reverse --seed 127.0.0.1:7000 --yes',
    '<%= config.bin %> apply --seed 127.0.0.1:7000 --resume ~/.local/state/slotctl/journals/rebalance-2026-11-30T10-00-00-000Z.jsonl --yes',
  ]

  static override flags = {
    seed: Flags.string({description: 'a node of the cluster to run the plan on (HOST:PORT); required'}),
    resume: Flags.string({description: 'continue an interrupted apply from its journal'}),
    reverse: Flags.boolean({description: 'run the plan backwards: every slot from where the plan sent it back to where it came from (undo a finished run); checked against the live cluster like any plan', exclusive: ['resume']}),
    ...MigrationCommand.migrationFlags,
  }

  async run(): Promise<MigrationResult> {
    if (!this.flags.seed) throw usageError('apply needs --seed HOST:PORT, a node of the cluster: slotctl never connects to addresses read from a plan file')
    if (!this.args.plan && !this.flags.resume) throw usageError('give the plan file (or --resume JOURNAL)')
    if (this.args.plan && this.flags.resume) throw usageError('give either a plan file or --resume JOURNAL, not both')
    const resumed = this.flags.resume ? {path: this.flags.resume, state: readJournal(this.flags.resume)} : undefined
    const plan = resumed?.state.plan ?? this.planToRun(this.args.plan as string)
    if (plan.moves.length === 0) throw usageError('the plan moves no slots')
    const seed = this.parseSeed([this.flags.seed])
    this.pool(seed, this.migrationCommandTimeoutMs(resumed?.state.settings))
    const snapshot = await this.loadCluster(seed)
    return this.runPlan(snapshot, plan, {resume: resumed, resumeArgs: (journal) => `apply --seed ${snapshot.seedAddress} --resume ${journal} --yes`})
  }

  /** The plan file's moves, or with --reverse their inverse (the journal then records the inverse, so --resume needs no flag). */
  private planToRun(file: string): MigrationPlan {
    const {meta, plan} = readPlanDocument(file)
    if (!this.flags.reverse) return plan
    this.planInverted = !meta.inverted
    this.note(`--reverse: every slot of ${file} goes back from its planned target to its planned source`)
    return invertPlan(plan)
  }
}
