/**
 * Benchmark: start-up. What a short verb costs before and around its cluster work, on a
 * 30-node loopback cluster (15 masters + 15 replicas, 10,000 keys), median of RUNS
 * interleaved runs, with peak RSS:
 *   - node -e 0: the floor any Node CLI pays;
 *   - loading @oclif/core, and ioredis, alone: what the framework and the client cost;
 *   - slotctl --version: Node + oclif start-up, no verb;
 *   - slotctl check, check --json and info, against redis-cli --cluster check and info.
 * The goal (issue 19): check on 30 nodes at most 200 ms above node -e 0 of the same run
 * (issue 15's was ≤ 250 ms wall on an idle machine). Prints a table and appends a dated line
 * (with the machine's load) to bench/RESULTS.md.
 *
 * Run with `npm run bench -- startup` (builds first), or `node bench/startup.bench.js` after
 * `npm run build`. BENCH_RUNS overrides the number of runs (default 11); BENCH_MAX_LOAD=N
 * waits (up to BENCH_MAX_WAIT_S, default 600) for the 1-minute load to drop below N first.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {appendResult, formCluster, formatMs, isMain, lib, load1, machine, measureInterleaved, requireRedisCli, root, slotctlBin, startServers, stopServers, timed, waitForQuietMachine} from './common.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 11)
const MASTERS = 15
const KEYS = 10_000

async function cluster(dir, servers) {
  const ports = await startServers(dir, MASTERS * 2, servers)
  const formed = await formCluster(ports.map((port) => `127.0.0.1:${port}`), {replicasPerMaster: 1})
  const {NodePool} = await lib('cluster/connection')
  const {loadDemoKeys} = await lib('local/sandbox')
  const pool = new NodePool()
  try {
    await loadDemoKeys(pool, formed.seed, KEYS)
  } finally {
    await pool.closeAll()
  }
  return formed.seed
}

function contenders(seed) {
  const bin = slotctlBin()
  const node = (label, args, options = {}) => ({label, run: () => timed(process.execPath, args, {measureRss: true, ...options}), tool: 'node'})
  const slotctl = (label, args) => node(label, [bin, ...args])
  const redisCli = (label, args) => ({label, run: () => timed('redis-cli', args, {measureRss: true}), tool: 'redis-cli'})
  // resolved from the project and required, as slotctl loads them (an ESM import of a
  // CommonJS package costs more: Node first scans it for export names)
  const load = (name) => node(`load ${name}`, ['-e', `require(${JSON.stringify(name)})`], {cwd: root, env: {OCLIF_DISABLE_ENGINE_WARNING: '1'}})
  return [
    node('node -e 0', ['-e', '0']),
    load('@oclif/core'),
    load('ioredis'),
    slotctl('slotctl --version', ['--version']),
    slotctl('slotctl check', ['check', seed]),
    slotctl('slotctl check --json', ['check', seed, '--json']),
    slotctl('slotctl info', ['info', seed]),
    redisCli('redis-cli --cluster check', ['--cluster', 'check', seed]),
    redisCli('redis-cli --cluster info', ['--cluster', 'info', seed]),
  ]
}

export default async function benchStartup() {
  await requireRedisCli()
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bench-startup-'))
  const servers = []
  try {
    const seed = await cluster(dir, servers)
    const loadBefore = await waitForQuietMachine()
    const list = contenders(seed)
    const medians = await measureInterleaved(list, RUNS)
    const at = (label) => medians.get(list.find((contender) => contender.label === label))
    console.log(`30 nodes (${MASTERS} masters + ${MASTERS} replicas), ${KEYS} keys, median of ${RUNS} runs, load ${loadBefore.toFixed(2)} → ${load1().toFixed(2)}`)
    for (const contender of list) {
      const {ms, peakRssMb} = medians.get(contender)
      console.log(`${contender.label.padEnd(28)} ${formatMs(ms).padStart(8)}  ${peakRssMb === undefined ? '' : `${peakRssMb.toFixed(0)} MB`.padStart(7)}`)
    }
    const check = at('slotctl check').ms
    const aboveNode = check - at('node -e 0').ms
    const ratio = at('redis-cli --cluster check').ms / check
    const cell = (label) => `${label} ${formatMs(at(label).ms)}/${at(label).peakRssMb?.toFixed(0)} MB`
    const line =
      `startup, 30 nodes (15+15), ${KEYS} keys, median of ${RUNS}, ${machine()}, load ${loadBefore.toFixed(2)} → ${load1().toFixed(2)}: ` +
      list.map((contender) => cell(contender.label)).join('; ') +
      `; check redis-cli/slotctl ${ratio.toFixed(2)}x; slotctl check − node -e 0 = ${formatMs(aboveNode)} (goal ≤ 200 ms)`
    console.log(line)
    await appendResult(line)
    console.log(`slotctl check − node -e 0 = ${formatMs(aboveNode)} (goal ≤ 200 ms)`)
    return {checkAboveNodeMs: aboveNode, checkMs: check, name: 'startup', versionMs: at('slotctl --version').ms}
  } finally {
    await stopServers(servers)
    await rm(dir, {force: true, recursive: true})
  }
}

if (isMain(import.meta.url)) {
  benchStartup().catch((error) => {
    console.error(`startup bench failed: ${error.message}`)
    process.exitCode = 1
  })
}
