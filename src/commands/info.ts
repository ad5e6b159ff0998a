import {Args, Flags} from '@oclif/core'

import {BaseCommand, DEFAULT_WATCH_INTERVAL, watchFlag} from '../lib/cli/base-command.js'
import {type NodeAddress, formatAddress} from '../lib/cluster/address.js'
import {NODE_PARALLELISM, type NodePool, settleLimit} from '../lib/cluster/connection.js'
import {masterSlotKeyCounts} from '../lib/cluster/slot-stats.js'
import {ExitCode} from '../lib/core/errors.js'
import {colourOn, formatBytes, paint, renderIssues, table, terminalWidth, wrapLine} from '../lib/cli/render.js'
import {type SlotMapData, buildSlotMap, renderSlotMap} from '../lib/cli/slot-map.js'
import {type Issue, type NodeRef, type VerbResult, byFirstSlot, issue, nodeRef, rangeSet} from '../lib/core/result.js'
import {SLOT_COUNT, type SlotRange, expandRanges, formatRanges} from '../lib/core/slots.js'
import {type ClusterNode, keyCountFromInfo, parseInfo, replicasOf} from '../lib/cluster/topology.js'

export interface MasterInfo {
  id: string
  address: string
  slots: SlotRange[]
  slotCount: number
  keys: number | null
  replicaCount: number
  usedMemory: number | null
  /** the master's slot holding most keys (CLUSTER SLOT-STATS, or COUNTKEYSINSLOT where the server lacks it) */
  largestSlot: {keys: number; slot: number} | null
  reachable: boolean
}

/** Keyspace and memory (one round trip), and the slot holding most keys. */
async function readMasterInfo(pool: NodePool, node: ClusterNode): Promise<{info: Record<string, string>; largestSlot: MasterInfo['largestSlot']}> {
  const info = parseInfo(String(await pool.read(node.address, (client) => client.call('INFO', 'keyspace', 'memory'))))
  const slots = expandRanges(node.slots)
  // the largest slot is extra: a read-only user without per-slot counts still gets the rest
  const counts = await masterSlotKeyCounts(pool, node.address, slots).catch((error: Error) => {
    if (/NOPERM/.test(error.message)) return []
    throw error
  })
  let largest: MasterInfo['largestSlot'] = null
  for (const [index, keys] of counts.entries()) if (keys > (largest?.keys ?? 0)) largest = {keys, slot: slots[index]}
  return {info, largestSlot: largest}
}

export interface InfoResult extends VerbResult {
  /** ok: every master read; partial: some could not be read (exit 1, listed in errors). */
  status: 'ok' | 'partial'
  seed: NodeRef
  masters: MasterInfo[]
  totalKeys: number
  totalSlots: number
  keysPerSlot: number
  usedMemory: number
  /** with --map: the slots by owner, the unassigned and the open ones */
  map?: SlotMapData
}

/** The map's width where stdout has no columns (a pipe): the usual terminal's. */
const DEFAULT_MAP_WIDTH = 80

export default class Info extends BaseCommand<typeof Info> {
  static override seedFromContext = true

