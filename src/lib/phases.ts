/**
 * Where a run's time goes, phase by phase, so that a regression shows where it is
 * (`--verbose`, `phasesMs` in `--json`, and the benchmarks). Start-up is measured from the
 * process's own start (performance.timeOrigin), so it includes Node and module loading.
 */
import {performance} from 'node:perf_hooks'

export const PHASES = ['startup', 'load', 'settle', 'lock', 'preflight', 'confirm', 'moving', 'verification'] as const
export type Phase = (typeof PHASES)[number]
export type PhaseTimes = Partial<Record<Phase, number>>

export class PhaseClock {
  private readonly spent = new Map<Phase, number>()

  /** Start-up ends when the command begins its own work. */
  markStartup(): void {
    this.spent.set('startup', performance.now())
  }

  async time<T>(phase: Phase, work: () => Promise<T>): Promise<T> {
    const started = performance.now()
    try {
      return await work()
    } finally {
      this.add(phase, performance.now() - started)
    }
  }

  add(phase: Phase, ms: number): void {
    this.spent.set(phase, (this.spent.get(phase) ?? 0) + ms)
  }

  /** Whole milliseconds, in the order phases happen; phases that did not run are left out. */
  times(): PhaseTimes {
    const out: PhaseTimes = {}
    for (const phase of PHASES) if (this.spent.has(phase)) out[phase] = Math.round(this.spent.get(phase)!)
    return out
  }
}
