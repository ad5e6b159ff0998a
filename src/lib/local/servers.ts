/**
 * Starts and stops redis-server / valkey-server processes (cluster-enabled unless asked
 * otherwise) on this machine. Used by
 * `slotctl sandbox` (detached servers that outlive the CLI) and by the test harness.
 * Ports are found at run time, and a server counts as started only when it answers with
 * its own pid, so a stranger already listening on the port is never mistaken for ours.
 */
import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync, readlinkSync, realpathSync} from 'node:fs'
import {createServer} from 'node:net'
import path from 'node:path'

import {Redis} from 'ioredis'

import {delay} from '../cluster/connection.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {ensurePrivateDir, writeOutputFile} from '../files.js'
import {parseInfo} from '../cluster/topology.js'

export interface ServerSpec {
  host?: string
  port: number
  dir: string
  /** Detached servers survive the parent process (sandbox); attached ones die with it (tests). */
  detached?: boolean
  nodeTimeoutMs?: number
  extraArgs?: string[]
  /** For a server started with --requirepass: the pid probe must authenticate. */
  password?: string
  /**
   * The server requires `password` (requirepass and masterauth): written into its 0600
   * config file, never onto its command line, where ps shows it until the server renames
   * its process.
   */
  requirePassword?: boolean
  /** redis-server or valkey-server to run (default: the first found on PATH). */
  binary?: string
  /** false: a standalone server (cluster support disabled). */
  cluster?: boolean
}

export interface RunningServer {
  host: string
  port: number
  pid: number
  address: string
  dir: string
  /** the server binary it runs */
  binary: string
}

/** Cluster bus ports (port+10000) must stay below the kernel's ephemeral range. */
const BUS_OFFSET = 10_000
const EPHEMERAL_START = 32_768
const LOWEST_PORT = 12_000

/** Server binaries slotctl can start, in the order they are looked for on PATH. */
const SERVER_NAMES = ['redis-server', 'valkey-server']

/** The first redis-server or valkey-server on PATH (or in the usual places). */
export function findServerBinary(): string | undefined {
  for (const name of SERVER_NAMES) {
    for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
      const candidate = path.join(dir, name)
      if (dir && existsSync(candidate)) return candidate
    }
    for (const candidate of [`/usr/bin/${name}`, `/usr/local/bin/${name}`]) if (existsSync(candidate)) return candidate
  }
  return undefined
}

/** The given binary (which must exist), or the one found on PATH. */
export function requireServerBinary(explicit?: string): string {
  if (explicit) {
    if (!existsSync(explicit)) throw new SlotctlError(`server binary '${explicit}' does not exist`, {code: 'E_USAGE', exitCode: 2})
    return explicit
  }
  const found = findServerBinary()
  if (found) return found
  throw new SlotctlError('neither redis-server nor valkey-server is installed', {
    code: 'E_NO_REDIS_SERVER',
    suggestions: ['install one: sudo apt-get install -y redis-server (Debian/Ubuntu), brew install redis (macOS)'],
  })
}

export interface ServerBinary {
  path: string
  product: 'redis' | 'valkey'
  /** as the server calls itself in messages: redis-server, valkey-server */
  name: string
  version: string
}

/** Pure: "Valkey server v=9.1.2 sha=..." or "Redis server v=7.0.15 ..." (the --version line). */
export function parseServerVersion(text: string): Pick<ServerBinary, 'name' | 'product' | 'version'> | undefined {
  const match = /^(redis|valkey) server v=(\d+\.\d+(?:\.\d+)?)/im.exec(text.trim())
  if (!match) return undefined
  const product = match[1].toLowerCase() as ServerBinary['product']
  return {name: `${product}-server`, product, version: match[2]}
}

/** What a server binary is, from its --version; refuses a file that is not a Redis or Valkey server. */
export function describeServerBinary(binary: string): ServerBinary {
  let output: string
  try {
    output = execFileSync(binary, ['--version'], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000})
  } catch (error) {
    throw new SlotctlError(`cannot run '${binary} --version': ${errorMessage(error).split('\n')[0]}`, {code: 'E_USAGE', exitCode: 2})
  }
  const parsed = parseServerVersion(output)
  if (!parsed) throw new SlotctlError(`'${binary}' is not a redis-server or valkey-server (its --version says: ${output.trim().split('\n')[0].slice(0, 80)})`, {code: 'E_USAGE', exitCode: 2})
  return {path: binary, ...parsed}
}

function portIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({exclusive: true, host, port}, () => server.close(() => resolve(true)))
  })
}

