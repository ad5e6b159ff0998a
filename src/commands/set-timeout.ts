import {Args, Flags} from '@oclif/core'
import type {Redis} from 'ioredis'

import {BaseCommand} from '../lib/cli/base-command.js'
import {NODE_PARALLELISM, type NodePool, settleLimit} from '../lib/cluster/connection.js'
import {ExitCode, errorMessage, usageError} from '../lib/errors.js'
import {paint, table} from '../lib/cli/render.js'
import {orderedNodes} from '../lib/check/summary.js'
import type {ClusterNode} from '../lib/cluster/topology.js'

export interface TimeoutNodeResult {
  id: string
  address: string
  /** CONFIG SET applied: the node uses the new timeout now. */
  set: boolean
  /** CONFIG REWRITE succeeded: the node keeps the timeout after a restart. */
  rewritten: boolean
  error?: string
}

export interface SetTimeoutResult {
  timeoutMs: number
  persist: boolean
  nodes: TimeoutNodeResult[]
}

const MIN_TIMEOUT_MS = 100

function parseTimeout(text: string): number {
  const timeoutMs = Number(text)
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(timeoutMs) || timeoutMs < MIN_TIMEOUT_MS) {
    throw usageError(`invalid timeout '${text}': give a whole number of milliseconds, at least ${MIN_TIMEOUT_MS}`)
  }
  return timeoutMs
}

async function applyTimeout(pool: NodePool, node: ClusterNode, timeoutMs: number, persist: boolean): Promise<TimeoutNodeResult> {
  const base = {address: node.address, id: node.id}
  let client: Redis
  try {
    client = await pool.client(node.address)
    await client.config('SET', 'cluster-node-timeout', String(timeoutMs))
  } catch (error) {
    return {...base, error: `not set: ${errorMessage(error)}`, rewritten: false, set: false}
  }
  if (!persist) return {...base, rewritten: false, set: true}
  try {
    await client.call('CONFIG', 'REWRITE')
    return {...base, rewritten: true, set: true}
  } catch (error) {
    // Typically "The server is running without a config file": live now, lost at restart.
    return {...base, error: `set, but not persisted: ${errorMessage(error)}`, rewritten: false, set: true}
  }
}

export default class SetTimeout extends BaseCommand<typeof SetTimeout> {
  static args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
    milliseconds: Args.string({description: `new cluster-node-timeout in ms (at least ${MIN_TIMEOUT_MS})`, required: true}),
  }

  static description = BaseCommand.withExitCodes(
    'Set cluster-node-timeout on every node (CONFIG SET), then persist it (CONFIG REWRITE).\n' +
      'Exits 1 if any node could not be set, or set but not persisted (e.g. a server started without a config file: ' +
      'the new value is live there but lost at restart); the per-node result says which. --no-persist skips CONFIG REWRITE.',
  )

  static examples = ['<%= config.bin %> set-timeout 127.0.0.1:7000 15000', '<%= config.bin %> set-timeout 127.0.0.1:7000 15000 --no-persist --json']

  static flags = {
    persist: Flags.boolean({allowNo: true, default: true, description: 'run CONFIG REWRITE on every node so the value survives a restart'}),
  }

  async run(): Promise<SetTimeoutResult> {
    const timeoutMs = parseTimeout(this.args.milliseconds)
    const {persist} = this.flags
    const snapshot = await this.loadCluster(this.parseSeed([this.args.address]))
    const targets = orderedNodes(snapshot).filter((node) => !node.noAddress && !node.handshake)
    const pool = this.pool()
    const outcomes = await settleLimit(targets, NODE_PARALLELISM, (node) => applyTimeout(pool, node, timeoutMs, persist))
    const nodes = outcomes.map((outcome, index) => outcome.value ?? {address: targets[index].address, error: errorMessage(outcome.error), id: targets[index].id, rewritten: false, set: false})
    const result: SetTimeoutResult = {nodes, persist, timeoutMs}
    this.render(result)
    const complete = nodes.every((node) => node.set && (node.rewritten || !persist))
    if (!complete) this.resultExitCode = ExitCode.failed
    return result
  }

  private render({nodes, persist, timeoutMs}: SetTimeoutResult): void {
    const persisted = (node: TimeoutNodeResult) => (node.rewritten ? 'yes' : persist ? paint.bad('no') : 'skipped')
    this.log(table(['node', 'set', 'persisted', 'note'], nodes.map((n) => [n.address, n.set ? 'yes' : paint.bad('no'), persisted(n), n.error ?? ''])))
    const set = nodes.filter((n) => n.set).length
    const summary = persist
      ? `cluster-node-timeout ${timeoutMs} ms: set on ${set} of ${nodes.length} nodes, persisted on ${nodes.filter((n) => n.rewritten).length}.`
      : `cluster-node-timeout ${timeoutMs} ms: set on ${set} of ${nodes.length} nodes (not persisted: --no-persist).`
    this.log(summary)
    if (persist && nodes.some((n) => n.set && !n.rewritten)) {
      this.note(paint.warn('[WARNING] the new timeout is live where set, but nodes that were not persisted return to their old value when restarted'))
    }
  }
}
