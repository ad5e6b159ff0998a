/**
 * Rate limits for off-peak migrations. Each take() reserves its share of time on a
 * schedule, so the long-run average never exceeds the limit, however uneven the batches.
 */
import {delay} from '../cluster/connection.js'

export class RateLimiter {
  private nextFreeAt = 0

  constructor(private readonly perSecond: number, private readonly now: () => number = Date.now) {}

  /** Waits as long as `amount` units must wait to stay within the rate. */
  async take(amount: number): Promise<void> {
    const wait = this.reserve(amount)
    if (wait > 0) await delay(wait)
  }

  /** Books `amount` units and returns how many ms the caller must wait before using them. */
  reserve(amount: number): number {
    const now = this.now()
    const start = Math.max(now, this.nextFreeAt)
    this.nextFreeAt = start + (amount / this.perSecond) * 1000
    return start - now
  }
}

export interface ThrottleLimits {
  maxKeysPerSec?: number
  maxBytesPerSec?: number
}

export class Throttle {
  private readonly keys?: RateLimiter
  private readonly bytes?: RateLimiter

  constructor(limits: ThrottleLimits) {
    if (limits.maxKeysPerSec) this.keys = new RateLimiter(limits.maxKeysPerSec)
    if (limits.maxBytesPerSec) this.bytes = new RateLimiter(limits.maxBytesPerSec)
  }

  get measuresBytes(): boolean {
    return this.bytes !== undefined
  }

  async take(keys: number, bytes: number): Promise<void> {
    await Promise.all([this.keys?.take(keys), this.bytes?.take(bytes)])
  }
}
