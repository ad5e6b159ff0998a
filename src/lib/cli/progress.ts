/**
 * Migration progress on stderr, in every output mode (stdout stays for the result):
 *   bar    a terminal: one line redrawn in place, fitted to the width
 *   map    a terminal: the slot map (info --map) above the bar, filling in as slots close
 *   lines  not a terminal (CI, pipes, --json): a status line every few seconds, so a job
 *          that watches for silence does not kill a long migration
 *   json   --progress json: one NDJSON event per line (start, progress, job, failed, end)
 *   none   --quiet / --progress none
 * Progress counts keys against the plan's key count (counted before the run), so the
 * percentage and the ETA move with every batch, not only when a wave of slots closes.
 */
import type {MigrationEvent} from '../migrate/executor.js'
import {colourOn, formatBytes, formatDuration} from './render.js'
import {escapeTerminal} from '../core/escape.js'

export type ProgressMode = 'bar' | 'json' | 'lines' | 'map' | 'none'

/** The slot map's lines at a width (--progress map): drawn above the bar, filling in as slots close. */
export type MapLines = (width: number) => string[]

export interface ProgressTotals {
  slots: number
  /** keys in the planned slots when the run started (0 when unknown) */
  keys: number
}

export interface ProgressState {
  slotsDone: number
  keysMoved: number
  bytesMoved: number
  elapsedMs: number
}

/** Keys per second over the run so far; the ETA assumes the rest moves at that rate. */
export function estimate(state: ProgressState, totals: ProgressTotals): {percent: number; rate: number; etaMs?: number} {
  const rate = state.elapsedMs > 0 ? (state.keysMoved * 1000) / state.elapsedMs : 0
  const byKeys = totals.keys > 0 ? Math.min(state.keysMoved / totals.keys, 1) : undefined
  const bySlots = totals.slots > 0 ? state.slotsDone / totals.slots : 0
  // keys drive it while keys are known; slots alone finish it (a slot may have lost keys
  // meanwhile); without slots (import, restore) keys alone
  const fraction = totals.slots > 0 && state.slotsDone >= totals.slots ? 1 : (byKeys ?? bySlots)
  const keysLeft = Math.max(totals.keys - state.keysMoved, 0)
  const etaMs = fraction >= 1 ? 0 : rate > 0 && totals.keys > 0 ? (keysLeft / rate) * 1000 : undefined
  return {etaMs, percent: Math.floor(fraction * 100), rate: Math.round(rate)}
}

/**
 * The status line, shortened to `width` by dropping the least important parts first
 * (bytes, then slots, then the bar) rather than cutting it mid-word.
 */
export function progressLine(state: ProgressState, totals: ProgressTotals, width: number): string {
  const {etaMs, percent, rate} = estimate(state, totals)
  const keys = totals.keys > 0 ? `${state.keysMoved}/${totals.keys} keys` : `${state.keysMoved} keys`
  const parts = {
    bytes: `${formatBytes(state.bytesMoved)}`,
    elapsed: `${formatDuration(state.elapsedMs)} elapsed`,
    eta: `ETA ${etaMs === undefined ? '?' : formatDuration(etaMs)}`,
    keys,
    percent: `${String(percent).padStart(3)}%`,
    rate: `${rate} keys/s`,
    slots: `${state.slotsDone}/${totals.slots} slots`,
  }
  const order: Array<Array<keyof typeof parts | 'bar'>> = [
    ['bar', 'percent', 'keys', 'slots', 'rate', 'bytes', 'elapsed', 'eta'],
    ['bar', 'percent', 'keys', 'slots', 'rate', 'elapsed', 'eta'],
    ['bar', 'percent', 'keys', 'rate', 'elapsed', 'eta'],
    ['percent', 'keys', 'rate', 'elapsed', 'eta'],
    ['percent', 'keys', 'eta'],
    ['percent', 'eta'],
  ]
  for (const all of order) {
    // import and restore count neither slots nor bytes
    const fields = all.filter((field) => (field !== 'slots' || totals.slots > 0) && (field !== 'bytes' || state.bytesMoved > 0))
    const text = fields.filter((field) => field !== 'bar').map((field) => parts[field as keyof typeof parts]).join(' | ')
    if (!fields.includes('bar')) {
      if (text.length <= width) return text
      continue
    }
    const barWidth = Math.min(30, width - text.length - 3)
    if (barWidth < 10) continue
    const filled = Math.round((percent / 100) * barWidth)
    return `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${text}`
  }
  return parts.percent.trim()
}

