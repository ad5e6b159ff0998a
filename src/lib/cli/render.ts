/**
 * Rendering helpers: colour policy, tables, and small formatters. Commands print through
 * these so that colour is decided in exactly one place.
 */
import chalk from 'chalk'

import {formatSlots} from '../core/slots.js'
import {formatDuration} from '../core/units.js'
import type {MigrationPlan} from '../plan/types.js'
import type {Phase, PhaseTimes} from '../phases.js'
import {compareNatural} from '../core/compare.js'

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

export type Align = 'center' | 'left' | 'right'

// eslint-disable-next-line no-control-regex
const ANSI = /\u001B\[[0-9;]*m/g

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '')
}

/** Display width; slotctl prints no wide (CJK) characters, so code points are enough. */
export function displayWidth(text: string): number {
  return [...stripAnsi(text)].length
}

/** Columns of the terminal (COLUMNS when stdout is not one); undefined: no limit. */
export function terminalWidth(): number | undefined {
  const columns = process.stdout.columns || Number(process.env.COLUMNS)
  return Number.isFinite(columns) && columns > 0 ? columns : undefined
}

/**
 * Breaks a line into pieces of at most `width`, at a space, after a comma, or after the
 * hyphen of a slot range ("15015-" / "16379"); never inside any other word (an address, an
 * id), unless that word alone is wider than `width`.
 */
export function wrapLine(line: string, width: number): string[] {
  if (displayWidth(line) <= width) return [line]
  const chars = [...stripAnsi(line)]
  const pieces: string[] = []
  while (chars.length > width) {
    const cut = lastBreak(chars, width) || width
    pieces.push(chars.splice(0, cut).join('').trimEnd())
    while (chars[0] === ' ') chars.shift()
  }
  if (chars.length > 0) pieces.push(chars.join(''))
  return pieces
}

const RANGE_WORD = /^\d+-\d+,?$/

/** The last place at or before `width` where the line may break (0: none). */
function lastBreak(chars: readonly string[], width: number): number {
  for (let cut = width; cut > 0; cut--) if (chars[cut] === ' ' || chars[cut - 1] === ',') return cut
  // no space or comma: a range's hyphen is the next best
  for (let cut = width; cut > 0; cut--) if (chars[cut - 1] === '-' && RANGE_WORD.test(wordAround(chars, cut - 1))) return cut
  return 0
}

/** The word (between spaces and commas, a trailing comma kept) holding index `at`. */
function wordAround(chars: readonly string[], at: number): string {
  let start = at
  while (start > 0 && chars[start - 1] !== ' ' && chars[start - 1] !== ',') start--
  let end = at
  while (end < chars.length && chars[end] !== ' ' && chars[end] !== ',') end++
  return chars.slice(start, end).join('')
}

/** The widest piece wrapLine cannot break: a run without spaces (a comma kept with what it ends), or half a slot range. */
function longestWord(lines: readonly string[]): number {
  let longest = 0
  for (const line of lines) {
    for (const word of stripAnsi(line).split(/ +|(?<=,)/)) {
      // a slot range may break after its hyphen: its halves are what must fit
      const halves = RANGE_WORD.test(word) ? word.split(/(?<=-)/) : [word]
      for (const half of halves) longest = Math.max(longest, [...half].length)
    }
  }
  return longest
}

/** Narrows the widest columns first until the table fits `limit` (never below each minimum). */
function fitWidths(natural: number[], minimum: number[], limit: number | undefined): number[] {
  const widths = [...natural]
  if (limit === undefined) return widths
  const frame = 3 * widths.length + 1
  let excess = widths.reduce((sum, width) => sum + width, 0) + frame - limit
  while (excess > 0) {
    let widest = -1
    for (const [index, width] of widths.entries()) if (width > minimum[index] && (widest === -1 || width > widths[widest])) widest = index
    if (widest === -1) break
    widths[widest]--
    excess--
  }
  return widths
}

