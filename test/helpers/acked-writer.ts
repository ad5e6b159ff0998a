/**
 * A client that keeps writing while a test breaks and repairs the cluster, and remembers
 * what the servers acknowledged: for each key, the last SET it saw answered OK and the SETs
 * sent after it whose answer never came (those may or may not have been applied). Afterwards
 * every key must hold its acknowledged value or one of those later attempts: a key that is
 * missing or older was an acknowledged write lost.
 *
 * Each key is written by one lane only, one SET at a time, so "last acknowledged" is also
 * "last applied" when nothing is lost. Bounded in writes and in time.
 */
import type {Cluster} from 'ioredis'

import {keySlot} from '../../src/lib/core/slots.js'

interface KeyRecord {
  acked?: string
  /** values sent after the acknowledged one whose answer was an error or never came */
  uncertain: string[]
}

export interface WriterOptions {
  /** slots the keys must hash to */
  slots: readonly number[]
  /** distinct keys (spread round-robin over the slots) */
  keys: number
  maxWrites: number
  maxMs: number
  lanes?: number
  /** pause between a lane's writes */
  pauseMs?: number
  prefix?: string
}

/** Key names, `count` of them, hashing round-robin to the given slots. */
export function keysInSlots(slots: readonly number[], count: number, prefix = 'w'): string[] {
  const perSlot = new Map<number, string[]>(slots.map((slot) => [slot, []]))
  const need = Math.ceil(count / slots.length)
  for (let i = 0; [...perSlot.values()].some((list) => list.length < need); i++) {
    const name = `${prefix}:${i}`
    const list = perSlot.get(keySlot(name))
    if (list && list.length < need) list.push(name)
  }
  const keys: string[] = []
  for (let i = 0; keys.length < count; i++) keys.push(perSlot.get(slots[i % slots.length])![Math.floor(i / slots.length)])
  return keys
}

export class AckedWriter {
  readonly records = new Map<string, KeyRecord>()
  writes = 0
  acknowledged = 0
  errors: string[] = []
  private stopped = false
  private running?: Promise<void>

  /** key names are found up front: hashing names until every slot has its share takes a while */
  private readonly keys: string[]

  constructor(private readonly client: Cluster, private readonly options: WriterOptions) {
    this.keys = keysInSlots(options.slots, options.keys, options.prefix)
  }

  start(): this {
    const {keys} = this
    for (const key of keys) this.records.set(key, {uncertain: []})
    const lanes = this.options.lanes ?? 4
    const deadline = Date.now() + this.options.maxMs
    this.running = Promise.all(Array.from({length: lanes}, (_, lane) => this.lane(keys.filter((_, i) => i % lanes === lane), deadline))).then(() => undefined)
    return this
  }

  private async lane(keys: string[], deadline: number): Promise<void> {
    for (let i = 0; !this.stopped && Date.now() < deadline && this.writes < this.options.maxWrites && keys.length > 0; i++) {
      const key = keys[i % keys.length]
      const value = `${key}#${i}`
      const record = this.records.get(key)!
      this.writes++
      try {
        // a Cluster client follows MOVED and ASK itself: an OK is the owner's (or the importing node's) answer
        await this.client.set(key, value)
        record.acked = value
        record.uncertain = []
        this.acknowledged++
      } catch (error) {
        record.uncertain.push(value)
        if (this.errors.length < 20) this.errors.push(String(error))
      }
      if (this.options.pauseMs) await new Promise((resolve) => setTimeout(resolve, this.options.pauseMs))
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.running
  }

  /** Keys whose value now is neither the acknowledged one nor a later attempt: each is a lost write. */
  async lostWrites(reader: Cluster): Promise<string[]> {
    const lost: string[] = []
    for (const [key, record] of this.records) {
      if (record.acked === undefined) continue
      const now = await reader.get(key)
      if (now !== record.acked && !record.uncertain.includes(String(now))) lost.push(`${key}: acknowledged ${record.acked}, now ${now}`)
    }
    return lost
  }

  /** Deletes every key it wrote (so the dataset digest can be compared with the one before). */
  async cleanUp(reader: Cluster): Promise<void> {
    for (const key of this.records.keys()) await reader.del(key)
  }
}
