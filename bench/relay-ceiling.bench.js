/**
 * Experiment (records nothing): what copying keys from 3 sources to a target with one replica
 * costs, in CPU seconds of every process and in wall time, three ways:
 *   - MIGRATE ... COPY KEYS in batches, as slotctl's durable moves copy today: each source
 *     streams RESTORE-ASKING commands to the target and reads each +OK itself;
 *   - a relay: each source DUMPs the batch from a script and returns the payloads, and the
 *     client sends them on as RESTORE over a raw connection (its own RESP writer and reader,
 *     no ioredis per command), the design docs/benchmarks.md names as the way past MIGRATE;
 *   - a stream relay: the script returns the RESTORE commands' RESP as one string, which the
 *     client passes to the target unread, counting the +OKs.
 * Standalone servers (no cluster): the copy alone is measured, not the slot protocol around
 * it. The target is flushed between the runs (and its replica with it).
 *
 * node bench/run.js relay-ceiling; BENCH_RELAY_KEYS (default 250000, the keys the rebalance
 * benchmark moves), BENCH_RELAY_BATCH (default 1000 keys per batch).
 */
import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {Redis} from 'ioredis'

import {lib} from './common.js'

const KEYS = Number(process.env.BENCH_RELAY_KEYS ?? 250_000)
const BATCH = Number(process.env.BENCH_RELAY_BATCH ?? 1000)
const SOURCES = 3
const VALUE = 'v'.repeat(64)

const DUMP_SCRIPT = `
local out = {}
for i, key in ipairs(KEYS) do
  out[2 * i - 1] = redis.call('DUMP', key)
  out[2 * i] = redis.call('PTTL', key)
end
return out`

// The same DUMPs, returned as one bulk string that is already the RESTORE commands' RESP, so the
// client passes the bytes through without parsing a payload (the first relay spent its gain there).
const STREAM_SCRIPT = `
local out = {}
local n = 0
for _, key in ipairs(KEYS) do
  local payload = redis.call('DUMP', key)
  if payload then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then ttl = 0 end
    ttl = tostring(ttl)
    n = n + 1
    out[n] = '*4\\r\\n$7\\r\\nRESTORE\\r\\n$' .. #key .. '\\r\\n' .. key .. '\\r\\n$' .. #ttl .. '\\r\\n' .. ttl .. '\\r\\n$' .. #payload .. '\\r\\n' .. payload .. '\\r\\n'
  end
end
return {n, table.concat(out)}`

/** user+system CPU seconds of a process so far (/proc/PID/stat, clock ticks of 10 ms). */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** RESP for many commands in one buffer, sized first and written in place (payloads copied once). */
function encode(commands) {
  let size = 0
  const args = commands.map((command) => command.map((arg) => (Buffer.isBuffer(arg) ? arg : String(arg))))
  for (const command of args) {
    size += 3 + String(command.length).length
    for (const arg of command) {
      const length = Buffer.isBuffer(arg) ? arg.length : Buffer.byteLength(arg)
      size += 5 + String(length).length + length
    }
  }
  const out = Buffer.allocUnsafe(size)
  let at = 0
  for (const command of args) {
    at += out.write(`*${command.length}\r\n`, at, 'latin1')
    for (const arg of command) {
      if (Buffer.isBuffer(arg)) {
        at += out.write(`$${arg.length}\r\n`, at, 'latin1')
        at += arg.copy(out, at)
      } else {
        at += out.write(`$${Buffer.byteLength(arg)}\r\n${arg}`, at)
      }
      at += out.write('\r\n', at, 'latin1')
    }
  }
  return out
}

const RESTORE_HEAD = Buffer.from('*4\r\n$7\r\nRESTORE\r\n')

/** RESTORE key ttl payload for each key, written straight into one buffer (no command arrays). */
function restoreCommands(keys, dumped) {
  const heads = keys.map((key, i) => {
    const ttl = String(Math.max(0, dumped[2 * i + 1]))
    return `$${Buffer.byteLength(key)}\r\n${key}\r\n$${ttl.length}\r\n${ttl}\r\n$${dumped[2 * i].length}\r\n`
  })
  let size = 0
  for (const [i, head] of heads.entries()) size += RESTORE_HEAD.length + Buffer.byteLength(head) + dumped[2 * i].length + 2
  const out = Buffer.allocUnsafe(size)
  let at = 0
  for (const [i, head] of heads.entries()) {
    at += RESTORE_HEAD.copy(out, at)
    at += out.write(head, at)
    at += dumped[2 * i].copy(out, at)
    at += out.write('\r\n', at, 'latin1')
  }
  return out
}

/**
 * One RESP2 reply from `at` (bulk strings as Buffers), or undefined when not all there yet.
 * Enough for the replies here: +OK, errors, integers, bulk strings, flat arrays of them.
 */
