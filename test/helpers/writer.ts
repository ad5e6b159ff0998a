/**
 * A recording writer for fault tests: writes unique values to its own keys, through plain
 * connections that follow ASK/MOVED by hand, and records only the writes a client may count
 * on. A write the source acknowledged counts (the source is never killed by these tests); a
 * write another node acknowledged counts only with a WAIT confirmation from one replica, the
 * usual meaning of an acknowledged write under Redis's asynchronous replication.
 */
import {Redis} from 'ioredis'

export interface RecordingWriter {
  /** key → the last value a client saw acknowledged */
  acknowledged: Map<string, string>
  writes: number
  stop: () => Promise<void>
}

function connect(address: string, password?: string): Redis {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))]
  const client = new Redis({host, lazyConnect: false, maxRetriesPerRequest: 0, password, port, retryStrategy: () => null, commandTimeout: 2000})
  client.on('error', () => {})
  return client
}

/** Follows one redirection; true when the write counts as acknowledged. */
async function writeOnce(clients: Map<string, Redis>, home: string, key: string, value: string, password?: string): Promise<boolean> {
  const client = clients.get(home) ?? connect(home, password)
  clients.set(home, client)
  try {
    await client.set(key, value)
    return true
  } catch (error) {
    const redirect = /^(ASK|MOVED) \d+ (\S+)/.exec((error as Error).message)
    if (!redirect) return false
    const other = clients.get(redirect[2]) ?? connect(redirect[2], password)
    clients.set(redirect[2], other)
    const pipeline = other.pipeline()
    if (redirect[1] === 'ASK') pipeline.call('ASKING')
    const replies = (await pipeline.set(key, value).call('WAIT', 1, 200).exec().catch(() => null)) ?? []
    const [setError] = replies.at(-2) ?? [new Error('no reply')]
    const [, acked] = replies.at(-1) ?? [null, 0]
    return !setError && Number(acked) >= 1
  }
}

/**
 * Writes `keys` (names the caller chose, e.g. in the slots that move) one after another
 * through `home` (the source master), until stopped or `maxWrites`/`maxMs` run out.
 */
export function startRecordingWriter(home: string, keys: readonly string[], options: {password?: string; maxWrites?: number; maxMs?: number} = {}): RecordingWriter {
  const clients = new Map<string, Redis>()
  const state: RecordingWriter = {acknowledged: new Map(), stop: async () => {}, writes: 0}
  let stopped = false
  const deadline = Date.now() + (options.maxMs ?? 120_000)
  const loop = (async () => {
    for (let n = 0; !stopped && n < (options.maxWrites ?? 1_000_000) && Date.now() < deadline; n++) {
      const key = keys[n % keys.length]
      const value = `v${n}`
      if (await writeOnce(clients, home, key, value, options.password)) state.acknowledged.set(key, value)
      state.writes++
    }
  })()
  state.stop = async () => {
    stopped = true
    await loop
    for (const client of clients.values()) client.disconnect()
  }
  return state
}
