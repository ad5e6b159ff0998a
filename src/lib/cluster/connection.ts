/**
 * The connection layer: one lazily created ioredis client per node, fail-fast settings for
 * admin work, bounded parallelism, and one place that closes everything.
 */
import {connect as connectTcp} from 'node:net'
import {type ConnectionOptions as TlsOptions, connect as connectTls, createSecureContext} from 'node:tls'

import {Redis, type RedisOptions} from 'ioredis'

import {type NodeAddress, formatAddress, splitAddress} from './address.js'
import {type EncodedBatch, RawReadTimeout, encodedBatch, rawPipeline} from './raw-pipeline.js'
import {SlotctlError, errorMessage, isConnectionLost, nodeFailure, usageError} from '../core/errors.js'
import {readRegularFileSync} from '../files.js'

const MAX_PEM_BYTES = 1024 * 1024

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
  /**
   * Deadline for a connected node to finish the handshake and to answer a read (pool.read);
   * a node that misses it is hung: it accepts connections but never answers.
   */
  readTimeoutMs?: number
}

export const DEFAULT_READ_TIMEOUT_MS = 5000

export const DEFAULT_CONNECTION: ConnectionSettings = {commandTimeoutMs: 15_000, connectTimeoutMs: 3000, readTimeoutMs: DEFAULT_READ_TIMEOUT_MS}

/** Reads a PEM file given with a TLS flag; anything else is refused before connecting. */
function readPem(file: string, flag: string): Buffer {
  let content: Buffer
  try {
    content = readRegularFileSync(file, MAX_PEM_BYTES)
  } catch (error) {
    throw usageError(`cannot read the ${flag} file '${file}': ${errorMessage(error)}`)
  }
  // OpenSSL would say "no start line", or, for a CA, nothing at all (the file is just ignored)
  if (!content.includes('-----BEGIN ')) throw usageError(`the ${flag} file '${file}' is not a PEM file (no -----BEGIN line)`)
  return content
}

/** A certificate and key that do not belong together fail every handshake: say so up front. */
function checkKeyPair(options: TlsOptions, tls: TlsSettings): void {
  if (Boolean(options.cert) !== Boolean(options.key)) throw usageError(options.cert ? '--cert needs --key (the private key of the certificate)' : '--key needs --cert (the certificate of the key)')
  if (!options.cert) return
  try {
    createSecureContext({cert: options.cert, key: options.key})
  } catch (error) {
    if (/key values mismatch/i.test(errorMessage(error))) throw usageError(`the private key '${tls.keyFile}' does not match the certificate '${tls.certFile}'`)
    throw usageError(`cannot use the certificate '${tls.certFile}' with the key '${tls.keyFile}': ${describeTlsReason(errorMessage(error))}`)
  }
}

export function buildTlsOptions(tls: TlsSettings | undefined, urlTls?: boolean): TlsOptions | undefined {
  if (!tls?.enabled && !urlTls) return undefined
  const options: TlsOptions = {rejectUnauthorized: !tls?.insecure}
  if (tls?.caFile) options.ca = readPem(tls.caFile, '--cacert')
  if (tls?.certFile) options.cert = readPem(tls.certFile, '--cert')
  if (tls?.keyFile) options.key = readPem(tls.keyFile, '--key')
  if (tls?.servername) options.servername = tls.servername
  if (tls) checkKeyPair(options, tls)
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
    // CLIENT SETINFO: unknown before Redis 7.2, and one more ACL LOG entry for a restricted user
    disableClientInfo: true,
  }
}

/** The reason in an OpenSSL string (`80EC...:error:0A00045C:SSL routines:fn:reason:file:line`). */
function describeTlsReason(message: string): string {
  const openssl = /error:[0-9A-F]{8}:[^:]*:[^:]*:([^:]+)/i.exec(message)
  return (openssl ? openssl[1] : message).replace(/^tlsv1\d? alert /, '').trim()
}