function parse(buffer, at) {
  // the two replies a relay reads most: +OK, and $<length> of a payload
  if (buffer[at] === 0x2b && buffer[at + 1] === 0x4f && buffer[at + 2] === 0x4b && buffer[at + 3] === 0x0d && at + 4 < buffer.length) return {end: at + 5, value: 'OK'}
  if (buffer[at] === 0x24 && buffer[at + 1] !== 0x2d) {
    let length = 0
    let i = at + 1
    while (i < buffer.length && buffer[i] !== 0x0d) length = length * 10 + buffer[i++] - 0x30
    if (i + 1 >= buffer.length || buffer.length < i + 2 + length + 2) return undefined
    return {end: i + 2 + length + 2, value: buffer.subarray(i + 2, i + 2 + length)}
  }
  const lineEnd = buffer.indexOf('\r\n', at)
  if (lineEnd === -1) return undefined
  const type = buffer[at]
  const line = buffer.toString('latin1', at + 1, lineEnd)
  const next = lineEnd + 2
  if (type === 0x2b || type === 0x3a) return {end: next, value: type === 0x3a ? Number(line) : line}
  if (type === 0x2d) return {end: next, value: new Error(line)}
  if (type === 0x24) {
    const length = Number(line)
    if (length < 0) return {end: next, value: null}
    if (buffer.length < next + length + 2) return undefined
    return {end: next + length + 2, value: buffer.subarray(next, next + length)}
  }
  if (type === 0x2a) {
    const items = []
    let cursor = next
    for (let i = 0; i < Number(line); i++) {
      const item = parse(buffer, cursor)
      if (!item) return undefined
      items.push(item.value)
      cursor = item.end
    }
    return {end: cursor, value: items}
  }
  throw new Error(`unexpected reply byte ${type}`)
}

/** A connection that writes a batch of commands at once and resolves with their replies. */
class RawConnection {
  constructor(port) {
    this.socket = connect({host: '127.0.0.1', port})
    this.socket.setNoDelay(true)
    this.pending = Buffer.alloc(0)
    this.waiting = undefined
    this.socket.on('data', (chunk) => {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
      this.drain()
    })
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve)
      this.socket.once('error', reject)
    })
  }

  drain() {
    const waiting = this.waiting
    if (!waiting) return
    let at = 0
    while (waiting.replies.length < waiting.count) {
      const reply = parse(this.pending, at)
      if (!reply) break
      waiting.replies.push(reply.value)
      at = reply.end
    }
    this.pending = this.pending.subarray(at)
    if (waiting.replies.length === waiting.count) {
      this.waiting = undefined
      waiting.resolve(waiting.replies)
    }
  }

  send(bytes, count) {
    return new Promise((resolve) => {
      this.waiting = {count, replies: [], resolve}
      this.socket.write(bytes)
    })
  }

  close() {
    this.socket.destroy()
  }
}

function keysOf(source) {
  return Array.from({length: Math.ceil(KEYS / SOURCES)}, (_, i) => `k:${source}:${i}`)
}

function batches(keys) {
  return Array.from({length: Math.ceil(keys.length / BATCH)}, (_, i) => keys.slice(i * BATCH, (i + 1) * BATCH))
}

async function migrateAll(source, target) {
  for (const batch of batches(keysOf(source.index))) {
    const reply = await source.client.migrate('127.0.0.1', target.port, '', 0, 60_000, 'COPY', 'KEYS', ...batch)
    if (reply !== 'OK') throw new Error(`MIGRATE: ${reply}`)
  }
}

/**
 * Copies one source's keys through the client: per batch, the source runs `script` over a raw
 * connection and `forward` sends its reply on to the target over a `Receiver`; the next
 * batch's script overlaps this batch's RESTOREs, as a relay would run.
 */
async function relayThrough(source, target, script, Receiver, forward) {
  const from = new RawConnection(source.port)
  const to = new Receiver(target.port)
  await Promise.all([from.ready, to.ready])
  const sha = await source.client.script('LOAD', script)
  try {
    let restoring = Promise.resolve()
    for (const batch of batches(keysOf(source.index))) {
      const [reply] = await from.send(encode([['EVALSHA', sha, batch.length, ...batch]]), 1)
      if (reply instanceof Error) throw reply
      await restoring
      restoring = forward(to, batch, reply)
    }
    await restoring
  } finally {
    from.close()
    to.close()
  }
}

/** The first relay: the script returns the payloads, the client writes the RESTOREs. */
function relayAll(source, target) {
  return relayThrough(source, target, DUMP_SCRIPT, RawConnection, (to, batch, dumped) =>
    to.send(restoreCommands(batch, dumped), batch.length).then((replies) => {
      const failed = replies.find((reply) => reply instanceof Error)
      if (failed) throw failed
    }),
  )
}

const OK_REPLY = Buffer.from('+OK\r\n')

