/**
 * The migration engine's decisions, against a fake mover (no server): which slots go in
 * which wave and when, how failures are reported, what a resume skips or only closes, and
 * what Ctrl-C (the abort signal) finishes and leaves. The real movers are tested against
 * real servers in test/integration/.
 */
import {expect} from 'chai'

import type {ClusterSnapshot} from '../../src/lib/cluster/loader.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {SlotctlError} from '../../src/lib/core/errors.js'
import {type MigrationEvent, executePlan} from '../../src/lib/migrate/executor.js'
import type {SlotMover, WaveReport, WaveRequest} from '../../src/lib/migrate/mover.js'
import {disagreements, refuseStalePlan} from '../../src/lib/migrate/run.js'
import type {MigrationPlan, SlotMove} from '../../src/lib/plan/types.js'
import {A, B, C, healthy} from '../fixtures/cluster-nodes.js'

const ADDRESSES = new Map([
  [A, '10.0.0.1:7000'],
  [B, '10.0.0.2:7001'],
  [C, '10.0.0.3:7002'],
])
const MASTERS = [...ADDRESSES].map(([id, address]) => ({address, id}))

function planOf(moves: SlotMove[]): MigrationPlan {
  return {createdAt: '2026-01-01T00:00:00.000Z', kind: 'reshard', moves, nodes: MASTERS.map(({address, id}) => ({address, id})), version: 1}
}

function moves(sourceId: string, targetId: string, slots: number[]): SlotMove[] {
  return slots.map((slot) => ({slot, sourceId, targetId}))
}

const range = (start: number, count: number) => Array.from({length: count}, (_, index) => start + index)

interface FakeOptions {
  waveSize?: number
  /** a slot whose move fails: with an Error, it is reported failed; with 'throw', its whole wave throws */
  fail?: Map<number, Error | 'throw'>
  /** called when a wave starts (before its first await) */
  onWave?: (wave: WaveRequest) => void
  keysPerSlot?: number
  fewerAtTarget?: (slot: number) => number | undefined
  held?: number
}

/** Moves every slot of a wave after a tick, keeping track of what was in flight at once. */
class FakeMover implements SlotMover {
  readonly protocol = 'fake'
  readonly waves: WaveRequest[] = []
  /** per node: the most waves in flight at once, as source or target */
  readonly peak = new Map<string, number>()
  /** a node that was a source and a target at the same time (must never happen) */
  readonly bothWays: string[] = []
  private readonly asSource = new Map<string, number>()
  private readonly asTarget = new Map<string, number>()
  private inFlight = 0
  maxInFlight = 0

  constructor(private readonly options: FakeOptions = {}) {}

  waveSize(): number {
    return this.options.waveSize ?? 4
  }

  async moveWave(wave: WaveRequest): Promise<WaveReport> {
    this.waves.push(wave)
    this.options.onWave?.(wave)
    const {source, target} = wave.moves[0]
    this.enter(source.id, target.id, 1)
    try {
      await new Promise((resolve) => setTimeout(resolve, 2))
      if (wave.moves.some((move) => this.options.fail?.get(move.slot) === 'throw')) throw new Error(`${source.address} is unreachable`)
      const report: WaveReport = {cancelled: [], closed: [], failed: [], fewerAtTarget: []}
      for (const {slot} of wave.moves) {
        const error = this.options.fail?.get(slot)
        if (error instanceof Error) {
          report.failed.push({error, slot})
          continue
        }
        const keys = this.options.keysPerSlot ?? 10
        report.closed.push({bytes: keys * 100, keys, slot})
        const atTarget = this.options.fewerAtTarget?.(slot)
        if (atTarget !== undefined) report.fewerAtTarget.push({atTarget, moved: keys, slot})
      }
      if (this.options.held !== undefined) report.held = {acks: this.options.held, target: target.address}
      return report
    } finally {
      this.enter(source.id, target.id, -1)
    }
  }

