import {mkdtemp, rm, appendFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {Journal, readJournal} from '../../src/lib/journal.js'
import type {MigrationPlan} from '../../src/lib/plan/types.js'
import {RateLimiter} from '../../src/lib/throttle.js'

describe('rate limiter', () => {
  it('books time so the long-run rate equals the limit, however uneven the amounts', () => {
    let now = 0
    const limiter = new RateLimiter(1000, () => now)
    expect(limiter.reserve(500)).to.equal(0)
    expect(limiter.reserve(1500)).to.equal(500)
    now = 600
    expect(limiter.reserve(10)).to.equal(1400)
    // 2010 units booked: the last may start only at 2000 ms
  })

  it('does not bank unused time: after a pause, no burst beyond the current request', () => {
    let now = 0
    const limiter = new RateLimiter(100, () => now)
    limiter.reserve(100)
    now = 10_000
    expect(limiter.reserve(100)).to.equal(0)
    expect(limiter.reserve(100)).to.equal(1000)
  })
})

describe('journal', () => {
  let dir: string
  const plan: MigrationPlan = {createdAt: '2026-11-22T00:00:00.000Z', kind: 'reshard', moves: [1, 2, 3].map((slot) => ({slot, sourceId: 'a', targetId: 'b'})), nodes: [], version: 1}

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-journal-'))
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('records the plan, finished slots and the slot in flight; survives a torn last line', async () => {
    const file = path.join(dir, 'run.jsonl')
    const journal = Journal.create(file, plan, 'slotctl reshard x --resume run.jsonl')
    journal.slotsStarted([1, 3])
    journal.slotsDone([{keys: 10, slot: 1}, {keys: 0, slot: 3}])
    journal.slotsStarted([2])
    await appendFile(file, '{"type":"slot-do')
    const state = readJournal(file)
    expect(state.plan).to.deep.equal(plan)
    expect([...state.doneSlots]).to.deep.equal([1, 3])
    expect([...state.inFlight]).to.deep.equal([2])
    expect(state.command).to.match(/--resume/)
  })

  it('continues the same file on resume', () => {
    const file = path.join(dir, 'run.jsonl')
    Journal.reopen(file).slotsDone([{keys: 0, slot: 2}])
    expect([...readJournal(file).doneSlots].sort()).to.deep.equal([1, 2, 3])
  })

  it('rejects a file that is not a journal, as a usage error', async () => {
    const file = path.join(dir, 'other.jsonl')
    await appendFile(file, '{"hello":1}\n')
    expect(() => readJournal(file)).to.throw(/not a slotctl journal/)
    expect(() => readJournal(path.join(dir, 'missing.jsonl'))).to.throw(/cannot read journal/)
  })
})
