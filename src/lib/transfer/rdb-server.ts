/**
 * A throw-away standalone server started on an RDB file, so the server itself reads the file
 * (every type and encoding of its version, checksum included) and slotctl can read the keys
 * back: to count and digest a backup, and to feed restore --into with the same machinery as
 * import. It runs in a temp dir on a link (or copy) of the file, saves nothing, and is stopped
 * with everything removed when done.
 */
import {rmSync} from 'node:fs'
import {copyFile, link, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import type {Redis} from 'ioredis'

import {NodePool, delay} from '../cluster/connection.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {type RunningServer, findFreePorts, startServer, stopServer} from '../local/servers.js'
import {parseInfo} from '../cluster/topology.js'
import {keyspaceOf} from './source.js'

export interface RdbServer {
  client: Redis
  server: RunningServer
  /** keys and keys with a TTL in db 0 once loaded */
  keys: number
  keysWithExpiry: number
}

export const RDB_FILE_NAME = 'dump.rdb'

/** Temp dirs in use: a second Ctrl-C exits at once, without running the finally blocks. */
const inUse = new Set<string>()
process.on('exit', () => {
  for (const dir of inUse) rmSync(dir, {force: true, recursive: true})
})

/** A hard link costs nothing; across file systems the file is copied. */
export async function placeRdb(rdb: string, dir: string, name = RDB_FILE_NAME): Promise<void> {
  const target = path.join(dir, name)
  try {
    await link(rdb, target)
  } catch {
    await copyFile(rdb, target)
  }
}

/** Waits until the server has loaded its dataset (it answers INFO while loading). */
export async function waitLoaded(client: Redis, address: string, timeoutMs = 600_000): Promise<Record<string, string>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const info = parseInfo(String(await client.info()))
    if (info.loading !== '1') return info
    if (Date.now() > deadline) throw new SlotctlError(`${address} is still loading its RDB after ${Math.round(timeoutMs / 1000)} s`, {code: 'E_TIMEOUT'})
    await delay(100)
  }
}

export async function withRdbServer<T>(rdb: string, binary: string | undefined, fn: (server: RdbServer) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-rdb-'))
  inUse.add(dir)
  const pool = new NodePool({commandTimeoutMs: 60_000, connectTimeoutMs: 3000})
  let server: RunningServer | undefined
  try {
    await placeRdb(rdb, dir)
    const [port] = await findFreePorts(1)
    try {
      server = await startServer({binary, cluster: false, dir, extraArgs: ['--dbfilename', RDB_FILE_NAME], port}, 60_000)
    } catch (error) {
      throw new SlotctlError(`a local server could not load ${path.basename(rdb)}: ${errorMessage(error)}`, {
        code: 'E_RDB_LOAD',
        suggestions: ['use a server binary at least as new as the one that wrote the file: --server-binary PATH (or SLOTCTL_SERVER_BINARY)'],
      })
    }
    const client = await pool.client(server.address)
    const info = await waitLoaded(client, server.address)
    const db0 = keyspaceOf(info).find((entry) => entry.db === 0)
    return await fn({client, keys: db0?.keys ?? 0, keysWithExpiry: db0?.expires ?? 0, server})
  } finally {
    await pool.closeAll()
    if (server) await stopServer(server)
    await rm(dir, {force: true, recursive: true})
    inUse.delete(dir)
  }
}
