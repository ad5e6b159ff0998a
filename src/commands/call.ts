import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'
import {type ClusterNode} from '../lib/cluster/topology.js'
import {NODE_PARALLELISM, settleLimit} from '../lib/cluster/connection.js'
import {usageError} from '../lib/errors.js'
import {table} from '../lib/cli/render.js'

export interface CallReply {
  id: string
  address: string
  role: string
  ok: boolean
  reply?: unknown
  error?: string
}

export interface CallResult {
  command: string[]
  replies: CallReply[]
}

function printable(value: unknown): string {
  if (Array.isArray(value)) return value.map((item) => printable(item)).join('\n')
  if (value === null || value === undefined) return '(nil)'
  return String(value)
}

export default class Call extends BaseCommand<typeof Call> {
  static args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
  }

  static description = BaseCommand.withExitCodes('Run one command on every node of the cluster in parallel and show each reply.')

  static examples = ['<%= config.bin %> call 127.0.0.1:7000 INFO memory --masters', '<%= config.bin %> call 127.0.0.1:7000 CONFIG GET maxmemory --json']

  static flags = {
    masters: Flags.boolean({description: 'only masters', exclusive: ['replicas']}),
    replicas: Flags.boolean({description: 'only replicas', exclusive: ['masters']}),
  }

  static strict = false

  async run(): Promise<CallResult> {
    const {address, command} = this.splitArgv()
    if (command.length === 0) throw usageError('missing command to run', [`e.g. ${this.config.bin} call ${address ?? 'HOST:PORT'} PING`])
    const snapshot = await this.loadCluster(this.parseSeed([address]))
    const targets = snapshot.nodes.filter((node) => this.selected(node) && snapshot.views[node.id]?.reachable)
    const pool = this.pool()
    const results = await settleLimit(targets, NODE_PARALLELISM, async (node) => (await pool.client(node.address)).call(command[0], ...command.slice(1)))
    const replies: CallReply[] = targets.map((node, index) => ({
      address: node.address,
      id: node.id,
      ok: !results[index].error,
      role: node.role,
      ...(results[index].error ? {error: results[index].error?.message} : {reply: results[index].value}),
    }))
    this.log(table(['node', 'role', 'reply'], replies.map((r) => [r.address, r.role, r.ok ? printable(r.reply) : `(error) ${r.error}`])))
    if (replies.some((reply) => !reply.ok)) this.resultExitCode = 1
    return {command, replies}
  }

  private selected(node: ClusterNode): boolean {
    if (this.flags.masters) return node.role === 'master'
    if (this.flags.replicas) return node.role === 'replica'
    return true
  }

  /** Positional words after the address are the command, flags included verbatim after `--`. */
  private splitArgv(): {address: string; command: string[]} {
    const raw = this.argv
    const dashdash = raw.indexOf('--')
    const own = new Set(['--masters', '--replicas', '--json', '--yes', '-y', '--no-color', '--verbose', '--tls', '--insecure'])
    const withValue = new Set(['-a', '--password', '--user', '--cacert', '--cert', '--key', '--sni', '--connect-timeout'])
    const positional: string[] = []
    for (let i = 0; i < raw.length; i++) {
      if (i === dashdash) {
        positional.push(...raw.slice(i + 1))
        break
      }
      const word = raw[i]
      if (own.has(word)) continue
      if (withValue.has(word)) {
        i++
        continue
      }
      if (word.startsWith('--') && word.includes('=')) continue
      positional.push(word)
    }
    return {address: positional[0], command: positional.slice(1)}
  }
}
