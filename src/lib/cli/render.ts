/**
 * Rendering helpers: colour policy, tables, and small formatters. Commands print through
 * these so that colour is decided in exactly one place.
 */
import chalk from 'chalk'
import Table from 'cli-table3'

export interface ColourDecision {
  noColorFlag?: boolean
  json?: boolean
  env?: NodeJS.ProcessEnv
  isTTY?: boolean
}

/** chalk ignores NO_COLOR and cli-table3 colours pipes, so the decision is made here. */
export function colourEnabled({env = process.env, isTTY = Boolean(process.stdout.isTTY), json, noColorFlag}: ColourDecision): boolean {
  if (noColorFlag || json) return false
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  if (env.TERM === 'dumb') return false
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true
  return isTTY
}

export function applyColour(enabled: boolean): void {
  chalk.level = enabled ? (chalk.level || 1) : 0
}

export function colourOn(): boolean {
  return chalk.level > 0
}

export function table(head: string[], rows: Array<Array<number | string>>, align?: Array<'center' | 'left' | 'right'>): string {
  const colour = colourOn()
  const t = new Table({
    // no separator lines between rows: long node lists stay readable
    chars: {'left-mid': '', mid: '', 'mid-mid': '', 'right-mid': ''},
    colAligns: align ?? head.map(() => "left" as const),
    head: colour ? head.map((h) => chalk.bold(h)) : head,
    style: colour ? {border: ['grey'], head: []} : {border: [], head: []},
  })
  for (const row of rows) t.push(row.map(String))
  return t.toString()
}

export const paint = {
  bad: (text: string) => chalk.red(text),
  dim: (text: string) => chalk.dim(text),
  good: (text: string) => chalk.green(text),
  heading: (text: string) => chalk.bold(text),
  warn: (text: string) => chalk.yellow(text),
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const seconds = ms / 1000
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`
  const minutes = Math.floor(seconds / 60)
  return `${minutes}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`
}