/** `count` ports (spaced apart from each other) whose port and bus port are both free. */
export async function findFreePorts(count: number, host = '127.0.0.1', preferredBase?: number): Promise<number[]> {
  const highest = EPHEMERAL_START - BUS_OFFSET - 1
  const ports: number[] = []
  let candidate = preferredBase ?? LOWEST_PORT + Math.floor(Math.random() * (highest - LOWEST_PORT - count * 4))
  for (let attempts = 0; ports.length < count && attempts < 2000; attempts++, candidate++) {
    if (candidate > highest) candidate = LOWEST_PORT
    if (ports.includes(candidate)) continue
    if ((await portIsFree(candidate, host)) && (await portIsFree(candidate + BUS_OFFSET, host))) ports.push(candidate)
  }
  if (ports.length < count) throw new SlotctlError(`could not find ${count} free ports on ${host}`, {code: 'E_NO_PORTS'})
  return ports
}

export function configFile(spec: Pick<ServerSpec, 'dir' | 'port'>): string {
  return path.join(spec.dir, `redis-${spec.port}.conf`)
}

function clusterArgs(spec: ServerSpec, host: string): string[] {
  if (spec.cluster === false) return []
  return [
    // announce and source the same address, so several loopback addresses act as hosts
    '--cluster-announce-ip', host,
    '--cluster-enabled', 'yes',
    '--cluster-config-file', `nodes-${spec.port}.conf`,
    '--cluster-node-timeout', String(spec.nodeTimeoutMs ?? 5000),
  ]
}

/** A config file comes first so that CONFIG REWRITE (set-timeout) can persist settings. */
export function serverArgs(spec: ServerSpec): string[] {
  const host = spec.host ?? '127.0.0.1'
  return [
    configFile(spec),
    '--port', String(spec.port),
    '--bind', host,
    '--bind-source-addr', host,
    ...clusterArgs(spec, host),
    '--dir', spec.dir,
    '--logfile', `redis-${spec.port}.log`,
    '--pidfile', path.join(spec.dir, `redis-${spec.port}.pid`),
    '--daemonize', 'no',
    '--save', '',
    '--appendonly', 'no',
    // protected mode counts only 127.0.0.1 and ::1 as local, so replicas on 127.0.0.2/.3
    // would be refused; the servers still listen on loopback addresses only
    ...(host === '127.0.0.1' || host === '::1' ? [] : ['--protected-mode', 'no']),
    '--enable-debug-command', 'local',
    // replicas of a fresh local cluster need not wait 5 s for more replicas to batch a sync
    '--repl-diskless-sync-delay', '0',
    ...(spec.extraArgs ?? []),
  ]
}

