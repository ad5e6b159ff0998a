import {Args, Flags} from '@oclif/core'
import type {Redis} from 'ioredis'

import {BaseCommand, ignoreLockFlag} from '../lib/cli/base-command.js'
import {NODE_PARALLELISM, type NodePool, settleLimit} from '../lib/cluster/connection.js'
import {ExitCode, errorMessage, usageError} from '../lib/core/errors.js'
import {paint, table} from '../lib/cli/render.js'
import {parseDuration} from '../lib/cli/duration.js'
import {type Issue, type VerbResult, byAddress, issue, nodeRef} from '../lib/core/result.js'
import type {ClusterNode} from '../lib/cluster/topology.js'

export interface TimeoutNodeResult {
  id: string
  address: string
  /** CONFIG SET applied: the node uses the new timeout now. */
  set: boolean
  /** CONFIG REWRITE succeeded: the node keeps the timeout after a restart. */
  rewritten: boolean
  error?: string
  /** --dry-run: the node's cluster-node-timeout now, in ms (absent: it could not be read) */
  currentMs?: number
}

export interface SetTimeoutResult extends VerbResult {
  /** ok: set (and persisted) everywhere; partial: not on every node (exit 1, listed in errors); planned: --dry-run, nothing was set. */
  status: 'ok' | 'partial' | 'planned'
  timeoutMs: number
  persist: boolean
  nodes: TimeoutNodeResult[]
}

const MIN_TIMEOUT_MS = 100

function parseTimeout(text: string): number {
  const timeoutMs = parseDuration(text, 'ms')
  if (timeoutMs === undefined || !Number.isSafeInteger(timeoutMs) || timeoutMs < MIN_TIMEOUT_MS) {
    throw usageError(`invalid timeout '${text}': give a duration of at least ${MIN_TIMEOUT_MS}ms (e.g. 15s, 15000ms; a plain number is milliseconds)`)
  }
  return timeoutMs
}

/** --dry-run: what a node has now, read with CONFIG GET. */
async function readTimeout(pool: NodePool, node: ClusterNode): Promise<TimeoutNodeResult> {
  const base = {address: node.address, id: node.id, rewritten: false, set: false}
  try {
    const reply = (await (await pool.client(node.address)).config('GET', 'cluster-node-timeout')) as string[]
    const value = Number(reply[1])
    return Number.isSafeInteger(value) ? {...base, currentMs: value} : {...base, error: `CONFIG GET cluster-node-timeout answered ${JSON.stringify(reply)}`}
  } catch (error) {
    return {...base, error: `cannot read: ${errorMessage(error)}`}
  }
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
  static override args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
    milliseconds: Args.string({description: `new cluster-node-timeout: a duration (15s, 15000ms; a plain number is milliseconds), at least ${MIN_TIMEOUT_MS}ms`, required: true}),
  }

  static override changesCluster = true

  static override summary = 'Set cluster-node-timeout on every node and persist it'

  static override description = BaseCommand.withExitCodes(
    'Set cluster-node-timeout on every node (CONFIG SET), then persist it (CONFIG REWRITE).\n' +
      'Exits 1 if any node could not be set, or set but not persisted (e.g. a server started without a config file: ' +
      'the new value is live there but lost at restart); the per-node result says which. --no-persist skips CONFIG REWRITE.',
    {1: 'a node could not be set, or was set but not persisted', 2: `bad input (e.g. a timeout under ${MIN_TIMEOUT_MS}ms)`},
  )

  static override examples = ['<%= config.bin %> set-timeout 127.0.0.1:7000 15s', '<%= config.bin %> set-timeout 127.0.0.1:7000 15000 --no-persist --json']

  static override flags = {
    persist: Flags.boolean({allowNo: true, default: true, description: 'run CONFIG REWRITE on every node so the value survives a restart'}),
    'ignore-lock': ignoreLockFlag,
    'dry-run': Flags.boolean({description: 'set nothing: show each node\'s timeout now and which nodes would change'}),
  }

  async run(): Promise<SetTimeoutResult> {
    const timeoutMs = parseTimeout(this.args.milliseconds)
    const {persist} = this.flags
    const snapshot = await this.loadCluster(this.parseSeed([this.args.address]))
    const targets = snapshot.nodes.filter((node) => !node.noAddress && !node.handshake).sort(byAddress)
    const pool = this.pool()
    if (this.flags['dry-run']) return this.dryRun(pool, targets, timeoutMs, persist)
    // a migration's timing (big keys, SETSLOT waits) was judged against the timeout it started with
    await this.lockCluster(snapshot)
    const outcomes = await settleLimit(targets, NODE_PARALLELISM, (node) => applyTimeout(pool, node, timeoutMs, persist))
    const nodes = outcomes.map((outcome, index) => outcome.value ?? {address: targets[index].address, error: errorMessage(outcome.error), id: targets[index].id, rewritten: false, set: false})
    const errors: Issue[] = nodes.filter((node) => node.error).map((node) => issue(node.set ? 'E_NOT_PERSISTED' : 'E_NOT_SET', `${node.address}: ${node.error}`, {nodes: [nodeRef(node)]}))
    const result: SetTimeoutResult = {errors, nodes, persist, status: errors.length > 0 ? 'partial' : 'ok', timeoutMs, warnings: []}
    this.render(result)
    if (errors.length > 0) this.resultExitCode = ExitCode.failed
    return result
  }

  private async dryRun(pool: NodePool, targets: ClusterNode[], timeoutMs: number, persist: boolean): Promise<SetTimeoutResult> {
    const outcomes = await settleLimit(targets, NODE_PARALLELISM, (node) => readTimeout(pool, node))
    const nodes = outcomes.map((outcome, index) => outcome.value ?? {address: targets[index].address, error: errorMessage(outcome.error), id: targets[index].id, rewritten: false, set: false})
    const change = (node: TimeoutNodeResult) => (node.currentMs === undefined ? '?' : node.currentMs === timeoutMs ? 'no (already)' : 'yes')
    this.log(table(['node', 'now (ms)', 'would change', 'note'], nodes.map((n) => [n.address, n.currentMs ?? '?', change(n), n.error ?? ''])))
    const changing = nodes.filter((n) => n.currentMs !== timeoutMs).length
    this.log(`--dry-run: nothing was set. cluster-node-timeout ${timeoutMs} ms would be set on ${nodes.length} node(s), a change on ${changing}${persist ? ', and persisted (CONFIG REWRITE)' : ''}.`)
    const errors: Issue[] = nodes.filter((node) => node.error).map((node) => issue('E_NOT_READ', `${node.address}: ${node.error}`, {nodes: [nodeRef(node)]}))
    if (errors.length > 0) this.resultExitCode = ExitCode.failed
    return {errors, nodes, persist, status: 'planned', timeoutMs, warnings: []}
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
