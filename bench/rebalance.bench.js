/**
 * Benchmark: rebalance 3 → 4 masters with 1,000,000 keys of 64-byte values (250k keys and
 * 4096 slots move to the new, empty master). Contenders, each on a fresh cluster with the
 * same data:
 *   - slotctl rebalance --use-empty-masters (default flags), with its peak RSS;
 *   - redis-cli --cluster rebalance --cluster-use-empty-masters (default pipeline, 10);
 *   - redis-cli --cluster reshard of the same 4096 slots with --cluster-pipeline 1000;
 *   - the raw ceiling: MIGRATE of 250k keys of one slot in batches of 10000, no tool at all.
 * Prints ratios and appends a dated line to bench/RESULTS.md, with the CPU seconds the servers
 * and each tool used (on two cores a run that keeps both busy cannot beat half their sum).
 *
 * slotctl runs twice: with its default, durable moves (a key leaves its source once the
 * target's replicas acknowledged it), and with --durability none (plain MIGRATE).
 * BENCH_REPLICAS=1 gives every master one replica (3+3 → 4+4); without it there are none, so
 * the durable default has nothing to wait for.
 *
 * Run with `npm run bench -- rebalance` (builds first), or `node bench/rebalance.bench.js`
 * after `npm run build`. BENCH_REBALANCE_KEYS overrides the key count for a quick try;
 * BENCH_ONLY=slotctl runs slotctl alone and records nothing (for tuning); BENCH_PROFILE=1
 * also prints the CPU seconds slotctl and each redis-server used (user+system), and each
 * server's costliest commands over the run (INFO commandstats); BENCH_CPU_PROF=DIR writes
 * a V8 CPU profile of slotctl into DIR; BENCH_SLOTCTL_ARGS adds flags to the first slotctl run
 * (with BENCH_ONLY=slotctl, for trying one).
 */
