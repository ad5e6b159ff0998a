/**
 * Benchmark: `slotctl create` of 3 masters + 3 replicas against
 * `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`, each on its own set of
 * six identical fresh redis-server processes, in one run. Prints the ratio and appends a dated
 * line to bench/RESULTS.md.
 *
 * What is compared is the time until the cluster is usable: slotctl returns only then (every
 * node agrees, every replica link is up, cluster_state:ok everywhere); redis-cli returns after
 * its join loop (1 s polls) and its check, while masters may still refuse writes for up to
 * min(cluster-node-timeout, 5 s) after getting their slots, so the bench polls until its
 * cluster is usable. Both figures are recorded.
 *
 * Run alone with `node bench/create.bench.js` (after `npm run build`), or through bench/run.js.
 */
import {existsSync} from 'node:fs'
import {appendFile, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {Redis} from 'ioredis'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const NODES = 6

async function startNodes(localServers, dir, label) {
  const ports = await localServers.findFreePorts(NODES, '127.0.0.1')
  return Promise.all(ports.map((port) => localServers.startServer({dir: path.join(dir, `${label}-${port}`), host: '127.0.0.1', nodeTimeoutMs: 5000, port})))
}

async function timed(command, args) {
  const started = process.hrtime.bigint()
  const result = await execa(command, args, {env: {NO_COLOR: '1'}, input: '', reject: false, timeout: 180_000})
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (result.exitCode !== 0) throw new Error(`${path.basename(command)} ${args[0]} failed (exit ${result.exitCode}): ${String(result.stderr || result.stdout).slice(0, 500)}`)
  return {ms, stdout: String(result.stdout)}
}

/**
 * Polls until every node reports cluster_state:ok and every replica's link is up: the moment
 * the cluster can take writes on every master and has its redundancy.
 */
async function waitUsable(addresses, timeoutMs = 60_000) {
  const clients = addresses.map((address) => {
    const [host, port] = address.split(':')
    const client = new Redis({host, lazyConnect: false, maxRetriesPerRequest: 0, port: Number(port), retryStrategy: () => null})
    client.on('error', () => {})
    return client
  })
  const deadline = Date.now() + timeoutMs
  try {
    for (;;) {
      const states = await Promise.all(
        clients.map(async (client) => {
          const state = /cluster_state:(\w+)/.exec(String(await client.call('CLUSTER', 'INFO')))?.[1]
          const replication = String(await client.info('replication'))
          const linkDown = /role:slave/.test(replication) && !/master_link_status:up/.test(replication)
          return state === 'ok' && !linkDown
        }),
      )
      if (states.every(Boolean)) return
      if (Date.now() > deadline) throw new Error('cluster not usable within 60 s')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  } finally {
    for (const client of clients) client.disconnect()
  }
}

function slotctlCommand() {
  if (process.env.SLOTCTL_BENCH_BIN) return process.env.SLOTCTL_BENCH_BIN
  // the built CLI when there is one (npm run bench builds first), else the sources through tsx
  const built = existsSync(path.join(root, 'dist', 'commands', 'create.js'))
  return path.join(root, 'bin', built ? 'run.js' : 'dev.js')
}

export default async function benchCreate() {
  const localServers = await import(path.join(root, 'dist', 'lib', 'local', 'servers.js'))
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bench-create-'))
  const servers = []
  try {
    const forSlotctl = await startNodes(localServers, dir, 'slotctl')
    servers.push(...forSlotctl)
    const forRedisCli = await startNodes(localServers, dir, 'redis-cli')
    servers.push(...forRedisCli)
    // A master refuses cluster_state:ok for its first 2 s (CLUSTER_WRITABLE_DELAY); real nodes
    // are older than that. Both sets get the same head start, so neither tool pays for it.
    await new Promise((resolve) => setTimeout(resolve, 2500))

    const slotctl = await timed(process.execPath, [slotctlCommand(), 'create', ...forSlotctl.map((s) => s.address), '--replicas', '1', '--yes', '--json'])
    const redisCliStarted = Date.now()
    const redisCli = await timed('redis-cli', ['--cluster', 'create', ...forRedisCli.map((s) => s.address), '--cluster-replicas', '1', '--cluster-yes'])
    // redis-cli returns before its masters leave the rejoin delay and before replica links are
    // up; what a provisioning script needs is the usable cluster, so measure that too.
    await waitUsable(forRedisCli.map((s) => s.address))
    const redisCliUsableMs = Date.now() - redisCliStarted
    const slotctlMs = slotctl.ms
    const redisCliMs = redisCli.ms
    // the in-process time leaves out Node/oclif start-up, which on a busy machine dominates
    const slotctlWorkMs = JSON.parse(slotctl.stdout).elapsedMs
    const ratio = redisCliUsableMs / slotctlMs
    const sec = (ms) => `${(ms / 1000).toFixed(2)} s`
    const line =
      `- ${new Date().toISOString()} create 3+3 until usable (cluster_state:ok everywhere, replica links up): slotctl ${sec(slotctlMs)} wall (${sec(slotctlWorkMs)} after start-up), ` +
      `redis-cli ${sec(redisCliUsableMs)} (its own command returned after ${sec(redisCliMs)}); ratio redis-cli/slotctl ${ratio.toFixed(2)} wall, ${(redisCliUsableMs / slotctlWorkMs).toFixed(2)} after start-up`
    console.log(line.slice(2))
    await appendFile(path.join(root, 'bench', 'RESULTS.md'), `${line}\n`)
    return {name: 'create', ratio, redisCliMs, redisCliUsableMs, slotctlMs, slotctlWorkMs}
  } finally {
    await Promise.all(servers.map((server) => localServers.stopServer(server)))
    await rm(dir, {force: true, recursive: true})
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  benchCreate().catch((error) => {
    console.error(`create bench failed: ${error.message}`)
    process.exitCode = 1
  })
}
