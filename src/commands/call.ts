import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'
import {type ClusterNode} from '../lib/cluster/topology.js'
import {NODE_PARALLELISM, settleLimit} from '../lib/cluster/connection.js'
import {ExitCode, SlotctlError, usageError} from '../lib/core/errors.js'
import {describeChange, refuseStreamingCommand} from '../lib/cluster/command-info.js'
import {table} from '../lib/cli/render.js'
import {escapeControl} from '../lib/core/escape.js'
import {type Issue, type VerbResult, byAddress, issue, nodeRef} from '../lib/core/result.js'

export interface CallReply {
  id: string
  address: string
  role: string
  ok: boolean
  reply?: unknown
  error?: string
}

export interface CallResult extends VerbResult {
  /** ok: every node answered; partial: some answered with an error (exit 1, listed in errors); planned: --dry-run, nothing was run. */
  status: 'ok' | 'partial' | 'planned'
  command: string[]
  replies: CallReply[]
  /** --dry-run: the nodes the command would run on */
  wouldRunOn?: Array<{id: string; address: string; role: string}>
  /** --dry-run: why the command may change data or configuration (absent: it only reads, by every node's command table) */
  change?: string
}

/** A reply as text: arrays one item per line, and no \r (INFO-style replies end lines with \r\n). */
export function printable(value: unknown): string {
  // one line per item: a key name holding a newline must not look like two items
  if (Array.isArray(value)) return value.map((item) => (Array.isArray(item) ? printable(item) : escapeControl(printable(item)))).join('\n')
  if (value === null || value === undefined) return '(nil)'
  return String(value).replaceAll('\r', '').replace(/\n+$/, '')
}

/** redis-cli's `host:port: reply` form, every line of a multi-line reply prefixed (greppable). */
function replyLines(reply: CallReply): string[] {
  const text = reply.ok ? printable(reply.reply) : `(error) ${reply.error}`
  return text.split('\n').map((line) => `${reply.address}: ${line}`)
}