import {existsSync, readFileSync} from 'node:fs'
import {appendFile, mkdtemp, rm} from 'node:fs/promises'
import {cpus, loadavg, tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {Redis} from 'ioredis'

import {loadKeysByOwner, totalKeys} from './common.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const KEYS = Number(process.env.BENCH_REBALANCE_KEYS ?? 1_000_000)
const VALUE = 'v'.repeat(64)
const LOAD_BATCH = 10_000
const RAW_BATCH = 10_000
const TIME_BIN = '/usr/bin/time'
const REPLICAS = process.env.BENCH_REPLICAS === '1' ? 1 : 0

const lib = async (name) => import(path.join(root, 'dist', 'lib', `${name}.js`))

function slotctlBin() {
  const built = path.join(root, 'dist', 'commands', 'rebalance.js')
  if (!existsSync(built)) throw new Error('dist/commands/rebalance.js is missing: run npm run build (npm run bench does)')
  return path.join(root, 'bin', 'run.js')
}

/**
 * 3 formed masters plus one empty master that has joined and sees cluster_state:ok; with
 * BENCH_REPLICAS=1 each of the four has a replica whose link is up.
 */
async function freshCluster(dir, label) {
  const {findFreePorts, startServer} = await lib('local/servers')
  const {applyCreatePlan} = await lib('nodes/create')
  const {waitForAgreement, waitForClusterOk, waitForReplication} = await lib('cluster/wait')
  const {planCreate} = await lib('plan/create')
  const {NodePool} = await lib('cluster/connection')
  const ports = await findFreePorts(4 * (1 + REPLICAS), '127.0.0.1')
  const servers = await Promise.all(ports.map((port) => startServer({dir: path.join(dir, `${label}-${port}`), host: '127.0.0.1', nodeTimeoutMs: 15_000, port})))
  const pool = new NodePool()
  try {
    const formed = servers.slice(0, 3 * (1 + REPLICAS))
    const ids = await applyCreatePlan(pool, planCreate(formed.map((s) => ({address: s.address, host: s.host})), REPLICAS), {waitTimeoutMs: 60_000})
    const [extra, extraReplica] = servers.slice(formed.length)
    for (const joining of [extra, extraReplica].filter(Boolean)) await (await pool.client(joining.address)).call('CLUSTER', 'MEET', '127.0.0.1', formed[0].port)
    const all = servers.map((s) => s.address)
    await waitForAgreement(pool, all, 60_000)
    const newId = String(await (await pool.client(extra.address)).call('CLUSTER', 'MYID'))
    if (extraReplica) {
      await (await pool.client(extraReplica.address)).call('CLUSTER', 'REPLICATE', newId)
      await waitForAgreement(pool, all, 60_000)
      await waitForReplication(pool, [{address: extraReplica.address, masterId: newId}], all, 60_000)
    }
    await waitForClusterOk(pool, all, 60_000)
    const owners = slotOwners(String(await (await pool.client(formed[0].address)).call('CLUSTER', 'NODES')))
    return {masterAddresses: owners.map((node) => node.address), masterIds: owners.map((node) => node.id), newAddress: extra.address, newId, seed: owners[0].address, servers}
  } finally {
    await pool.closeAll()
  }
}

async function stopCluster(cluster) {
  if (!cluster) return
  const {stopServer} = await lib('local/servers')
  await Promise.all(cluster.servers.map((server) => stopServer(server)))
}

/** Runs a command; returns wall ms and, under /usr/bin/time, the peak RSS in MB. */
async function timed(command, args, {measureRss = false} = {}) {
  const useTime = measureRss && existsSync(TIME_BIN)
  const [bin, argv] = useTime ? [TIME_BIN, ['-f', 'PEAK_RSS_KB=%M CPU_USER=%U CPU_SYS=%S', command, ...args]] : [command, args]
  const started = process.hrtime.bigint()
  const result = await execa(bin, argv, {env: {NO_COLOR: '1'}, input: '', reject: false, timeout: 900_000})
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (result.exitCode !== 0) throw new Error(`${path.basename(command)} ${args.slice(0, 2).join(' ')} failed (exit ${result.exitCode}): ${String(result.stderr || result.stdout).slice(-800)}`)
  const rss = /PEAK_RSS_KB=(\d+)/.exec(String(result.stderr))
  return {ms, peakRssMb: rss ? Number(rss[1]) / 1024 : undefined, stderr: String(result.stderr), stdout: String(result.stdout)}
}

async function withCluster(dir, label, run) {
  let cluster
  try {
    cluster = await freshCluster(dir, label)
    await loadKeysByOwner(cluster.masterAddresses, KEYS, VALUE, LOAD_BATCH)
    const before = serversCpu(cluster)
    const result = await run(cluster)
    // what the servers spent on the run (their idle cron included): on two cores, with the
    // tool's own CPU, the floor under a run that keeps both cores busy
    const serversCpuS = serversCpu(cluster) - before
    const after = await totalKeys(cluster.servers)
    if (after !== KEYS) throw new Error(`${label}: ${after} keys after the run, expected ${KEYS}`)
    return {...result, serversCpuS}
  } finally {
    await stopCluster(cluster)
  }
}

/** The masters that own slots, from CLUSTER NODES (with replicas, planCreate deals the roles). */
function slotOwners(text) {
  return text
    .trim()
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => fields[2].includes('master') && fields.length > 8)
    .map((fields) => ({address: fields[1].split('@')[0], id: fields[0]}))
}

