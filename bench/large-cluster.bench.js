/**
 * Benchmark: large, fragmented clusters. Two loopback clusters at once, 30 nodes (15 masters
 * + 15 replicas) and 60 nodes (30 + 30), each with a fully fragmented slot map (every slot
 * dealt to a master at random with uneven weights: every master owns hundreds of mostly
 * single-slot ranges) and 10,000 keys. Side by side with redis-cli, time (median of RUNS
 * interleaved runs) and peak RSS of:
 *   - check and info on both clusters (the goal: 60 nodes within 150 ms of 30 nodes);
 *   - rebalance --dry-run on the 60-node cluster (redis-cli: rebalance --cluster-simulate);
 *   - planning alone, in this process: the rebalance and reshard planners and the plan table
 *     on the live 30-master topology and on a synthetic 500-master one (goal < 200 ms);
 *   - one reshard of 1000 slots from all masters to one, on the 60-node cluster (redis-cli:
 *     reshard --cluster-pipeline 1000 of 1000 slots to another master), once each.
 * Prints a table and appends a dated line to bench/RESULTS.md.
 *
 * Run with `npm run bench -- large-cluster` (builds first), or `node bench/large-cluster.bench.js`
 * after `npm run build`. BENCH_RUNS overrides the number of runs (default 5); BENCH_MAX_LOAD=N
 * waits (up to BENCH_MAX_WAIT_S, default 600) for the 1-minute load to drop below N first.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {
  SLOT_COUNT,
  appendResult,
  formCluster,
  formatMs,
  fragmentedLayout,
  isMain,
  lib,
  load1,
  machine,
  measureInterleaved,
  median,
  redisVersion,
  requireRedisCli,
  slotctlBin,
  startServers,
  stopServers,
  timed,
  waitForQuietMachine,
} from './common.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const KEYS = 10_000
const RESHARD_SLOTS = 1000
const PLAN_RUNS = 15
const SYNTHETIC_MASTERS = 500

async function fragmentedCluster(dir, masters, servers) {
  const ports = await startServers(path.join(dir, `c${masters}`), masters * 2, servers)
  const layout = fragmentedLayout(masters)
  const cluster = await formCluster(ports.map((port) => `127.0.0.1:${port}`), {replicasPerMaster: 1, slotsOf: (index) => layout[index]})
  const {NodePool} = await lib('cluster/connection')
  const {loadDemoKeys} = await lib('local/sandbox')
  const pool = new NodePool()
  try {
    await loadDemoKeys(pool, cluster.seed, KEYS)
  } finally {
    await pool.closeAll()
  }
  const ranges = layout.map((own) => own.length)
  console.log(`${masters * 2} nodes formed: every master owns ${Math.min(...ranges)} to ${Math.max(...ranges)} slot ranges`)
  return {...cluster, masters, nodes: masters * 2}
}

function slotctl(verb, args, label, okExitCodes = [0]) {
  const bin = slotctlBin()
  return {label, run: () => timed(process.execPath, [bin, verb, ...args], {measureRss: true, okExitCodes}), tool: 'slotctl'}
}

function redisCli(args, label) {
  return {label, run: () => timed('redis-cli', ['--cluster', ...args], {measureRss: true}), tool: 'cli'}
}

function contenders(small, large) {
  const list = []
  for (const cluster of [small, large]) {
    const n = cluster.nodes
    // check exits 3 if it finds problems: the servers are all on one host, so only warnings
    list.push(slotctl('check', [cluster.seed], `check ${n}`, [0]), redisCli(['check', cluster.seed], `check ${n}`))
    list.push(slotctl('info', [cluster.seed], `info ${n}`), redisCli(['info', cluster.seed], `info ${n}`))
  }
  list.push(slotctl('rebalance', [large.seed, '--dry-run'], `rebalance --dry-run ${large.nodes}`), redisCli(['rebalance', large.seed, '--cluster-simulate'], `rebalance --dry-run ${large.nodes}`))
  return list
}

/** Masters of a live cluster as the planners see them (loaded with slotctl's own loader). */
async function liveMasters(seed) {
  const {NodePool} = await lib('cluster/connection')
  const {loadCluster} = await lib('cluster/loader')
  const {parseAddress} = await lib('cluster/address')
  const {mastersOf} = await lib('cluster/topology')
  const pool = new NodePool()
  try {
    return mastersOf((await loadCluster(pool, parseAddress(seed))).nodes)
  } finally {
    await pool.closeAll()
  }
}

