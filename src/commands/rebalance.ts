import {Args, Flags} from '@oclif/core'

import {usageError} from '../lib/core/errors.js'
import {readJournal} from '../lib/migrate/journal.js'
import {MIGRATION_EXIT_CODES, MigrationCommand, type MigrationResult, unmovedResult} from '../lib/cli/migration-command.js'
import {type BalanceBy, DEFAULT_THRESHOLD_PCT, type RebalanceNodeReport, type RebalanceResult, planRebalance} from '../lib/plan/rebalance.js'
import {parseWeights} from '../lib/plan/weights.js'
import {type Align, formatBytes, paint, table} from '../lib/cli/render.js'
import {byAddress} from '../lib/core/result.js'
import {slotByteEstimates, slotKeyCounts} from '../lib/cluster/slot-stats.js'
import {type ClusterNode, mastersOf, shortId} from '../lib/cluster/topology.js'

export interface RebalanceCommandResult extends Omit<MigrationResult, 'status'> {
  /** balanced: every master within the threshold, nothing moved. */
  status: 'balanced' | MigrationResult['status']
  by: BalanceBy
  thresholdPct: number
  /** Every master: slots and load before and after this plan, its target, and how far off it was. */
  nodes: RebalanceNodeReport[]
  slotsToMove: number
}

function parseThreshold(text: string): number {
  const value = Number(text.trim().replace(/%$/, ''))
  if (text.trim() === '' || !Number.isFinite(value)) throw usageError(`--threshold '${text}' is not a number (a percentage, e.g. 2)`)
  if (value < 0) throw usageError(`--threshold ${text}: must be 0 or more`)
  return value
}

function formatLoad(by: BalanceBy, value: number): string {
  if (by === 'memory') return formatBytes(Math.round(value))
  return String(Math.round(value))
}

/** "+1365 (+33.3%)", "-4096 (-100.0%)", "drain" for a weight-0 master, "skipped" for a non-participant. */
function formatOffBy(by: BalanceBy, node: RebalanceNodeReport): string {
  if (!node.participating) return 'skipped'
  if (node.offByPct === null) return 'drain'
  const sign = node.offBy > 0 ? '+' : node.offBy < 0 ? '-' : '±'
  const amount = by === 'memory' ? formatBytes(Math.round(Math.abs(node.offBy))) : String(Math.round(Math.abs(node.offBy)))
  return `${sign}${amount} (${node.offByPct > 0 ? '+' : ''}${node.offByPct.toFixed(1)}%)`
}

export default class Rebalance extends MigrationCommand<typeof Rebalance> {
  static override seedFromContext = true

