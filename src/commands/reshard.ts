import {Args, Flags} from '@oclif/core'

import {resolveNodeId} from '../lib/cluster/topology.js'
import {usageError} from '../lib/core/errors.js'
import {readJournal} from '../lib/migrate/journal.js'
import {MIGRATION_EXIT_CODES, MigrationCommand, type MigrationResult} from '../lib/cli/migration-command.js'
import {planReshard} from '../lib/plan/reshard.js'
import {type Choice, askOrFail, checkboxOrFail, selectOrFail} from '../lib/cli/prompt.js'
import {byFirstSlot} from '../lib/core/result.js'
import {SLOT_COUNT, expandRanges, formatRanges, parseSlotRanges} from '../lib/core/slots.js'
import {type ClusterNode, mastersOf, slotCount} from '../lib/cluster/topology.js'

/** "127.0.0.1:7000  3c3a0c74  5461 slots (0-5460)": how a master reads in a choice list. */
function masterChoice(node: ClusterNode): Choice<string> {
  const ranges = formatRanges(node.slots)
  return {name: `${node.address}  ${node.id.slice(0, 8)}  ${slotCount(node)} slots${ranges ? ` (${ranges.length > 40 ? `${ranges.slice(0, 37)}...` : ranges})` : ''}`, value: node.id}
}

function validSlotCount(text: string): string | true {
  const value = Number(text.trim())
  return /^\d+$/.test(text.trim()) && value >= 1 && value <= SLOT_COUNT ? true : `enter a whole number from 1 to ${SLOT_COUNT}`
}

export default class Reshard extends MigrationCommand<typeof Reshard> {
  static override seedFromContext = true

  static override args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
  }

  static override changesCluster = true

  static override summary = 'Move slots and their keys to one master'

  static override description = MigrationCommand.withExitCodes(
    'Move slots (and their keys) to one master: N slots taken proportionally from --from masters, or the exact --slot-range.\n' +
      'Several slots move at once; every slot is journaled, so an interrupted run continues with --resume. Ctrl-C finishes the slots in flight (none is left open) and exits 130.',
    MIGRATION_EXIT_CODES,
  )

  static override examples = [
    '<%= config.bin %> reshard 127.0.0.1:7000 --from all --to 3c3a0c74 --slots 1000 --yes',
    '<%= config.bin %> reshard 127.0.0.1:7000 --to 3c3a0c74 --slot-range 0-99 --max-keys-per-sec 20000 --yes',
    '<%= config.bin %> reshard 127.0.0.1:7000 --resume ~/.local/state/slotctl/journals/reshard-2026-11-22T10-00-00-000Z.jsonl --yes',
  ]

  static override flags = {
    from: Flags.string({description: 'source master ids (comma-separated, prefixes allowed) or "all"'}),
    to: Flags.string({description: 'target master id (prefix allowed)'}),
    slots: Flags.integer({description: 'how many slots to move (1-16384)'}),
    'slot-range': Flags.string({description: 'exact slots to move, e.g. 0-99,200'}),
    resume: Flags.string({description: 'continue an interrupted run from its journal', exclusive: ['from', 'to', 'slots', 'slot-range']}),
    ...MigrationCommand.migrationFlags,
  }

  async run(): Promise<MigrationResult> {
    const seed = this.parseSeed([this.args.address])
    const resumed = this.flags.resume ? {path: this.flags.resume, state: readJournal(this.flags.resume)} : undefined
    this.pool(seed, this.migrationCommandTimeoutMs(resumed?.state.settings))
    const snapshot = await this.loadCluster(seed)
    const resumeArgs = (journal: string) => `reshard ${snapshot.seedAddress} --resume ${journal} --yes`
    if (resumed) return this.runPlan(snapshot, resumed.state.plan, {resume: resumed, resumeArgs})
    const masters = mastersOf(snapshot.nodes)
    const listed = masters.filter((node) => node.address && !node.failed).sort(byFirstSlot)
    const to = resolveNodeId(snapshot.nodes, this.flags.to ?? (await selectOrFail('Which master receives the slots?', '--to', listed.map((node) => masterChoice(node)))))
    if (to.role !== 'master') throw usageError(`the target ${to.address} is a replica: slots can only move to a master`)
    const rangeText = this.flags['slot-range']
    if (rangeText) {
      const ranges = parseSlotRanges(rangeText)
      if (!ranges) throw usageError(`--slot-range '${rangeText}' is not a slot range (e.g. 0-99,200; slots 0-16383)`)
      return this.runPlan(snapshot, planReshard(masters, {exactSlots: expandRanges(ranges), from: 'all', to: to.id}), {resumeArgs})
    }
    const slots = this.flags.slots ?? Number(await askOrFail(`How many slots to move (1-${SLOT_COUNT})?`, '--slots', validSlotCount))
    const from = this.flags.from === undefined ? await this.askSources(listed, to.id) : this.parseSources(snapshot.nodes, this.flags.from, to.id)
    return this.runPlan(snapshot, planReshard(masters, {from, slots, to: to.id}), {resumeArgs})
  }

  /** Every other master with slots, all checked: Enter takes them all (as --from all). */
  private async askSources(masters: ClusterNode[], targetId: string): Promise<'all' | string[]> {
    const candidates = masters.filter((node) => node.id !== targetId && node.slots.length > 0)
    const chosen = await checkboxOrFail('Which masters give the slots? (all by default; space toggles)', '--from', candidates.map((node) => ({...masterChoice(node), checked: true})))
    return chosen.length === candidates.length ? 'all' : chosen
  }

  private parseSources(nodes: readonly ClusterNode[], text: string, targetId: string): 'all' | string[] {
    // a master named twice (or by two prefixes) gives once: the plan counts each source once
    return text.trim() === 'all' ? 'all' : [...new Set(text.split(',').map((id) => this.sourceId(nodes, id, targetId)))]
  }

  private sourceId(nodes: Parameters<typeof resolveNodeId>[0], text: string, targetId: string): string {
    const node = resolveNodeId(nodes, text)
    if (node.role !== 'master') throw usageError(`source ${node.address} is a replica: give master ids`)
    if (node.id === targetId) throw usageError(`source ${node.address} is also the target`)
    return node.id
  }
}