function syntheticMasters(count) {
  const layout = fragmentedLayout(count, 500)
  return layout.map((slots, index) => {
    const id = index.toString(16).padStart(40, '0')
    return {address: `10.0.${Math.floor(index / 250)}.${index % 250}:6379`, configEpoch: index, failed: false, flags: ['master'], id, importing: {}, masterId: null, migrating: {}, role: 'master', slots}
  })
}

/** Median ms of planning (rebalance, reshard, and rendering the plan's table) on a master list. */
async function planningTimes(masters) {
  const {planRebalance} = await lib('plan/rebalance')
  const {planReshard} = await lib('plan/reshard')
  const {planTable} = await lib('cli/render')
  const time = (fn) => {
    const samples = []
    let out
    for (let i = 0; i < PLAN_RUNS; i++) {
      const started = process.hrtime.bigint()
      out = fn()
      samples.push(Number(process.hrtime.bigint() - started) / 1e6)
    }
    return {ms: median(samples), out}
  }
  const rebalance = time(() => planRebalance(masters, {thresholdPct: 2}))
  const reshard = time(() => planReshard(masters, {from: 'all', slots: SLOT_COUNT / 4, to: masters[0].id}))
  const addressOf = new Map(masters.map((master) => [master.id, master.address]))
  const render = time(() => planTable(rebalance.out.plan, (id) => addressOf.get(id) ?? id))
  return {moves: rebalance.out.plan.moves.length, rebalanceMs: rebalance.ms, renderMs: render.ms, reshardMs: reshard.ms}
}

async function reshards(large) {
  const masterIds = large.plan.masters.map((master) => large.ids.get(master.address))
  const bin = slotctlBin()
  const ours = await timed(process.execPath, [bin, 'reshard', large.seed, '--from', 'all', '--to', masterIds[1], '--slots', String(RESHARD_SLOTS), '--yes', '--json'], {measureRss: true})
  const theirs = await timed('redis-cli', ['--cluster', 'reshard', large.seed, '--cluster-from', 'all', '--cluster-to', masterIds[2], '--cluster-slots', String(RESHARD_SLOTS), '--cluster-yes', '--cluster-pipeline', '1000'], {measureRss: true})
  const after = await timed(process.execPath, [bin, 'check', large.seed, '--json'], {okExitCodes: [0]})
  if (!JSON.parse(after.stdout).healthy) throw new Error('the 60-node cluster is not healthy after the reshards')
  return {ours, theirs}
}

async function keyCount(seed) {
  const {NodePool, mapLimit} = await lib('cluster/connection')
  const {loadCluster} = await lib('cluster/loader')
  const {parseAddress} = await lib('cluster/address')
  const {mastersOf} = await lib('cluster/topology')
  const pool = new NodePool()
  try {
    const masters = mastersOf((await loadCluster(pool, parseAddress(seed))).nodes)
    const sizes = await mapLimit(masters, 32, async (master) => Number(await (await pool.client(master.address)).dbsize()))
    return sizes.reduce((sum, size) => sum + size, 0)
  } finally {
    await pool.closeAll()
  }
}

function report(medians) {
  const rows = new Map()
  for (const [contender, result] of medians) {
    const row = rows.get(contender.label) ?? {}
    row[contender.tool] = result
    rows.set(contender.label, row)
  }
  const mb = (value) => (value === undefined ? '?' : `${value.toFixed(0)} MB`)
  console.log(['what'.padEnd(26), 'slotctl'.padStart(10), 'RSS'.padStart(7), 'redis-cli'.padStart(10), 'RSS'.padStart(7), 'ratio'.padStart(7)].join('  '))
  for (const [label, {cli, slotctl: ours}] of rows) {
    console.log([label.padEnd(26), formatMs(ours.ms).padStart(10), mb(ours.peakRssMb).padStart(7), formatMs(cli.ms).padStart(10), mb(cli.peakRssMb).padStart(7), `${(cli.ms / ours.ms).toFixed(2)}x`.padStart(7)].join('  '))
  }
  return rows
}

