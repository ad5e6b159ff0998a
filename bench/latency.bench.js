/**
 * Benchmark: slot migration with network latency. The rebalance of bench/rebalance.bench.js
 * (3 → 4 masters, 4096 slots move to the new, empty master), on clusters whose every node
 * sits behind bench/delay-proxy.js: each node announces its proxy's port for clients and for
 * the cluster bus, so slotctl's and redis-cli's commands, the MIGRATEs between nodes and the
 * gossip all pay the delay. Contenders, each on a fresh cluster with the same data, at 0 ms
 * and at DELAY ms added each way (0.5 by default, so 1 ms more per round trip):
 *   - slotctl rebalance --use-empty-masters (default flags);
 *   - redis-cli --cluster rebalance --cluster-use-empty-masters (default pipeline, 10);
 *   - redis-cli --cluster reshard of the same 4096 slots with --cluster-pipeline 1000.
 * The 0 ms runs go through the proxy too, so the comparison isolates the delay. The round
 * trip the proxy really gives (PING, median of 200) is measured and printed. Prints ratios
 * and appends a dated line to bench/RESULTS.md.
 *
 * Run with `npm run bench -- latency` (builds first), or `node bench/latency.bench.js` after
 * `npm run build`. BENCH_LATENCY_KEYS overrides the key count (default 200,000 × 64 B, about
 * 12 per slot); BENCH_DELAY_MS the added delay each way; BENCH_ONLY=slotctl runs slotctl alone
 * at that delay and records nothing (for tuning); BENCH_CPU_PROF=DIR writes a V8 CPU profile
 * of slotctl into DIR; BENCH_MAX_LOAD=N waits for the 1-minute load to drop below N first.
 */
import {spawn} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {createInterface} from 'node:readline'

import {Redis} from 'ioredis'

import {
  appendResult,
  formCluster,
  formatMs,
  isMain,
  lib,
  load1,
  machine,
  median,
  redisVersion,
  requireRedisCli,
  root,
  slotctlBin,
  startServers,
  stopServers,
  timed,
  totalKeys,
  loadKeysByOwner,
  waitForQuietMachine,
} from './common.js'

const KEYS = Number(process.env.BENCH_LATENCY_KEYS ?? 200_000)
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 0.5)
const VALUE = 'v'.repeat(64)
const LOAD_BATCH = 10_000
const MASTERS = 3
const BUS_OFFSET = 10_000

