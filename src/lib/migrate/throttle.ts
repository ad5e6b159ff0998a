/**
 * Rate limits for off-peak migrations. Each take() reserves its share of time on a
 * schedule, so the long-run average never exceeds the limit, however uneven the batches.
 *
 * The schedule is cumulative (amount moved against elapsed time × rate), so the moments
 * when nothing moves — slots opening and closing, a key listing — do not eat into the
 * rate: the next batches catch up. What may be caught up is capped at one second of the
 * rate, so a long stall is never followed by a burst beyond that.
 */
import {delay} from '../cluster/connection.js'

/** The most unused time a limiter banks: a stall is followed by at most this much catching up. */
export const MAX_CATCH_UP_MS = 1000

export class RateLimiter {
  /** when the booked schedule is free again; starts at the first request (nothing banked before it) */
  private nextFreeAt?: number

  constructor(private readonly perSecond: number, private readonly now: () => number = Date.now) {}

  /** Waits as long as `amount` units must wait to stay within the rate. */
  async take(amount: number): Promise<void> {
    const wait = this.reserve(amount)
    if (wait > 0) await delay(wait)
  }

  /** Books `amount` units and returns how many ms the caller must wait before using them. */
  reserve(amount: number): number {
    const now = this.now()
    // unused time (slots opening and closing) is banked, up to the cap
    const start = Math.max(now - MAX_CATCH_UP_MS, this.nextFreeAt ?? now)
    this.nextFreeAt = start + (amount / this.perSecond) * 1000
    return Math.max(start - now, 0)
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
