import {delay} from './connection.js'
import {SlotctlError} from '../core/errors.js'

export interface Progress {
  done: boolean
  /** What is still missing, named per node, for the timeout message. */
  lagging?: string
}

/**
 * Polls `probe` until it reports done. On timeout the error names what lags, because
 * "timed out" alone tells an operator nothing.
 */
export async function waitUntil(what: string, timeoutMs: number, probe: () => Promise<Progress>, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: Progress = {done: false}
  for (;;) {
    last = await probe()
    if (last.done) return
    if (Date.now() >= deadline) break
    await delay(intervalMs)
  }
  throw new SlotctlError(`timed out after ${Math.round(timeoutMs / 1000)} s waiting until ${what}${last.lagging ? `: ${last.lagging}` : ''}`, {
    code: 'E_TIMEOUT',
    suggestions: ['check the lagging node with: slotctl check HOST:PORT', 'raise --wait-timeout if the cluster is just slow'],
  })
}
