/**
 * Benchmark: throttle precision. The same three reshards as test/integration/throttle.test.ts
 * on 3 fresh masters (--legacy-migrate): 3000 slots of one key at 500 keys/s, 3000 slots of
 * ten ~1 KB keys at 5000 keys/s, and 600 of those slots back at 1 MB/s. Each rate must be
 * within 10% of its limit, both ways: the test suite checks only what holds on a loaded
 * machine (never above the limit, not far below it), this checks the precision, so run it on
 * a quiet one (BENCH_MAX_LOAD=N waits for the 1-minute load to drop below N). Throws when a
 * rate is off by more than 10%; appends a dated line to bench/RESULTS.md either way.
 *
 * Run with `npm run bench -- throttle` (builds first), or `node bench/throttle.bench.js` after
 * `npm run build`.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {Redis} from 'ioredis'

import {appendResult, formCluster, isMain, lib, load1, machine, slotctlBin, startServers, stopServers, timed, waitForQuietMachine} from './common.js'

const PRECISION = 0.1

/** A hash tag per slot of `slots`: keys `{tag}:n` then land in that slot. */
async function tagsFor(slots) {
  const {keySlot} = await lib('core/slots')
  const wanted = new Set(slots)
  const tags = new Map()
  for (let n = 0; tags.size < wanted.size; n++) {
    const slot = keySlot(`t${n}`)
    if (wanted.has(slot) && !tags.has(slot)) tags.set(slot, `t${n}`)
  }
  return tags
}

const firstSlots = (master, count) => Array.from({length: count}, (_, i) => master.slots[0][0] + i)

/** Master 0: 3000 slots of one key; master 1: 3000 slots of ten ~1 KB keys. */
async function fill(masters) {
  const [single, tenfold] = [await tagsFor(firstSlots(masters[0], 3000)), await tagsFor(firstSlots(masters[1], 3000))]
  const clientOf = (master) => new Redis({host: master.host, port: master.port})
  const [first, second] = [clientOf(masters[0]), clientOf(masters[1])]
  try {
    const one = first.pipeline()
    for (const tag of single.values()) one.set(`{${tag}}:0`, 'v')
    const ten = second.pipeline()
    for (const tag of tenfold.values()) for (let i = 0; i < 10; i++) ten.set(`{${tag}}:${i}`, 'x'.repeat(1000))
    await Promise.all([one.exec(), ten.exec()])
  } finally {
    first.disconnect()
    second.disconnect()
  }
}

async function reshard(seed, dir, to, slots, limit) {
  const journal = path.join(dir, `${to.id}-${slots[0]}.jsonl`)
  const args = [slotctlBin(), 'reshard', seed, '--to', to.id, '--slot-range', `${slots[0]}-${slots.at(-1)}`, ...limit, '--legacy-migrate', '--yes', '--json', '--journal', journal]
  const {stdout} = await timed(process.execPath, args)
  return JSON.parse(stdout)
}

export default async function benchThrottle() {
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bench-throttle-'))
  const servers = []
  try {
    const ports = await startServers(dir, 3, servers)
    const {seed} = await formCluster(ports.map((port) => `127.0.0.1:${port}`))
    const {mastersOf, parseClusterNodes} = await lib('cluster/topology')
    const probe = new Redis({host: '127.0.0.1', port: ports[0]})
    const masters = mastersOf(parseClusterNodes(String(await probe.call('CLUSTER', 'NODES'))))
    probe.disconnect()
    await fill(masters)
    const loadBefore = await waitForQuietMachine()
    const runs = [
      {label: '1 key/slot at 500 keys/s', limit: 500, unit: 'keys/s', go: () => reshard(seed, dir, masters[2], firstSlots(masters[0], 3000), ['--max-keys-per-sec', '500']), of: (json) => json.keysMoved},
      {label: '10 keys/slot at 5000 keys/s', limit: 5000, unit: 'keys/s', go: () => reshard(seed, dir, masters[2], firstSlots(masters[1], 3000), ['--max-keys-per-sec', '5000']), of: (json) => json.keysMoved},
      {label: '10 keys/slot at 1 MB/s', limit: 1_000_000, unit: 'bytes/s', go: () => reshard(seed, dir, masters[1], firstSlots(masters[1], 600), ['--max-bytes-per-sec', '1000000']), of: (json) => json.bytesMoved},
    ]
    const cells = []
    const off = []
    for (const run of runs) {
      const json = await run.go()
      const rate = run.of(json) / (json.elapsedMs / 1000)
      const deviation = rate / run.limit - 1
      cells.push(`${run.label}: ${rate.toFixed(0)} ${run.unit} (${(deviation * 100).toFixed(1)}%)`)
      if (Math.abs(deviation) > PRECISION) off.push(run.label)
      console.log(cells.at(-1))
    }
    const line = `throttle, 3 masters, legacy MIGRATE, ${machine()}, load ${loadBefore.toFixed(2)} → ${load1().toFixed(2)}: ${cells.join('; ')}${off.length > 0 ? `; OFF BY MORE THAN 10%: ${off.join(', ')}` : '; all within 10%'}`
    console.log(line)
    await appendResult(line)
    if (off.length > 0) throw new Error(`the throttle is off by more than 10% at: ${off.join(', ')}`)
    return {name: 'throttle'}
  } finally {
    await stopServers(servers)
    await rm(dir, {force: true, recursive: true})
  }
}

if (isMain(import.meta.url)) {
  benchThrottle().catch((error) => {
    console.error(`throttle bench failed: ${error.message}`)
    process.exitCode = 1
  })
}
