/**
 * A TCP proxy that adds a fixed delay each way, for benchmarks that need network latency on
 * kernels without netem. Every byte (and the end of each stream) is forwarded `delayMs`
 * after it arrived, in arrival order; a new connection passes no data for 2 × delayMs, the
 * round trip of a TCP handshake. Each cluster node announces its proxy's port
 * (cluster-announce-port / cluster-announce-bus-port), so the tool's commands, MIGRATE
 * between nodes and the cluster bus all pay the delay.
 *
 * Sub-millisecond delays: Node's timers have 1 ms granularity, so a worker thread sleeps
 * until the next item is due (Atomics.wait takes fractional milliseconds) and wakes the
 * proxy's event loop, early by the wake-ups' measured lateness. Nothing spins. The delay
 * achieved is still a little above the one asked for (each hop through the proxy costs
 * about 0.1 ms even at 0); the latency benchmark measures and prints the round trip.
 *
 * As a module: `const proxy = await startDelayProxy({routes: [{listen, target}], delayMs})`,
 * then `proxy.setDelay(ms)` and `await proxy.close()`. As a process (what the benchmark runs,
 * so the proxy has an event loop of its own):
 *   node bench/delay-proxy.js --delay 0.5 LISTEN_PORT:TARGET_PORT ...
 * prints `ready` once listening; the stdin line `delay MS` changes the delay (answered
 * `delay MS`); it stops on SIGTERM or when stdin closes. Loopback (127.0.0.1) only.
 */
import {createServer, connect} from 'node:net'
import path from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'
import {Worker} from 'node:worker_threads'

const HOST = '127.0.0.1'

const now = () => Number(process.hrtime.bigint()) / 1e6

/** Sleeps until the due time the proxy posts (in the shared buffer), then says so. */
const SLEEPER = `
const {parentPort, workerData} = require('node:worker_threads')
const requests = new Int32Array(workerData.shared, 0, 2)
const due = new Float64Array(workerData.shared, 8, 1)
const now = () => Number(process.hrtime.bigint()) / 1e6
let seen = 0
for (;;) {
  Atomics.wait(requests, 0, seen)
  seen = Atomics.load(requests, 0)
  const wait = due[0] - now()
  // requests[1] is never notified: this is a precise sleep
  if (wait > 0) Atomics.wait(requests, 1, 0, wait)
  parentPort.postMessage(0)
}
`

/** Actions run `delayMs` after they were queued, in queue order. */
class DelayLine {
  constructor(delayMs) {
    this.delayMs = delayMs
    this.queue = []
    this.head = 0
    this.armed = false
    // wake-ups land late by the sleeper's and the event loop's latency (a moving average of
    // it): the sleeper is asked to wake that much before an item is due
    this.lateness = 0
    this.wakeAt = 0
    const shared = new SharedArrayBuffer(16)
    this.requests = new Int32Array(shared, 0, 2)
    this.due = new Float64Array(shared, 8, 1)
    this.sleeper = new Worker(SLEEPER, {eval: true, workerData: {shared}})
    this.sleeper.on('message', () => {
      this.armed = false
      this.lateness = 0.9 * this.lateness + 0.1 * Math.max(0, now() - this.wakeAt)
      this.flush()
    })
    this.sleeper.unref()
  }

  push(action) {
    if (this.delayMs <= 0 && this.head === this.queue.length) {
      action()
      return
    }
    this.queue.push({action, due: now() + this.delayMs})
    this.arm()
  }

  flush() {
    // a hair early is on time: waking again for it would only make it late
    const time = now() + 0.02
    while (this.head < this.queue.length && this.queue[this.head].due <= time) {
      const {action} = this.queue[this.head]
      this.queue[this.head++] = undefined
      action()
    }
    if (this.head === this.queue.length) {
      this.queue = []
      this.head = 0
    } else if (this.head > 4096) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
    this.arm()
  }

  /** One wake-up at a time, for the oldest item: the queue is in due order (one fixed delay). */
  arm() {
    if (this.armed || this.head >= this.queue.length) return
    this.armed = true
    const due = this.queue[this.head].due
    // woken early (the estimate overshot): sleep exactly until due rather than spin
    this.wakeAt = due - this.lateness > now() ? due - this.lateness : due
    this.due[0] = this.wakeAt
    Atomics.add(this.requests, 0, 1)
    Atomics.notify(this.requests, 0)
  }

  async close() {
    await this.sleeper.terminate()
  }
}

/** Forwards `from` to `to` through the delay line, pausing `from` while `to` is backed up. */
function forward(line, from, to) {
  let waiting = false
  from.on('data', (chunk) => {
    line.push(() => {
      if (to.destroyed || to.write(chunk) || waiting) return
      waiting = true
      from.pause()
      to.once('drain', () => {
        waiting = false
        from.resume()
      })
    })
  })
  from.on('end', () => line.push(() => to.end()))
  from.on('error', () => line.push(() => to.destroy()))
}

function proxyConnection(line, client, targetPort) {
  client.setNoDelay(true)
  client.pause()
  const upstream = connect({host: HOST, port: targetPort})
  upstream.setNoDelay(true)
  upstream.pause()
  forward(line, client, upstream)
  forward(line, upstream, client)
  // the handshake's round trip: data starts to flow 2 × delay after the connection
  line.push(() =>
    line.push(() => {
      client.resume()
      upstream.resume()
    }),
  )
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({exclusive: true, host: HOST, port}, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/** Starts one listener per route; returns {setDelay(ms), close()}. */
export async function startDelayProxy({delayMs = 0, routes}) {
  const line = new DelayLine(delayMs)
  const sockets = new Set()
  const servers = routes.map(({target}) =>
    createServer((client) => {
      sockets.add(client)
      client.on('close', () => sockets.delete(client))
      proxyConnection(line, client, target)
    }),
  )
  try {
    await Promise.all(servers.map((server, index) => listen(server, routes[index].listen)))
  } catch (error) {
    for (const server of servers) server.close()
    await line.close()
    throw error
  }
  return {
    async close() {
      for (const socket of sockets) socket.destroy()
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(() => resolve()))))
      await line.close()
    },
    setDelay(ms) {
      line.delayMs = ms
    },
  }
}

function parseArgs(argv) {
  let delayMs = 0
  const routes = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--delay') delayMs = Number(argv[++i])
    else {
      const [listenPort, target] = argv[i].split(':').map(Number)
      routes.push({listen: listenPort, target})
    }
  }
  if (!(delayMs >= 0) || routes.length === 0 || routes.some((route) => !(route.listen > 0 && route.target > 0))) {
    throw new Error('usage: node bench/delay-proxy.js --delay MS LISTEN_PORT:TARGET_PORT ...')
  }
  return {delayMs, routes}
}

async function main() {
  const proxy = await startDelayProxy(parseArgs(process.argv.slice(2)))
  const stop = async () => {
    await proxy.close()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  const input = createInterface({input: process.stdin})
  input.on('line', (text) => {
    const match = /^delay\s+(\d+(?:\.\d+)?)$/.exec(text.trim())
    if (!match) return
    proxy.setDelay(Number(match[1]))
    process.stdout.write(`delay ${match[1]}\n`)
  })
  input.on('close', stop)
  process.stdout.write('ready\n')
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    console.error(`delay-proxy: ${error.message}`)
    process.exit(1)
  })
}
