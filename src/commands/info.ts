import {Args} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'
import {NODE_PARALLELISM, settleLimit} from '../lib/cluster/connection.js'
import {ExitCode} from '../lib/errors.js'
import {formatBytes, paint, table} from '../lib/cli/render.js'
import {SLOT_COUNT, countSlots, formatRanges} from '../lib/cluster/slots.js'
import {keyCountFromInfo, parseInfo, replicasOf} from '../lib/cluster/topology.js'

export interface MasterInfo {
  id: string
  address: string
  slots: string
  slotCount: number
  keys: number | null
  replicas: number
  usedMemory: number | null
  reachable: boolean
  error?: string
}

export interface InfoResult {
  seed: string
  masters: MasterInfo[]
  totalKeys: number
  totalSlots: number
  keysPerSlot: number
  usedMemory: number
}

export default class Info extends BaseCommand<typeof Info> {
  static args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
    port: Args.string({description: 'port, when the address is given as HOST PORT', required: false}),
  }

  static description = BaseCommand.withExitCodes(
    'Show each master with its slots, keys, replicas and used memory, and cluster totals.\n' +
      'Exits 1 if a master could not be read: its keys are then missing from the totals.',
  )

  static examples = ['<%= config.bin %> info 127.0.0.1:7000', '<%= config.bin %> info 127.0.0.1:7000 --json']

  async run(): Promise<InfoResult> {
    const snapshot = await this.loadCluster(this.parseSeed([this.args.address, ...(this.args.port ? [this.args.port] : [])]))
    const masters = snapshot.nodes.filter((node) => node.role === 'master' && !node.noAddress)
    const pool = this.pool()
    // One round trip per master: keyspace and memory sections together.
    const infos = await settleLimit(masters, NODE_PARALLELISM, async (node) => parseInfo(String(await (await pool.client(node.address)).call('INFO', 'keyspace', 'memory'))))
    const rows: MasterInfo[] = masters.map((node, index) => {
      const info = infos[index].value
      return {
        address: node.address,
        id: node.id,
        keys: info ? keyCountFromInfo(info) : null,
        reachable: Boolean(info),
        replicas: replicasOf(snapshot.nodes, node.id).length,
        slotCount: countSlots(node.slots),
        slots: formatRanges(node.slots),
        usedMemory: info ? Number(info.used_memory) : null,
        ...(infos[index].error ? {error: infos[index].error?.message} : {}),
      }
    })
    rows.sort((a, b) => b.slotCount - a.slotCount || a.address.localeCompare(b.address))
    const totalKeys = rows.reduce((sum, row) => sum + (row.keys ?? 0), 0)
    const totalSlots = rows.reduce((sum, row) => sum + row.slotCount, 0)
    const result: InfoResult = {
      keysPerSlot: totalKeys / SLOT_COUNT,
      masters: rows,
      seed: snapshot.seedAddress,
      totalKeys,
      totalSlots,
      usedMemory: rows.reduce((sum, row) => sum + (row.usedMemory ?? 0), 0),
    }
    this.render(result)
    const unread = rows.filter((row) => !row.reachable)
    for (const row of unread) this.note(paint.bad(`[ERR] could not read ${row.address}: ${row.error ?? 'no answer'}`))
    if (unread.length > 0) this.resultExitCode = ExitCode.failed
    return result
  }

  private render(result: InfoResult): void {
    const rows = result.masters.map((m) => [
      m.address,
      m.id.slice(0, 8),
      m.slotCount,
      m.slots.length > 40 ? `${m.slots.slice(0, 37)}...` : m.slots || '-',
      m.keys ?? 'unreachable',
      m.replicas,
      m.usedMemory === null ? '-' : formatBytes(m.usedMemory),
    ])
    this.log(table(['master', 'id', 'slots', 'ranges', 'keys', 'replicas', 'memory'], rows, ['left', 'left', 'right', 'left', 'right', 'right', 'right']))
    this.log(`${result.totalKeys} keys in ${result.masters.length} masters, ${result.totalSlots} slots assigned, ${result.keysPerSlot.toFixed(2)} keys per slot on average, ${formatBytes(result.usedMemory)} used.`)
  }
}