/** OpenSSL and Node TLS failures, as sentences naming the flag that fixes them. */
function describeTlsError(address: string, message: string): SlotctlError | undefined {
  const tlsError = (text: string, suggestions: string[] = []) => new SlotctlError(text, {code: 'E_TLS', suggestions})
  if (/alert certificate required/i.test(message)) return tlsError(`${address} requires a client certificate`, ['pass one with --cert FILE --key FILE'])
  if (/alert (unknown ca|bad certificate|certificate unknown|certificate revoked|certificate expired)/i.test(message)) {
    return tlsError(`${address} rejected the client certificate (${describeTlsReason(message)})`, ['use a certificate signed by a CA the server trusts (its tls-ca-cert-file)'])
  }
  if (/self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate/i.test(message)) {
    return tlsError(`cannot verify the certificate of ${address}: ${message}`, ['pass the CA that signed it with --cacert FILE (or skip verification with --insecure)'])
  }
  if (/certificate has expired|certificate is not yet valid/i.test(message)) return tlsError(`the certificate of ${address} ${/expired/i.test(message) ? 'has expired' : 'is not valid yet'}`)
  if (/does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/i.test(message)) {
    return tlsError(`the certificate of ${address} is not issued for the name slotctl connected to`, ['connect by a name the certificate lists, or give that name with --sni NAME'])
  }
  if (/wrong version number|packet length too long|unknown protocol/i.test(message)) return tlsError(`${address} does not speak TLS (a plain port?)`, ['leave out --tls and the other TLS flags'])
  if (/SSL routines|error:[0-9A-F]{8}:/i.test(message)) return tlsError(`TLS handshake with ${address} failed: ${describeTlsReason(message)}`)
  return undefined
}

