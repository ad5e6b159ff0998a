/**
 * Sizes on the command line: 64mb, 512KiB, 1g, or plain bytes.
 */
import {Flags} from '@oclif/core'

import {usageError} from '../core/errors.js'

const UNIT_BYTES: Record<string, number> = {'': 1, b: 1, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2}

/** Bytes for `text`, or undefined when it is not a size. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim())
  if (!match) return undefined
  const unit = UNIT_BYTES[match[2].toLowerCase()]
  return unit === undefined ? undefined : Math.round(Number(match[1]) * unit)
}

export function sizeFlag(options: {description: string; defaultBytes?: number; defaultHelp?: string; helpGroup?: string}) {
  return Flags.custom<number>({
    default: options.defaultBytes,
    defaultHelp: options.defaultHelp ? async () => options.defaultHelp as string : undefined,
    description: `${options.description} (e.g. 64mb, 512kb; a plain number is bytes)`,
    helpGroup: options.helpGroup,
    helpValue: 'SIZE',
    async parse(input: string, _context: unknown, flag: {name: string}) {
      const bytes = parseSize(input)
      if (bytes === undefined) throw usageError(`--${flag.name} '${input}' is not a size: use e.g. 64mb, 512kb or a number of bytes`)
      return bytes
    },
  })()
}
