/**
 * Key-count progress for import and restore on stderr: a bar on a terminal, a line every few
 * seconds otherwise, nothing with --json (stdout then carries only the result).
 */
import cliProgress from 'cli-progress'

import {formatDuration} from '../cli/render.js'

export type ProgressMode = 'bar' | 'lines' | 'silent'

export class KeyProgress {
  private readonly started = Date.now()
  private keys = 0
  private lastLine = 0
  private readonly bar?: cliProgress.SingleBar

  constructor(private readonly total: number, private readonly mode: ProgressMode, private readonly label = 'keys', private readonly intervalMs = 5000) {
    if (mode !== 'bar') return
    this.bar = new cliProgress.SingleBar(
      {format: `${label} {bar} {percentage}% | {value}/{total} | {rate} keys/s | ETA {eta_formatted}`, hideCursor: true, stream: process.stderr},
      cliProgress.Presets.shades_classic,
    )
    this.bar.start(Math.max(total, 1), 0, {rate: 0})
  }

  static forOutput(total: number, json: boolean, label?: string): KeyProgress {
    if (json) return new KeyProgress(total, 'silent', label)
    return new KeyProgress(total, process.stderr.isTTY ? 'bar' : 'lines', label)
  }

  readonly add = (keys: number): void => {
    this.keys += keys
    const rate = Math.round(this.keys / Math.max((Date.now() - this.started) / 1000, 0.001))
    if (this.mode === 'bar') {
      // --match or keys written meanwhile can exceed the estimate
      if (this.keys > this.total) this.bar?.setTotal(this.keys)
      this.bar?.update(this.keys, {rate})
      return
    }
    if (this.mode !== 'lines' || Date.now() - this.lastLine < this.intervalMs) return
    this.lastLine = Date.now()
    const of = this.total > 0 ? `/${this.total}` : ''
    process.stderr.write(`progress: ${this.keys}${of} ${this.label}, ${rate} keys/s, ${formatDuration(Date.now() - this.started)} elapsed\n`)
  }

  stop(): void {
    this.bar?.stop()
  }
}
