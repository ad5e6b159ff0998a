/**
 * Which server a node runs (Redis or Valkey, and which version) and which of the newer
 * cluster features it offers. Read per node, because a cluster being upgraded mixes versions:
 * a feature is used between two nodes only when both have it.
 *
 * The server name and version come from INFO server (Valkey reports `server_name:valkey` and
 * `valkey_version`, and a frozen `redis_version:7.2.4` for client compatibility). Features
 * that are commands are confirmed with COMMAND INFO, so a renamed or disabled command, or a
 * build without it, is not trusted on its version alone; behaviours that no command shows
 * (replicated SETSLOT) follow the version.
 */
import {NODE_PARALLELISM, type NodePool, settleLimit} from './connection.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {parseInfo} from './topology.js'

export type ServerName = 'redis' | 'unknown' | 'valkey'

/** The server-side slot migration a node offers, if any. */
export type AtomicSlotMigration =
  /** Valkey ≥ 9.0: CLUSTER MIGRATESLOTS on the source, GETSLOTMIGRATIONS, CANCELSLOTMIGRATIONS */
  | 'valkey-migrateslots'
  /** Redis ≥ 8.4: CLUSTER MIGRATION IMPORT|STATUS|CANCEL, driven from the target */
  | 'redis-migration'

export interface ServerFeatures {
  name: ServerName
  /** The server's own version ('8.0.1'), not the compatibility redis_version Valkey reports. */
  version: string
  /** CLUSTER SLOT-STATS (Valkey ≥ 8.0): key counts of many slots in one call. */
  slotStats: boolean
  /**
   * Valkey ≥ 8.0 sends CLUSTER SETSLOT to the replicas first and runs it only once they
   * acknowledge (NOREPLICAS on timeout, the command not run): replicas then show open-slot
   * markers too, and a SETSLOT on the primary clears them on its replicas.
   */
  replicatedSetslot: boolean
  atomicSlotMigration: AtomicSlotMigration | null
  /** INFO server availability_zone (Valkey ≥ 8.0), when the operator configured one. */
  availabilityZone?: string
}

/** Subcommands whose presence COMMAND INFO confirms, in the order they are asked. */
export const PROBED_COMMANDS = ['cluster|slot-stats', 'cluster|migrateslots', 'cluster|migration'] as const

type ProbedCommand = (typeof PROBED_COMMANDS)[number]

/** The commands a node has (from COMMAND INFO), or undefined when it could not be asked. */
export type CommandPresence = ReadonlySet<ProbedCommand> | undefined

function versionParts(version: string): number[] {
  return version.split('.').map((part) => Number.parseInt(part, 10) || 0)
}

/** True when `version` is at least major.minor. */
export function versionAtLeast(version: string, major: number, minor = 0): boolean {
  const [have = 0, haveMinor = 0] = versionParts(version)
  return have > major || (have === major && haveMinor >= minor)
}

function serverName(info: Record<string, string>): ServerName {
  if (info.server_name === 'valkey' || info.valkey_version) return 'valkey'
  if (info.redis_version) return 'redis'
  return 'unknown'
}

/**
 * Pure: features from an INFO server text and the commands COMMAND INFO confirmed. Without
 * the command list (the user may not run COMMAND), commands are expected by version.
 */
export function detectServerFeatures(infoServer: string, commands?: CommandPresence): ServerFeatures {
  const info = parseInfo(infoServer)
  const name = serverName(info)
  const version = (name === 'valkey' ? info.valkey_version : undefined) ?? info.redis_version ?? '0.0.0'
  const valkey = (major: number, minor = 0) => name === 'valkey' && versionAtLeast(version, major, minor)
  const redis = (major: number, minor = 0) => name === 'redis' && versionAtLeast(version, major, minor)
  const has = (command: ProbedCommand, expected: boolean) => (commands ? commands.has(command) : expected)
  // the migration commands' shape is tied to the release that introduced them: both must hold
  const atomic: AtomicSlotMigration | null = valkey(9) && has('cluster|migrateslots', true) ? 'valkey-migrateslots' : redis(8, 4) && has('cluster|migration', true) ? 'redis-migration' : null
  const zone = info.availability_zone?.trim()
  return {
    atomicSlotMigration: atomic,
    name,
    replicatedSetslot: valkey(8),
    slotStats: has('cluster|slot-stats', valkey(8)),
    version,
    ...(zone ? {availabilityZone: zone} : {}),
  }
}

/**
 * Redis 7.0.13-7.0.15 and 7.2.0-7.2.3 keep a stale "owner not claiming" mark on a slot a
 * node takes, and then give the slot to the next ping that claims it for anyone, deleting its
 * keys (fixed in 7.2.4 and 7.4, redis/redis#12564; docs/known-limitations.md).
 */
export function handsBackTakenSlots(features: Pick<ServerFeatures, 'name' | 'version'>): boolean {
  if (features.name !== 'redis') return false
  const [major = 0, minor = 0, patch = 0] = versionParts(features.version)
  if (major !== 7) return false
  return (minor === 0 && patch >= 13) || (minor === 2 && patch <= 3)
}

/** "valkey 9.1.2", for messages. */
export function describeServer(features: Pick<ServerFeatures, 'name' | 'version'>): string {
  return `${features.name} ${features.version}`
}

/** COMMAND INFO answers one entry per name, null for a command the server does not have. */
function presentCommands(reply: unknown): Set<ProbedCommand> {
  const present = new Set<ProbedCommand>()
  if (!Array.isArray(reply)) return present
  for (const [index, entry] of reply.entries()) if (Array.isArray(entry) && entry.length > 0) present.add(PROBED_COMMANDS[index])
  return present
}

/** One node's features, in one round trip (INFO server + COMMAND INFO). */
export async function readServerFeatures(pool: NodePool, address: string): Promise<ServerFeatures> {
  let replies: Array<[Error | null, unknown]>
  try {
    replies = (await pool.read(address, (client) => client.pipeline().call('INFO', 'server').call('COMMAND', 'INFO', ...PROBED_COMMANDS).exec())) ?? []
  } catch (error) {
    throw new SlotctlError(`cannot read INFO server from ${address}: ${errorMessage(error)}`, {code: 'E_UNREACHABLE'})
  }
  const [[infoError, infoText] = [new Error('no reply'), null], [commandError, commandReply] = [new Error('no reply'), null]] = replies
  if (infoError) throw new SlotctlError(`${address} answered INFO server with: ${infoError.message}`, {code: 'E_PROTOCOL'})
  return detectServerFeatures(String(infoText), commandError ? undefined : presentCommands(commandReply))
}

/**
 * Features of many nodes, keyed by address. A node that cannot be read is left out: callers
 * treat it as offering nothing new, which is always safe.
 */
export async function readServerFeaturesOf(pool: NodePool, addresses: readonly string[]): Promise<Map<string, ServerFeatures>> {
  const unique = [...new Set(addresses.filter(Boolean))]
  const results = await settleLimit(unique, NODE_PARALLELISM, (address) => readServerFeatures(pool, address))
  const features = new Map<string, ServerFeatures>()
  for (const [index, result] of results.entries()) if (result.value) features.set(unique[index], result.value)
  return features
}