async function answeringPid(host: string, port: number, password?: string): Promise<number | undefined> {
  const client = new Redis({connectTimeout: 300, enableOfflineQueue: false, host, lazyConnect: true, maxRetriesPerRequest: 0, password, port, retryStrategy: () => null})
  client.on('error', () => {})
  try {
    await client.connect()
    const info = parseInfo(String(await client.info('server')))
    return Number(info.process_id)
  } catch {
    return undefined
  } finally {
    client.disconnect()
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The process's command line (the server rewrites it to "<binary> <bind>:<port> [cluster]"), or undefined. */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    if (existsSync('/proc/self')) return undefined
  }
  try {
    // no /proc (macOS): ps shows the same rewritten title
    return execFileSync('ps', ['-o', 'command=', '-p', String(pid)], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']})
  } catch {
    return undefined
  }
}

/**
 * The process's working directory (a server chdir()s to its --dir), or undefined where it
 * cannot be read. A directory removed under the running server still names the process's
 * place: Linux shows it as "PATH (deleted)".
 */
function workingDirectory(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`).replace(/ \(deleted\)$/, '')
  } catch {
    return undefined
  }
}

function samePath(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b)
  } catch {
    return path.resolve(a) === path.resolve(b)
  }
}

export interface ServerIdentity {
  pid: number
  port: number
  /** the --dir it was started with: where it runs, checked where the system shows it (/proc) */
  dir?: string
  /** the binary it was started from, when it is not called redis-server or valkey-server */
  binary?: string
}

/** A redis-server/valkey-server (or the given binary) serving `port`, whoever started it. */
export function isServerOnPort(pid: number, port: number, binary?: string): boolean {
  const cmdline = commandLine(pid)
  if (cmdline === undefined) return false
  const names = binary ? [...SERVER_NAMES, path.basename(binary)] : SERVER_NAMES
  return names.some((name) => cmdline.includes(name)) && new RegExp(`:${port}(?!\\d)`).test(cmdline)
}

/** The server's process title names this listening address ("redis-server 127.0.0.1:7000 [cluster]"). */
export function titleNamesAddress(pid: number, host: string, port: number): boolean {
  const cmdline = commandLine(pid)
  return cmdline !== undefined && new RegExp(`(^|\\s)${host.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${port}(?!\\d)`).test(cmdline)
}

/**
 * True when pid is still the server we started: a server on that port (pids get reused) and,
 * given its dir, running in it, so a stranger's server whose pid and port were written into
 * a state file is never taken for ours.
 */
export function isOurServer(pid: number, port: number, identity: Omit<ServerIdentity, 'pid' | 'port'> = {}): boolean {
  if (!isAlive(pid) || !isServerOnPort(pid, port, identity.binary)) return false
  if (identity.dir === undefined) return true
  const cwd = workingDirectory(pid)
  return cwd === undefined ? !existsSync('/proc/self') : samePath(cwd, identity.dir)
}

function readLogTail(spec: ServerSpec): string {
  try {
    const lines = readFileSync(path.join(spec.dir, `redis-${spec.port}.log`), 'utf8').trim().split('\n')
    return lines.slice(-3).join(' | ')
  } catch {
    return ''
  }
}

/** The config file a server starts from; CONFIG REWRITE (set-timeout) adds to it later. */
function initialConfig(spec: ServerSpec): string {
  const lines = ['# written by slotctl; CONFIG REWRITE appends here']
  if (spec.requirePassword && spec.password) lines.push(`requirepass ${configString(spec.password)}`, `masterauth ${configString(spec.password)}`)
  return `${lines.join('\n')}\n`
}

/** A string in redis.conf syntax: double-quoted, with backslash escapes for quotes, backslashes and control bytes. */
export function configString(value: string): string {
  const bytes = Buffer.from(value, 'utf8')
  let out = ''
  for (const byte of bytes) {
    if (byte === 0x22 || byte === 0x5c) out += `\\${String.fromCharCode(byte)}`
    else if (byte < 0x20 || byte >= 0x7f) out += `\\x${byte.toString(16).padStart(2, '0')}`
    else out += String.fromCharCode(byte)
  }
  return `"${out}"`
}

/**
 * The server inherits umask 077: the files it writes itself (CONFIG REWRITE's config file,
 * which may hold the password, its log, its RDB) are then its owner's only. Node has no
 * per-spawn umask, so the process umask is narrowed just around the (synchronous) fork.
 */
/** `execa` is passed in, loaded by the caller: the bundled CLI would otherwise load it on every start. */
function spawnPrivately(execa: typeof import('execa').execa, binary: string, args: string[], spec: ServerSpec) {
  const previous = process.umask(0o077)
  try {
    return execa(binary, args, {cleanup: !spec.detached, detached: Boolean(spec.detached), reject: false, stdio: 'ignore'})
  } finally {
    process.umask(previous)
  }
}

export async function startServer(spec: ServerSpec, timeoutMs = 10_000): Promise<RunningServer> {
  const binary = requireServerBinary(spec.binary)
  const host = spec.host ?? '127.0.0.1'
  await ensurePrivateDir(spec.dir)
  await writeOutputFile(configFile(spec), initialConfig(spec), {overwrite: true})
  const {execa} = await import('execa')
  // a subprocess is a promise of its end: it must not be returned from an async function
  const child = spawnPrivately(execa, binary, serverArgs(spec), spec)
  const pid = child.pid
  if (pid === undefined) throw new SlotctlError(`could not start ${path.basename(binary)} on port ${spec.port}`, {code: 'E_SPAWN'})
  let exited = false
  void child.then(() => {
    exited = true
  })
  if (spec.detached) child.unref()

  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (exited) break
    if ((await answeringPid(host, spec.port, spec.password)) === pid) return {address: `${host}:${spec.port}`, binary, dir: spec.dir, host, pid, port: spec.port}
    await delay(25)
  }
  if (!exited) child.kill('SIGKILL')
  const tail = readLogTail(spec)
  throw new SlotctlError(`${path.basename(binary)} on ${host}:${spec.port} did not start${tail ? `: ${tail}` : ''}`, {code: 'E_SPAWN'})
}

/** Stops one server we started: SIGTERM, then SIGKILL if it lingers. Only ever our pid. */
export async function stopServer(server: ServerIdentity, graceMs = 3000): Promise<void> {
  if (!isOurServer(server.pid, server.port, server)) return
  try {
    process.kill(server.pid, 'SIGTERM')
  } catch (error) {
    throw new SlotctlError(`could not stop the server with pid ${server.pid}: ${errorMessage(error)}`)
  }
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline && isAlive(server.pid)) {
    await delay(25)
  }
  if (isAlive(server.pid)) process.kill(server.pid, 'SIGKILL')
}

export function killServer(server: Pick<RunningServer, 'pid'>): void {
  if (isAlive(server.pid)) process.kill(server.pid, 'SIGKILL')
}
