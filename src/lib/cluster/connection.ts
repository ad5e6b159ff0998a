/**
 * The connection layer: one lazily created ioredis client per node, fail-fast settings for
 * admin work, bounded parallelism, and one place that closes everything.
 */
import {readFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import type {ConnectionOptions as TlsOptions} from 'node:tls'

import type {Redis as RedisClient, RedisOptions} from 'ioredis'

import {type NodeAddress, formatAddress} from './address.js'
import {SlotctlError, errorMessage, isConnectionLost, nodeFailure, usageError} from '../errors.js'

// Required, not imported: an ESM import of a CommonJS package first scans its source, and
// the modules it re-exports, for export names (about 40 ms of every start for ioredis).
const {Redis} = createRequire(import.meta.url)('ioredis') as typeof import('ioredis')
type Redis = RedisClient

export interface TlsSettings {
  enabled: boolean
  caFile?: string
  certFile?: string
  keyFile?: string
  servername?: string
  insecure?: boolean
}

export interface ConnectionSettings {
  username?: string
  password?: string
  tls?: TlsSettings
  connectTimeoutMs: number
  /** Must stay above any MIGRATE timeout sent over the connection. */
  commandTimeoutMs: number
}

export const DEFAULT_CONNECTION: ConnectionSettings = {connectTimeoutMs: 3000, commandTimeoutMs: 15_000}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file)
  } catch (error) {
    throw usageError(`cannot read ${what} file '${file}': ${errorMessage(error)}`)
  }
}

export function buildTlsOptions(tls: TlsSettings | undefined, urlTls?: boolean): TlsOptions | undefined {
  if (!tls?.enabled && !urlTls) return undefined
  const options: TlsOptions = {rejectUnauthorized: !tls?.insecure}
  if (tls?.caFile) options.ca = readPem(tls.caFile, 'CA certificate')
  if (tls?.certFile) options.cert = readPem(tls.certFile, 'certificate')
  if (tls?.keyFile) options.key = readPem(tls.keyFile, 'private key')
  if (tls?.servername) options.servername = tls.servername
  return options
}

export function redisOptionsFor(address: NodeAddress, settings: ConnectionSettings): RedisOptions {
  return {
    host: address.host,
    port: address.port,
    username: address.username ?? settings.username,
    password: address.password ?? settings.password,
    tls: buildTlsOptions(settings.tls, address.tls),
    connectTimeout: settings.connectTimeoutMs,
    commandTimeout: settings.commandTimeoutMs,
    lazyConnect: true,
    enableOfflineQueue: false,
    // Never re-send SETSLOT/MIGRATE/FAILOVER after a reconnect: fail and let the caller decide.
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableReadyCheck: false,
    connectionName: 'slotctl',
  }
}

/** Turns ioredis/socket failures into one line an operator can act on. */
export function describeConnectError(address: string, error: unknown): SlotctlError {
  const message = errorMessage(error)
  if (/WRONGPASS|invalid password|invalid username-password/i.test(message)) {
    return new SlotctlError(`authentication failed at ${address}: wrong user name or password`, {
      code: 'E_AUTH',
      suggestions: ['pass the password with -a/--password or REDISCLI_AUTH, and the ACL user with --user'],
    })
  }
  if (/NOAUTH/i.test(message)) {
    return new SlotctlError(`${address} requires a password`, {code: 'E_AUTH', suggestions: ['pass it with -a/--password or REDISCLI_AUTH']})
  }
  if (/ECONNREFUSED/.test(message)) return new SlotctlError(`cannot connect to ${address}: connection refused (is redis-server running there?)`, {code: 'E_UNREACHABLE'})
  if (/ENOTFOUND|EAI_AGAIN/.test(message)) return new SlotctlError(`cannot connect to ${address}: host name not found`, {code: 'E_UNREACHABLE'})
  if (/ETIMEDOUT|timed? ?out/i.test(message)) return new SlotctlError(`cannot connect to ${address}: connection timed out`, {code: 'E_UNREACHABLE', suggestions: ['raise --connect-timeout if the node is slow to answer']})
  return new SlotctlError(`cannot connect to ${address}: ${message}`, {code: 'E_UNREACHABLE'})
}

/**
 * ioredis console.warn()s when a password is sent to a server that needs none, and goes on
 * connected. That is harmless for an ops tool (one password for a mixed fleet) but would
 * break clean stderr and --json pipelines, so exactly those two messages are dropped.
 */
function silenceSpareAuthWarnings(): void {
  const original = console.warn
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && /^\[WARN\] .*does not require a password, but a password was supplied/.test(args[0])) return
    original(...args)
  }
}

silenceSpareAuthWarnings()

interface PoolEntry {
  client: Redis
  ready: Promise<Redis>
}

/**
 * Per-node clients for one command run. `client()` connects on first use and returns the
 * same client afterwards; `closeAll()` must run in the command's finally block, or the
 * open sockets keep the process alive.
 */
export class NodePool {
  private readonly entries = new Map<string, PoolEntry>()
  private closed = false

  constructor(readonly settings: ConnectionSettings = DEFAULT_CONNECTION) {}

