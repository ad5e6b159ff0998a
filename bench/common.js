/**
 * Helpers the newer benchmarks share: starting and forming loopback clusters (optionally
 * with a custom slot layout or announced proxy ports), timing a command with its peak RSS,
 * medians, the machine's load, and appending a dated line to bench/RESULTS.md.
 * Not a benchmark itself (run.js only runs *.bench.js).
 */
import {existsSync} from 'node:fs'
import {appendFile} from 'node:fs/promises'
import {cpus, loadavg} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {Redis} from 'ioredis'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const SLOT_COUNT = 16_384
const TIME_BIN = '/usr/bin/time'

/** A module of the build: lib('cluster/connection') is dist/lib/cluster/connection.js. */
export async function lib(name) {
  const file = path.join(root, 'dist', 'lib', `${name}.js`)
  if (!existsSync(file)) throw new Error(`dist/lib/${name}.js is missing: run npm run build (npm run bench does)`)
  return import(file)
}

export function slotctlBin() {
  if (!existsSync(path.join(root, 'dist', 'slotctl.cjs'))) throw new Error('dist/slotctl.cjs (the bundled CLI) is missing: run npm run build (npm run bench does)')
  return path.join(root, 'bin', 'run.js')
}

export async function requireRedisCli() {
  const found = await execa('redis-cli', ['--version'], {reject: false})
  if (found.exitCode !== 0) throw new Error('redis-cli is not installed: apt-get install -y redis-tools')
}

export async function redisVersion() {
  return (await execa('redis-server', ['--version'], {reject: false})).stdout.match(/v=(\S+)/)?.[1] ?? '?'
}

export function machine() {
  return `${cpus().length} cores (${cpus()[0]?.model?.trim() ?? 'unknown cpu'})`
}

/** The 1-minute load average, as uptime shows it. */
export function load1() {
  return loadavg()[0]
}

/**
 * Waits (up to maxWaitMs) until the 1-minute load is below `below`: benchmarks on a shared
 * machine mean little while other test suites run. Returns the load it started with.
 */
