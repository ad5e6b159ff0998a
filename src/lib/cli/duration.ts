/**
 * Durations on the command line: every time flag takes units (500ms, 30s, 5m, 1h, 1m30s),
 * and a plain number keeps the unit that flag always had (documented per flag), so old
 * scripts keep working.
 */
import {Flags} from '@oclif/core'

import {usageError} from '../core/errors.js'

export type PlainUnit = 'ms' | 's'

const UNIT_MS: Record<string, number> = {h: 3_600_000, m: 60_000, ms: 1, s: 1000}

/** Milliseconds for `text`, or undefined when it is not a duration. */
export function parseDuration(text: string, plainUnit: PlainUnit): number | undefined {
  const trimmed = text.trim().toLowerCase()
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * UNIT_MS[plainUnit])
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(trimmed)) return undefined
  let total = 0
  for (const [, amount, , unit] of trimmed.matchAll(/(\d+(\.\d+)?)(ms|s|m|h)/g)) total += Number(amount) * UNIT_MS[unit]
  return Math.round(total)
}

/**
 * The longest duration any flag takes: a day. Node's timers hold at most 2^31-1 ms (24.8
 * days) and silently fire after 1 ms beyond it; some waits are multiples of a flag (big
 * keys get 4x --timeout), and no wait of slotctl's needs to be longer than a day.
 */
export const MAX_DURATION_MS = 24 * 3_600_000

export function formatDurationFlag(ms: number): string {
  if (ms % 3_600_000 === 0 && ms >= 3_600_000) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`
  if (ms % 1000 === 0 && ms >= 1000) return `${ms / 1000}s`
  return `${ms}ms`
}

export interface DurationFlagOptions {
  description: string
  /** Unit of a plain number (the flag's historical unit). */
  plainUnit: PlainUnit
  /** Default in milliseconds. */
  defaultMs?: number
  /** Smallest accepted value in milliseconds. */
  minMs?: number
  helpGroup?: string
  env?: string
}

/** A flag whose value is a duration; the parsed value is always milliseconds. */
export function durationFlag(options: DurationFlagOptions) {
  const plain = options.plainUnit === 's' ? 'seconds' : 'milliseconds'
  const parse = async (input: string, _context: unknown, flag: {name: string}): Promise<number> => {
    const ms = parseDuration(input, options.plainUnit)
    if (ms === undefined) throw usageError(`--${flag.name} '${input}' is not a duration: use e.g. 500ms, 30s, 5m (a plain number is ${plain})`)
    if (options.minMs !== undefined && ms < options.minMs) throw usageError(`--${flag.name} ${input} is too short: at least ${formatDurationFlag(options.minMs)}`)
    if (ms > MAX_DURATION_MS) throw usageError(`--${flag.name} ${input} is too long: at most ${formatDurationFlag(MAX_DURATION_MS)}`)
    return ms
  }
  return Flags.custom<number>({
    default: options.defaultMs,
    defaultHelp: options.defaultMs === undefined ? undefined : async () => formatDurationFlag(options.defaultMs as number),
    description: `${options.description} (e.g. 500ms, 30s, 5m; a plain number is ${plain})`,
    env: options.env,
    helpGroup: options.helpGroup,
    helpValue: 'DURATION',
    parse,
  })()
}