/** Turns ioredis/socket failures into one line an operator can act on. */
export function describeConnectError(address: string, error: unknown): SlotctlError {
  if (error instanceof SlotctlError) return error
  const message = errorMessage(error)
  const tls = describeTlsError(address, message)
  if (tls) return tls
  if (/WRONGPASS|invalid password|invalid username-password/i.test(message)) {
    return new SlotctlError(`authentication failed at ${address}: wrong user name or password`, {
      code: 'E_AUTH',
      suggestions: ['pass the password with -a/--password or REDISCLI_AUTH, and the ACL user with --user'],
    })
  }
  if (/NOAUTH/i.test(message)) {
    return new SlotctlError(`${address} requires a password`, {code: 'E_AUTH', suggestions: ['pass it with -a/--password or REDISCLI_AUTH']})
  }
  if (/ECONNREFUSED/.test(message)) return new SlotctlError(`cannot connect to ${address}: connection refused (is the server running there?)`, {code: 'E_UNREACHABLE'})
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

/** AUTH's answer from a server (or its default user) that has no password. */
const SPARE_AUTH_REPLY = /no password is set|without any password configured for the default user/i

interface PoolEntry {
  client: Redis
  ready: Promise<Redis>
}

function hungError(address: string, ms: number): SlotctlError {
  return new SlotctlError(`${address} is hung: it accepts connections but did not answer within ${ms} ms`, {
    code: 'E_HUNG',
    suggestions: ['raise --read-timeout if the node is only slow (a long-running script, a big DEL, swapping)'],
  })
}

/** Waits at most `ms` for a TCP or TLS exchange; resolves false on any error or silence. */
function probeWithin(ms: number, start: (finish: (result: boolean) => void) => {destroy(): void}): Promise<boolean> {
  return new Promise((resolve) => {
    // assigned after finish is made (finish may destroy it), so not a const
    // eslint-disable-next-line prefer-const
    let socket: {destroy(): void} | undefined
    const finish = (result: boolean) => {
      clearTimeout(timer)
      socket?.destroy()
      resolve(result)
    }
    const timer = setTimeout(() => finish(false), ms)
    socket = start(finish)
  })
}

/** Whether a TLS handshake gets an answer: the server at least speaks TLS. */
function answersTls(host: string, port: number, ms: number): Promise<boolean> {
  return probeWithin(ms, (finish) => {
    const socket = connectTls({host, port, rejectUnauthorized: false})
    socket.once('secureConnect', () => finish(true))
    socket.once('error', (error) => finish(/alert|certificate/i.test(error.message)))
    return socket
  })
}

/** Whether a plain PING gets a RESP answer: the server speaks plain text there. */
function answersPlain(host: string, port: number, ms: number): Promise<boolean> {
  return probeWithin(ms, (finish) => {
    const socket = connectTcp({host, port}, () => socket.write('PING\r\n'))
    socket.once('data', (data) => finish(/^[+-]/.test(data.toString())))
    socket.once('error', () => finish(false))
    return socket
  })
}

/**
 * Per-node clients for one command run. `client()` connects on first use and returns the
 * same client afterwards; `closeAll()` must run in the command's finally block, or the
 * open sockets keep the process alive. A node that misses the read deadline (handshake or
 * `read()`) is remembered as hung: every later use of it fails at once instead of waiting.
 */
export class NodePool {
  private readonly entries = new Map<string, PoolEntry>()
  private readonly hung = new Map<string, SlotctlError>()
  private closed = false
  private readonly idleLeases = new Map<string, string[]>()
  private leaseCount = 0

  constructor(readonly settings: ConnectionSettings = DEFAULT_CONNECTION) {}

  get readTimeoutMs(): number {
    return this.settings.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS
  }

  /**
   * The node's client. `lane` > 0 gives extra connections to the same node, for commands
   * that block their client server-side (Valkey holds each SETSLOT until the replicas
   * acknowledge it): several clients waiting at once share one acknowledgement round.
   */
  async client(address: NodeAddress | string, lane: number | string = 0): Promise<Redis> {
    if (this.closed) throw new SlotctlError('connection pool already closed', {code: 'E_INTERNAL'})
    const target = typeof address === 'string' ? splitAddress(address) : address
    const node = formatAddress(target)
    const hung = this.hung.get(node)
    if (hung) throw hung
    const key = lane === 0 ? node : `${node}#${lane}`
    let entry = this.entries.get(key)
    if (!entry) {
      entry = this.open(target, key)
      this.entries.set(key, entry)
    }
    return entry.ready
  }

  /** Whether a node missed a deadline in this run. */
  isHung(address: string): boolean {
    return this.hung.has(formatAddress(splitAddress(address)))
  }

  /**
   * A read of a node's state (CLUSTER NODES, INFO, ...) within the read deadline: one node
   * that accepts connections and never answers must not stall a whole check or fix.
   */
  async read<T>(address: string, read: (client: Redis) => Promise<T>): Promise<T> {
    const key = formatAddress(splitAddress(address))
    const client = await this.client(address)
    return this.within(key, read(client))
  }

  /**
   * Many small reads of one node (a COUNTKEYSINSLOT per slot) within the read deadline,
   * each reply as [error, value] like an ioredis pipeline. Long batches go over a raw
   * connection of their own (raw-pipeline.ts: ioredis costs ~13 µs of CPU per command);
   * short ones, and any batch the raw connection cannot deliver except by missing the
   * deadline, over the node's pooled client.
   */
  async readMany(address: string, batch: EncodedBatch | ReadonlyArray<ReadonlyArray<number | string>>): Promise<Reply[]> {
    const target = splitAddress(address)
    const key = formatAddress(target)
    const size = 'bytes' in batch ? batch.count : batch.length
    // connects (or reports why it cannot) as every other read does, and checks the hung list
    await this.client(address)
    if (size >= RAW_PIPELINE_MIN) {
      const options = redisOptionsFor(target, this.settings)
      const raw = {connectTimeoutMs: this.settings.connectTimeoutMs, host: target.host, password: options.password, port: target.port, readTimeoutMs: this.readTimeoutMs, tls: options.tls, username: options.username}
      try {
        return await rawPipeline(raw, 'bytes' in batch ? batch : encodedBatch(batch), (socket) => this.trackRaw(socket))
      } catch (error) {
        if (error instanceof RawReadTimeout) throw this.markHung(key)
        if (this.closed) throw error
      }
    }
    const commands = 'bytes' in batch ? batch.commands() : batch
    return (await this.read(address, (client) => {
      const pipeline = client.pipeline()
      for (const [name, ...args] of commands) pipeline.call(String(name), ...args)
      return pipeline.exec()
    })) as Reply[]
  }

  private readonly rawSockets = new Set<{destroy(): void}>()

  private trackRaw(socket: {destroy(): void}): () => void {
    this.rawSockets.add(socket)
    return () => this.rawSockets.delete(socket)
  }

  private within<T>(key: string, work: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(this.markHung(key)), this.readTimeoutMs)
      work.then(
        (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        (error: unknown) => {
          clearTimeout(timer)
          reject(error)
        },
      )
    })
  }

  /** `node`: host:port, for every lane of it. */
  private markHung(node: string): SlotctlError {
    const error = hungError(node, this.readTimeoutMs)
    this.hung.set(node, error)
    const clients = [...this.entries].filter(([key]) => key === node || key.startsWith(`${node}#`)).map(([, entry]) => entry.client)
    this.forget(node)
    // a hung peer never answers the close either: ioredis would keep each socket 2 s more
    for (const client of clients) client.stream?.destroy()
    return error
  }

  /** Nodes that were sent a password although they need none (redis-cli calls that a failed AUTH). */
  readonly passwordNotNeeded = new Set<string>()

  /**
   * ioredis goes on connected when AUTH answers that no password is set (and only warns on
   * the console, silenced above): its AUTH reply is watched on this client, so the node can
   * be named in slotctl's own warning.
   */
  private watchSpareAuth(client: Redis, node: string): void {
    const auth = client.auth.bind(client) as (...args: unknown[]) => unknown
    ;(client as unknown as {auth: (...args: unknown[]) => unknown}).auth = (...args: unknown[]) => {
      const callback = args.at(-1)
      if (typeof callback === 'function') {
        args[args.length - 1] = (error: Error | null | undefined, reply: unknown) => {
          if (error && SPARE_AUTH_REPLY.test(error.message)) this.passwordNotNeeded.add(node)
          return (callback as (error: unknown, reply: unknown) => unknown)(error, reply)
        }
      }
      return auth(...args)
    }
  }

  private open(address: NodeAddress, key: string): PoolEntry {
    const client = new Redis(redisOptionsFor(address, this.settings))
    if (client.options.password) this.watchSpareAuth(client, formatAddress(address))
    // connect() rejects with a bare "Connection is closed"; the 'error' event has the cause.
    // Listening also keeps an unhandled 'error' event from crashing the process.
    let cause: unknown
    client.on('error', (error) => {
      cause ??= error
    })
    // The TCP (and TLS) connect is bounded by connectTimeout; after it, AUTH and CLIENT SETNAME
    // must be answered within the read deadline, which ioredis alone would wait out forever.
    const node = formatAddress(address)
    const handshake = new Promise<Redis>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      client.once('connect', () => {
        timer = setTimeout(() => reject(this.markHung(node)), this.readTimeoutMs)
      })
      client.connect().then(
        () => {
          clearTimeout(timer)
          // A failed AUTH still ends in 'ready' (ioredis flushes the handshake and goes on), and
          // every command then fails with "Stream isn't writeable": report the AUTH error instead.
          if (cause) reject(cause)
          else resolve(client)
        },
        (error: unknown) => {
          clearTimeout(timer)
          reject(cause ?? error)
        },
      )
    })
    const ready = handshake.catch(async (error: unknown) => {
      if (error instanceof SlotctlError && error.code === 'E_HUNG') throw error
      this.entries.delete(key)
      client.disconnect()
      throw await this.describeFailure(address, node, error)
    })
    return {client, ready}
  }

  /**
   * A reset connection from a plain client often means a TLS port, and a silent one from a
   * TLS client a plain port: one quick probe turns that guess into a clear message.
   */
  private async describeFailure(address: NodeAddress, node: string, error: unknown): Promise<SlotctlError> {
    const described = describeConnectError(node, error)
    if (described.code !== 'E_UNREACHABLE' || /refused|not found/.test(described.message)) return described
    const probeMs = Math.min(this.settings.connectTimeoutMs, 2000)
    const tlsOn = Boolean(this.settings.tls?.enabled || address.tls)
    if (!tlsOn && (await answersTls(address.host, address.port, probeMs))) {
      return new SlotctlError(`${node} looks like a TLS port: it closed the plain connection and answers a TLS handshake`, {code: 'E_TLS', suggestions: ['add --tls (with --cacert, --cert and --key as the server needs)']})
    }
    if (tlsOn && (await answersPlain(address.host, address.port, probeMs))) {
      return new SlotctlError(`${node} does not speak TLS: it answers plain commands`, {code: 'E_TLS', suggestions: ['leave out --tls and the other TLS flags, or use the TLS port']})
    }
    return described
  }

  /**
   * A connection of the node that no one else uses until it is released: WATCH, MULTI and
   * WAIT hold state (or block) per connection. `release(false)` drops it (after an error its
   * state is unknown).
   */
  async lease(address: string): Promise<{client: Redis; release: (reuse?: boolean) => void}> {
    const idle = this.idleLeases.get(address) ?? []
    const lane = idle.pop() ?? `lease${++this.leaseCount}`
    this.idleLeases.set(address, idle)
    const client = await this.client(address, lane)
    return {
      client,
      release: (reuse = true) => {
        if (reuse) {
          idle.push(lane)
          return
        }
        const key = `${formatAddress(splitAddress(address))}#${lane}`
        this.entries.get(key)?.client.disconnect()
        this.entries.delete(key)
      },
    }
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
    for (const socket of this.rawSockets) socket.destroy()
    this.rawSockets.clear()
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms)
  })
}

