/**
 * Whether a command may change data or configuration, decided by the server's own command
 * table (COMMAND INFO), so renamed, new and module commands are judged like the built-ins.
 */
import type {NodePool} from './connection.js'
import {errorMessage} from '../errors.js'

/**
 * Admin and @dangerous commands that only read. COMMAND INFO gives CONFIG GET the same flags
 * as CONFIG SET, so these few are known by name; everything else follows the flags.
 */
const READ_ONLY_BY_NAME = new Set([
  'acl|cat', 'acl|dryrun', 'acl|getuser', 'acl|list', 'acl|log', 'acl|users', 'acl|whoami',
  'client|getname', 'client|id', 'client|info', 'client|list',
  'cluster|count-failure-reports', 'cluster|countkeysinslot', 'cluster|getkeysinslot', 'cluster|info', 'cluster|links', 'cluster|myid', 'cluster|nodes',
  'cluster|replicas', 'cluster|shards', 'cluster|slaves', 'cluster|slots',
  'config|get', 'function|dump', 'function|help', 'function|list', 'function|stats', 'info', 'lastsave', 'role', 'script|exists', 'script|help',
  'latency|doctor', 'latency|graph', 'latency|histogram', 'latency|history', 'latency|latest',
  'memory|doctor', 'memory|malloc-stats', 'memory|stats', 'module|list', 'slowlog|get', 'slowlog|len',
])

/** `ACL LOG RESET` clears the log; `ACL LOG [count]` reads it. */
function resetsLog(name: string, args: readonly string[]): boolean {
  return name === 'acl|log' && args.some((arg) => arg.toLowerCase() === 'reset')
}

type CommandEntry = [name: string, arity: number, flags: string[], first: number, last: number, step: number, categories?: string[], ...rest: unknown[]]

async function commandEntry(pool: NodePool, address: string, name: string): Promise<CommandEntry | undefined> {
  const [entry] = (await pool.read(address, (client) => client.call('COMMAND', 'INFO', name))) as Array<CommandEntry | null>
  return entry ?? undefined
}

/**
 * Undefined when the command only reads, else the reason it may change something (for the
 * confirmation). Unknown commands need none: every node will refuse them anyway.
 */
export async function describeChange(pool: NodePool, address: string, command: readonly string[]): Promise<string | undefined> {
  const [word, sub, ...rest] = command
  const upper = [word, sub].filter(Boolean).join(' ').toUpperCase()
  let entry: CommandEntry | undefined
  let name = word.toLowerCase()
  try {
    if (sub !== undefined) {
      entry = await commandEntry(pool, address, `${name}|${sub.toLowerCase()}`)
      if (entry) name = `${name}|${sub.toLowerCase()}`
    }
    entry ??= await commandEntry(pool, address, name)
  } catch (error) {
    // without the command table nothing says the command is harmless
    return `${word.toUpperCase()} could not be looked up in the server's command table (${errorMessage(error)})`
  }
  if (!entry) return undefined
  const args = sub !== undefined && name.includes('|') ? rest : command.slice(1)
  if (READ_ONLY_BY_NAME.has(name) && !resetsLog(name, args)) return undefined
  const flags = entry[2].map(String)
  if (flags.includes('readonly')) return undefined
  const categories = (entry[6] ?? []).map(String)
  const reasons = [
    flags.includes('write') ? 'write' : '',
    flags.includes('admin') ? 'admin' : '',
    categories.includes('@dangerous') ? 'dangerous' : '',
    categories.includes('@scripting') ? 'scripting' : '',
  ].filter(Boolean)
  const shown = name.includes('|') ? upper : word.toUpperCase()
  return reasons.length > 0 ? `${shown} may change data or configuration (server flags: ${reasons.join(', ')})` : undefined
}
