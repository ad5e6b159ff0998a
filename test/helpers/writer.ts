/**
 * A recording writer for fault tests: writes unique, increasing values to its own keys,
 * through plain connections that follow ASK/MOVED by hand, and records only the writes a
 * client may count on: those a master acknowledged together with a WAIT confirmation from
 * one of its replicas (the usual meaning of an acknowledged write under Redis's asynchronous
 * replication: without it, a master's last writes die with it whatever a tool does).
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

/** Follows up to three redirections (MOVED to the owner, then ASK to an importing target); true when the write counts as acknowledged. */
async function writeOnce(clients: Map<string, Redis>, home: string, key: string, value: string, password?: string): Promise<boolean> {
  let address = home
  let asking = false
  for (let hop = 0; hop < 4; hop++) {
    const reply = await confirmedSet(clients, address, key, value, asking, password)
    const redirect = typeof reply === 'string' ? /^(ASK|MOVED) \d+ (\S+)/.exec(reply) : null
    if (!redirect) return reply === true
    address = redirect[2]
    asking = redirect[1] === 'ASK'
  }
  return false
}

/** SET then WAIT 1 on one node: true when a replica confirmed it, else the error text (or false). */
async function confirmedSet(clients: Map<string, Redis>, address: string, key: string, value: string, asking: boolean, password?: string): Promise<boolean | string> {
  const client = clients.get(address) ?? connect(address, password)
  clients.set(address, client)
  const pipeline = client.pipeline()
  if (asking) pipeline.call('ASKING')
  const replies = (await pipeline.set(key, value).call('WAIT', 1, 200).exec().catch(() => null)) ?? []
  const [setError] = replies.at(-2) ?? [new Error('no reply')]
  if (setError) return setError.message
  const [, acked] = replies.at(-1) ?? [null, 0]
  return Number(acked) >= 1
}

/**
 * Writes `keys` (names the caller chose, e.g. in the slots that move) one after another,
 * entering through the nodes of `homes` in turn (a dead one only fails its own writes),
 * until stopped or `maxWrites`/`maxMs` run out.
 */
export function startRecordingWriter(homes: string | readonly string[], keys: readonly string[], options: {password?: string; maxWrites?: number; maxMs?: number} = {}): RecordingWriter {
  const entries = typeof homes === 'string' ? [homes] : homes
  const clients = new Map<string, Redis>()
  const state: RecordingWriter = {acknowledged: new Map(), stop: async () => {}, writes: 0}
  let stopped = false
  const deadline = Date.now() + (options.maxMs ?? 120_000)
  const loop = (async () => {
    for (let n = 0; !stopped && n < (options.maxWrites ?? 1_000_000) && Date.now() < deadline; n++) {
      const key = keys[n % keys.length]
      const value = `v${n}`
      if (await writeOnce(clients, entries[n % entries.length], key, value, options.password)) state.acknowledged.set(key, value)
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