function pad(text: string, width: number, align: Align): string {
  const gap = Math.max(0, width - displayWidth(text))
  if (align === 'right') return ' '.repeat(gap) + text
  if (align === 'center') return ' '.repeat(Math.floor(gap / 2)) + text + ' '.repeat(gap - Math.floor(gap / 2))
  return text + ' '.repeat(gap)
}

export interface TableOptions {
  align?: Align[]
  /** Total width to fit; default the terminal's (no limit when stdout is not a terminal). */
  width?: number
}

/**
 * A boxed table that fits the terminal: the widest columns are narrowed and their cells
 * wrapped (at spaces or commas). A rule always separates the header, so it reads without
 * colour too; there are no rules between rows, so long node lists stay compact.
 */
export function table(head: string[], rows: Array<Array<number | string>>, alignOrOptions?: Align[] | TableOptions): string {
  const options = Array.isArray(alignOrOptions) ? {align: alignOrOptions} : (alignOrOptions ?? {})
  const align = options.align ?? head.map(() => 'left' as const)
  const cells = rows.map((row) => row.map((cell) => String(cell).replaceAll('\r', '').split('\n')))
  const natural = head.map((title, column) => Math.max(displayWidth(title), ...cells.map((row) => Math.max(...(row[column] ?? ['']).map((line) => displayWidth(line))))))
  // a column is never narrower than its longest word: an address or an id is never cut in two
  const minimum = head.map((title, column) => Math.min(natural[column], Math.max(displayWidth(title), 6, ...cells.map((row) => longestWord(row[column] ?? [])))))
  const widths = fitWidths(natural, minimum, options.width ?? terminalWidth())
  const colour = colourOn()
  const border = (text: string) => (colour ? chalk.grey(text) : text)
  const rule = (left: string, mid: string, right: string) => border(left + widths.map((width) => '─'.repeat(width + 2)).join(mid) + right)
  const line = (parts: string[]) => border('│') + parts.map((part, column) => ` ${pad(part, widths[column], align[column] ?? 'left')} `).join(border('│')) + border('│')
  const out = [rule('┌', '┬', '┐'), line(head.map((title, column) => (colour ? chalk.bold(pad(title, widths[column], align[column] ?? 'left')) : title))), rule('├', '┼', '┤')]
  for (const row of cells) {
    const wrapped = head.map((_, column) => (row[column] ?? ['']).flatMap((text) => wrapLine(text, widths[column])))
    const height = Math.max(...wrapped.map((lines) => lines.length))
    for (let index = 0; index < height; index++) out.push(line(wrapped.map((lines) => lines[index] ?? '')))
  }
  out.push(rule('└', '┴', '┘'))
  return out.join('\n')
}

export const paint = {
  bad: (text: string) => chalk.red(text),
  dim: (text: string) => chalk.dim(text),
  good: (text: string) => chalk.green(text),
  heading: (text: string) => chalk.bold(text),
  warn: (text: string) => chalk.yellow(text),
}

// the units live in core/ (the engine words its refusals with them); re-exported for the views
export {formatBytes, formatDuration} from '../core/units.js'

const PHASE_LABELS: Record<Phase, string> = {confirm: 'waiting for yes', load: 'load', lock: 'lock', moving: 'moving', preflight: 'pre-flight', settle: 'settle', startup: 'start-up', verification: 'verification'}

/** "start-up 210 ms, load 40 ms, ..., moving 1.62 s" */
export function describePhases(times: PhaseTimes): string {
  return Object.entries(times)
    .map(([phase, ms]) => `${PHASE_LABELS[phase as Phase]} ${formatDuration(ms)}`)
    .join(', ')
}

/** Shortens a list of names to fit `width`, ending with "and N more". */
export function fitList(names: string[], width: number): string {
  for (let shown = names.length; shown > 1; shown--) {
    const text = names.slice(0, shown).join(', ') + (shown < names.length ? ` and ${names.length - shown} more` : '')
    if (displayWidth(text) <= width) return text
  }
  return names.length > 1 ? `${names[0]} and ${names.length - 1} more` : (names[0] ?? '')
}

