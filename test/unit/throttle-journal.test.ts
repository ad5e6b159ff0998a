import {mkdtemp, rm, appendFile, mkdir, utimes} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {Journal, findJournalFor, readJournal} from '../../src/lib/migrate/journal.js'
import type {MigrationPlan} from '../../src/lib/plan/types.js'
import {RateLimiter} from '../../src/lib/migrate/throttle.js'

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

describe('journal discovery (fix without --journal)', () => {
  const planFor = (slots: number[], source = 'a', target = 'b'): MigrationPlan => ({createdAt: '2026-11-22T00:00:00.000Z', kind: 'reshard', moves: slots.map((slot) => ({slot, sourceId: source, targetId: target})), nodes: [], version: 1})
  let dir: string

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-discovery-'))
    await mkdir(dir, {recursive: true})
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('finds the newest recent journal with one of the open slots in flight between known nodes', async () => {
    const old = Journal.create(path.join(dir, 'old.jsonl'), planFor([5]))
    old.slotsStarted([5])
    const eightDaysAgo = (Date.now() - 8 * 24 * 3600 * 1000) / 1000
    await utimes(old.path, eightDaysAgo, eightDaysAgo)
    const finished = Journal.create(path.join(dir, 'finished.jsonl'), planFor([5]))
    finished.slotsStarted([5])
    finished.slotsDone([{keys: 1, slot: 5}])
    const elsewhere = Journal.create(path.join(dir, 'elsewhere.jsonl'), planFor([5], 'x', 'y'))
    elsewhere.slotsStarted([5])
    const wanted = Journal.create(path.join(dir, 'wanted.jsonl'), planFor([5, 6]))
    wanted.slotsStarted([5, 6])
    wanted.slotsDone([{keys: 0, slot: 6}])

    const found = findJournalFor(new Set([5]), new Set(['a', 'b']), dir)
    expect(found?.path).to.equal(wanted.path)
    expect(findJournalFor(new Set([6]), new Set(['a', 'b']), dir), 'slot 6 finished everywhere').to.equal(undefined)
    expect(findJournalFor(new Set([5]), new Set(['a', 'b']), path.join(dir, 'missing'))).to.equal(undefined)
    // without it: the older journal is too old, the finished one has nothing in flight, the other names other nodes
    await rm(wanted.path)
    expect(findJournalFor(new Set([5]), new Set(['a', 'b']), dir)).to.equal(undefined)
    expect(findJournalFor(new Set([5]), new Set(['a', 'b']), dir, Date.now() - 2 * 24 * 3600 * 1000)?.path, 'two days ago the old one was recent').to.equal(old.path)
  })
})
