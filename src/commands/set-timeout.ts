import {Args} from '@oclif/core'

import {BaseCommand} from '../lib/base-command.js'
import {NODE_PARALLELISM, settleLimit} from '../lib/connection.js'
import {usageError} from '../lib/errors.js'
import {table} from '../lib/render.js'

export interface TimeoutNodeResult {
  id: string
  address: string
  set: boolean
  rewritten: boolean
  error?: string
}

export interface SetTimeoutResult {
  timeoutMs: number
  nodes: TimeoutNodeResult[]
}

const MIN_TIMEOUT_MS = 100

export default class SetTimeout extends BaseCommand<typeof SetTimeout> {
  static args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
    milliseconds: Args.string({description: `new cluster-node-timeout in ms (at least ${MIN_TIMEOUT_MS})`, required: true}),
  }

  static description = BaseCommand.withExitCodes(
    'Set cluster-node-timeout on every node (CONFIG SET), then persist it (CONFIG REWRITE).\n' +
      'Exits 1 if any node could not be set or rewritten; the per-node result says which.',
  )

  static examples = ['<%= config.bin %> set-timeout 127.0.0.1:7000 15000']

  async run(): Promise<SetTimeoutResult> {
    const timeoutMs = Number(this.args.milliseconds)
    if (!Number.isInteger(timeoutMs) || timeoutMs < MIN_TIMEOUT_MS) throw usageError(`invalid timeout '${this.args.milliseconds}': give a whole number of milliseconds, at least ${MIN_TIMEOUT_MS}`)
    const snapshot = await this.loadCluster(this.parseSeed([this.args.address]))
    const targets = snapshot.nodes.filter((node) => !node.noAddress && !node.handshake)
    const pool = this.pool()
    const outcomes = await settleLimit(targets, NODE_PARALLELISM, async (node): Promise<TimeoutNodeResult> => {
      const client = await pool.client(node.address)
      await client.config('SET', 'cluster-node-timeout', String(timeoutMs))
      try {
        await client.call('CONFIG', 'REWRITE')
        return {address: node.address, id: node.id, rewritten: true, set: true}
      } catch (error) {
        return {address: node.address, error: `set, but not persisted: ${(error as Error).message}`, id: node.id, rewritten: false, set: true}
      }
    })
    const nodes = outcomes.map((outcome, index) => outcome.value ?? {address: targets[index].address, error: outcome.error?.message, id: targets[index].id, rewritten: false, set: false})
    this.log(table(['node', 'set', 'persisted', 'note'], nodes.map((n) => [n.address, n.set ? 'yes' : 'no', n.rewritten ? 'yes' : 'no', n.error ?? ''])))
    const ok = nodes.filter((n) => n.set && n.rewritten).length
    this.log(`cluster-node-timeout ${timeoutMs} ms: ${ok} of ${nodes.length} nodes set and persisted.`)
    if (ok < nodes.length) this.resultExitCode = 1
    return {nodes, timeoutMs}
  }
}
