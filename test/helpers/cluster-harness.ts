/**
 * Real-server test harness: starts cluster-enabled redis-server (or valkey-server, from
 * SLOTCTL_TEST_SERVER) processes in a temp dir on free ports, proves each answers with its
 * own pid, forms a cluster with slotctl's own create planner, and stops exactly the
 * processes it started.
 */
import {readFileSync} from 'node:fs'
import {cp, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {Cluster, Redis} from 'ioredis'

import {DEFAULT_CONNECTION, NodePool} from '../../src/lib/cluster/connection.js'
import {applyCreatePlan} from '../../src/lib/nodes/create.js'
import {type RunningServer, type ServerBinary, type ServerSpec, describeServerBinary, findFreePorts, isAlive, killServer, requireServerBinary, startServer, stopServer} from '../../src/lib/local/servers.js'
import {versionAtLeast} from '../../src/lib/cluster/server-info.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {planCreate} from '../../src/lib/plan/create.js'

export interface HarnessOptions {
  masters?: number
  replicas?: number
  /** Loopback addresses acting as separate hosts (127.0.0.1, 127.0.0.2, ...); nodes are dealt round-robin. */
  hosts?: string[]
  /** Start the servers but leave them unjoined (for create tests). */
  form?: boolean
  /** Explicit node count when not forming. */
  nodes?: number
  nodeTimeoutMs?: number
  extraArgs?: string[]
  /** requirepass (and masterauth) on every server; the harness's own clients use it too. */
  password?: string
}

const started = new Set<RunningServer>()

/**
 * The server binary every test starts: SLOTCTL_TEST_SERVER (a redis-server or valkey-server
 * path, set by .ci/run per server lane), else the first one found on PATH.
 */
export const testServerBinary: string | undefined = process.env.SLOTCTL_TEST_SERVER || undefined

let underTest: ServerBinary | undefined

/** The server every test starts (name, version), read from its --version: starts nothing. */
export function serverUnderTest(): ServerBinary {
  underTest ??= describeServerBinary(requireServerBinary(testServerBinary))
  return underTest
}

export function isValkeyAtLeast(major: number, minor = 0): boolean {
  const server = serverUnderTest()
  return server.product === 'valkey' && versionAtLeast(server.version, major, minor)
}

/**
 * For a `before` hook of a suite that needs Valkey ≥ major.minor: skips the whole suite
 * otherwise, and says why in every test title (mocha prints no reason for a skip).
 */
export function skipUnlessValkey(context: Mocha.Context, major: number, minor = 0): void {
  if (isValkeyAtLeast(major, minor)) return
  const server = serverUnderTest()
  const reason = ` [skipped: needs Valkey >= ${major}.${minor}; the server under test is ${server.product} ${server.version}]`
  for (const test of context.test?.parent?.tests ?? []) test.title += reason
  context.skip()
}

/**
 * For a `before` hook of a suite that needs commands some servers lack (HPEXPIRE: Redis >=
 * 7.4, Valkey >= 9; VADD: Redis 8): asks the running server's COMMAND INFO, and skips the
 * whole suite, saying why in every test title, when one is missing.
 */
export async function skipUnlessCommands(context: Mocha.Context, client: Redis, commands: readonly string[], what: string): Promise<void> {
  const infos = (await client.call('COMMAND', 'INFO', ...commands)) as unknown[]
  const missing = commands.filter((_, i) => !infos[i])
  if (missing.length === 0) return
  const server = serverUnderTest()
  const reason = ` [skipped: ${what} needs ${missing.join(', ')}; the server under test is ${server.product} ${server.version}]`
  for (const test of context.test?.parent?.tests ?? []) test.title += reason
  context.skip()
}

/**
 * Starts servers on ports found free. Test files may run in parallel workers (mocha
 * --parallel), so a port can be taken between the check and the bind: a batch that fails to
 * start is stopped and tried again on other ports.
 */
async function startOnFreePorts(count: number, host: string, specOf: (port: number) => ServerSpec): Promise<RunningServer[]> {
  for (let attempt = 1; ; attempt++) {
    const ports = await findFreePorts(count, host)
    const results = await Promise.allSettled(ports.map((port) => startServer(specOf(port))))
    const batch = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
    for (const server of batch) started.add(server)
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')
    if (!failure) return batch
    await Promise.all(batch.map(async (server) => {
      await stopServer(server)
      started.delete(server)
    }))
    if (attempt >= 3) throw failure.reason
  }
}

export class TestCluster {
  private readonly clients: Array<Cluster | Redis> = []
  private readonly killed = new Set<string>()
  private startOptions: HarnessOptions = {}

  private constructor(readonly dir: string, readonly servers: RunningServer[], public ids: Map<string, string>, readonly password?: string) {}

  static async start(options: HarnessOptions = {}): Promise<TestCluster> {
    const masters = options.masters ?? 3
    const replicas = options.replicas ?? 1
    const count = options.nodes ?? masters * (replicas + 1)
    const hosts = options.hosts ?? ['127.0.0.1']
    const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-test-'))
    const auth = options.password ? ['--requirepass', options.password, '--masterauth', options.password] : []
    const servers: RunningServer[] = []
    try {
      for (const [hostIndex, host] of hosts.entries()) {
        const here = Array.from({length: count}, (_, i) => i).filter((i) => i % hosts.length === hostIndex)
        const batch = await startOnFreePorts(here.length, host, (port) => specFor(dir, host, port, [...auth, ...(options.extraArgs ?? [])], options))
        servers.push(...batch)
      }
      // Keep the caller's node order stable: dealt round-robin across hosts.
      servers.sort((a, b) => servers.indexOf(a) - servers.indexOf(b))
      const cluster = new TestCluster(dir, interleave(servers, hosts), new Map(), options.password)
      cluster.startOptions = options
      if (options.form !== false) await cluster.form(replicas)
      return cluster
    } catch (error) {
      await Promise.all(servers.map((server) => stopServer(server)))
      await rm(dir, {force: true, recursive: true})
      throw error
    }
  }

  get addresses(): string[] {
    return this.servers.map((server) => server.address)
  }

  /** The first node this harness has not killed. */
  get seed(): string {
    return this.addresses.find((address) => !this.killed.has(address)) ?? this.addresses[0]
  }

  async form(replicas: number): Promise<void> {
    const pool = new NodePool({...DEFAULT_CONNECTION, password: this.password})
    try {
      const plan = planCreate(this.servers.map((server) => ({address: server.address, host: server.host})), replicas)
      this.ids = await applyCreatePlan(pool, plan, {waitTimeoutMs: 30_000})
    } finally {
      await pool.closeAll()
    }
  }

  /** A plain client to one node; closed by stop(). */
  client(address: string = this.seed): Redis {
    const [host, port] = address.split(':')
    const client = new Redis({host, lazyConnect: false, maxRetriesPerRequest: 1, password: this.password, port: Number(port), retryStrategy: () => null})
    client.on('error', () => {})
    this.clients.push(client)
    return client
  }

  /** A cluster client for key traffic; closed by stop(). */
  clusterClient(): Cluster {
    const [host, port] = this.seed.split(':')
    const cluster = new Cluster([{host, port: Number(port)}], {redisOptions: {maxRetriesPerRequest: 3, password: this.password}})
    cluster.on('error', () => {})
    this.clients.push(cluster)
    return cluster
  }

  server(address: string): RunningServer {
    const found = this.servers.find((server) => server.address === address)
    if (!found) throw new Error(`no server at ${address}`)
    return found
  }

  /** A server that died without being killed by a test is a finding: its log's end says why. */
  private reportCrashes(): void {
    for (const server of this.servers) {
      if (isAlive(server.pid) || this.killed.has(server.address)) continue
      let tail = '(no log)'
      try {
        tail = readFileSync(path.join(server.dir, `redis-${server.port}.log`), 'utf8').trim().split("\n").slice(-120).join('\n')
      } catch {
        // the log is gone with its directory
      }
      process.stderr.write(`\n[harness] ${server.address} (pid ${server.pid}) died on its own; the end of its log:\n${tail}\n`)
    }
  }

  kill(address: string): void {
    killServer(this.server(address))
    this.killed.add(address)
  }

  /** Whether the node at `address` calls itself master within `ms` (polled every 100 ms). */
  async becomesMaster(address: string, ms: number): Promise<boolean> {
    const client = this.client(address)
    const isMaster = async () => parseClusterNodes(String(await client.call('CLUSTER', 'NODES'))).find((node) => node.myself)?.role === 'master'
    for (const end = Date.now() + ms; Date.now() < end && !(await isMaster()); ) await new Promise((resolve) => setTimeout(resolve, 100))
    return isMaster()
  }

  /**
   * Until the replica at `address` of a killed master calls itself master. Tests that wait so
   * are about what slotctl does once the replica serves the slots, not about the server's
   * election: Valkey 8.0.1's own election sometimes did not finish within 30 s in CI (a killed
   * source, two live voters), so the replica then takes over as an operator would (CLUSTER
   * FAILOVER TAKEOVER, which needs no votes). Throws if it is still not master after that.
   */
  async waitForPromotion(address: string): Promise<void> {
    if (await this.becomesMaster(address, 30_000)) return
    await this.client(address).call('CLUSTER', 'FAILOVER', 'TAKEOVER')
    if (!(await this.becomesMaster(address, 30_000))) throw new Error(`${address} did not become master, by election or CLUSTER FAILOVER TAKEOVER`)
  }

  /**
   * Starts a killed server again on its port, directory and config: it keeps its node id
   * (nodes.conf) and, if the cluster was started with persistence, its data. `extraArgs` are
   * for this node alone (e.g. a command renamed on one node only).
   */
  async restart(address: string, extraArgs: readonly string[] = []): Promise<void> {
    const old = this.server(address)
    const options = this.startOptions
    const auth = this.password ? ['--requirepass', this.password, '--masterauth', this.password] : []
    const fresh = await startServer({...specFor(path.dirname(old.dir), old.host, old.port, [...auth, ...(options.extraArgs ?? []), ...extraArgs], options), dir: old.dir})
    started.delete(old)
    started.add(fresh)
    this.servers[this.servers.indexOf(old)] = fresh
    this.killed.delete(address)
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.disconnect()
    this.clients.length = 0
    this.reportCrashes()
    await Promise.all(
      this.servers.map(async (server) => {
        await stopServer(server)
        started.delete(server)
      }),
    )
    // SLOTCTL_TEST_KEEP_LOGS=DIR keeps every server's log for a look after the run
    if (process.env.SLOTCTL_TEST_KEEP_LOGS) await cp(this.dir, path.join(process.env.SLOTCTL_TEST_KEEP_LOGS, path.basename(this.dir)), {filter: (file) => !/\.(rdb|aof)$/.test(file), recursive: true}).catch(() => undefined)
    await rm(this.dir, {force: true, recursive: true})
  }
}

function specFor(dir: string, host: string, port: number, extraArgs: string[], options: HarnessOptions): ServerSpec {
  return {binary: testServerBinary, dir: path.join(dir, `${host}-${port}`), extraArgs, host, nodeTimeoutMs: options.nodeTimeoutMs ?? 2000, password: options.password, port}
}

function interleave(servers: RunningServer[], hosts: string[]): RunningServer[] {
  const byHost = hosts.map((host) => servers.filter((server) => server.host === host))
  const order: RunningServer[] = []
  for (let i = 0; order.length < servers.length; i++) for (const group of byHost) if (group[i]) order.push(group[i])
  return order
}

/** Last-resort cleanup if a test file forgot stop(): never leave our servers running. */
process.on('exit', () => {
  for (const server of started) killServer(server)
})
