/**
 * Benchmark: import a standalone server holding BENCH_IMPORT_KEYS keys (default 200,000,
 * 64-byte values) into a 3-master cluster, keeping the source's keys. Contenders, each on a
 * fresh cluster and a fresh source with the same data:
 *   - slotctl import --copy (default flags), with its peak RSS;
 *   - redis-cli --cluster import --cluster-copy (one MIGRATE per key).
 * Each run is checked afterwards: the cluster must hold every key. Prints the ratio and
 * appends a dated line to bench/RESULTS.md.
 *
 * Run with `npm run bench -- import` (builds first), or `node bench/import.bench.js` after
 * `npm run build`. BENCH_ONLY=slotctl runs slotctl alone and records nothing (for tuning).
 */
import {existsSync} from 'node:fs'
import {appendFile, mkdtemp, rm} from 'node:fs/promises'
import {cpus, tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {Redis} from 'ioredis'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const KEYS = Number(process.env.BENCH_IMPORT_KEYS ?? 200_000)
const VALUE = 'v'.repeat(64)
const LOAD_BATCH = 10_000
const TIME_BIN = '/usr/bin/time'

const lib = async (name) => import(path.join(root, 'dist', 'lib', `${name}.js`))

function slotctlBin() {
  if (!existsSync(path.join(root, 'dist', 'commands', 'import.js'))) throw new Error('dist/commands/import.js is missing: run npm run build (npm run bench does)')
  return path.join(root, 'bin', 'run.js')
}

/** A formed 3-master cluster and a standalone source holding KEYS keys. */
async function freshSetup(dir, label) {
  const {findFreePorts, startServer} = await lib('local/servers')
  const {applyCreatePlan} = await lib('nodes/create')
  const {planCreate} = await lib('plan/create')
  const {NodePool} = await lib('cluster/connection')
  const ports = await findFreePorts(4, '127.0.0.1')
  const servers = await Promise.all(ports.slice(0, 3).map((port) => startServer({dir: path.join(dir, `${label}-${port}`), host: '127.0.0.1', nodeTimeoutMs: 15_000, port})))
  const source = await startServer({cluster: false, dir: path.join(dir, `${label}-source-${ports[3]}`), host: '127.0.0.1', port: ports[3]})
  const pool = new NodePool()
  try {
    await applyCreatePlan(pool, planCreate(servers.map((s) => ({address: s.address, host: s.host})), 0), {waitTimeoutMs: 60_000})
  } finally {
    await pool.closeAll()
  }
  const client = new Redis({host: source.host, port: source.port})
  try {
    for (let first = 0; first < KEYS; first += LOAD_BATCH) {
      const pipeline = client.pipeline()
      for (let i = first; i < Math.min(KEYS, first + LOAD_BATCH); i++) pipeline.set(`key:${i}`, VALUE)
      await pipeline.exec()
    }
  } finally {
    client.disconnect()
  }
  return {seed: servers[0].address, servers, source}
}

async function clusterKeys(setup) {
  let total = 0
  for (const server of setup.servers) {
    const client = new Redis({host: server.host, port: server.port})
    try {
      total += Number(await client.dbsize())
    } finally {
      client.disconnect()
    }
  }
  return total
}

async function stopSetup(setup) {
  if (!setup) return
  const {stopServer} = await lib('local/servers')
  await Promise.all([...setup.servers, setup.source].map((server) => stopServer(server)))
}

/** Runs a command; returns wall ms and, under /usr/bin/time, the peak RSS in MB. */
async function timed(command, args, {measureRss = false} = {}) {
  const useTime = measureRss && existsSync(TIME_BIN)
  const [bin, argv] = useTime ? [TIME_BIN, ['-f', 'PEAK_RSS_KB=%M', command, ...args]] : [command, args]
  const started = process.hrtime.bigint()
  // redis-cli prints a line per key: keep none of it
  const result = await execa(bin, argv, {env: {NO_COLOR: '1'}, input: '', reject: false, stdout: command === 'redis-cli' ? 'ignore' : 'pipe', timeout: 1_800_000})
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (result.exitCode !== 0) throw new Error(`${path.basename(command)} ${args.slice(0, 2).join(' ')} failed (exit ${result.exitCode}): ${String(result.stderr || result.stdout).slice(-800)}`)
  const rss = /PEAK_RSS_KB=(\d+)/.exec(String(result.stderr))
  return {ms, peakRssMb: rss ? Number(rss[1]) / 1024 : undefined, stdout: String(result.stdout ?? '')}
}

async function withSetup(dir, label, run) {
  let setup
  try {
    setup = await freshSetup(dir, label)
    const result = await run(setup)
    const after = await clusterKeys(setup)
    if (after !== KEYS) throw new Error(`${label}: ${after} keys in the cluster after the run, expected ${KEYS}`)
    return result
  } finally {
    await stopSetup(setup)
  }
}

function machine() {
  return `${cpus().length} cores (${cpus()[0]?.model?.trim() ?? 'unknown cpu'})`
}

export default async function benchImport() {
  const bin = slotctlBin()
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bench-import-'))
  try {
    const slotctl = await withSetup(dir, 'slotctl', (s) => timed(process.execPath, [bin, 'import', s.seed, '--from', s.source.address, '--copy', '--yes', '--json'], {measureRss: true}))
    const movingMs = JSON.parse(slotctl.stdout).elapsedMs
    console.log(`slotctl import --copy: ${(slotctl.ms / 1000).toFixed(2)} s (moving ${(movingMs / 1000).toFixed(2)} s), peak RSS ${slotctl.peakRssMb?.toFixed(0) ?? '?'} MB`)
    if (process.env.BENCH_ONLY === 'slotctl') return {slotctlMovingMs: movingMs, slotctlMs: slotctl.ms}
    const cli = await withSetup(dir, 'redis-cli', (s) => timed('redis-cli', ['--cluster', 'import', s.seed, '--cluster-from', s.source.address, '--cluster-copy']))
    console.log(`redis-cli --cluster import --cluster-copy: ${(cli.ms / 1000).toFixed(2)} s`)
    const ratio = cli.ms / slotctl.ms
    const version = (await execa('redis-server', ['--version'], {reject: false})).stdout.match(/v=(\S+)/)?.[1] ?? '?'
    const load = (await import('node:os')).loadavg()[0].toFixed(1)
    const line =
      `- ${new Date().toISOString()} import --copy, standalone → 3 masters, ${KEYS} keys × 64 B, ${machine()}, redis ${version}, load average ${load} at the end: ` +
      `slotctl ${(slotctl.ms / 1000).toFixed(2)} s wall, ${(movingMs / 1000).toFixed(2)} s moving (${Math.round((KEYS / slotctl.ms) * 1000)} keys/s over the wall time, peak RSS ${slotctl.peakRssMb?.toFixed(0) ?? '?'} MB); ` +
      `redis-cli --cluster import --cluster-copy ${(cli.ms / 1000).toFixed(2)} s (${Math.round((KEYS / cli.ms) * 1000)} keys/s) → ${ratio.toFixed(2)}x`
    console.log(line.slice(2))
    await appendFile(path.join(root, 'bench', 'RESULTS.md'), `${line}\n`)
    return {keys: KEYS, name: 'import', peakRssMb: slotctl.peakRssMb, redisCliMs: cli.ms, slotctlMovingMs: movingMs, slotctlMs: slotctl.ms, vsRedisCli: ratio}
  } finally {
    await rm(dir, {force: true, recursive: true})
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  benchImport().catch((error) => {
    console.error(`import bench failed: ${error.message}`)
    process.exitCode = 1
  })
}
