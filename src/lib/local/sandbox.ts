/**
 * The sandbox: a real local cluster of detached redis-server or valkey-server processes for
 * trying slotctl. Its state file records exactly which processes it started, so `stop` ends
 * only those. The state is written as soon as the servers run (before the cluster forms), so
 * that a failed or interrupted start can still be cleaned up with `sandbox stop`.
 *
 * The state file is not trusted: a directory is removed only when it is DIR/node-PORT and
 * holds the marker file slotctl wrote when it created it, and a process is signalled only
 * when it is a server on the recorded port running in that directory. An entry naming
 * anything else makes start and stop refuse before they touch anything.
 */
import {existsSync, readFileSync} from 'node:fs'
import {chmod, rename, rm, writeFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import path from 'node:path'

import {DEFAULT_CONNECTION, NODE_PARALLELISM, NodePool, mapLimit, settleLimit} from '../cluster/connection.js'
import {applyCreatePlan} from '../nodes/create.js'
import {SlotctlError, usageError} from '../core/errors.js'
import {PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, ensurePrivateDir, writeOutputFile} from '../files.js'
import {type RunningServer, type ServerBinary, describeServerBinary, findFreePorts, isAlive, isOurServer, isServerOnPort, requireServerBinary, startServer, stopServer, titleNamesAddress} from './servers.js'
import {planCreate} from '../plan/create.js'
import {keySlot} from '../core/slots.js'
import {parseClusterNodes, parseInfo, slotOwners} from '../cluster/topology.js'

export interface SandboxNode {
  address: string
  host: string
  port: number
  pid: number
  dir: string
}

export interface SandboxState {
  dir: string
  seed: string
  createdAt: string
  /** False while the cluster is still forming (or when forming it was interrupted). */
  ready: boolean
  masters: number
  replicas: number
  keys: number
  /** The servers require a password (never stored here: pass it again with -a or REDISCLI_AUTH). */
  passwordProtected?: boolean
  nodes: SandboxNode[]
  /** the server binary the nodes run (absent in state files of older versions: redis-server) */
  server?: ServerBinary
}

export interface SandboxOptions {
  dir: string
  host: string
  masters: number
  replicas: number
  basePort?: number
  keys: number
  waitTimeoutMs: number
  /** requirepass and masterauth on every server. */
  password?: string
  /** the server binary to run (see sandboxServer) */
  server: ServerBinary
  /** Called once the ports are chosen and checked, just before the servers start. */
  onStarting?: (count: number) => void
}

export type SandboxRole = 'down' | 'master' | 'replica' | 'unknown'

export interface SandboxNodeStatus extends SandboxNode {
  alive: boolean
  role: SandboxRole
}

/** Cluster bus ports (port+10000) must stay below the kernel's ephemeral port range. */
const HIGHEST_BUS_PORT = 32_767
const BUS_OFFSET = 10_000
const KEYS_PER_PIPELINE = 5000

/**
 * The default --dir as help and the manifest show it: literal, so that the manifest (built
 * once, on some machine) and the CLI snapshot test do not carry the builder's HOME.
 */
export const SANDBOX_DIR_HELP = '$XDG_STATE_HOME/slotctl/sandbox'

/** The flag's text on the default: where it resolves when XDG_STATE_HOME is unset. */
export const SANDBOX_DIR_NOTE = '(XDG_STATE_HOME unset: ~/.local/state)'

/** Resolved at run time, from this process's environment. */
export function defaultSandboxDir(env: NodeJS.ProcessEnv = process.env): string {
  const stateHome = env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state')
  return path.join(stateHome, 'slotctl', 'sandbox')
}

/** Absolute, because the servers get it as their --dir and stop must find it from anywhere. */
export function resolveSandboxDir(dir: string | undefined): string {
  return path.resolve(dir ?? defaultSandboxDir())
}

const stateFile = (dir: string) => path.join(dir, 'sandbox.json')

/** Written into every node directory slotctl creates: only such a directory is ever removed. */
const NODE_MARKER = '.slotctl-sandbox-node'

const nodeDirOf = (dir: string, port: number) => path.join(dir, `node-${port}`)

/** The flag to repeat in hints, empty for the default location. */
export function dirFlag(dir: string): string {
  return dir === resolveSandboxDir(undefined) ? '' : ` --dir ${dir}`
}

function stateError(dir: string, problem: string): SlotctlError {
  return new SlotctlError(`refusing to use the sandbox state file ${stateFile(dir)}: ${problem}`, {
    code: 'E_SANDBOX_STATE',
    suggestions: ['slotctl only touches the node directories and processes it started itself; stop any servers it names yourself, then remove the file'],
  })
}

const isPort = (value: unknown): value is number => Number.isInteger(value) && (value as number) > 0 && (value as number) < 65_536
const isPid = (value: unknown): value is number => Number.isInteger(value) && (value as number) > 1

/** Written to a temp file and renamed, so a crash never leaves half a state file. */
export async function writeSandboxState(state: SandboxState): Promise<void> {
  const temporary = `${stateFile(state.dir)}.tmp`
  await writeFile(temporary, `${JSON.stringify(state, null, 2)}\n`, {mode: PRIVATE_FILE_MODE})
  await rename(temporary, stateFile(state.dir))
}

/** The state's shape, so that a hand-edited or truncated file is refused and never crashes. */
function checkShape(dir: string, state: unknown): SandboxState {
  const value = state as Partial<SandboxState> | null
  if (!value || typeof value !== 'object' || !Array.isArray(value.nodes)) throw stateError(dir, 'it has no list of nodes')
  for (const [index, node] of value.nodes.entries()) {
    const entry = node as Partial<SandboxNode> | null
    if (!entry || !isPort(entry.port) || !isPid(entry.pid) || typeof entry.dir !== 'string' || typeof entry.address !== 'string') throw stateError(dir, `node ${index + 1} is malformed (it needs address, port, pid and dir)`)
  }
  return value as SandboxState
}

export function readSandboxState(dir: string): SandboxState | undefined {
  if (!existsSync(stateFile(dir))) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(stateFile(dir), 'utf8'))
  } catch {
    throw new SlotctlError(`the sandbox state file ${stateFile(dir)} is unreadable`, {
      code: 'E_SANDBOX_STATE',
      suggestions: ['remove it after stopping any server processes it named'],
    })
  }
  // the file may have been moved: what it says its directory is does not count
  return {...checkShape(dir, parsed), dir}
}