/** MIGRATE of KEYS/4 keys of one slot, batches of RAW_BATCH: what the wire and servers allow. */
async function rawCeiling(dir) {
  let cluster
  const clients = []
  try {
    cluster = await freshCluster(dir, 'raw')
    const {keySlot} = await lib('core/slots')
    const count = Math.round(KEYS / 4)
    const tag = '{raw}'
    const slot = keySlot(tag + ':0')
    const connect = (s) => {
      const client = new Redis({host: s.host, port: s.port})
      clients.push(client)
      return client
    }
    const sourceServer = await ownerServer(cluster, slot)
    const source = connect(sourceServer)
    const target = connect(cluster.servers.find((server) => server.address === cluster.newAddress))
    for (let first = 0; first < count; first += LOAD_BATCH) {
      const pipeline = source.pipeline()
      for (let i = first; i < Math.min(count, first + LOAD_BATCH); i++) pipeline.set(`${tag}:${i}`, VALUE)
      await pipeline.exec()
    }
    const sourceId = String(await source.call('CLUSTER', 'MYID'))
    await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId)
    await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', cluster.newId)
    const started = process.hrtime.bigint()
    let moved = 0
    for (;;) {
      const keys = await source.call('CLUSTER', 'GETKEYSINSLOT', slot, RAW_BATCH)
      if (keys.length === 0) break
      await source.call('MIGRATE', '127.0.0.1', Number(cluster.newAddress.split(':')[1]), '', 0, 60_000, 'KEYS', ...keys)
      moved += keys.length
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    if (moved !== count) throw new Error(`raw ceiling moved ${moved} keys, expected ${count}`)
    return {keys: moved, keysPerSec: (moved / ms) * 1000, ms}
  } finally {
    for (const client of clients) client.disconnect()
    await stopCluster(cluster)
  }
}

async function ownerServer(cluster, slot) {
  const client = new Redis({host: cluster.servers[0].host, port: cluster.servers[0].port})
  try {
    const ranges = await client.call('CLUSTER', 'SLOTS')
    const [, , [, port]] = ranges.find(([start, end]) => slot >= start && slot <= end)
    return cluster.servers.find((s) => s.port === port)
  } finally {
    client.disconnect()
  }
}

function machine() {
  return `${cpus().length} cores (${cpus()[0]?.model?.trim() ?? 'unknown cpu'})`
}

/** BENCH_PROFILE: resets each server's command statistics, or prints each one's costliest commands (calls, server µs). */
async function commandStats(cluster, what) {
  for (const server of cluster.servers) {
    const client = new Redis({host: server.host, lazyConnect: true, port: server.port})
    try {
      if (what === 'RESET') {
        await client.call('CONFIG', 'RESETSTAT')
        continue
      }
      const stats = String(await client.call('INFO', 'commandstats'))
        .split('\n')
        .map((line) => /^cmdstat_(\S+):calls=(\d+),usec=(\d+)/.exec(line))
        .filter(Boolean)
        .map(([, name, calls, usec]) => ({calls: Number(calls), name, usec: Number(usec)}))
        .sort((a, b) => b.usec - a.usec)
        .slice(0, 6)
      console.log(`  ${server.port}: ${stats.map((stat) => `${stat.name} ${stat.calls}× ${(stat.usec / 1000).toFixed(0)} ms`).join(', ')}`)
    } finally {
      client.disconnect()
    }
  }
}

/** User and system CPU seconds a process has used so far, from /proc; 0 where unavailable. */
function cpuSplit(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return {system: Number(fields[12]) / 100, user: Number(fields[11]) / 100}
  } catch {
    return {system: 0, user: 0}
  }
}

/** CPU seconds (user + system) all of a cluster's servers have used so far. */
function serversCpu(cluster) {
  return cluster.servers.reduce((sum, server) => {
    const {system, user} = cpuSplit(server.pid)
    return sum + user + system
  }, 0)
}

/** The CPU seconds a run under /usr/bin/time used itself (user + system), or undefined. */
function ownCpu(run) {
  const match = /CPU_USER=([\d.]+) CPU_SYS=([\d.]+)/.exec(run.stderr)
  return match ? Number(match[1]) + Number(match[2]) : undefined
}

/** "3.82 + 1.19": the servers' CPU seconds, then the tool's own. */
function cpuText(run) {
  const own = ownCpu(run)
  return `${run.serversCpuS.toFixed(2)} + ${own === undefined ? '?' : own.toFixed(2)}`
}