/** A raw connection that counts n +OK replies without building a value per reply. */
class OkCounter extends RawConnection {
  drain() {
    const waiting = this.waiting
    if (!waiting) return
    let at = 0
    while (waiting.seen < waiting.count && at + 5 <= this.pending.length) {
      if (this.pending.compare(OK_REPLY, 0, 5, at, at + 5) !== 0) {
        const reply = parse(this.pending, at)
        if (!reply) break
        waiting.failed ??= reply.value
        at = reply.end
      } else {
        at += 5
      }
      waiting.seen++
    }
    this.pending = this.pending.subarray(at)
    if (waiting.seen === waiting.count) {
      this.waiting = undefined
      waiting.resolve(waiting.failed)
    }
  }

  send(bytes, count) {
    return new Promise((resolve) => {
      this.waiting = {count, seen: 0, failed: undefined, resolve}
      this.socket.write(bytes)
    })
  }
}

/** The stream relay: the script returns the RESTOREs' RESP, the client passes it on unread. */
function streamAll(source, target) {
  return relayThrough(source, target, STREAM_SCRIPT, OkCounter, (to, _batch, reply) =>
    to.send(reply[1], Number(reply[0])).then((failed) => {
      if (failed) throw failed
    }),
  )
}

async function measure(label, servers, client, copy) {
  const before = servers.map((server) => cpuSeconds(server.pid))
  const clientBefore = process.cpuUsage()
  const started = process.hrtime.bigint()
  await copy()
  const acked = await client.wait(1, 60_000)
  const wallS = Number(process.hrtime.bigint() - started) / 1e9
  const used = servers.map((server, i) => cpuSeconds(server.pid) - before[i])
  const clientCpu = process.cpuUsage(clientBefore)
  const clientS = (clientCpu.user + clientCpu.system) / 1e6
  const total = used.reduce((sum, value) => sum + value, 0) + clientS
  const names = ['source 1', 'source 2', 'source 3', 'target', 'target replica']
  console.log(`${label}: ${wallS.toFixed(2)} s wall, ${total.toFixed(2)} CPU-s in all (replica acked: ${acked})`)
  console.log(`  ${names.map((name, i) => `${name} ${used[i].toFixed(2)}`).join(', ')}, client ${clientS.toFixed(2)}`)
  return {clientS, total, used, wallS}
}

export default async function relayCeiling() {
  const {findFreePorts, startServer, stopServer} = await lib('local/servers')
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-relay-'))
  const servers = []
  try {
    const ports = await findFreePorts(SOURCES + 2, '127.0.0.1')
    for (const [index, port] of ports.entries()) {
      const extraArgs = index === SOURCES + 1 ? ['--replicaof', '127.0.0.1', String(ports[SOURCES])] : []
      const server = await startServer({cluster: false, dir: path.join(dir, String(port)), extraArgs, host: '127.0.0.1', port})
      servers.push({...server, client: new Redis({host: '127.0.0.1', port}), index})
    }
    const sources = servers.slice(0, SOURCES)
    const target = servers[SOURCES]
    for (const source of sources) {
      for (const batch of batches(keysOf(source.index))) await source.client.mset(...batch.flatMap((key) => [key, VALUE]))
    }
    await target.client.wait(1, 10_000)
    console.log(`${KEYS} keys × ${VALUE.length} B from ${SOURCES} sources to a target with one replica, batches of ${BATCH}`)
    const migrate = await measure('MIGRATE COPY', servers, target.client, () => Promise.all(sources.map((source) => migrateAll(source, target))))
    await target.client.flushall()
    await target.client.wait(1, 10_000)
    const relay = await measure('relay (DUMP, RESTORE over a raw connection)', servers, target.client, () => Promise.all(sources.map((source) => relayAll(source, target))))
    if (Number(await target.client.dbsize()) !== sources.length * Math.ceil(KEYS / SOURCES)) throw new Error('the relay did not copy every key')
    await target.client.flushall()
    await target.client.wait(1, 10_000)
    const stream = await measure('stream relay (the script writes the RESTOREs, the client passes them on)', servers, target.client, () => Promise.all(sources.map((source) => streamAll(source, target))))
    if (Number(await target.client.dbsize()) !== sources.length * Math.ceil(KEYS / SOURCES)) throw new Error('the stream relay did not copy every key')
    const sourceCpu = (run) => run.used.slice(0, SOURCES).reduce((sum, value) => sum + value, 0)
    console.log(`relay/MIGRATE: CPU in all ${(relay.total / migrate.total).toFixed(2)}x, sources ${(sourceCpu(relay) / sourceCpu(migrate)).toFixed(2)}x, wall ${(relay.wallS / migrate.wallS).toFixed(2)}x`)
    console.log(`stream/MIGRATE: CPU in all ${(stream.total / migrate.total).toFixed(2)}x, sources ${(sourceCpu(stream) / sourceCpu(migrate)).toFixed(2)}x, wall ${(stream.wallS / migrate.wallS).toFixed(2)}x`)
  } finally {
    for (const server of servers) server.client.disconnect()
    await Promise.all(servers.map((server) => stopServer(server)))
    await rm(dir, {force: true, recursive: true})
  }
}