export default class Call extends BaseCommand<typeof Call> {
  static override args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
  }

  static override summary = 'Run one command on every node and show each reply'

  static override description = BaseCommand.withExitCodes(
    'Run one command on every node of the cluster in parallel and show each reply (a table, or `host:port: reply` lines with --lines).\n' +
      'A command that may change data or configuration (by every node\'s own command table: write, admin, dangerous, scripting), or that some node does not know (renamed, disabled), asks for confirmation first (--yes answers it). Commands that stream (SUBSCRIBE, MONITOR, SYNC, ...) are refused.',
    {
      1: 'a node could not be reached or answered with an error',
      4: 'a confirmation was needed, but there is no terminal and no --yes',
    },
  )

  static override examples = [
    '<%= config.bin %> call 127.0.0.1:7000 INFO memory --masters',
    '<%= config.bin %> call 127.0.0.1:7000 CLUSTER INFO --lines | grep cluster_state',
    '<%= config.bin %> call 127.0.0.1:7000 CONFIG GET maxmemory --json',
    '<%= config.bin %> call 127.0.0.1:7000 CONFIG SET maxmemory 2gb --yes',
  ]

  static override flags = {
    masters: Flags.boolean({description: 'only masters', exclusive: ['replicas']}),
    replicas: Flags.boolean({description: 'only replicas', exclusive: ['masters']}),
    lines: Flags.boolean({description: 'print `host:port: reply` lines as redis-cli does (every line of a multi-line reply prefixed) instead of a table'}),
    'dry-run': Flags.boolean({description: 'run nothing: say on which nodes the command would run and whether it may change data or configuration'}),
  }

  /** set once the command is known to change data or configuration: only such a call is a change worth an audit record */
  private writes = false

  protected override recordsHistory(): boolean {
    return this.writes && !this.flags['dry-run']
  }

  static override strict = false

  async run(): Promise<CallResult> {
    const {address, command} = await this.addressAndCommand()
    if (command.length === 0) throw usageError('missing command to run', [`e.g. ${this.config.bin} call ${address ?? 'HOST:PORT'} PING`])
    refuseStreamingCommand(command)
    const snapshot = await this.loadCluster(this.parseSeed([address]))
    const selected = snapshot.nodes.filter((node) => this.selected(node) && snapshot.views[node.id])
    const targets = selected.filter((node) => snapshot.views[node.id]?.reachable)
    // a node that cannot be read (down, hung, refusing the login) is named, not silently left out
    const skipped = selected.filter((node) => !targets.includes(node))
    if (!this.jsonEnabled()) for (const node of skipped) this.errorLine(`slotctl: not run on ${node.address}: ${snapshot.views[node.id]?.error ?? 'not reachable'}`)
    const pool = this.pool()
    const change = await describeChange(pool, targets.map((node) => node.address), command)
    this.writes = change !== undefined
    if (this.flags['dry-run']) return this.dryRun(command, targets, change, skipped.length)
    if (change && !(await this.confirm(`${change}: running it on ${targets.length} node(s)?`))) throw new SlotctlError('cancelled: nothing was run', {code: 'E_CANCELLED'})
    const results = await settleLimit(targets, NODE_PARALLELISM, async (node) => (await pool.client(node.address)).call(command[0], ...command.slice(1)))
    const replies: CallReply[] = targets
      .map((node, index) => ({
        address: node.address,
        id: node.id,
        ok: !results[index].error,
        role: node.role,
        ...(results[index].error ? {error: results[index].error?.message} : {reply: results[index].value}),
      }))
      .sort(byAddress)
    const errors: Issue[] = [
      ...skipped.map((node) => issue('E_UNREACHABLE', `${node.address}: not run: ${snapshot.views[node.id]?.error ?? 'not reachable'}`, {nodes: [nodeRef(node)]})),
      ...replies.filter((reply) => !reply.ok).map((reply) => issue('E_REPLY', `${reply.address}: ${reply.error}`, {nodes: [nodeRef(reply)]})),
    ]
    if (this.flags.lines) for (const reply of replies) for (const line of replyLines(reply)) this.log(line)
    else this.log(table(['node', 'role', 'reply'], replies.map((r) => [r.address, r.role, r.ok ? printable(r.reply) : `(error) ${r.error}`])))
    const failed = replies.filter((reply) => !reply.ok).length
    if (failed > 0 && !this.jsonEnabled()) this.errorLine(`slotctl: ${failed} of ${replies.length} node(s) answered with an error`)
    if (errors.length > 0) this.resultExitCode = ExitCode.failed
    return {command, errors, replies, status: errors.length > 0 ? 'partial' : 'ok', warnings: []}
  }

  private dryRun(command: string[], targets: ClusterNode[], change: string | undefined, skipped: number): CallResult {
    const wouldRunOn = targets.map((node) => ({address: node.address, id: node.id, role: node.role})).sort(byAddress)
    this.log(table(['node', 'role'], wouldRunOn.map((node) => [node.address, node.role])))
    this.log(`--dry-run: nothing was run. ${command[0].toUpperCase()} would run on ${wouldRunOn.length} node(s)${skipped > 0 ? ` (${skipped} unreachable left out)` : ''}; ${change ?? 'it only reads, by every node\'s command table'}`)
    return {command, ...(change ? {change} : {}), errors: [], replies: [], status: 'planned', warnings: [], wouldRunOn}
  }

  private selected(node: ClusterNode): boolean {
    if (this.flags.masters) return node.role === 'master'
    if (this.flags.replicas) return node.role === 'replica'
    return true
  }

  /**
   * The positional words as oclif parsed them: every slotctl flag (`-aSECRET`, `--password=x`
   * included) is taken out, so none can reach the nodes as a command argument; words after
   * `--` are the command's verbatim.
   */
  private async addressAndCommand(): Promise<{address: string; command: string[]}> {
    const {argv} = await this.parse({args: Call.args, baseFlags: BaseCommand.baseFlags, enableJsonFlag: true, flags: Call.flags, strict: false})
    const words = argv as string[]
    return {address: words[0], command: words.slice(1)}
  }
}