  static override args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
  }

  static override changesCluster = true

  static override summary = 'Even out slots, keys or memory across the masters'

  static override description = MigrationCommand.withExitCodes(
    [
      'Even out the cluster: move slots so every master holds its weight-proportional share of slots (default), keys (--by keys) or memory (--by memory).',
      `Nothing moves while every master is within --threshold percent of its share (default ${DEFAULT_THRESHOLD_PCT}). A weight of 0 drains a master; masters without slots take part only with --use-empty-masters.`,
      '--by memory estimates each slot\'s bytes as the master\'s dataset memory (INFO used_memory_dataset) shared among its slots by key count.',
      'Slots move with the migration engine (several at once, journaled: an interrupted run continues with --resume; Ctrl-C finishes the slots in flight and exits 130).',
    ].join('\n'),
    MIGRATION_EXIT_CODES,
  )

  static override examples = [
    '<%= config.bin %> rebalance 127.0.0.1:7000 --use-empty-masters --yes',
    '<%= config.bin %> rebalance 127.0.0.1:7000 --weight 3c3a0c74=0 --yes',
    '<%= config.bin %> rebalance 127.0.0.1:7000 --by keys --dry-run --out plan.json',
  ]

  static override flags = {
    weight: Flags.string({description: 'NODE_ID=WEIGHT (id or unique prefix; repeatable; default weight 1, 0 drains the node)', multiple: true, multipleNonGreedy: true}),
    threshold: Flags.string({default: String(DEFAULT_THRESHOLD_PCT), description: 'do nothing while every master is within this percentage of its share'}),
    'use-empty-masters': Flags.boolean({description: 'let masters that own no slots take part (e.g. a just added node)'}),
    by: Flags.option({default: 'slots' as BalanceBy, description: 'what to balance', options: ['slots', 'keys', 'memory'] as const})(),
    resume: Flags.string({description: 'continue an interrupted rebalance from its journal', exclusive: ['weight', 'use-empty-masters']}),
    ...MigrationCommand.migrationFlags,
  }

  async run(): Promise<RebalanceCommandResult> {
    const thresholdPct = parseThreshold(this.flags.threshold)
    const seed = this.parseSeed([this.args.address])
    const resumed = this.flags.resume ? {path: this.flags.resume, state: readJournal(this.flags.resume)} : undefined
    this.pool(seed, this.migrationCommandTimeoutMs(resumed?.state.settings))
    const snapshot = await this.loadCluster(seed)
    const resumeArgs = (journal: string) => `rebalance ${snapshot.seedAddress} --resume ${journal} --yes`
    if (resumed) {
      const migration = await this.runPlan(snapshot, resumed.state.plan, {resume: resumed, resumeArgs})
      return {...migration, by: this.flags.by, nodes: [], slotsToMove: resumed.state.plan.moves.length, thresholdPct}
    }
    // Key counts and a plan are meaningless on a cluster with open slots or failed masters.
    await this.refuseIfOtherRun(snapshot)
    this.refuseUnsafeCluster(snapshot)
    const weights = parseWeights(this.flags.weight ?? [], snapshot.nodes)
    const by = this.flags.by
    const masters = mastersOf(snapshot.nodes).filter((node) => node.address !== '')
    if ([...weights.values()].every((w) => w === 0) && weights.size > 0 && weights.size >= this.participantCount(masters)) {
      throw usageError('every participating master would have weight 0: nothing could receive the slots')
    }
    if (by !== 'slots') this.note(`>>> counting keys per slot on ${masters.filter((m) => m.slots.length > 0).length} master(s)`)
    const slotLoad = await this.slotLoad(masters, by)
    const result = planRebalance(masters, {by, slotLoad, thresholdPct, useEmptyMasters: this.flags['use-empty-masters'], weights})
    this.reportIssues({warnings: result.warnings})
    this.log(this.renderNodes(result))
    const summary = {by, nodes: [...result.nodes].sort(byAddress), slotsToMove: result.plan.moves.length, thresholdPct}
    if (result.balanced || result.plan.moves.length === 0) {
      this.log(paint.good(`[OK] No rebalancing needed: every master is within the ${thresholdPct.toFixed(2)}% threshold (by ${by}).`))
      return {...unmovedResult(result.plan), ...summary, status: 'balanced', warnings: result.warnings}
    }
    this.log(`${result.plan.moves.length} slot(s) to move (by ${by})`)
    const migration = await this.runPlan(snapshot, result.plan, {resumeArgs})
    return {...migration, ...summary, warnings: [...result.warnings, ...migration.warnings]}
  }

  private participantCount(masters: ClusterNode[]): number {
    return masters.filter((m) => m.slots.length > 0 || this.flags['use-empty-masters']).length
  }

  private async slotLoad(masters: ClusterNode[], by: BalanceBy): Promise<number[] | undefined> {
    if (by === 'slots') return undefined
    const keys = await slotKeyCounts(this.pool(), masters)
    if (by === 'keys') return keys
    return slotByteEstimates(this.pool(), masters, keys)
  }

  private renderNodes(result: RebalanceResult): string {
    const rows = [...result.nodes].sort(byAddress).map((node) => {
      const slots = node.slotsBefore === node.slotsAfter ? String(node.slotsBefore) : `${node.slotsBefore} → ${node.slotsAfter}`
      const base = [node.address, shortId(node.id), node.participating ? String(node.weight) : '-', slots]
      if (result.by === 'slots') return [...base, formatOffBy(result.by, node)]
      const load = node.loadBefore === node.loadAfter ? formatLoad(result.by, node.loadBefore) : `${formatLoad(result.by, node.loadBefore)} → ${formatLoad(result.by, node.loadAfter)}`
      return [...base, load, node.participating ? formatLoad(result.by, node.target) : 'skipped', formatOffBy(result.by, node)]
    })
    const head = result.by === 'slots' ? ['master', 'id', 'weight', 'slots', 'off by'] : ['master', 'id', 'weight', 'slots', result.by, 'target', 'off by']
    const align: Align[] = result.by === 'slots' ? ['left', 'left', 'right', 'right', 'right'] : ['left', 'left', 'right', 'right', 'right', 'right', 'right']
    return table(head, rows, align)
  }
}