/** "start-up 0.21 s, load 40 ms, ..." from slotctl's phasesMs */
function describePhases(phases) {
  return Object.entries(phases).map(([phase, ms]) => `${phase} ${ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`}`).join(', ') || 'not reported'
}

/** The share of the wall time spent checking rather than moving: settle, lock, pre-flight and verification. */
function checksShare(phases, wallMs) {
  return ((phases.settle ?? 0) + (phases.lock ?? 0) + (phases.preflight ?? 0) + (phases.verification ?? 0)) / wallMs
}

async function runSlotctl(bin, cluster, extra = []) {
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  const before = cluster.servers.map((server) => cpuSplit(server.pid))
  if (process.env.BENCH_PROFILE) await commandStats(cluster, 'RESET')
  const run = await timed(process.execPath, [...profile, bin, 'rebalance', cluster.seed, '--use-empty-masters', '--yes', '--json', ...extra], {measureRss: true})
  if (process.env.BENCH_PROFILE) {
    console.log(`slotctl CPU: ${/CPU_USER=\S+ CPU_SYS=\S+/.exec(run.stderr)?.[0] ?? '?'}`)
    const used = cluster.servers.map((server, i) => {
      const now = cpuSplit(server.pid)
      return `${(now.user - before[i].user).toFixed(2)}+${(now.system - before[i].system).toFixed(2)}`
    })
    console.log(`redis-server CPU s (user+system): ${used.join(' ')}`)
    await commandStats(cluster, 'PRINT')
  }
  return run
}

export default async function benchRebalance() {
  const bin = slotctlBin()
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bench-rebalance-'))
  const movedKeys = Math.round(KEYS / 4)
  try {
    const tuning = process.env.BENCH_SLOTCTL_ARGS ? process.env.BENCH_SLOTCTL_ARGS.split(' ') : []
    const slotctl = await withCluster(dir, 'slotctl', (c) => runSlotctl(bin, c, tuning))
    // slotctl's own measure of the moving phase, without process start-up and planning
    const movingMs = JSON.parse(slotctl.stdout).elapsedMs ?? Number.NaN
    const phases = JSON.parse(slotctl.stdout).phasesMs ?? {}
    console.log(`slotctl rebalance: ${(slotctl.ms / 1000).toFixed(2)} s (moving ${(movingMs / 1000).toFixed(2)} s), peak RSS ${slotctl.peakRssMb?.toFixed(0) ?? '?'} MB`)
    console.log(`slotctl phases: ${describePhases(phases)}`)
    const held = JSON.parse(slotctl.stdout).heldBy?.map((entry) => entry.replicas).join('/') ?? '-'
    if (process.env.BENCH_ONLY === 'slotctl') return {phases, slotctlMovingMs: movingMs, slotctlMs: slotctl.ms}
    const plain = await withCluster(dir, 'slotctl-plain', (c) => runSlotctl(bin, c, ['--durability', 'none']))
    const plainMovingMs = JSON.parse(plain.stdout).elapsedMs ?? Number.NaN
    console.log(`slotctl rebalance --durability none: ${(plain.ms / 1000).toFixed(2)} s (moving ${(plainMovingMs / 1000).toFixed(2)} s)`)
    const cliRebalance = await withCluster(dir, 'cli-rebalance', (c) => timed('redis-cli', ['--cluster', 'rebalance', c.seed, '--cluster-use-empty-masters', '--cluster-yes', '--cluster-pipeline', '1000'], {measureRss: true}))
    console.log(`redis-cli rebalance --cluster-pipeline 1000: ${(cliRebalance.ms / 1000).toFixed(2)} s`)
    console.log(`CPU-s, servers + tool: slotctl ${cpuText(slotctl)}, redis-cli rebalance ${cpuText(cliRebalance)}`)
    const cliReshard = await withCluster(dir, 'cli-reshard', (c) =>
      timed('redis-cli', ['--cluster', 'reshard', c.seed, '--cluster-from', c.masterIds.join(','), '--cluster-to', c.newId, '--cluster-slots', '4096', '--cluster-yes', '--cluster-pipeline', '1000']),
    )
    console.log(`redis-cli reshard 4096 slots (pipeline 1000): ${(cliReshard.ms / 1000).toFixed(2)} s`)
    const raw = await rawCeiling(dir)
    console.log(`raw MIGRATE ceiling: ${raw.keys} keys in ${(raw.ms / 1000).toFixed(2)} s (${Math.round(raw.keysPerSec)} keys/s)`)

    const slotctlRate = (movedKeys / slotctl.ms) * 1000
    const result = {
      ceilingShare: slotctlRate / raw.keysPerSec,
      // the ceiling has no process start-up or planning either: compare like with like too
      movingCeilingShare: (movedKeys / movingMs) * 1000 / raw.keysPerSec,
      keys: KEYS,
      name: 'rebalance',
      peakRssMb: slotctl.peakRssMb,
      rawKeysPerSec: raw.keysPerSec,
      redisCliPipeline1000Ms: cliReshard.ms,
      redisCliRebalanceMs: cliRebalance.ms,
      slotctlKeysPerSec: slotctlRate,
      slotctlMovingMs: movingMs,
      slotctlMs: slotctl.ms,
      vsRedisCliRebalance1000: cliRebalance.ms / slotctl.ms,
      vsRedisCliPipeline1000: cliReshard.ms / slotctl.ms,
      plainMs: plain.ms,
      durableCost: slotctl.ms / plain.ms,
      phases,
      checksShare: checksShare(phases, slotctl.ms),
    }
    const version = (await execa('redis-server', ['--version'], {reject: false})).stdout.match(/v=(\S+)/)?.[1] ?? '?'
    const line =
      `- ${new Date().toISOString()} rebalance ${REPLICAS ? '3+3→4+4' : '3→4 masters'}, ${KEYS} keys × 64 B (${movedKeys} keys, 4096 slots move), ${machine()}, redis ${version}, load ${loadavg()[0].toFixed(1)}: ` +
      `slotctl (durable default, held by target + ${held} replica(s)) ${(slotctl.ms / 1000).toFixed(2)} s wall, ${(movingMs / 1000).toFixed(2)} s moving (${Math.round(slotctlRate)} keys/s over the wall time, peak RSS ${slotctl.peakRssMb?.toFixed(0) ?? '?'} MB; ` +
      `phases ${describePhases(phases)}; pre-flight + verification ${(result.checksShare * 100).toFixed(0)}% of the wall time); ` +
      `slotctl --durability none ${(plain.ms / 1000).toFixed(2)} s wall (durable costs ${result.durableCost.toFixed(2)}x); ` +
      `redis-cli rebalance --cluster-pipeline 1000 ${(cliRebalance.ms / 1000).toFixed(2)} s → ${result.vsRedisCliRebalance1000.toFixed(2)}x; ` +
      `CPU-s, servers + tool: slotctl ${cpuText(slotctl)}, redis-cli rebalance ${cpuText(cliRebalance)}; ` +
      `redis-cli reshard --cluster-pipeline 1000 ${(cliReshard.ms / 1000).toFixed(2)} s → ${result.vsRedisCliPipeline1000.toFixed(2)}x; ` +
      `raw MIGRATE ceiling ${Math.round(raw.keysPerSec)} keys/s → slotctl at ${(result.ceilingShare * 100).toFixed(0)}% of it over the wall time, ${(result.movingCeilingShare * 100).toFixed(0)}% over its moving phase ` +
      `(goals: ≥4x, never below 3x, vs rebalance pipeline 1000; ≥70% of ceiling over the moving phase; pre-flight + verification ≤10%; ≤150 MB)`
    console.log(line.slice(2))
    await appendFile(path.join(root, 'bench', 'RESULTS.md'), `${line}\n`)
    return result
  } finally {
    await rm(dir, {force: true, recursive: true})
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  benchRebalance().catch((error) => {
    console.error(`rebalance bench failed: ${error.message}`)
    process.exitCode = 1
  })
}
