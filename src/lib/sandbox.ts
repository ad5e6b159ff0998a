/**
 * The sandbox: a real local cluster of detached redis-server processes for trying slotctl.
 * Its state file records exactly which processes it started, so `stop` ends only those.
 */
import {existsSync, readFileSync} from 'node:fs'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import path from 'node:path'

import {NodePool, mapLimit} from './connection.js'
import {applyCreatePlan} from './create.js'
import {SlotctlError, usageError} from './errors.js'
import {type RunningServer, findFreePorts, isAlive, isOurServer, requireRedisServer, startServer, stopServer} from './local-servers.js'
import {planCreate} from './plan/create.js'
import {keySlot} from './slots.js'
import {parseClusterNodes, slotOwners} from './topology.js'

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
  masters: number
  replicas: number
  keys: number
  nodes: SandboxNode[]
}

export interface SandboxOptions {
  dir: string
  host: string
  masters: number
  replicas: number
  basePort?: number
  keys: number
  waitTimeoutMs: number
}

export function defaultSandboxDir(env: NodeJS.ProcessEnv = process.env): string {
  const stateHome = env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state')
  return path.join(stateHome, 'slotctl', 'sandbox')
}

const stateFile = (dir: string) => path.join(dir, 'sandbox.json')

export function readSandboxState(dir: string): SandboxState | undefined {
  if (!existsSync(stateFile(dir))) return undefined
  try {
    return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as SandboxState
  } catch {
    throw new SlotctlError(`the sandbox state file ${stateFile(dir)} is unreadable`, {suggestions: ['remove it after stopping any redis-server processes it named']})
  }
}

export function nodeAlive(node: SandboxNode): boolean {
  return isAlive(node.pid) && isOurServer(node.pid, node.port)
}

async function choosePorts(options: SandboxOptions, count: number): Promise<number[]> {
  if (options.basePort === undefined) return findFreePorts(count, options.host)
  const ports = Array.from({length: count}, (_, i) => (options.basePort as number) + i)
  if (ports.at(-1)! + 10_000 >= 32_768) throw usageError(`--port ${options.basePort} is too high: the cluster bus ports (port+10000) must stay below 32768`)
  const free = await findFreePorts(count, options.host, options.basePort)
  if (free.join() !== ports.join()) throw usageError(`ports ${ports[0]}-${ports.at(-1)} (and their bus ports +10000) are not all free`, ['choose another --port, or leave it out to pick free ports'])
  return ports
}

/** Writes `count` demo keys spread over every slot, pipelined per owning master. */
export async function loadDemoKeys(pool: NodePool, seed: string, count: number): Promise<void> {
  if (count <= 0) return
  const nodes = parseClusterNodes(String(await (await pool.client(seed)).call('CLUSTER', 'NODES')))
  const owners = slotOwners(nodes)
  const addressOf = new Map(nodes.map((node) => [node.id, node.address]))
  const byMaster = new Map<string, number[]>()
  for (let i = 0; i < count; i++) {
    const owner = addressOf.get(owners.get(keySlot(`demo:${i}`)) as string) as string
    byMaster.set(owner, [...(byMaster.get(owner) ?? []), i])
  }
  await mapLimit([...byMaster.entries()], 8, async ([address, indexes]) => {
    const client = await pool.client(address)
    for (let start = 0; start < indexes.length; start += 5000) {
      const pipeline = client.pipeline()
      for (const i of indexes.slice(start, start + 5000)) pipeline.set(`demo:${i}`, `value-${i}`)
      await pipeline.exec()
    }
  })
}

export async function startSandbox(options: SandboxOptions): Promise<SandboxState> {
  requireRedisServer()
  const existing = readSandboxState(options.dir)
  if (existing?.nodes.some((node) => nodeAlive(node))) {
    throw new SlotctlError(`a sandbox is already running from ${options.dir} (seed ${existing.seed})`, {
      code: 'E_SANDBOX_RUNNING',
      suggestions: [`stop it first: slotctl sandbox stop${options.dir === defaultSandboxDir() ? '' : ` --dir ${options.dir}`}`],
    })
  }
  const count = options.masters * (options.replicas + 1)
  await mkdir(options.dir, {recursive: true})
  const ports = await choosePorts(options, count)
  const servers: RunningServer[] = []
  const pool = new NodePool()
  try {
    servers.push(...(await Promise.all(ports.map((port) => startServer({detached: true, dir: path.join(options.dir, `node-${port}`), host: options.host, port})))))
    const plan = planCreate(servers.map((server) => ({address: server.address, host: server.host})), options.replicas)
    await applyCreatePlan(pool, plan, {waitTimeoutMs: options.waitTimeoutMs})
    await loadDemoKeys(pool, servers[0].address, options.keys)
  } catch (error) {
    await Promise.all(servers.map((server) => stopServer(server)))
    throw error
  } finally {
    await pool.closeAll()
  }
  const state: SandboxState = {
    createdAt: new Date().toISOString(),
    dir: options.dir,
    keys: options.keys,
    masters: options.masters,
    nodes: servers.map((server) => ({address: server.address, dir: server.dir, host: server.host, pid: server.pid, port: server.port})),
    replicas: options.replicas,
    seed: servers[0].address,
  }
  await writeFile(stateFile(options.dir), `${JSON.stringify(state, null, 2)}\n`)
  return state
}

export async function stopSandbox(dir: string): Promise<{stopped: number; state?: SandboxState}> {
  const state = readSandboxState(dir)
  if (!state) return {stopped: 0}
  const running = state.nodes.filter((node) => nodeAlive(node))
  await Promise.all(running.map((node) => stopServer(node)))
  await Promise.all(state.nodes.map((node) => rm(node.dir, {force: true, recursive: true})))
  await rm(stateFile(dir), {force: true})
  return {state, stopped: running.length}
}