/** The proxy as a child process (an event loop of its own), driven through stdin. */
async function spawnProxy(routes) {
  const child = spawn(process.execPath, [path.join(root, 'bench', 'delay-proxy.js'), '--delay', '0', ...routes.map(({listen, target}) => `${listen}:${target}`)], {stdio: ['pipe', 'pipe', 'inherit']})
  const lines = createInterface({input: child.stdout})
  const next = () =>
    new Promise((resolve, reject) => {
      const onExit = (code) => reject(new Error(`delay proxy exited (${code})`))
      child.once('exit', onExit)
      lines.once('line', (line) => {
        child.off('exit', onExit)
        resolve(line)
      })
    })
  if ((await next()) !== 'ready') throw new Error('delay proxy did not start')
  return {
    async setDelay(ms) {
      child.stdin.write(`delay ${ms}\n`)
      await next()
    },
    async stop() {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/**
 * 3 formed masters plus one empty master that has joined, every node behind the proxy.
 * Returns the announced (proxied) addresses and the real ones.
 */
async function proxiedCluster(dir, label) {
  const {findFreePorts} = await lib('local/servers')
  const {NodePool} = await lib('cluster/connection')
  const {waitForAgreement, waitForClusterOk} = await lib('cluster/wait')
  const ports = await findFreePorts((MASTERS + 1) * 2, '127.0.0.1')
  const real = ports.slice(0, MASTERS + 1)
  const announced = ports.slice(MASTERS + 1)
  const cluster = {servers: []}
  try {
    const routes = real.flatMap((port, i) => [
      {listen: announced[i], target: port},
      {listen: announced[i] + BUS_OFFSET, target: port + BUS_OFFSET},
    ])
    cluster.proxy = await spawnProxy(routes)
    await startServers(path.join(dir, label), real.length, cluster.servers, {
      extraArgs: (i) => ['--cluster-announce-port', String(announced[i]), '--cluster-announce-bus-port', String(announced[i] + BUS_OFFSET)],
      ports: real,
    })
    const addresses = announced.map((port) => `127.0.0.1:${port}`)
    const formed = await formCluster(addresses.slice(0, MASTERS))
    const pool = new NodePool()
    try {
      const extra = addresses[MASTERS]
      await (await pool.client(extra)).call('CLUSTER', 'MEET', '127.0.0.1', announced[0])
      await waitForAgreement(pool, addresses, 60_000)
      await waitForClusterOk(pool, addresses, 60_000)
      const newId = String(await (await pool.client(extra)).call('CLUSTER', 'MYID'))
      return Object.assign(cluster, {addresses, masterIds: addresses.slice(0, MASTERS).map((address) => formed.ids.get(address)), newId, seed: formed.seed})
    } finally {
      await pool.closeAll()
    }
  } catch (error) {
    await stopCluster(cluster)
    throw error
  }
}

async function stopCluster(cluster) {
  await cluster.proxy?.stop()
  await stopServers(cluster.servers)
}

/** Median PING round trip (ms) to the first master, through the proxy and directly. */
async function roundTrips(cluster, count = 200) {
  const sample = async (port) => {
    const client = new Redis({host: '127.0.0.1', port})
    try {
      await client.ping()
      const times = []
      for (let i = 0; i < count; i++) {
        const started = process.hrtime.bigint()
        await client.ping()
        times.push(Number(process.hrtime.bigint() - started) / 1e6)
      }
      return median(times)
    } finally {
      client.disconnect()
    }
  }
  return {direct: await sample(cluster.servers[0].port), proxied: await sample(Number(cluster.seed.split(":")[1]))}
}

/** A fresh proxied cluster with the keys, the contender run at `delayMs`, the keys counted after. */
async function onFreshCluster(dir, label, delayMs, run) {
  let cluster
  try {
    cluster = await proxiedCluster(dir, label)
    await loadKeysByOwner(cluster.addresses.slice(0, MASTERS), KEYS, VALUE, LOAD_BATCH)
    await cluster.proxy.setDelay(delayMs)
    const rtt = await roundTrips(cluster)
    const result = await run(cluster)
    await cluster.proxy.setDelay(0)
    const after = await totalKeys(cluster.servers)
    if (after !== KEYS) throw new Error(`${label}: ${after} keys after the run, expected ${KEYS}`)
    return {...result, rtt}
  } finally {
    if (cluster) await stopCluster(cluster)
  }
}

const CONTENDERS = {
  'redis-cli rebalance': (cluster) => timed('redis-cli', ['--cluster', 'rebalance', cluster.seed, '--cluster-use-empty-masters', '--cluster-yes']),
  'redis-cli reshard pipeline 1000': (cluster) =>
    timed('redis-cli', ['--cluster', 'reshard', cluster.seed, '--cluster-from', cluster.masterIds.join(','), '--cluster-to', cluster.newId, '--cluster-slots', '4096', '--cluster-yes', '--cluster-pipeline', '1000']),
  slotctl: (cluster) => {
    const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
    return timed(process.execPath, [...profile, slotctlBin(), 'rebalance', cluster.seed, '--use-empty-masters', '--yes', '--json'], {measureRss: true})
  },
}

export default async function benchLatency() {
  await requireRedisCli()
  slotctlBin()
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bench-latency-'))
  try {
    if (process.env.BENCH_ONLY === 'slotctl') {
      const run = await onFreshCluster(dir, 'slotctl-only', DELAY_MS, CONTENDERS.slotctl)
      const moving = JSON.parse(run.stdout).elapsedMs
      console.log(`slotctl at ${DELAY_MS} ms each way (PING ${run.rtt.proxied.toFixed(2)} ms through the proxy): ${formatMs(run.ms)} wall, ${formatMs(moving)} moving`)
      return {slotctlMs: run.ms}
    }
    const loadBefore = await waitForQuietMachine()
    const results = {}
    for (const delayMs of [0, DELAY_MS]) {
      for (const [name, run] of Object.entries(CONTENDERS)) {
        const result = await onFreshCluster(dir, `${name.replaceAll(' ', '-')}-${delayMs}`, delayMs, run)
        results[`${name} ${delayMs}`] = result
        console.log(`${delayMs} ms each way (PING ${result.rtt.proxied.toFixed(2)} ms, direct ${result.rtt.direct.toFixed(2)} ms): ${name} ${formatMs(result.ms)}`)
      }
    }
    const rows = [0, DELAY_MS].map((delayMs) => {
      const ours = results[`slotctl ${delayMs}`]
      const rebalance = results[`redis-cli rebalance ${delayMs}`]
      const reshard = results[`redis-cli reshard pipeline 1000 ${delayMs}`]
      const rtt = median([ours.rtt.proxied, rebalance.rtt.proxied, reshard.rtt.proxied])
      return {delayMs, ours, rebalance, reshard, rtt, vsRebalance: rebalance.ms / ours.ms, vsReshard: reshard.ms / ours.ms}
    })
    console.log(['added delay'.padEnd(12), 'PING'.padStart(8), 'slotctl'.padStart(9), 'cli rebalance'.padStart(14), 'ratio'.padStart(7), 'cli reshard 1000'.padStart(17), 'ratio'.padStart(7)].join('  '))
    for (const row of rows) {
      console.log([`${row.delayMs} ms`.padEnd(12), `${row.rtt.toFixed(2)} ms`.padStart(8), formatMs(row.ours.ms).padStart(9), formatMs(row.rebalance.ms).padStart(14), `${row.vsRebalance.toFixed(1)}x`.padStart(7), formatMs(row.reshard.ms).padStart(17), `${row.vsReshard.toFixed(1)}x`.padStart(7)].join('  '))
    }
    const movedKeys = Math.round(KEYS / 4)
    const line =
      `latency, rebalance 3→4 masters through bench/delay-proxy.js, ${KEYS} keys × 64 B (${movedKeys} keys, 4096 slots move), ${machine()}, redis ${await redisVersion()}, load ${loadBefore.toFixed(2)} → ${load1().toFixed(2)}: ` +
      rows
        .map(
          (row) =>
            `+${row.delayMs} ms each way (PING ${row.rtt.toFixed(2)} ms): slotctl ${formatMs(row.ours.ms)} (peak RSS ${row.ours.peakRssMb?.toFixed(0) ?? '?'} MB), redis-cli rebalance ${formatMs(row.rebalance.ms)} → ${row.vsRebalance.toFixed(1)}x, ` +
            `redis-cli reshard --cluster-pipeline 1000 ${formatMs(row.reshard.ms)} → ${row.vsReshard.toFixed(1)}x`,
        )
        .join('; ') +
      ` (goal at +${DELAY_MS} ms: ≥ 10x)`
    console.log(line)
    await appendResult(line)
    return {name: 'latency', rows: rows.map(({delayMs, rtt, vsRebalance, vsReshard}) => ({delayMs, rtt, vsRebalance, vsReshard}))}
  } finally {
    await rm(dir, {force: true, recursive: true})
  }
}

if (isMain(import.meta.url)) {
  benchLatency().catch((error) => {
    console.error(`latency bench failed: ${error.message}`)
    process.exitCode = 1
  })
}
