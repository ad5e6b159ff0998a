/**
 * Takes a point-in-time RDB of one node over the replication protocol, as a replica's first
 * sync would (and as `redis-cli --rdb` does): REPLCONF rdb-only (the node then keeps no
 * replication buffer for us and closes after the file), REPLCONF capa eof (the node may stream
 * the file from its fork without writing it to its own disk), REPLCONF version (Valkey 9: the
 * newest file format), SYNC, then the payload. Works for
 * remote nodes; needs a user allowed to run SYNC and REPLCONF.
 *
 * The payload is streamed to `file` while its SHA-256 is computed, then fsync-ed; the caller
 * renames it into place.
 */
import {createHash} from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'

import {type NodeAddress, formatAddress} from '../cluster/address.js'
import {type ConnectionSettings, buildTlsOptions} from '../cluster/connection.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {openNewPrivateFile} from '../files.js'

export interface FetchedRdb {
  bytes: number
  sha256: string
  /** the file's header, e.g. REDIS0011 or VALKEY080 */
  format: string
  elapsedMs: number
}

export interface FetchOptions {
  /** no byte for this long (the node sends a newline every second while it prepares): give up */
  idleTimeoutMs?: number
  /** the whole transfer, keep-alive newlines included: a node that never finishes is given up */
  timeoutMs?: number
  /** a file larger than this (announced or streamed) is refused: a node that never stops */
  maxBytes?: number
  signal?: AbortSignal
}

const EOF_MARK_LENGTH = 40
const DEFAULT_IDLE_TIMEOUT_MS = 60_000
export const DEFAULT_SYNC_TIMEOUT_MS = 3_600_000
/** A reply line before the file (+OK, the bulk header) is short: more without a line end is not a node speaking RESP. */
const MAX_LINE_BYTES = 64 * 1024

function command(...args: string[]): string {
  return `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`
}

/** An RDB starts with REDIS or VALKEY and four version digits, and ends with 0xFF and an 8-byte checksum. */
export function rdbFormat(head: Buffer): string | undefined {
  const text = head.subarray(0, 9).toString('latin1')
  return /^(REDIS\d{4}|VALKEY\d{3})$/.test(text) ? text : undefined
}

type Phase = 'auth' | 'capa' | 'preamble' | 'payload' | 'rdb-only' | 'version'

/**
 * The version a replica announces (REPLCONF version): Valkey 9 writes an RDB for the replica's
 * version, and for one that names none the format Valkey 8 reads, which cannot hold hashes with
 * field TTLs (the fork fails: "Can't store key ... in RDB version 11"). slotctl only stores the
 * file, so it asks for the node's newest format, the one its own disk save writes. Redis
 * answers "Unrecognized REPLCONF option" and carries on.
 */
const REPLICA_VERSION = '255.255.255'

/**
 * The conversation with the node: one command at a time (a node refuses SYNC while replies to
 * earlier commands are still pending), then the bulk header, then the payload.
 */
export class RdbReceiver {
  private phase: Phase
  private pending: Buffer = Buffer.alloc(0)
  private readonly hash = createHash('sha256')
  private bytes = 0
  private head: Buffer = Buffer.alloc(0)
  /** bytes left when the node announced a length; undefined in EOF-mark mode */
  private remaining?: number
  private mark?: Buffer
  private tail: Buffer = Buffer.alloc(0)
  /** the last 9 bytes written: 0xFF and the checksum in a whole file */
  private trailer: Buffer = Buffer.alloc(0)

