/**
 * Whether a command may change data or configuration, decided by the server's own command
 * table (COMMAND INFO), so renamed, new and module commands are judged like the built-ins.
 */
import type {NodePool} from './connection.js'
import {SlotctlError, errorMessage, usageError} from '../core/errors.js'
import {NODE_PARALLELISM, mapLimit} from './connection.js'

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
 * Commands that turn the connection into a stream (pub/sub, MONITOR, replication) or stop its
 * replies: `call` reads one reply per node, so these are refused, by the name typed and by
 * the name the server's table gives (a renamed SUBSCRIBE is still SUBSCRIBE).
 */
const STREAMING = new Set([
  'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe',
  'monitor', 'sync', 'psync', 'replconf', 'client|reply',
])

function streamingError(name: string): SlotctlError {
  return usageError(`call runs commands that answer once; ${name.replace('|', ' ').toUpperCase()} streams or silences replies: use redis-cli for it`)
}

/** Refuses, by the words typed, a command that does not answer once (STREAMING). */
export function refuseStreamingCommand(command: readonly string[]): void {
  const [word = '', sub] = command.map((part) => part.toLowerCase())
  for (const name of [word, `${word}|${sub}`]) if (STREAMING.has(name)) throw streamingError(name)
}

/** What one node's command table says about the command: its entry (and the name looked up), absent, or unknown. */
interface Lookup {
  entry?: CommandEntry
  name: string
  error?: string
}

async function lookUp(pool: NodePool, address: string, command: readonly string[]): Promise<Lookup> {
  const [word, sub] = command
  const name = word.toLowerCase()
  try {
    if (sub !== undefined) {
      const full = `${name}|${sub.toLowerCase()}`
      const entry = await commandEntry(pool, address, full)
      if (entry) return {entry, name: full}
    }
    return {entry: await commandEntry(pool, address, name), name}
  } catch (error) {
    return {error: errorMessage(error), name}
  }
}

/** Why this entry may change something, or undefined when it only reads. */
function changeReasons(lookup: Lookup, command: readonly string[]): string[] {
  const entry = lookup.entry as CommandEntry
  const args = lookup.name.includes('|') ? command.slice(2) : command.slice(1)
  if (READ_ONLY_BY_NAME.has(lookup.name) && !resetsLog(lookup.name, args)) return []
  const flags = entry[2].map(String)
  if (flags.includes('readonly')) return []
  const categories = (entry[6] ?? []).map(String)
  return [
    flags.includes('write') ? 'write' : '',
    flags.includes('admin') ? 'admin' : '',
    categories.includes('@dangerous') ? 'dangerous' : '',
    categories.includes('@scripting') ? 'scripting' : '',
  ].filter(Boolean)
}

/**
 * Undefined when every node's own command table says the command only reads, else the
 * reason to confirm. Each node is asked, since a command may be renamed on some nodes and
 * not on others; a node that does not know it (renamed, disabled, a module not loaded) or
 * cannot be asked leaves nothing saying it is harmless, so that asks for confirmation too.
 * A command whose table name streams (STREAMING) is refused.
 */
export async function describeChange(pool: NodePool, addresses: readonly string[], command: readonly string[]): Promise<string | undefined> {
  const lookups = await mapLimit(addresses, NODE_PARALLELISM, (address) => lookUp(pool, address, command))
  for (const lookup of lookups) {
    const tableName = lookup.entry ? String(lookup.entry[0]).toLowerCase() : ''
    if (STREAMING.has(tableName)) throw streamingError(tableName)
  }
  const shown = lookups.find((lookup) => lookup.entry)?.name.replace('|', ' ').toUpperCase() ?? command[0].toUpperCase()
  const failed = lookups.filter((lookup) => lookup.error)
  if (failed.length > 0) return `${shown} could not be looked up in the command table of ${failed.length} node(s) (${failed[0].error})`
  const unknown = lookups.filter((lookup) => !lookup.entry).length
  if (unknown > 0) return `${shown} is unknown to ${unknown} of ${lookups.length} node(s) (renamed or disabled there?), so nothing says it is harmless`
  const reasons = [...new Set(lookups.flatMap((lookup) => changeReasons(lookup, command)))]
  return reasons.length > 0 ? `${shown} may change data or configuration (server flags: ${reasons.join(', ')})` : undefined
}