  static override args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
    port: Args.string({description: 'port, when the address is given as HOST PORT', required: false}),
  }

  static override summary = 'Slots, keys, replicas and memory per master, and totals'

  static override description = BaseCommand.withExitCodes(
    'Show each master with its slots, keys, replicas and used memory, and cluster totals.\n' +
      'Exits 1 if a master could not be read: its keys are then missing from the totals.',
    {1: 'the cluster, or one of its masters, could not be read'},
  )

  static override examples = ['<%= config.bin %> info 127.0.0.1:7000', '<%= config.bin %> info 127.0.0.1:7000 --json', '<%= config.bin %> info 127.0.0.1:7000 --map --watch']

  static override flags = {
    map: Flags.boolean({description: 'draw the 16384 slots as a grid coloured by owner (letters without colour), open and unassigned slots marked; --json gives the ranges'}),
    watch: watchFlag,
  }

  static override optionalFlagValues = {watch: DEFAULT_WATCH_INTERVAL}

  async run(): Promise<InfoResult> {
    const seed = this.parseSeed([this.args.address, ...(this.args.port ? [this.args.port] : [])])
    if (this.flags.watch !== undefined) return this.watch(this.flags.watch, `info ${formatAddress(seed)}${this.flags.map ? ' --map' : ''}`, async () => this.infoOnce(seed))
    return this.infoOnce(seed)
  }

  /** Reads and draws the cluster once; exit code 1 if a master could not be read. */
  private async infoOnce(seed: NodeAddress): Promise<InfoResult> {
    const snapshot = await this.loadCluster(seed)
    const masters = snapshot.nodes.filter((node) => node.role === 'master' && !node.noAddress).sort(byFirstSlot)
    const pool = this.pool()
    const infos = await settleLimit(masters, NODE_PARALLELISM, async (node) => readMasterInfo(pool, node))
    const errors: Issue[] = []
    const rows: MasterInfo[] = masters.map((node, index) => {
      const info = infos[index].value?.info
      if (!info) errors.push(issue('E_UNREACHABLE', `could not read ${node.address}: ${infos[index].error?.message ?? 'no answer'}`, {nodes: [nodeRef(node)]}))
      return {
        address: node.address,
        id: node.id,
        keys: info ? keyCountFromInfo(info) : null,
        largestSlot: infos[index].value?.largestSlot ?? null,
        reachable: Boolean(info),
        replicaCount: replicasOf(snapshot.nodes, node.id).length,
        usedMemory: info ? Number(info.used_memory) : null,
        ...rangeSet(node.slots),
      }
    })
    const totalKeys = rows.reduce((sum, row) => sum + (row.keys ?? 0), 0)
    const result: InfoResult = {
      errors,
      keysPerSlot: totalKeys / SLOT_COUNT,
      masters: rows,
      seed: {address: snapshot.seedAddress, id: snapshot.seedId},
      status: errors.length > 0 ? 'partial' : 'ok',
      totalKeys,
      totalSlots: rows.reduce((sum, row) => sum + row.slotCount, 0),
      usedMemory: rows.reduce((sum, row) => sum + (row.usedMemory ?? 0), 0),
      warnings: [],
      ...(this.flags.map ? {map: buildSlotMap(snapshot.nodes)} : {}),
    }
    this.render(result)
    if (!this.jsonEnabled()) for (const line of renderIssues('Errors', 'ERR', errors)) this.errorLine(line)
    if (errors.length > 0) this.resultExitCode = ExitCode.failed
    return result
  }

  private render(result: InfoResult): void {
    if (result.map) {
      for (const line of renderSlotMap(result.map, {colour: colourOn(), width: terminalWidth() ?? DEFAULT_MAP_WIDTH})) this.log(line)
      this.log('')
    } else {
      this.renderTable(result)
    }
    const totals = `${result.totalKeys} keys in ${result.masters.length} masters, ${result.totalSlots} slots assigned, ${result.keysPerSlot.toFixed(2)} keys per slot on average, ${formatBytes(result.usedMemory)} used.`
    for (const line of wrapLine(totals, terminalWidth() ?? Number.POSITIVE_INFINITY)) this.log(line)
  }

  private renderTable(result: InfoResult): void {
    const rows = result.masters.map((m) => [
      m.address,
      m.id.slice(0, 8),
      m.slotCount,
      formatRanges(m.slots) || '-',
      m.keys ?? paint.bad('unreachable'),
      m.replicaCount,
      m.usedMemory === null ? '-' : formatBytes(m.usedMemory),
    ])
    this.log(table(['master', 'id', 'slots', 'ranges', 'keys', 'replicas', 'memory'], rows, ['left', 'left', 'right', 'left', 'right', 'right', 'right']))
    const largest = result.masters.filter((m) => m.largestSlot).sort((a, b) => (b.largestSlot?.keys ?? 0) - (a.largestSlot?.keys ?? 0))[0]
    if (largest?.largestSlot) this.log(`most keys in one slot: ${largest.largestSlot.keys} (slot ${largest.largestSlot.slot} on ${largest.address}); --json has each master's largest slot`)
  }
}