  constructor(
    private readonly send: (text: string) => void,
    private readonly write: (chunk: Buffer) => boolean,
    private readonly auth: string[] | undefined,
    private readonly address: string,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {
    this.phase = auth ? 'auth' : 'rdb-only'
  }

  start(): void {
    if (this.auth) this.send(command('AUTH', ...this.auth))
    else this.send(command('REPLCONF', 'rdb-only', '1'))
  }

  /** Feeds received bytes: done when the whole payload is written, drained false when the file needs a pause. */
  receive(chunk: Buffer): {done: boolean; drained: boolean} {
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk
    this.pending = Buffer.alloc(0)
    while (data.length > 0) {
      if (this.phase === 'payload') return this.payload(data)
      if (this.phase === 'preamble' && data[0] === 0x0a) {
        data = data.subarray(1) // keep-alive newlines while the node forks
        continue
      }
      const end = data.indexOf('\r\n')
      if (end === -1) {
        if (data.length > MAX_LINE_BYTES) throw new SlotctlError(`${this.address} sent ${data.length} bytes without a line end instead of a reply: not a Redis or Valkey node`, {code: 'E_SYNC'})
        this.pending = data
        break
      }
      this.line(data.subarray(0, end).toString('latin1'))
      data = data.subarray(end + 2)
    }
    return {done: false, drained: true}
  }

  result(): {bytes: number; sha256: string; head: Buffer; trailer: Buffer} {
    return {bytes: this.bytes, head: this.head, sha256: this.hash.digest('hex'), trailer: this.trailer}
  }

  private line(text: string): void {
    switch (this.phase) {
      case 'auth':
        if (text.startsWith('-')) throw new SlotctlError(`authentication failed at ${this.address}: ${text.slice(1)}`, {code: 'E_AUTH'})
        this.phase = 'rdb-only'
        this.send(command('REPLCONF', 'rdb-only', '1'))
        return
      case 'rdb-only':
        // servers before 7.0 do not know rdb-only: they answer an error and send the file anyway
        this.phase = 'capa'
        this.send(command('REPLCONF', 'capa', 'eof'))
        return
      case 'capa':
        this.phase = 'version'
        this.send(command('REPLCONF', 'version', REPLICA_VERSION))
        return
      case 'version':
        // an error (Redis, Valkey before 8) changes nothing: the node picks its format itself
        this.phase = 'preamble'
        this.send(command('SYNC'))
        return
      case 'preamble':
        this.bulkHeader(text)
    }
  }

  private bulkHeader(text: string): void {
    if (text.startsWith('-')) {
      const message = text.slice(1)
      const hint = /NOPERM|no permissions/i.test(message) ? ['the ACL user needs SYNC and REPLCONF (e.g. +@admin or +sync +replconf)'] : []
      throw new SlotctlError(`${this.address} refused SYNC: ${message}`, {code: 'E_SYNC', suggestions: hint})
    }
    const eof = /^\$EOF:(.{40})$/.exec(text)
    if (eof) this.mark = Buffer.from(eof[1], 'latin1')
    else if (/^\$\d+$/.test(text)) this.remaining = this.withinLimit(Number(text.slice(1)), 'announced')
    else throw new SlotctlError(`${this.address} answered SYNC with '${text.slice(0, 60)}' instead of an RDB`, {code: 'E_SYNC'})
    this.phase = 'payload'
  }

  private payload(data: Buffer): {done: boolean; drained: boolean} {
    if (this.remaining !== undefined) {
      const take = data.subarray(0, this.remaining)
      this.remaining -= take.length
      const drained = this.emit(take)
      return {done: this.remaining === 0, drained}
    }
    // EOF-mark mode: the payload ends where the 40-byte mark appears; hold back a possible
    // partial mark until the next chunk
    const mark = this.mark as Buffer
    const joined = Buffer.concat([this.tail, data])
    const at = joined.indexOf(mark)
    if (at !== -1) return {done: true, drained: this.emit(joined.subarray(0, at))}
    const keep = Math.min(joined.length, EOF_MARK_LENGTH - 1)
    this.tail = Buffer.from(joined.subarray(joined.length - keep))
    return {done: false, drained: this.emit(joined.subarray(0, joined.length - keep))}
  }

  private withinLimit(bytes: number, how: string): number {
    if (bytes > this.maxBytes) throw new SlotctlError(`${this.address} ${how} an RDB of more than ${this.maxBytes} bytes, the limit for this node (--max-rdb-bytes)`, {code: 'E_RDB_TOO_BIG', suggestions: ['if the node really holds that much, raise --max-rdb-bytes']})
    return bytes
  }

  private emit(chunk: Buffer): boolean {
    if (chunk.length === 0) return true
    this.withinLimit(this.bytes + chunk.length, 'sent')
    if (this.head.length < 9) this.head = Buffer.concat([this.head, chunk.subarray(0, 9 - this.head.length)])
    this.hash.update(chunk)
    this.bytes += chunk.length
    this.trailer = Buffer.concat([this.trailer, chunk.subarray(Math.max(0, chunk.length - 9))]).subarray(-9)
    return this.write(chunk)
  }
}

function connect(address: NodeAddress, settings: ConnectionSettings): net.Socket {
  const tlsOptions = buildTlsOptions(settings.tls, address.tls)
  if (tlsOptions) return tls.connect({...tlsOptions, host: address.host, port: address.port})
  return net.connect({host: address.host, port: address.port})
}

function authArgs(address: NodeAddress, settings: ConnectionSettings): string[] | undefined {
  const password = address.password ?? settings.password
  if (!password) return undefined
  const username = address.username ?? settings.username
  return username ? [username, password] : [password]
}

export async function fetchRdb(address: NodeAddress, settings: ConnectionSettings, file: string, options: FetchOptions = {}): Promise<FetchedRdb> {
  const started = Date.now()
  const name = formatAddress(address)
  // a new file: never one planted at the name, never through a symlink
  const handle = await openNewPrivateFile(file)
  const out = handle.createWriteStream({autoClose: false})
  const socket = connect(address, settings)
  const receiver = new RdbReceiver((text) => socket.write(text), (chunk) => out.write(chunk), authArgs(address, settings), name, options.maxBytes)
  const timeoutMs = options.timeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
  const received = new Promise<void>((resolve, reject) => {
    const fail = (error: unknown) => {
      socket.destroy()
      reject(error instanceof SlotctlError ? error : new SlotctlError(`cannot take an RDB from ${name}: ${errorMessage(error)}`, {code: 'E_SYNC'}))
    }
    const abort = () => fail(new SlotctlError(`the RDB transfer from ${name} was interrupted`, {code: 'E_SYNC'}))
    if (options.signal?.aborted) return abort()
    options.signal?.addEventListener('abort', abort, {once: true})
    socket.setTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, () => fail(new Error(`no data for ${Math.round((options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS) / 1000)} s`)))
    const connectTimer = setTimeout(() => fail(new Error('connection timed out')), settings.connectTimeoutMs)
    const overallTimer = setTimeout(
      () => fail(new SlotctlError(`${name} did not send a whole RDB within ${timeoutMs < 10_000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`} (--sync-timeout)`, {code: 'E_TIMEOUT', suggestions: ['if the node is just slow, raise --sync-timeout']})),
      timeoutMs,
    )
    socket.once(settings.tls?.enabled || address.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer)
      receiver.start()
    })
    socket.on('close', () => {
      clearTimeout(connectTimer)
      clearTimeout(overallTimer)
    })
    socket.on('error', fail)
    out.on('error', fail)
    socket.on('close', () => fail(new Error('the node closed the connection before the whole file arrived')))
    socket.on('data', (chunk: Buffer) => {
      try {
        const {done, drained} = receiver.receive(chunk)
        if (done) {
          clearTimeout(overallTimer)
          socket.removeAllListeners('close')
          socket.destroy()
          options.signal?.removeEventListener('abort', abort)
          resolve()
        } else if (!drained) {
          socket.pause()
          out.once('drain', () => socket.resume())
        }
      } catch (error) {
        fail(error)
      }
    })
  })
  try {
    await received
    await new Promise<void>((resolve, reject) => {
      out.end((error?: Error | null) => (error ? reject(error) : resolve()))
    })
    await handle.sync()
  } finally {
    out.destroy()
    await handle.close()
  }
  const {bytes, head, sha256, trailer} = receiver.result()
  const format = rdbFormat(head)
  if (!format || trailer[0] !== 0xff) throw new SlotctlError(`${name} sent ${bytes} bytes that are not a whole RDB file`, {code: 'E_SYNC'})
  return {bytes, elapsedMs: Date.now() - started, format, sha256}
}
