/** The error code table of docs/error-codes.md, from the registry (src/lib/core/error-codes.ts). */
import {ERROR_CODES, type ErrorCodeEntry} from '../../src/lib/core/error-codes.js'

export const START = '<!-- error-codes:start -->'
export const END = '<!-- error-codes:end -->'

function exitNote(entry: ErrorCodeEntry): string {
  return entry.exitCode === 1 ? '' : ` (exit ${entry.exitCode})`
}

/** One row per code; neighbours with the same meaning and exit code share a row. */
export function errorCodeTable(): string {
  const rows: Array<{codes: string[]; entry: ErrorCodeEntry}> = []
  for (const [code, entry] of Object.entries(ERROR_CODES) as Array<[string, ErrorCodeEntry]>) {
    const last = rows.at(-1)
    if (last && last.entry.meaning === entry.meaning && last.entry.exitCode === entry.exitCode) last.codes.push(code)
    else rows.push({codes: [code], entry})
  }
  const lines = rows.map(({codes, entry}) => `| ${codes.map((code) => `\`${code}\``).join(', ')} | ${entry.meaning}${exitNote(entry)} |`)
  return ['| code | meaning |', '|---|---|', ...lines].join('\n')
}

/** `text` with the part between the markers replaced by the generated table. */
export function withErrorCodeTable(text: string): string {
  const start = text.indexOf(START)
  const end = text.indexOf(END)
  if (start === -1 || end < start) throw new Error(`no ${START} ... ${END} markers`)
  return `${text.slice(0, start + START.length)}\n${errorCodeTable()}\n${text.slice(end)}`
}