  private enter(sourceId: string, targetId: string, delta: number): void {
    this.inFlight += delta
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
    this.asSource.set(sourceId, (this.asSource.get(sourceId) ?? 0) + delta)
    this.asTarget.set(targetId, (this.asTarget.get(targetId) ?? 0) + delta)
    for (const id of [sourceId, targetId]) {
      const load = (this.asSource.get(id) ?? 0) + (this.asTarget.get(id) ?? 0)
      this.peak.set(id, Math.max(this.peak.get(id) ?? 0, load))
      if ((this.asSource.get(id) ?? 0) > 0 && (this.asTarget.get(id) ?? 0) > 0) this.bothWays.push(id)
    }
  }
}

class FakeJournal {
  readonly lines: string[] = []
  slotsStarted(slots: readonly number[]): void {
    this.lines.push(`start ${slots.join(',')}`)
  }

  slotsDone(done: ReadonlyArray<{slot: number}>): void {
    if (done.length > 0) this.lines.push(`done ${done.map((entry) => entry.slot).join(',')}`)
  }
}

function run(mover: SlotMover, plan: MigrationPlan, extra: Partial<Parameters<typeof executePlan>[2]> = {}) {
  return executePlan(mover, plan, {addresses: ADDRESSES, parallel: 4, perNodeLimit: 2, ...extra})
}

