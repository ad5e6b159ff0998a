/**
 * Servers that speak just enough RESP to look like Redis and then misbehave: an import
 * source whose SCAN never ends or that lies about MIGRATE, and a cluster node whose SYNC
 * sends an endless, oversized, forged or never-starting RDB. Each listens on a free loopback
 * port; close() ends it and every connection.
 */
import net from 'node:net'

import {Redis} from 'ioredis'

export type Reply = Buffer | Error | Reply[] | number | string | null

/** RESP encoding: strings are bulk strings, `+TEXT` given as {simple}. */
export function encode(reply: Reply | {simple: string}): Buffer {
  if (reply === null) return Buffer.from('$-1\r\n')
  if (typeof reply === 'number') return Buffer.from(`:${reply}\r\n`)
  if (reply instanceof Error) return Buffer.from(`-${reply.message}\r\n`)
  if (Array.isArray(reply)) return Buffer.concat([Buffer.from(`*${reply.length}\r\n`), ...reply.map((item) => encode(item))])
  if (typeof reply === 'object' && !Buffer.isBuffer(reply)) return Buffer.from(`+${reply.simple}\r\n`)
  const bytes = Buffer.isBuffer(reply) ? reply : Buffer.from(reply)
  return Buffer.concat([Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n')])
}

export const OK = {simple: 'OK'}

/** Parses the commands a client sends (arrays of bulk strings); returns them and what is left. */
export function parseCommands(data: Buffer): {commands: string[][]; rest: Buffer} {
  const commands: string[][] = []
  let at = 0
  for (;;) {
    if (at >= data.length || data[at] !== 0x2a) break
    const headerEnd = data.indexOf('\r\n', at)
    if (headerEnd === -1) break
    const count = Number(data.subarray(at + 1, headerEnd).toString())
    let cursor = headerEnd + 2
    const args: string[] = []
    for (let i = 0; i < count; i++) {
      const lineEnd = data.indexOf('\r\n', cursor)
      if (lineEnd === -1) return {commands, rest: data.subarray(at)}
      const length = Number(data.subarray(cursor + 1, lineEnd).toString())
      if (lineEnd + 2 + length + 2 > data.length) return {commands, rest: data.subarray(at)}
      args.push(data.subarray(lineEnd + 2, lineEnd + 2 + length).toString('latin1'))
      cursor = lineEnd + 2 + length + 2
    }
    commands.push(args)
    at = cursor
  }
  return {commands, rest: data.subarray(at)}
}

export type Handler = (args: string[], socket: net.Socket) => Reply | undefined | {simple: string}

/** A loopback server answering each command with handler(args); undefined: the handler replied itself (or never will). */
export class FakeServer {
  readonly commands: string[][] = []
  private readonly sockets = new Set<net.Socket>()

  private constructor(private readonly server: net.Server) {}

  static async start(handler: Handler, onConnection?: (socket: net.Socket, first: Buffer) => boolean): Promise<FakeServer> {
    const server = net.createServer()
    const fake = new FakeServer(server)
    server.on('connection', (socket) => fake.serve(socket, handler, onConnection))
    await new Promise<void>((resolve) => {
      server.listen(0, '127.0.0.1', resolve)
    })
    return fake
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port
  }

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
    })
  }

  private serve(socket: net.Socket, handler: Handler, onConnection?: (socket: net.Socket, first: Buffer) => boolean): void {
    this.sockets.add(socket)
    socket.on('close', () => this.sockets.delete(socket))
    socket.on('error', () => {})
    let pending = Buffer.alloc(0)
    let decided = !onConnection
    const onData = (chunk: Buffer) => {
      if (!decided) {
        decided = true
        // the connection is someone else's (a proxy passes it on)
        if ((onConnection as NonNullable<typeof onConnection>)(socket, chunk)) {
          socket.off('data', onData)
          return
        }
      }
      pending = Buffer.concat([pending, chunk])
      const {commands, rest} = parseCommands(pending)
      pending = Buffer.from(rest)
      for (const args of commands) {
        this.commands.push(args)
        const reply = handler(args, socket)
        if (reply !== undefined && !socket.destroyed) socket.write(encode(reply))
      }
    }
    socket.on('data', onData)
  }
}

export interface FakeSourceOptions {
  /** keys INFO and DBSIZE report */
  keys: number
  /**
   * endless: every SCAN returns a new cursor, never 0; repeat: always cursor 1; slow-endless:
   * endless, 50 ms per reply, and a DBSIZE that grows with it (no key-count bound can end it);
   * once: one page of `keys` keys, then done.
   */
  scan: 'endless' | 'once' | 'repeat' | 'slow-endless'
  /** keys returned per SCAN page */
  keysPerPage?: number
}

