/**
 * Benchmark: `slotctl check` and `slotctl info` against `redis-cli --cluster check` and
 * `redis-cli --cluster info`, on one 30-node loopback cluster (15 masters + 15 replicas)
 * holding a few demo keys, all in the same run. Each command runs RUNS times, interleaved
 * so that load from other processes hits every contender alike; the median wall time
 * counts. Also times `slotctl --version`, the fixed cost of starting Node and oclif, so
 * the numbers can be read as start-up + cluster work. Prints a table with the ratios and
 * appends a dated line to bench/RESULTS.md.
 *
 * Run with `npm run bench -- check-info` (builds first), or `node bench/check-info.bench.js`
 * after `npm run build`. BENCH_RUNS overrides the number of runs.
 */
import {existsSync} from 'node:fs'
import {appendFile, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const MASTERS = 15
const REPLICAS_PER_MASTER = 1
const DEMO_KEYS = 10_000
const RUNS = Number(process.env.BENCH_RUNS ?? 5)

const lib = async (name) => import(path.join(root, 'dist', 'lib', `${name}.js`))

function slotctlBin() {
  for (const verb of ['check', 'info']) {
    if (!existsSync(path.join(root, 'dist', 'commands', `${verb}.js`))) throw new Error(`dist/commands/${verb}.js is missing: run npm run build (npm run bench does)`)
  }
  return path.join(root, 'bin', 'run.js')
}

async function requireRedisCli() {
  const found = await execa('redis-cli', ['--version'], {reject: false})
  if (found.exitCode !== 0) throw new Error('redis-cli is not installed: apt-get install -y redis-tools')
}

/** Starts and forms the cluster with slotctl's own planner and applier, then loads demo keys. */
async function startCluster(dir, servers) {
  const {findFreePorts, startServer} = await lib('local/servers')
  const {NodePool, mapLimit} = await lib('cluster/connection')
  const {applyCreatePlan} = await lib('nodes/create')
  const {planCreate} = await lib('plan/create')
  const {loadDemoKeys} = await lib('local/sandbox')
  const ports = await findFreePorts(MASTERS * (REPLICAS_PER_MASTER + 1), '127.0.0.1')
  // pushed one by one, so the caller can stop whatever started even if a later one fails
  await mapLimit(ports, 8, async (port) => {
    servers.push(await startServer({dir: path.join(dir, `node-${port}`), host: '127.0.0.1', port}))
  })
  const pool = new NodePool()
  try {
    const plan = planCreate(servers.map((server) => ({address: server.address, host: server.host})), REPLICAS_PER_MASTER)
    await applyCreatePlan(pool, plan, {waitTimeoutMs: 120_000})
    await loadDemoKeys(pool, plan.masters[0].address, DEMO_KEYS)
    return plan.masters[0].address
  } finally {
    await pool.closeAll()
  }
}

async function timedRun(contender) {
  const started = process.hrtime.bigint()
  const result = await execa(contender.command, contender.args, {env: {NO_COLOR: '1'}, input: '', reject: false, timeout: 120_000})
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (result.exitCode !== 0) throw new Error(`${contender.label} exited ${result.exitCode}: ${String(result.stderr || result.stdout).slice(0, 400)}`)
  return ms
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

function contenders(seed) {
  const bin = slotctlBin()
  const slotctl = (verb, ...args) => ({args: [bin, verb, ...args], command: process.execPath, label: `slotctl ${verb}`.trim()})
  const redisCli = (verb) => ({args: ['--cluster', verb, seed], command: 'redis-cli', label: `redis-cli --cluster ${verb}`})
  return {
    check: [slotctl('check', seed), redisCli('check')],
    info: [slotctl('info', seed), redisCli('info')],
    startup: slotctl('--version'),
  }
}

/** Runs every contender once per round, RUNS rounds, after one untimed warm-up round. */
async function measure(all) {
  const times = new Map(all.map((contender) => [contender, []]))
  for (const contender of all) await timedRun(contender)
  for (let round = 0; round < RUNS; round++) {
    for (const contender of all) times.get(contender).push(await timedRun(contender))
  }
  return new Map([...times].map(([contender, values]) => [contender, median(values)]))
}

function report(verbs, medians, startupMs) {
  const ms = (value) => `${Math.round(value)} ms`
  const rows = Object.entries(verbs).map(([verb, [slotctl, redisCli]]) => {
    const ratio = medians.get(redisCli) / medians.get(slotctl)
    return {ratio, redisCli: medians.get(redisCli), slotctl: medians.get(slotctl), verb}
  })
  console.log(`30 nodes (${MASTERS} masters + ${MASTERS * REPLICAS_PER_MASTER} replicas), ${DEMO_KEYS} keys, median of ${RUNS} runs`)
  console.log(['verb'.padEnd(8), 'slotctl'.padStart(10), 'redis-cli'.padStart(10), 'redis-cli/slotctl'.padStart(18)].join('  '))
  for (const row of rows) {
    console.log([row.verb.padEnd(8), ms(row.slotctl).padStart(10), ms(row.redisCli).padStart(10), `${row.ratio.toFixed(2)}x`.padStart(18)].join('  '))
  }
  console.log(`slotctl start-up alone (slotctl --version): ${ms(startupMs)}; a ratio above 1 means slotctl is faster`)
  const summary = rows.map((row) => `${row.verb} slotctl ${ms(row.slotctl)} vs redis-cli ${ms(row.redisCli)} (${row.ratio.toFixed(2)}x)`).join(', ')
  return {rows, summary}
}

export default async function benchCheckInfo() {
  await requireRedisCli()
  const {stopServer} = await lib('local/servers')
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bench-check-info-'))
  const servers = []
  try {
    const seed = await startCluster(dir, servers)
    const {startup, ...verbs} = contenders(seed)
    const medians = await measure([startup, ...Object.values(verbs).flat()])
    const {rows, summary} = report(verbs, medians, medians.get(startup))
    const line = `- ${new Date().toISOString()} check-info 15+15 nodes, median of ${RUNS}: ${summary}; slotctl start-up ${Math.round(medians.get(startup))} ms`
    await appendFile(path.join(root, 'bench', 'RESULTS.md'), `${line}\n`)
    return {name: 'check-info', rows, startupMs: medians.get(startup)}
  } finally {
    await Promise.all(servers.map((server) => stopServer(server)))
    await rm(dir, {force: true, recursive: true})
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  benchCheckInfo().catch((error) => {
    console.error(`check-info bench failed: ${error.message}`)
    process.exitCode = 1
  })
}