  /**
   * The node's client. `lane` > 0 gives extra connections to the same node, for commands
   * that block their client server-side (Valkey holds each SETSLOT until the replicas
   * acknowledge it): several clients waiting at once share one acknowledgement round.
   */
  async client(address: NodeAddress | string, lane = 0): Promise<Redis> {
    if (this.closed) throw new SlotctlError('connection pool already closed', {code: 'E_INTERNAL'})
    const target = typeof address === 'string' ? addressFromString(address) : address
    const key = lane === 0 ? formatAddress(target) : `${formatAddress(target)}#${lane}`
    let entry = this.entries.get(key)
    if (!entry) {
      entry = this.open(target, key)
      this.entries.set(key, entry)
    }
    return entry.ready
  }

  private open(address: NodeAddress, key: string): PoolEntry {
    const client = new Redis(redisOptionsFor(address, this.settings))
    // connect() rejects with a bare "Connection is closed"; the 'error' event has the cause.
    // Listening also keeps an unhandled 'error' event from crashing the process.
    let cause: unknown
    client.on('error', (error) => {
      cause ??= error
    })
    const ready = client.connect().then(
      () => client,
      (error: unknown) => {
        this.entries.delete(key)
        client.disconnect()
        throw describeConnectError(formatAddress(address), cause ?? error)
      },
    )
    return {client, ready}
  }

  /** Drops a node's clients (every lane), e.g. after the node was killed or reset. */
  forget(address: string): void {
    for (const [key, entry] of this.entries) {
      if (key !== address && !key.startsWith(`${address}#`)) continue
      this.entries.delete(key)
      entry.client.disconnect()
    }
  }

  async closeAll(): Promise<void> {
    this.closed = true
    // disconnect, not QUIT: nothing is pending at the end of a command, and waiting for QUIT
    // replies (or a timer guarding them) only delays the exit
    for (const entry of this.entries.values()) entry.client.disconnect()
    this.entries.clear()
  }
}

function addressFromString(text: string): NodeAddress {
  const colon = text.lastIndexOf(':')
  return {host: text.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(text.slice(colon + 1))}
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms)
  })
}

/** Runs fn over items with at most `limit` in flight, keeping result order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await fn(items[index], index)
    }
  }
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, () => worker()))
  return results
}

/** Like mapLimit but never rejects: each item yields {value} or {error}. */
export async function settleLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<Array<{error?: SlotctlError | Error; value?: R}>> {
  return mapLimit(items, limit, async (item) => {
    try {
      return {value: await fn(item)}
    } catch (error) {
      return {error: error instanceof Error ? error : new Error(String(error))}
    }
  })
}

export type Reply = [Error | null, unknown]

/** Runs commands on one node in a single pipeline; returns each one's [error, value], in order. */
export async function pipelineCalls(pool: NodePool, address: string, commands: ReadonlyArray<ReadonlyArray<number | string>>, lane = 0): Promise<Reply[]> {
  if (commands.length === 0) return []
  const pipeline = (await pool.client(address, lane)).pipeline()
  for (const [name, ...args] of commands) pipeline.call(String(name), ...args)
  try {
    return ((await pipeline.exec()) ?? []) as Reply[]
  } catch (error) {
    // the whole pipeline failed (the connection is gone): name the node, not only the socket
    throw new SlotctlError(nodeFailure(address, commands.map(([name, sub]) => `${name}${typeof sub === 'string' && /^[A-Z-]+$/i.test(sub) ? ` ${sub}` : ''}`)[0], error), {code: isConnectionLost(error) ? 'E_UNREACHABLE' : 'E_PROTOCOL'})
  }
}

/**
 * Like pipelineCalls, but split over `lanes` connections (1..lanes; lane 0 stays free for
 * reads) that run at once: for commands the server holds until replicas acknowledge them.
 * Commands keep their order within a lane only, so callers split where order does not matter.
 */
export async function spreadCalls(pool: NodePool, address: string, commands: ReadonlyArray<ReadonlyArray<number | string>>, lanes: number): Promise<Reply[]> {
  return (await spreadGroups(pool, address, commands.map((command) => [command]), lanes)).flat()
}

/** spreadCalls for groups of commands that must stay in order on one connection; replies per group. */
export async function spreadGroups(pool: NodePool, address: string, groups: ReadonlyArray<ReadonlyArray<ReadonlyArray<number | string>>>, lanes: number): Promise<Reply[][]> {
  if (lanes <= 1 || groups.length <= 1) {
    const replies = await pipelineCalls(pool, address, groups.flat())
    let next = 0
    return groups.map((group) => replies.slice(next, (next += group.length)))
  }
  const size = Math.ceil(groups.length / lanes)
  const chunks = Array.from({length: Math.ceil(groups.length / size)}, (_, i) => groups.slice(i * size, (i + 1) * size))
  const perChunk = await Promise.all(
    chunks.map(async (chunk, i) => {
      const replies = await pipelineCalls(pool, address, chunk.flat(), i + 1)
      let next = 0
      return chunk.map((group) => replies.slice(next, (next += group.length)))
    }),
  )
  return perChunk.flat()
}

/**
 * Runs CLUSTER subcommands on one node in a single pipeline; returns each one's error (or
 * null), in order. One round trip, and Redis saves nodes.conf once for the whole batch.
 */
export async function clusterPipeline(pool: NodePool, address: string, commands: ReadonlyArray<ReadonlyArray<number | string>>): Promise<Array<Error | null>> {
  return (await pipelineCalls(pool, address, commands.map((args) => ['CLUSTER', ...args]))).map(([error]) => error)
}

/** Parallelism used when talking to every node of a cluster. */
export const NODE_PARALLELISM = 32
