import {readFile} from 'node:fs/promises'

import {Args, Flags} from '@oclif/core'

import {usageError} from '../lib/errors.js'
import {MigrationCommand, type MigrationResult} from '../lib/cli/migration-command.js'
import type {MigrationPlan} from '../lib/plan/types.js'

async function readPlan(file: string): Promise<MigrationPlan> {
  let plan: MigrationPlan
  try {
    plan = JSON.parse(await readFile(file, 'utf8')) as MigrationPlan
  } catch (error) {
    throw usageError(`cannot read plan '${file}': ${(error as Error).message}`)
  }
  if (plan?.version !== 1 || !Array.isArray(plan.moves) || !Array.isArray(plan.nodes)) throw usageError(`'${file}' is not a slotctl plan (write one with --dry-run --out)`)
  return plan
}

export default class Apply extends MigrationCommand<typeof Apply> {
  static args = {
    plan: Args.string({description: 'plan file written by reshard/rebalance --dry-run --out', required: true}),
  }

  static description = MigrationCommand.withExitCodes(
    'Run a plan written earlier by `reshard` or `rebalance` with --dry-run --out. Refuses (exit 1) if any slot in the plan no longer belongs to its planned source.',
  )

  static examples = ['<%= config.bin %> rebalance 127.0.0.1:7000 --dry-run --out plan.json && <%= config.bin %> apply plan.json --seed 127.0.0.1:7000 --yes']

  static flags = {
    seed: Flags.string({description: 'a node of the cluster (default: the first node named in the plan)'}),
    ...MigrationCommand.migrationFlags,
  }

  async run(): Promise<MigrationResult> {
    const plan = await readPlan(this.args.plan)
    if (plan.moves.length === 0) throw usageError('the plan moves no slots')
    const seed = this.parseSeed([this.flags.seed ?? plan.nodes[0].address])
    this.pool(seed, this.migrationCommandTimeoutMs())
    const snapshot = await this.loadCluster(seed)
    return this.runPlan(snapshot, plan, {resumeCommand: (journal) => `${this.config.bin} reshard ${snapshot.seedAddress} --resume ${journal} --yes`})
  }
}