/**
 * Pauses between polls of a state that usually settles within milliseconds (a view after a
 * close, a replica's ack): 10 ms, doubling up to `maxMs`. A fixed 200 ms poll cost up to
 * 200 ms per wave for a change a few pings away.
 */
export function pollBackoff(maxMs = 200): () => Promise<void> {
  let next = 10
  return async () => {
    await delay(next)
    next = Math.min(next * 2, maxMs)
  }
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
  if (lanes <= 1 || commands.length <= 1) return pipelineCalls(pool, address, commands)
  const size = Math.ceil(commands.length / lanes)
  const chunks = Array.from({length: Math.ceil(commands.length / size)}, (_, i) => commands.slice(i * size, (i + 1) * size))
  return (await Promise.all(chunks.map((chunk, i) => pipelineCalls(pool, address, chunk, i + 1)))).flat()
}

/**
 * Runs CLUSTER subcommands on one node in a single pipeline; returns each one's error (or
 * null), in order. One round trip, and Redis saves nodes.conf once for the whole batch.
 */
export async function clusterPipeline(pool: NodePool, address: string, commands: ReadonlyArray<ReadonlyArray<number | string>>): Promise<Array<Error | null>> {
  return (await pipelineCalls(pool, address, commands.map((args) => ['CLUSTER', ...args]))).map(([error]) => error)
}

/** Batches from this many commands on go over a raw connection (NodePool.readMany). */
const RAW_PIPELINE_MIN = 100

/** Parallelism used when talking to every node of a cluster. */
export const NODE_PARALLELISM = 32