export async function waitForQuietMachine(below = Number(process.env.BENCH_MAX_LOAD ?? 0), maxWaitMs = Number(process.env.BENCH_MAX_WAIT_S ?? 600) * 1000) {
  if (!(below > 0)) return load1()
  const deadline = Date.now() + maxWaitMs
  while (load1() >= below && Date.now() < deadline) {
    console.log(`waiting for the load (${load1().toFixed(2)}) to drop below ${below} ...`)
    await new Promise((resolve) => setTimeout(resolve, 15_000))
  }
  return load1()
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/**
 * Runs a command; returns its wall ms and, under /usr/bin/time, its peak RSS in MB. A non-zero
 * exit is an error unless it is one of `okExitCodes` (check exits 3 on problems, for instance).
 */
export async function timed(command, args, {cwd, env = {}, measureRss = false, okExitCodes = [0], timeoutMs = 900_000} = {}) {
  const useTime = measureRss && existsSync(TIME_BIN)
  const [bin, argv] = useTime ? [TIME_BIN, ['-f', 'PEAK_RSS_KB=%M', command, ...args]] : [command, args]
  const started = process.hrtime.bigint()
  const result = await execa(bin, argv, {cwd, env: {NO_COLOR: '1', ...env}, input: '', reject: false, timeout: timeoutMs})
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (!okExitCodes.includes(result.exitCode)) {
    throw new Error(`${path.basename(command)} ${args.slice(0, 3).join(' ')} failed (exit ${result.exitCode}): ${String(result.stderr || result.stdout).slice(-800)}`)
  }
  const rss = /PEAK_RSS_KB=(\d+)/.exec(String(result.stderr))
  return {exitCode: result.exitCode, ms, peakRssMb: rss ? Number(rss[1]) / 1024 : undefined, stderr: String(result.stderr), stdout: String(result.stdout)}
}

/**
 * Runs every contender `runs` times, interleaved (so load from other processes hits all of
 * them alike), after one untimed warm-up round. Returns contender → {ms, peakRssMb} medians.
 */
export async function measureInterleaved(contenders, runs) {
  const samples = new Map(contenders.map((contender) => [contender, {ms: [], rss: []}]))
  for (const contender of contenders) await contender.run()
  for (let round = 0; round < runs; round++) {
    for (const contender of contenders) {
      const sample = await contender.run()
      samples.get(contender).ms.push(sample.ms)
      if (sample.peakRssMb !== undefined) samples.get(contender).rss.push(sample.peakRssMb)
    }
  }
  return new Map([...samples].map(([contender, {ms, rss}]) => [contender, {ms: median(ms), peakRssMb: rss.length > 0 ? median(rss) : undefined, samples: ms}]))
}

export async function appendResult(line) {
  await appendFile(path.join(root, 'bench', 'RESULTS.md'), `- ${new Date().toISOString()} ${line}\n`)
}

/**
 * Starts `count` cluster-enabled servers on free loopback ports. `extraArgs(index, port)`
 * adds per-server arguments. Servers are pushed onto `into` as they start, so the caller
 * can stop whatever started even when a later one fails.
 */
export async function startServers(dir, count, into, {extraArgs = () => [], nodeTimeoutMs = 15_000, ports} = {}) {
  const {findFreePorts, startServer} = await lib('local/servers')
  const {mapLimit} = await lib('cluster/connection')
  const chosen = ports ?? (await findFreePorts(count, '127.0.0.1'))
  await mapLimit(chosen, 8, async (port, index) => {
    into.push(await startServer({dir: path.join(dir, `node-${port}`), extraArgs: extraArgs(index, port), host: '127.0.0.1', nodeTimeoutMs, port}))
  })
  return chosen
}

export async function stopServers(servers) {
  const {stopServer} = await lib('local/servers')
  await Promise.all(servers.map((server) => stopServer(server)))
}

/**
 * Forms a cluster with slotctl's own create planner and applier. `addresses` are what the
 * nodes announce (and what clients dial); `slotsOf(masterIndex, masterCount)` replaces the
 * even split with any layout, e.g. a fragmented one. Returns the seed, the plan and the ids.
 */
export async function formCluster(addresses, {replicasPerMaster = 0, slotsOf, waitTimeoutMs = 180_000} = {}) {
  const {NodePool} = await lib('cluster/connection')
  const {applyCreatePlan} = await lib('nodes/create')
  const {planCreate} = await lib('plan/create')
  const plan = planCreate(addresses.map((address) => ({address, host: address.slice(0, address.lastIndexOf(':'))})), replicasPerMaster)
  if (slotsOf) plan.masters = plan.masters.map((master, index) => ({...master, slots: slotsOf(index, plan.masters.length)}))
  const pool = new NodePool({commandTimeoutMs: 60_000, connectTimeoutMs: 5000})
  try {
    const ids = await applyCreatePlan(pool, plan, {waitTimeoutMs})
    return {ids, plan, seed: plan.masters[0].address}
  } finally {
    await pool.closeAll()
  }
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32), so layouts repeat across runs. */
export function seededRandom(seed) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d_2b_79_f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/**
 * A fully fragmented slot map: each slot goes to a master drawn at random with weights from
 * 0.5 to 1.5, so every master owns hundreds of mostly single-slot ranges and the masters are
 * unbalanced enough that a rebalance has work to plan. Returns masterIndex → ranges.
 */
export function fragmentedLayout(masterCount, seed = 15) {
  const random = seededRandom(seed)
  const weights = Array.from({length: masterCount}, () => 0.5 + random())
  const total = weights.reduce((sum, weight) => sum + weight, 0)
  const ranges = Array.from({length: masterCount}, () => [])
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    let pick = random() * total
    let owner = 0
    while (owner < masterCount - 1 && pick >= weights[owner]) pick -= weights[owner++]
    const own = ranges[owner]
    const last = own.at(-1)
    if (last && last[1] === slot - 1) last[1] = slot
    else own.push([slot, slot])
  }
  return ranges
}

export function formatMs(ms) {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`
}

export function isMain(moduleUrl) {
  return Boolean(process.argv[1]) && path.resolve(process.argv[1]) === fileURLToPath(moduleUrl)
}

/**
 * Loads `count` keys (key:0, key:1, ...) of `value`, each SET pipelined straight to the master
 * that owns its slot. `masters` are the addresses CLUSTER SLOTS reports (host:port).
 */
export async function loadKeysByOwner(masters, count, value, batch = 10_000) {
  const {keySlot} = await lib('core/slots')
  const clients = masters.map((address) => new Redis({host: address.split(':')[0], port: Number(address.split(':')[1])}))
  try {
    const ranges = await clients[0].call('CLUSTER', 'SLOTS')
    const ownerOf = new Int8Array(SLOT_COUNT)
    for (const [start, end, [, port]] of ranges) ownerOf.fill(masters.findIndex((address) => address.endsWith(`:${port}`)), start, end + 1)
    for (let first = 0; first < count; first += batch) {
      const pipelines = clients.map((client) => client.pipeline())
      for (let i = first; i < Math.min(count, first + batch); i++) {
        const key = `key:${i}`
        pipelines[ownerOf[keySlot(key)]].set(key, value)
      }
      await Promise.all(pipelines.map((p) => p.exec()))
    }
  } finally {
    for (const client of clients) client.disconnect()
  }
}

/** The keys every master holds, added up (servers: {host, port}). */
export async function totalKeys(servers) {
  let total = 0
  for (const server of servers) {
    const client = new Redis({host: server.host, port: server.port})
    try {
      if (String(await client.call('ROLE')).startsWith('master')) total += Number(await client.dbsize())
    } finally {
      client.disconnect()
    }
  }
  return total
}