function hasNodeMarker(nodeDir: string, port: number): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(nodeDir, NODE_MARKER), 'utf8')) as {port?: unknown}).port === port
  } catch {
    return false
  }
}

/** DIR/node-PORT with slotctl's marker: the only kind of directory sandbox stop removes (restore --start uses it too). */
export async function createNodeDir(dir: string, port: number): Promise<string> {
  const nodeDir = nodeDirOf(dir, port)
  await ensurePrivateDir(nodeDir)
  // ours alone (a node directory left by an older version may be 0755): its config may hold the password
  await chmod(nodeDir, PRIVATE_DIR_MODE)
  await writeOutputFile(path.join(nodeDir, NODE_MARKER), `${JSON.stringify({createdBy: 'slotctl sandbox', port})}\n`, {overwrite: true})
  return nodeDir
}

/** Our process: a server on the recorded port, running in the node's own directory. */
export function nodeAlive(node: SandboxNode, server?: ServerBinary): boolean {
  return isAlive(node.pid) && isOurServer(node.pid, node.port, {binary: server?.path, dir: node.dir})
}

/**
 * Checks every entry before anything is touched: its directory must be the one slotctl
 * creates for that port, with the marker (or already gone), and a live pid must not be
 * another server on that port. A pid that now belongs to an unrelated process (the machine
 * restarted) is simply left alone.
 */
function verifyNodes(state: SandboxState): void {
  for (const node of state.nodes) {
    const expected = nodeDirOf(state.dir, node.port)
    if (path.resolve(node.dir) !== expected) throw stateError(state.dir, `it names ${node.dir} for port ${node.port}, which is not a directory slotctl creates (${expected})`)
    if (existsSync(node.dir) && !hasNodeMarker(node.dir, node.port)) throw stateError(state.dir, `${node.dir} lacks the marker slotctl writes into the node directories it creates`)
    if (!nodeAlive(node, state.server) && isServerOnPort(node.pid, node.port, state.server?.path)) {
      throw stateError(state.dir, `pid ${node.pid} is a server on port ${node.port} that does not run in ${node.dir}: this sandbox did not start it`)
    }
  }
}

