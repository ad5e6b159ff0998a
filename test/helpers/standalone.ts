/**
 * A standalone (cluster-disabled) test server, e.g. the source of an import: started on a
 * free port in a temp dir with the lane's server binary, stopped with its files removed.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {Redis} from 'ioredis'

import {type RunningServer, findFreePorts, killServer, startServer, stopServer} from '../../src/lib/local/servers.js'
import {testServerBinary} from './cluster-harness.js'

const running = new Set<RunningServer>()

export class StandaloneServer {
  private readonly clients: Redis[] = []

  private constructor(readonly server: RunningServer, private readonly dir: string, readonly password?: string) {}

  static async start(options: {password?: string} = {}): Promise<StandaloneServer> {
    const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-standalone-'))
    const [port] = await findFreePorts(1)
    const extraArgs = options.password ? ['--requirepass', options.password] : []
    const server = await startServer({binary: testServerBinary, cluster: false, dir, extraArgs, password: options.password, port})
    running.add(server)
    return new StandaloneServer(server, dir, options.password)
  }

  get address(): string {
    return this.server.address
  }

  /** A plain client (db 0 unless given); closed by stop(). */
  client(db = 0): Redis {
    const client = new Redis({db, host: this.server.host, maxRetriesPerRequest: 1, password: this.password, port: this.server.port, retryStrategy: () => null})
    client.on('error', () => {})
    this.clients.push(client)
    return client
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.disconnect()
    await stopServer(this.server)
    running.delete(this.server)
    await rm(this.dir, {force: true, recursive: true})
  }
}

process.on('exit', () => {
  for (const server of running) killServer(server)
})