describe('engine: executePlan against a fake mover', () => {
  describe('waves', () => {
    it('cuts each source/target pair into waves of the mover\'s size, in plan order, and moves every slot once', async () => {
      const mover = new FakeMover({waveSize: 4})
      const result = await run(mover, planOf(moves(A, B, range(0, 10))))
      expect(mover.waves.map((wave) => wave.moves.map((move) => move.slot))).to.deep.equal([range(0, 4), range(4, 4), range(8, 2)])
      expect(result).to.include({interrupted: false, keysMoved: 100, slotsMoved: 10, slotsPlanned: 10})
      expect(result.failures).to.deep.equal([])
    })

    it('a wave carries the live address of its source and target', async () => {
      const mover = new FakeMover()
      await run(mover, planOf(moves(A, B, [1])))
      const [wave] = mover.waves
      expect(wave.moves[0]).to.deep.equal({slot: 1, source: {address: '10.0.0.1:7000', id: A}, target: {address: '10.0.0.2:7001', id: B}})
    })

    it('never lets a node be a source and a target at once, and keeps within the per-node and overall limits', async () => {
      const mover = new FakeMover({waveSize: 2})
      const plan = planOf([...moves(A, B, range(0, 8)), ...moves(B, C, range(100, 8)), ...moves(C, A, range(200, 8))])
      const result = await run(mover, plan, {parallel: 3, perNodeLimit: 2})
      expect(result.slotsMoved).to.equal(24)
      expect(mover.bothWays).to.deep.equal([])
      expect(mover.maxInFlight).to.be.at.most(3)
      for (const [id, peak] of mover.peak) expect(peak, id).to.be.at.most(2)
    })

    it('moves waves of different pairs at the same time (parallel > 1)', async () => {
      const mover = new FakeMover({waveSize: 1})
      const D = 'd'.padEnd(40, 'd')
      const addresses = new Map([...ADDRESSES, [D, '10.0.0.4:7003']])
      const result = await executePlan(mover, planOf([...moves(A, B, [1, 2]), ...moves(C, D, [3, 4])]), {addresses, parallel: 4, perNodeLimit: 1})
      expect(result.slotsMoved).to.equal(4)
      expect(mover.maxInFlight).to.equal(2)
    })

    it('journals each wave as started before it moves and done after, and reports progress events', async () => {
      const journal = new FakeJournal()
      const events: MigrationEvent[] = []
      await run(new FakeMover({waveSize: 2}), planOf(moves(A, B, [5, 6, 7])), {journal, onEvent: (event) => events.push(event), parallel: 1})
      expect(journal.lines).to.deep.equal(['start 5,6', 'done 5,6', 'start 7', 'done 7'])
      expect(events.map((event) => `${event.type} ${'slot' in event ? event.slot : ''}`)).to.deep.equal(['slot-start 5', 'slot-start 6', 'slot-done 5', 'slot-done 6', 'slot-start 7', 'slot-done 7'])
    })
  })

  describe('failures', () => {
    it('a failed slot is reported with its code and stops new waves; the rest of its wave still closes', async () => {
      const journal = new FakeJournal()
      const events: MigrationEvent[] = []
      const mover = new FakeMover({fail: new Map([[1, new SlotctlError('slot 1: BUSYKEY', {code: 'E_BUSYKEY'})]]), waveSize: 2})
      const result = await run(mover, planOf(moves(A, B, range(0, 10))), {journal, onEvent: (event) => events.push(event), parallel: 1})
      expect(result.failures).to.deep.equal([{code: 'E_BUSYKEY', error: 'slot 1: BUSYKEY', slot: 1}])
      expect(result.slotsMoved).to.equal(1)
      expect(mover.waves).to.have.length(1)
      expect(journal.lines).to.deep.equal(['start 0,1', 'done 0'])
      expect(events.filter((event) => event.type === 'slot-failed')).to.deep.equal([{error: 'slot 1: BUSYKEY', slot: 1, type: 'slot-failed'}])
      expect(result.interrupted).to.equal(false)
    })

    it('an error that is not slotctl\'s is E_MIGRATION; a wave that throws fails every slot of it', async () => {
      const mover = new FakeMover({fail: new Map<number, Error | 'throw'>([[2, 'throw']]), waveSize: 3})
      const result = await run(mover, planOf(moves(A, B, range(0, 3))), {parallel: 1})
      expect(result.failures.map((failure) => [failure.slot, failure.code, failure.error])).to.deep.equal([
        [0, 'E_MIGRATION', '10.0.0.1:7000 is unreachable'],
        [1, 'E_MIGRATION', '10.0.0.1:7000 is unreachable'],
        [2, 'E_MIGRATION', '10.0.0.1:7000 is unreachable'],
      ])
      expect(result.slotsMoved).to.equal(0)
    })

    it('a wave of another pair in flight when a slot fails still finishes; no wave starts after', async () => {
      const D = 'd'.padEnd(40, 'd')
      const addresses = new Map([...ADDRESSES, [D, '10.0.0.4:7003']])
      const mover = new FakeMover({fail: new Map([[0, new Error('refused')]]), waveSize: 1})
      const result = await executePlan(mover, planOf([...moves(A, B, [0, 1, 2]), ...moves(C, D, [10, 11])]), {addresses, parallel: 4, perNodeLimit: 1})
      expect(mover.waves.map((wave) => wave.moves[0].slot)).to.deep.equal([0, 10])
      expect(result.failures.map((failure) => [failure.slot, failure.code])).to.deep.equal([[0, 'E_MIGRATION']])
      expect(result.slotsMoved).to.equal(1)
    })

    it('fewer keys at the target than moved is one warning for the run; held is the fewest acks per target', async () => {
      const mover = new FakeMover({fewerAtTarget: (slot) => (slot < 2 ? 7 : undefined), held: 1, waveSize: 2})
      const result = await run(mover, planOf(moves(A, B, range(0, 4))), {parallel: 1})
      expect(result.warnings).to.have.length(1)
      expect(result.warnings[0].code).to.equal('FEWER_KEYS_AT_TARGET')
      expect(result.warnings[0].message).to.match(/^2 slot\(s\) held 6 key\(s\) fewer/)
      expect([...result.held]).to.deep.equal([['10.0.0.2:7001', 1]])
    })
  })

  describe('resume', () => {
    it('skips done slots, only closes those the target owns already, and passes the open ones as open', async () => {
      const mover = new FakeMover({waveSize: 10})
      const result = await run(mover, planOf(moves(A, B, range(0, 6))), {closeOnlySlots: new Set([3]), openSlots: new Set([4]), skipSlots: new Set([0, 1])})
      expect(mover.waves.map((wave) => wave.moves.map((move) => move.slot))).to.deep.equal([[2, 3, 4, 5]])
      expect([...mover.waves[0].closeOnly]).to.deep.equal([3])
      expect([...mover.waves[0].alreadyOpen]).to.deep.equal([4])
      expect(result).to.include({slotsFinished: 1, slotsMoved: 3, slotsPlanned: 6})
    })

    it('a resume with every slot done moves nothing', async () => {
      const mover = new FakeMover()
      const result = await run(mover, planOf(moves(A, B, [1, 2])), {skipSlots: new Set([1, 2])})
      expect(mover.waves).to.deep.equal([])
      expect(result).to.include({interrupted: false, slotsMoved: 0})
    })
  })

  describe('Ctrl-C (the abort signal)', () => {
    it('finishes the waves in flight, starts no other, and reports the run interrupted', async () => {
      const stop = new AbortController()
      const journal = new FakeJournal()
      const mover = new FakeMover({onWave: () => stop.abort(), waveSize: 2})
      const result = await run(mover, planOf(moves(A, B, range(0, 8))), {journal, parallel: 1, signal: stop.signal})
      expect(mover.waves).to.have.length(1)
      expect(result).to.include({interrupted: true, slotsMoved: 2})
      expect(result.failures).to.deep.equal([])
      // no slot left started and not done
      expect(journal.lines).to.deep.equal(['start 0,1', 'done 0,1'])
    })

    it('a stop after the last wave started is not an interruption: everything moved', async () => {
      const stop = new AbortController()
      const mover = new FakeMover({onWave: (wave) => wave.moves.some((move) => move.slot === 3) && stop.abort(), waveSize: 2})
      const result = await run(mover, planOf(moves(A, B, range(0, 4))), {parallel: 1, signal: stop.signal})
      expect(result).to.include({interrupted: false, slotsMoved: 4})
    })

    it('a signal aborted before the run moves nothing', async () => {
      const stop = new AbortController()
      stop.abort()
      const mover = new FakeMover()
      const result = await run(mover, planOf(moves(A, B, [1])), {signal: stop.signal})
      expect(mover.waves).to.deep.equal([])
      expect(result.interrupted).to.equal(true)
    })
  })
})