export class ProgressReporter {
  private readonly started = Date.now()
  private readonly state: ProgressState = {bytesMoved: 0, elapsedMs: 0, keysMoved: 0, slotsDone: 0}
  private lastLine = 0
  private drawn = false
  /** lines of the last drawing (the map's and the bar): the next one starts that many lines up */
  private drawnLines = 0
  private stopped = false

  constructor(
    private readonly totals: ProgressTotals,
    private readonly mode: ProgressMode,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly intervalMs = 5000,
    private readonly mapLines?: MapLines,
  ) {
    if (mode === 'json') this.emit({event: 'start', keys: totals.keys, slots: totals.slots})
  }

  /** bar on a terminal, lines elsewhere; `requested` is --progress, `quiet` is --quiet. */
  static modeFor(requested: string | undefined, quiet: boolean, stream: NodeJS.WriteStream = process.stderr): ProgressMode {
    if (quiet || requested === 'none') return 'none'
    if (requested === 'json' || requested === 'lines' || requested === 'bar' || requested === 'map') return requested
    return stream.isTTY ? 'bar' : 'lines'
  }

  readonly onEvent = (event: MigrationEvent): void => {
    if (this.stopped) return
    if (event.type === 'batch') {
      this.state.keysMoved += event.keys
      this.state.bytesMoved += event.bytes
    } else if (event.type === 'slot-done') {
      this.state.slotsDone++
      // atomic migration reports its keys only when a slot is done
      if (event.unreported) this.state.keysMoved += event.keys
    } else if (event.type === 'job') {
      this.say(`atomic migration ${event.source.address} → ${event.target.address} (${event.slots} slot(s)): ${event.state}`, {event: 'job', slots: event.slots, source: event.source.address, state: event.state, target: event.target.address})
      return
    } else if (event.type === 'slot-failed') {
      // failures are reported once, grouped, when the run ends; the NDJSON stream gets each
      if (this.mode === 'json') this.emit({error: event.error, event: 'failed', slot: event.slot})
      return
    }
    this.render()
  }

  /** A message between progress lines: the bar is cleared first so nothing is written over it. */
  say(text: string, json?: Record<string, unknown>): void {
    if (this.mode === 'none') return
    if (this.mode === 'json') {
      this.emit(json ?? {event: 'message', message: text})
      return
    }
    this.clear()
    this.stream.write(`${escapeTerminal(text, colourOn())}\n`)
    this.render(true)
  }

  /** Ends the display: the bar is cleared, the final numbers follow as ordinary output. */
  stop(): void {
    if (this.stopped) return
    this.clear()
    this.stopped = true
    if (this.mode === 'json') this.emit({event: 'end', ...this.snapshot()})
  }

  private snapshot() {
    this.state.elapsedMs = Date.now() - this.started
    const {etaMs, percent, rate} = estimate(this.state, this.totals)
    return {...this.state, etaMs, keysTotal: this.totals.keys, percent, rate, slotsTotal: this.totals.slots}
  }

  private emit(record: Record<string, unknown>): void {
    this.stream.write(`${JSON.stringify({time: new Date().toISOString(), ...record})}\n`)
  }

  private clear(): void {
    if (!this.drawn) return
    if (this.mode === 'bar') this.stream.write('\r\u001B[2K')
    // up to the map's first line, then clear to the end of the screen
    if (this.mode === 'map') this.stream.write(`${this.drawnLines > 1 ? `\u001B[${this.drawnLines - 1}A` : ''}\r\u001B[J`)
    this.drawn = false
  }

  private render(force = false): void {
    if (this.stopped || this.mode === 'none') return
    const now = Date.now()
    const every = this.mode === 'bar' ? 100 : this.mode === 'map' ? 250 : this.intervalMs
    if (!force && now - this.lastLine < every) return
    this.lastLine = now
    const snapshot = this.snapshot()
    if (this.mode === 'json') {
      this.emit({event: 'progress', ...snapshot})
      return
    }
    const width = this.mode === 'bar' || this.mode === 'map' ? Math.max((this.stream.columns ?? 80) - 1, 20) : 200
    const line = progressLine(this.state, this.totals, width)
    if (this.mode === 'map') {
      const map = this.mapLines?.(width) ?? []
      // a map taller than the terminal cannot be redrawn in place: the bar alone then
      const lines = this.stream.rows && map.length + 1 >= this.stream.rows ? [line] : [...map, line]
      this.clear()
      this.stream.write(lines.map((text) => `\u001B[2K${text}`).join('\n'))
      this.drawnLines = lines.length
      this.drawn = true
    } else if (this.mode === 'bar') {
      this.stream.write(`\r\u001B[2K${line}`)
      this.drawn = true
    } else {
      this.stream.write(`progress: ${line}\n`)
    }
  }
}