/** A standalone "server" for import: INFO and DBSIZE claim keys; MIGRATE answers OK and sends nothing. */
export async function fakeImportSource(options: FakeSourceOptions): Promise<FakeServer> {
  let calls = 0
  const page = (cursor: number) => Array.from({length: options.keysPerPage ?? 0}, (_, i) => `fake:${cursor}:${i}`)
  const info = () => `# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n# Replication\r\nrole:master\r\n# Cluster\r\ncluster_enabled:0\r\n# Keyspace\r\ndb0:keys=${dbsize()},expires=0,avg_ttl=0\r\n`
  const dbsize = () => (options.scan === 'slow-endless' ? options.keys + calls * 1000 : options.keys)
  return FakeServer.start((args, socket) => {
    const name = args[0].toUpperCase()
    switch (name) {
      case 'INFO':
        return info()
      case 'DBSIZE':
        return dbsize()
      case 'SCAN': {
        calls++
        if (options.scan === 'once') return ['0', Array.from({length: options.keys}, (_, i) => `fake:${i}`)]
        if (options.scan === 'repeat') return ['1', page(1)]
        const reply = encode([String(calls), page(calls)])
        if (options.scan === 'endless') return [String(calls), page(calls)]
        setTimeout(() => socket.destroyed || socket.write(reply), 50)
        return undefined
      }
      case 'EXISTS':
        return args.length - 1
      case 'DUMP':
        return null
      default:
        return OK
    }
  })
}

export type SyncMode = 'empty-rdb' | 'endless' | 'forged' | 'huge-length' | 'keepalive'

/** What the fake node sends after SYNC. */
function serveSync(socket: net.Socket, mode: SyncMode): void {
  switch (mode) {
    case 'huge-length':
      socket.write('$99999999999999\r\nREDIS0011')
      return
    case 'keepalive': {
      const timer = setInterval(() => socket.write('\n'), 200)
      socket.on('close', () => clearInterval(timer))
      return
    }
    case 'forged': {
      // a header, garbage where the keys belong, the end opcode and a checksum of zeros (unchecked)
      const body = Buffer.concat([Buffer.from('REDIS0009'), Buffer.from([0xfe, 0x00, 0xfb, 0x05, 0x00, 0x63, 0x42, 0x07, 0x11]), Buffer.alloc(64, 0x41), Buffer.from([0xff]), Buffer.alloc(8)])
      socket.write(Buffer.concat([Buffer.from(`$${body.length}\r\n`), body]))
      return
    }
    case 'empty-rdb': {
      // a valid file with no keys (version 9 loads everywhere; a zero checksum is not checked)
      const body = Buffer.concat([Buffer.from('REDIS0009'), Buffer.from([0xff]), Buffer.alloc(8)])
      socket.write(Buffer.concat([Buffer.from(`$${body.length}\r\n`), body]))
      return
    }
    case 'endless': {
      socket.write(`$EOF:${'x'.repeat(40)}\r\nREDIS0011`)
      const chunk = Buffer.alloc(1024 * 1024, 0x42)
      const pump = () => {
        while (!socket.destroyed && socket.write(chunk));
      }
      socket.on('drain', pump)
      pump()
    }
  }
}

/**
 * A cluster node behind a proxy: every connection is passed to the real node, except one
 * that starts with REPLCONF (a SYNC, as backup takes it), which the proxy answers itself
 * with `mode`. The real node announces the proxy's port, so the cluster is reached only
 * through it.
 */
export async function fakeSyncNode(upstream: {host: string; port: number}, mode: SyncMode): Promise<FakeServer> {
  const proxy = await FakeServer.start(
    (args, socket) => {
      if (args[0].toUpperCase() !== 'SYNC') return OK
      serveSync(socket, mode)
      return undefined
    },
    (socket, first) => {
      if (/^\*\d+\r\n\$\d+\r\nREPLCONF\r\n/i.test(first.toString('latin1'))) return false
      const real = net.connect(upstream)
      real.on('error', () => socket.destroy())
      socket.on('error', () => real.destroy())
      socket.on('close', () => real.destroy())
      real.on('close', () => socket.destroy())
      real.write(first)
      socket.pipe(real)
      real.pipe(socket)
      return true
    },
  )
  const client = new Redis({host: upstream.host, lazyConnect: true, port: upstream.port})
  try {
    await client.call('CONFIG', 'SET', 'cluster-announce-port', String(proxy.port))
  } finally {
    client.disconnect()
  }
  return proxy
}
