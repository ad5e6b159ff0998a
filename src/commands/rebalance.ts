import {writeFile} from 'node:fs/promises'

import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/base-command.js'
import {type ClusterSnapshot} from '../lib/cluster.js'
import {SlotctlError, usageError} from '../lib/errors.js'
import {type BalanceBy, DEFAULT_THRESHOLD_PCT, type RebalanceNodeReport, type RebalanceResult, planRebalance} from '../lib/plan/rebalance.js'
import {parseWeights} from '../lib/plan/weights.js'
import {formatBytes, paint, table} from '../lib/render.js'
import {slotByteEstimates, slotKeyCounts} from '../lib/slot-stats.js'
import {type ClusterNode, mastersOf, shortId} from '../lib/topology.js'

export interface RebalanceCommandResult {
  status: 'balanced' | 'planned' | 'done'
  by: BalanceBy
  thresholdPct: number
  nodes: RebalanceNodeReport[]
  slotsToMove: number
  warnings: string[]
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

export default class Rebalance extends BaseCommand<typeof Rebalance> {
  static args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
  }

  static description = BaseCommand.withExitCodes(
    [
      'Even out the cluster: move slots so every master holds its weight-proportional share of slots (default), keys (--by keys) or memory (--by memory).',
      `Nothing moves while every master is within --threshold percent of its share (default ${DEFAULT_THRESHOLD_PCT}). A weight of 0 drains a master; masters without slots take part only with --use-empty-masters.`,
      '--by memory estimates each slot\'s bytes as the master\'s dataset memory (INFO used_memory_dataset) shared among its slots by key count.',
    ].join('\n'),
  )

  static examples = [
    '<%= config.bin %> rebalance 127.0.0.1:7000 --use-empty-masters --yes',
    '<%= config.bin %> rebalance 127.0.0.1:7000 --weight 3c3a0c74=0 --yes',
    '<%= config.bin %> rebalance 127.0.0.1:7000 --by keys --dry-run --out plan.json',
  ]

  static flags = {
    weight: Flags.string({description: 'NODE_ID=WEIGHT (id or unique prefix; repeatable; default weight 1, 0 drains the node)', multiple: true, multipleNonGreedy: true}),
    threshold: Flags.string({default: String(DEFAULT_THRESHOLD_PCT), description: 'do nothing while every master is within this percentage of its share'}),
    'use-empty-masters': Flags.boolean({description: 'let masters that own no slots take part (e.g. a just added node)'}),
    by: Flags.option({default: 'slots' as BalanceBy, description: 'what to balance', options: ['slots', 'keys', 'memory'] as const})(),
    'dry-run': Flags.boolean({description: 'show the plan and change nothing'}),
    out: Flags.string({description: 'write the plan as JSON to this file (for slotctl apply)'}),
  }

  async run(): Promise<RebalanceCommandResult> {
    const thresholdPct = parseThreshold(this.flags.threshold)
    const seed = this.parseSeed([this.args.address])
    const snapshot = await this.loadCluster(seed)
    const weights = parseWeights(this.flags.weight ?? [], snapshot.nodes)
    const by = this.flags.by
    const masters = mastersOf(snapshot.nodes).filter((node) => node.address !== '')
    if (by !== 'slots') this.note(`>>> counting keys per slot on ${masters.filter((m) => m.slots.length > 0).length} master(s)`)
    const slotLoad = await this.slotLoad(snapshot, masters, by)
    if ([...weights.values()].every((w) => w === 0) && weights.size > 0 && weights.size >= this.participantCount(masters)) {
      throw usageError('every participating master would have weight 0: nothing could receive the slots')
    }
    const result = planRebalance(masters, {by, slotLoad, thresholdPct, useEmptyMasters: this.flags['use-empty-masters'], weights})
    for (const warning of result.warnings) this.note(paint.warn(`[WARNING] ${warning}`))
    this.log(this.renderNodes(result))
    const summary: RebalanceCommandResult = {by, nodes: result.nodes, slotsToMove: result.plan.moves.length, status: 'planned', thresholdPct, warnings: result.warnings}
    if (result.balanced || result.plan.moves.length === 0) {
      this.log(paint.good(`[OK] No rebalancing needed: every master is within the ${thresholdPct.toFixed(2)}% threshold (by ${by}).`))
      return {...summary, status: 'balanced'}
    }
    this.log(`${result.plan.moves.length} slot(s) to move: ${this.describePairs(result)}`)
    return this.execute(summary, result)
  }

  private participantCount(masters: ClusterNode[]): number {
    return masters.filter((m) => m.slots.length > 0 || this.flags['use-empty-masters']).length
  }

  private async slotLoad(snapshot: ClusterSnapshot, masters: ClusterNode[], by: BalanceBy): Promise<number[] | undefined> {
    if (by === 'slots') return undefined
    const keys = await slotKeyCounts(this.pool(), masters)
    if (by === 'keys') return keys
    return slotByteEstimates(this.pool(), masters, keys)
  }

  private describePairs(result: RebalanceResult): string {
    const address = new Map(result.nodes.map((node) => [node.id, node.address]))
    const pairs = new Map<string, number>()
    for (const move of result.plan.moves) {
      const key = `${address.get(move.sourceId)} → ${address.get(move.targetId)}`
      pairs.set(key, (pairs.get(key) ?? 0) + 1)
    }
    return [...pairs].map(([pair, count]) => `${count} from ${pair}`).join(', ')
  }

  private renderNodes(result: RebalanceResult): string {
    const rows = [...result.nodes].sort((a, b) => a.address.localeCompare(b.address, undefined, {numeric: true})).map((node) => {
      const slots = node.slotsBefore === node.slotsAfter ? String(node.slotsBefore) : `${node.slotsBefore} → ${node.slotsAfter}`
      const base = [node.address, shortId(node.id), node.participating ? String(node.weight) : '-', slots]
      if (result.by === 'slots') return [...base, node.participating ? `${node.deviationPct === Number.POSITIVE_INFINITY ? 'empty' : `${node.deviationPct.toFixed(2)}%`}` : 'skipped']
      const load = node.loadBefore === node.loadAfter ? formatLoad(result.by, node.loadBefore) : `${formatLoad(result.by, node.loadBefore)} → ${formatLoad(result.by, node.loadAfter)}`
      return [...base, load, node.participating ? formatLoad(result.by, node.target) : 'skipped']
    })
    const head = result.by === 'slots' ? ['master', 'id', 'weight', 'slots', 'off by'] : ['master', 'id', 'weight', 'slots', result.by, 'target']
    return table(head, rows)
  }

  private async execute(summary: RebalanceCommandResult, result: RebalanceResult): Promise<RebalanceCommandResult> {
    if (this.flags.out) {
      await writeFile(this.flags.out, `${JSON.stringify(result.plan, null, 2)}\n`)
      this.note(`plan written to ${this.flags.out}`)
    }
    if (this.flags['dry-run']) return summary
    throw new SlotctlError('moving slots needs the migration engine, which this build does not have yet', {code: 'E_NOT_IMPLEMENTED'})
  }
}
