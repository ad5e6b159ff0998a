/**
 * Benchmark: what one MIGRATE of a big key costs its source, by type and size. The source is
 * blocked while it serialises the key, sends it and waits for the target to restore it, so
 * the time of `MIGRATE ... COPY` between two local servers is the time a master stops
 * answering. Each key is built server-side (Lua, variadic writes), then migrated 3 times; the
 * best and worst of the tries, the key's MEMORY USAGE and its element count are printed, with
 * the cost per element and per byte. The constants of src/lib/migrate/big-keys.ts come from
 * these numbers (their comment says which run).
 *
 * `node bench/run.js big-key-cost`; BENCH_SERVER=/path/to/redis-server (default: the one on
 * PATH, or /usr/bin/redis-server); BENCH_ELEMENTS overrides the 2M elements per key. Records
 * nothing in bench/RESULTS.md.
 */
import {spawn} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {Redis} from 'ioredis'

const SERVER = process.env.BENCH_SERVER ?? '/usr/bin/redis-server'
const ELEMENTS = Number(process.env.BENCH_ELEMENTS ?? 2_000_000)
const TRIES = 3

/** Lua that appends ARGV[2] elements from index ARGV[1] to KEYS[1], 1000 per call. */
const BUILDERS = {
  'hash (small fields)': `local k, from, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for s = from, from + n - 1, 1000 do local a = {} for i = s, math.min(s + 999, from + n - 1) do a[#a+1] = i a[#a+1] = 'v' end redis.call('HSET', k, unpack(a)) end`,
  'hash (67-byte fields)': `local k, from, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for s = from, from + n - 1, 1000 do local a = {} for i = s, math.min(s + 999, from + n - 1) do a[#a+1] = 'field:' .. i a[#a+1] = 'value-' .. i .. '-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' end redis.call('HSET', k, unpack(a)) end`,
  list: `local k, from, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for s = from, from + n - 1, 1000 do local a = {} for i = s, math.min(s + 999, from + n - 1) do a[#a+1] = 'item:' .. i end redis.call('RPUSH', k, unpack(a)) end`,
  set: `local k, from, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for s = from, from + n - 1, 1000 do local a = {} for i = s, math.min(s + 999, from + n - 1) do a[#a+1] = 'm:' .. i end redis.call('SADD', k, unpack(a)) end`,
  'set (integers)': `local k, from, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for s = from, from + n - 1, 1000 do local a = {} for i = s, math.min(s + 999, from + n - 1) do a[#a+1] = i end redis.call('SADD', k, unpack(a)) end`,
  zset: `local k, from, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for s = from, from + n - 1, 1000 do local a = {} for i = s, math.min(s + 999, from + n - 1) do a[#a+1] = i a[#a+1] = 'm:' .. i end redis.call('ZADD', k, unpack(a)) end`,
  stream: `local k, from, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for i = from, from + n - 1 do redis.call('XADD', k, '*', 'f', i) end`,
  string: `local k, from, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
if from == 1 then redis.call('SET', k, string.rep('s', n * 50)) end`,
}
const LENGTH = {hash: 'HLEN', list: 'LLEN', set: 'SCARD', stream: 'XLEN', string: 'STRLEN', zset: 'ZCARD'}

async function startServer(dir, port) {
  const child = spawn(SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'], {stdio: 'ignore'})
  const client = new Redis({lazyConnect: true, maxRetriesPerRequest: 0, port, retryStrategy: () => null})
  client.on('error', () => {})
  for (let i = 0; i < 100; i++) {
    const ok = await client.connect().then(() => true, () => false)
    if (ok) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {child, client}
}

async function build(client, name, key) {
  const script = BUILDERS[name]
  for (let from = 1; from <= ELEMENTS; from += 200_000) await client.eval(script, 1, key, from, Math.min(200_000, ELEMENTS - from + 1))
}

export default async function bigKeyCost() {
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bigkeycost-'))
  const base = 20_000 + Math.floor(Math.random() * 20_000)
  const source = await startServer(dir, base)
  const target = await startServer(dir, base + 1)
  try {
    const info = String(await source.client.info('server'))
    console.log(`${(info.match(/valkey_version:\S+/) ?? info.match(/redis_version:\S+/))?.[0]}, ${ELEMENTS} elements per key`)
    console.log('type'.padEnd(24) + 'encoding'.padEnd(12) + 'elements'.padStart(10) + 'MiB'.padStart(8) + 'DUMP ms'.padStart(9) + 'MIGRATE ms'.padStart(18) + 'ns/elem'.padStart(9) + 'MB/s'.padStart(7))
    for (const name of Object.keys(BUILDERS)) {
      const key = `big:${name}`
      await build(source.client, name, key)
      const type = String(await source.client.type(key))
      const [length, bytes, encoding] = await Promise.all([source.client.call(LENGTH[type], key), source.client.call('MEMORY', 'USAGE', key, 'SAMPLES', 5), source.client.call('OBJECT', 'ENCODING', key)])
      let started = process.hrtime.bigint()
      await source.client.callBuffer('DUMP', key)
      const dumpMs = Number(process.hrtime.bigint() - started) / 1e6
      const times = []
      for (let i = 0; i < TRIES; i++) {
        await target.client.del(key)
        started = process.hrtime.bigint()
        await source.client.call('MIGRATE', '127.0.0.1', base + 1, key, 0, 60_000, 'COPY', 'REPLACE')
        times.push(Number(process.hrtime.bigint() - started) / 1e6)
      }
      const worst = Math.max(...times)
      console.log(
        name.padEnd(24) + String(encoding).padEnd(12) + String(length).padStart(10) + (Number(bytes) / 1048576).toFixed(1).padStart(8) + dumpMs.toFixed(0).padStart(9) +
          `${Math.min(...times).toFixed(0)}-${worst.toFixed(0)}`.padStart(18) + ((worst * 1e6) / Number(length)).toFixed(0).padStart(9) + (Number(bytes) / 1e3 / worst).toFixed(0).padStart(7),
      )
      await Promise.all([source.client.del(key), target.client.del(key)])
    }
  } finally {
    for (const {child, client} of [source, target]) {
      client.disconnect()
      child.kill('SIGKILL')
    }
    await rm(dir, {force: true, recursive: true})
  }
}