describe('engine: the plan against the cluster (run.ts)', () => {
  const nodes = parseClusterNodes(healthy.trim())
  const snapshot = {nodes, seedAddress: '10.0.0.1:7000', seedId: A, views: {}} as unknown as ClusterSnapshot

  it('a plan whose sources still own their slots holds', () => {
    expect([...refuseStalePlan(snapshot, planOf(moves(A, B, [0, 1])))]).to.deep.equal([])
  })

  it('a plan whose source no longer owns a slot is refused as stale (E_STALE_PLAN)', () => {
    expect(() => refuseStalePlan(snapshot, planOf(moves(B, C, [0, 1])))).to.throw(SlotctlError, /slot\(s\) 0-1 no longer belong to their planned source/)
  })

  it('on resume, a slot its target owns already is only to be closed; done slots are not looked at', () => {
    const resume = {doneSlots: new Set([2])} as unknown as Parameters<typeof refuseStalePlan>[2]
    const closeOnly = refuseStalePlan(snapshot, planOf([...moves(B, A, [0]), ...moves(C, B, [2])]), resume)
    expect([...closeOnly]).to.deep.equal([0])
  })

  it('after a run, a reachable view that gives a moved slot to another node is a disagreement', () => {
    const views = {
      [A]: {address: '10.0.0.1:7000', nodes, reachable: true},
      [B]: {address: '10.0.0.2:7001', nodes: undefined, reachable: false},
    }
    const withViews = {...snapshot, views} as unknown as ClusterSnapshot
    expect(disagreements(withViews, moves(A, A, [0]))).to.deep.equal([])
    expect(disagreements(withViews, moves(A, B, [0]))).to.deep.equal([{address: '10.0.0.1:7000', owner: A.slice(0, 8), slot: 0}])
  })
})