export default async function benchLargeCluster() {
  await requireRedisCli()
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bench-large-'))
  const servers = []
  try {
    const small = await fragmentedCluster(dir, 15, servers)
    const large = await fragmentedCluster(dir, 30, servers)
    const loadBefore = await waitForQuietMachine()
    const rows = report(await measureInterleaved(contenders(small, large), RUNS))
    const live = await planningTimes(await liveMasters(large.seed))
    const synthetic = await planningTimes(syntheticMasters(SYNTHETIC_MASTERS))
    console.log(`planning on the live 30-master fragmented map (${live.moves} moves): rebalance ${live.rebalanceMs.toFixed(1)} ms, reshard of ${SLOT_COUNT / 4} slots ${live.reshardMs.toFixed(1)} ms, plan table ${live.renderMs.toFixed(1)} ms`)
    console.log(`planning on a synthetic ${SYNTHETIC_MASTERS}-master fragmented map (${synthetic.moves} moves): rebalance ${synthetic.rebalanceMs.toFixed(1)} ms, reshard ${synthetic.reshardMs.toFixed(1)} ms, plan table ${synthetic.renderMs.toFixed(1)} ms`)
    const keysBefore = await keyCount(large.seed)
    const {ours, theirs} = await reshards(large)
    const keysAfter = await keyCount(large.seed)
    if (keysAfter !== keysBefore) throw new Error(`the reshards changed the key count: ${keysBefore} → ${keysAfter}`)
    console.log(`reshard ${RESHARD_SLOTS} slots from all 30 masters, 60 nodes: slotctl ${formatMs(ours.ms)} (peak RSS ${ours.peakRssMb?.toFixed(0)} MB), redis-cli --cluster-pipeline 1000 ${formatMs(theirs.ms)} (peak RSS ${theirs.peakRssMb?.toFixed(0)} MB) → ${(theirs.ms / ours.ms).toFixed(2)}x`)

    const loadAfter = load1()
    const cell = (label) => {
      const {cli, slotctl: mine} = rows.get(label)
      return `${label}: slotctl ${formatMs(mine.ms)}/${mine.peakRssMb?.toFixed(0)} MB vs redis-cli ${formatMs(cli.ms)}/${cli.peakRssMb?.toFixed(0)} MB (${(cli.ms / mine.ms).toFixed(2)}x)`
    }
    const checkGap = rows.get('check 60').slotctl.ms - rows.get('check 30').slotctl.ms
    const line =
      `large-cluster, fragmented slot maps (every master hundreds of single-slot ranges), ${KEYS} keys, median of ${RUNS}, ${machine()}, redis ${await redisVersion()}, load ${loadBefore.toFixed(2)} → ${loadAfter.toFixed(2)}: ` +
      ['check 30', 'check 60', 'info 30', 'info 60', 'rebalance --dry-run 60'].map((label) => cell(label)).join('; ') +
      `; check 60 − check 30 = ${Math.round(checkGap)} ms (goal ≤ 150); planning a rebalance of the live 30-master map ${live.rebalanceMs.toFixed(1)} ms (${live.moves} moves; goal < 200 ms), its table ${live.renderMs.toFixed(1)} ms; ` +
      `${SYNTHETIC_MASTERS} masters: rebalance ${synthetic.rebalanceMs.toFixed(1)} ms (${synthetic.moves} moves), reshard ${synthetic.reshardMs.toFixed(1)} ms, table ${synthetic.renderMs.toFixed(1)} ms; ` +
      `reshard ${RESHARD_SLOTS} slots on 60 nodes: slotctl ${formatMs(ours.ms)}/${ours.peakRssMb?.toFixed(0)} MB vs redis-cli pipeline 1000 ${formatMs(theirs.ms)}/${theirs.peakRssMb?.toFixed(0)} MB (${(theirs.ms / ours.ms).toFixed(2)}x)`
    console.log(line)
    await appendResult(line)
    return {checkGapMs: checkGap, live, name: 'large-cluster', synthetic}
  } finally {
    await stopServers(servers)
    await rm(dir, {force: true, recursive: true})
  }
}

if (isMain(import.meta.url)) {
  benchLargeCluster().catch((error) => {
    console.error(`large-cluster bench failed: ${error.message}`)
    process.exitCode = 1
  })
}