async function choosePorts(options: SandboxOptions, count: number): Promise<number[]> {
  if (options.basePort === undefined) return findFreePorts(count, options.host)
  const ports = Array.from({length: count}, (_, i) => (options.basePort as number) + i)
  const last = ports.at(-1) as number
  if (options.basePort < 1024) throw usageError(`--port ${options.basePort} is too low: use 1024 or above`)
  if (last + BUS_OFFSET > HIGHEST_BUS_PORT) {
    throw usageError(`--port ${options.basePort} is too high for ${count} nodes: the cluster bus ports (port+10000) must stay below 32768`, [
      `use --port ${HIGHEST_BUS_PORT - BUS_OFFSET - count + 1} or lower`,
    ])
  }
  const free = await findFreePorts(count, options.host, options.basePort)
  if (free.join() !== ports.join()) {
    const taken = ports.filter((port) => !free.includes(port))
    throw usageError(`port(s) ${taken.join(', ')} (or their bus ports +10000) are in use`, ['choose another --port, or leave it out to pick free ports'])
  }
  return ports
}

/** Groups key indexes by the address of the master that owns their slot. */
function demoKeysByOwner(count: number, ownerOfSlot: (slot: number) => string): Map<string, number[]> {
  const byOwner = new Map<string, number[]>()
  for (let i = 0; i < count; i++) {
    const owner = ownerOfSlot(keySlot(`demo:${i}`))
    let indexes = byOwner.get(owner)
    if (!indexes) byOwner.set(owner, (indexes = []))
    indexes.push(i)
  }
  return byOwner
}

/** Writes `count` demo keys (demo:0 ... demo:N-1), spread over the slots, pipelined per owning master. */
export async function loadDemoKeys(pool: NodePool, seed: string, count: number): Promise<void> {
  if (count <= 0) return
  const nodes = parseClusterNodes(String(await (await pool.client(seed)).call('CLUSTER', 'NODES')))
  const owners = slotOwners(nodes)
  const addressOf = new Map(nodes.map((node) => [node.id, node.address]))
  const byOwner = demoKeysByOwner(count, (slot) => addressOf.get(owners.get(slot) as string) as string)
  await mapLimit([...byOwner.entries()], NODE_PARALLELISM, async ([address, indexes]) => {
    const client = await pool.client(address)
    for (let start = 0; start < indexes.length; start += KEYS_PER_PIPELINE) {
      const pipeline = client.pipeline()
      for (const i of indexes.slice(start, start + KEYS_PER_PIPELINE)) pipeline.set(`demo:${i}`, `value-${i}`)
      const replies = (await pipeline.exec()) ?? []
      const failed = replies.find(([error]) => error)
      if (failed) throw new SlotctlError(`${address} refused a demo key: ${failed[0]?.message}`, {code: 'E_REDIS'})
    }
  })
}

/** Starts every server, keeping those that did start even when another one failed. */
async function startServers(options: SandboxOptions, ports: number[]): Promise<{servers: RunningServer[]; error?: Error}> {
  const auth = options.password ? {password: options.password, requirePassword: true} : {}
  const binary = options.server.path
  const results = await settleLimit(ports, NODE_PARALLELISM, async (port) => startServer({binary, detached: true, dir: await createNodeDir(options.dir, port), host: options.host, port, ...auth}))
  const servers = results.flatMap((result) => (result.value ? [result.value] : []))
  return {error: results.find((result) => result.error)?.error, servers}
}

function toSandboxNode(server: RunningServer): SandboxNode {
  return {address: server.address, dir: server.dir, host: server.host, pid: server.pid, port: server.port}
}

/** Only what verifyNodes accepted: DIR/node-PORT with our marker, and the state file itself. */
async function removeSandboxFiles(state: SandboxState): Promise<void> {
  const ours = state.nodes.filter((node) => path.resolve(node.dir) === nodeDirOf(state.dir, node.port) && hasNodeMarker(node.dir, node.port))
  await Promise.all(ours.map((node) => rm(node.dir, {force: true, recursive: true})))
  await rm(stateFile(state.dir), {force: true})
}

/** The server binary a sandbox runs: the given one, else redis-server or valkey-server from PATH. */
export function sandboxServer(explicit?: string): ServerBinary {
  return describeServerBinary(path.resolve(requireServerBinary(explicit)))
}

/** The recorded state of a sandbox dir, checked entry by entry (see verifyNodes); undefined when there is none. */
export function verifiedSandboxState(dir: string): SandboxState | undefined {
  const state = readSandboxState(dir)
  if (state) verifyNodes(state)
  return state
}