export interface IssueView {
  code: string
  message: string
  hint?: string
  nodes?: Array<{address: string; id: string}>
}

/**
 * Errors or warnings under a heading, one line each with its hint. Several of one code that
 * has a group summary become one line ("12 replicas share a host with their master: …"),
 * unless verbose.
 */
export function renderIssues(heading: string, tag: 'ERR' | 'WARN', issues: readonly IssueView[], options: {verbose?: boolean; groupSummary?: (code: string) => string | undefined} = {}): string[] {
  if (issues.length === 0) return []
  const colour = tag === 'ERR' ? paint.bad : paint.warn
  const lines = [colour(`${heading} (${issues.length}):`)]
  const done = new Set<string>()
  for (const item of issues) {
    const same = issues.filter((other) => other.code === item.code)
    const summary = options.groupSummary?.(item.code)
    if (!options.verbose && summary && same.length > 1) {
      if (done.has(item.code)) continue
      done.add(item.code)
      const prefix = `  [${tag}] ${same.length} ${summary}: `
      const names = same.map((other) => other.nodes?.[0]?.address || other.nodes?.[0]?.id.slice(0, 8) || other.message).sort(compareNatural)
      lines.push(`  ${colour(`[${tag}]`)} ${same.length} ${summary}: ${fitList(names, (terminalWidth() ?? 120) - prefix.length)}`, `    hint: --verbose lists each one with its next step`)
      continue
    }
    lines.push(...hangingWrap(`  ${colour(`[${tag}]`)} `, item.message, 4))
    if (item.hint) lines.push(...hangingWrap('    hint: ', item.hint, 10))
  }
  return lines
}

/**
 * `prefix` then `text`, wrapped at word boundaries to the terminal's width (when it has one),
 * later lines indented by `indent`: a hint never breaks inside a word, an address or an id.
 */
export function hangingWrap(prefix: string, text: string, indent: number, width = terminalWidth()): string[] {
  if (width === undefined || displayWidth(prefix) + displayWidth(text) <= width) return [`${prefix}${text}`]
  const first = Math.max(20, width - displayWidth(prefix))
  const [head = '', ...rest] = wrapWords(text, first)
  const more = rest.length > 0 ? wrapWords(rest.join(' '), Math.max(20, width - indent)) : []
  return [`${prefix}${head}`, ...more.map((line) => `${' '.repeat(indent)}${line}`)]
}

/** Lines of at most `width` broken at spaces only; a word longer than `width` keeps its own line whole. */
function wrapWords(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line !== '' && displayWidth(line) + 1 + displayWidth(word) > width) {
      lines.push(line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  if (line !== '') lines.push(line)
  return lines
}

/**
 * A migration plan as operators review it: one row per source → target pair with its slot
 * count and the start of its slot list. Linear in the plan's moves (a 16384-slot plan is
 * grouped in one pass).
 */
export function planTable(plan: Pick<MigrationPlan, 'moves'>, addressOf: (id: string) => string, skip: ReadonlySet<number> = new Set()): string {
  const pairs = new Map<string, {sourceId: string; targetId: string; slots: number[]}>()
  for (const move of plan.moves) {
    if (skip.has(move.slot)) continue
    const key = `${move.sourceId} ${move.targetId}`
    let pair = pairs.get(key)
    if (!pair) pairs.set(key, (pair = {slots: [], sourceId: move.sourceId, targetId: move.targetId}))
    pair.slots.push(move.slot)
  }
  const rows = [...pairs.values()].map((pair) => [addressOf(pair.sourceId), addressOf(pair.targetId), pair.slots.length, formatSlots(pair.slots).slice(0, 60)])
  return table(['from', 'to', 'slots', 'which'], rows, ['left', 'left', 'right', 'left'])
}
