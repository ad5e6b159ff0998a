/**
 * Migration progress on stderr: a bar on a terminal, a status line every few seconds
 * otherwise, nothing at all in --json mode (stdout then carries only the final result).
 */
import cliProgress from 'cli-progress'

import type {MigrationEvent} from '../migrate/executor.js'
import {formatBytes, formatDuration} from './render.js'

export class ProgressReporter {
  private readonly started = Date.now()
  private slots = 0
  private keys = 0
  private bytes = 0
  private lastLine = 0
  private readonly bar?: cliProgress.SingleBar

  constructor(private readonly total: number, private readonly mode: 'bar' | 'lines' | 'silent', private readonly intervalMs = 5000) {
    if (mode !== 'bar') return
    this.bar = new cliProgress.SingleBar(
      {format: 'slots {bar} {value}/{total} | {keys} keys | {rate} keys/s | {mbps} | ETA {eta_formatted}', hideCursor: true, stream: process.stderr},
      cliProgress.Presets.shades_classic,
    )
    this.bar.start(total, 0, this.payload())
  }

  static forOutput(total: number, json: boolean): ProgressReporter {
    if (json) return new ProgressReporter(total, 'silent')
    return new ProgressReporter(total, process.stderr.isTTY ? 'bar' : 'lines')
  }

  readonly onEvent = (event: MigrationEvent): void => {
    if (event.type === 'batch') {
      this.keys += event.keys
      this.bytes += event.bytes
    } else if (event.type === 'slot-done') {
      this.slots++
    } else if (event.type === 'slot-failed' && this.mode !== 'silent') {
      this.bar?.stop()
      process.stderr.write(`slot ${event.slot} failed: ${event.error}\n`)
    }
    this.render()
  }

  stop(): void {
    this.bar?.stop()
  }

  private payload() {
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001)
    return {keys: this.keys, mbps: `${formatBytes(Math.round(this.bytes / seconds))}/s`, rate: Math.round(this.keys / seconds)}
  }

  private render(): void {
    if (this.mode === 'bar') {
      this.bar?.update(this.slots, this.payload())
      return
    }
    if (this.mode !== 'lines' || Date.now() - this.lastLine < this.intervalMs) return
    this.lastLine = Date.now()
    const p = this.payload()
    process.stderr.write(`progress: ${this.slots}/${this.total} slots, ${this.keys} keys, ${p.rate} keys/s, ${p.mbps}, ${formatDuration(Date.now() - this.started)} elapsed\n`)
  }
}