export async function startSandbox(options: SandboxOptions): Promise<SandboxState> {
  const {server} = options
  const existing = verifiedSandboxState(options.dir)
  if (existing?.nodes.some((node) => nodeAlive(node, existing.server))) {
    throw new SlotctlError(`a sandbox is already running from ${options.dir} (seed ${existing.seed})`, {
      code: 'E_SANDBOX_RUNNING',
      suggestions: [`stop it first: slotctl sandbox stop${dirFlag(options.dir)}`],
    })
  }
  // the ports are checked before anything is touched or announced
  const ports = await choosePorts(options, options.masters * (options.replicas + 1))
  // a dead sandbox leaves node dirs behind whose old cluster configs would break a new create
  if (existing) await removeSandboxFiles(existing)
  await ensurePrivateDir(options.dir)
  options.onStarting?.(ports.length)
  const {error: startError, servers} = await startServers(options, ports)
  const state: SandboxState = {
    createdAt: new Date().toISOString(),
    dir: options.dir,
    keys: options.keys,
    masters: options.masters,
    nodes: servers.map((running) => toSandboxNode(running)),
    ...(options.password ? {passwordProtected: true} : {}),
    ready: false,
    replicas: options.replicas,
    seed: servers[0]?.address ?? '',
    server,
  }
  const pool = new NodePool({...DEFAULT_CONNECTION, password: options.password})
  try {
    if (startError) throw startError
    await writeSandboxState(state)
    const plan = planCreate(servers.map((running) => ({address: running.address, host: running.host})), options.replicas)
    await applyCreatePlan(pool, plan, {waitTimeoutMs: options.waitTimeoutMs})
    await loadDemoKeys(pool, state.seed, options.keys)
  } catch (error) {
    await stopSandboxNodes(state)
    throw error
  } finally {
    await pool.closeAll()
  }
  state.ready = true
  await writeSandboxState(state)
  return state
}

async function stopSandboxNodes(state: SandboxState): Promise<number> {
  const running = state.nodes.filter((node) => nodeAlive(node, state.server))
  await Promise.all(running.map((node) => stopServer({...node, binary: state.server?.path})))
  await removeSandboxFiles(state)
  return running.length
}

/** Stops exactly the servers the state names and slotctl started; refuses a state naming anything else. */
export async function stopSandbox(dir: string): Promise<{stopped: number; state?: SandboxState}> {
  const state = verifiedSandboxState(dir)
  if (!state) return {stopped: 0}
  return {state, stopped: await stopSandboxNodes(state)}
}

async function roleOf(pool: NodePool, node: SandboxNode): Promise<SandboxRole> {
  const info = parseInfo(String(await (await pool.client(node.address)).info('replication')))
  if (info.role === 'master') return 'master'
  if (info.role === 'slave') return 'replica'
  return 'unknown'
}

const isLoopback = (host: string) => /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1'

/**
 * Where the password may go: only to a loopback address that the recorded process itself
 * listens on (its title names it) and that is our server (port, directory). The state file
 * is not trusted, so an address edited into it receives nothing.
 */
export function trustedNodeAddress(node: SandboxNode, server?: ServerBinary): string | undefined {
  if (typeof node.host !== 'string' || !isLoopback(node.host)) return undefined
  const address = node.host.includes(':') ? `[${node.host}]:${node.port}` : `${node.host}:${node.port}`
  if (node.address !== address) return undefined
  return nodeAlive(node, server) && titleNamesAddress(node.pid, node.host, node.port) ? address : undefined
}

/**
 * Each recorded node: is our process alive, and which role does it report now. A node whose
 * address cannot be trusted (trustedNodeAddress) is not asked: its role is 'unknown'.
 */
export async function sandboxStatus(state: SandboxState, password?: string): Promise<SandboxNodeStatus[]> {
  const pool = new NodePool({commandTimeoutMs: 2000, connectTimeoutMs: 1000, password})
  const ask = async (node: SandboxNode): Promise<SandboxRole> => {
    if (!nodeAlive(node, state.server)) return 'down'
    const address = trustedNodeAddress(node, state.server)
    return address ? roleOf(pool, {...node, address}) : 'unknown'
  }
  try {
    const roles = await settleLimit(state.nodes, NODE_PARALLELISM, ask)
    return state.nodes.map((node, index) => {
      const role = roles[index].value ?? 'unknown'
      return {...node, alive: role !== 'down', role}
    })
  } finally {
    await pool.closeAll()
  }
}
