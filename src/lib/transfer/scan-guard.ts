/**
 * A SCAN of the source must end. A real server's cursor never repeats within one pass, and
 * each call visits at least COUNT buckets or returns about COUNT keys, while its table holds
 * at most about ten buckets per key (it shrinks below 10% fill): a full pass takes about
 * keys / COUNT calls. A source whose cursor comes back, or that needs many times more calls
 * than its key count allows (re-read as it grows: writes during an import are normal), is
 * not scanning: the run stops with one line instead of looping forever.
 */
import type {Redis} from 'ioredis'

import {SlotctlError, errorMessage} from '../core/errors.js'

/** Calls allowed per COUNT keys the source holds, and always allowed. */
const CALLS_PER_COUNT = 10
const BASE_CALLS = 100
/** Cursors remembered to spot a repeat (memory stays small for any real data set). */
const MAX_REMEMBERED = 1_000_000

export class ScanGuard {
  private calls = 0
  private allowed: number
  private readonly seen = new Set<string>()

  constructor(private readonly source: Redis, private readonly address: string, keys: number, private readonly count: number) {
    this.allowed = this.budget(keys)
  }

  /** After each SCAN reply: throws when the scan cannot be one that ends. */
  async step(next: string): Promise<void> {
    this.calls++
    if (next === '0') return
    if (this.seen.has(next)) throw this.notEnding(`its cursor ${next.slice(0, 20)} came back after ${this.calls} call(s)`)
    if (this.seen.size < MAX_REMEMBERED) this.seen.add(next)
    if (this.calls <= this.allowed) return
    const keys = await this.dbsize()
    this.allowed = Math.max(this.allowed, this.budget(keys))
    if (this.calls > this.allowed) throw this.notEnding(`${this.calls} SCAN calls (COUNT ${this.count}) have not covered the ${keys} key(s) it reports`)
  }

  private budget(keys: number): number {
    return BASE_CALLS + CALLS_PER_COUNT * Math.ceil(keys / this.count)
  }

  private async dbsize(): Promise<number> {
    try {
      return Number(await this.source.dbsize())
    } catch (error) {
      throw new SlotctlError(`cannot read DBSIZE from ${this.address}: ${errorMessage(error)}`, {code: 'E_SOURCE'})
    }
  }

  private notEnding(why: string): SlotctlError {
    return new SlotctlError(`${this.address} does not finish its SCAN: ${why}; it is not a Redis or Valkey server that can be read safely`, {code: 'E_SOURCE'})
  }
}
