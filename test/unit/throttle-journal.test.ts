import {appendFile, mkdir, mkdtemp, rm, stat, utimes, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {SlotctlError} from '../../src/lib/core/errors.js'
import {Journal, findJournalFor, readJournal} from '../../src/lib/migrate/journal.js'
import {targetReplicas} from '../../src/lib/migrate/run.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {readPlanFile} from '../../src/lib/plan/plan-file.js'
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

  it('banks unused time up to one second: a stall is caught up, but never with more than a second of the rate', () => {
    let now = 0
    const limiter = new RateLimiter(100, () => now)
    limiter.reserve(100)
    // a long pause: one second of catching up (100 units) goes at once, then the schedule holds
    now = 10_000
    expect(limiter.reserve(100)).to.equal(0)
    expect(limiter.reserve(100)).to.equal(0)
    expect(limiter.reserve(100)).to.equal(1000)
    // a short gap (slots closing) is made up in full: the average over the run holds the rate
    let t = 0
    const paced = new RateLimiter(1000, () => t)
    let moved = 0
    for (let i = 0; i < 100; i++) {
      if (i % 10 === 5) t += 50
      t += paced.reserve(10)
      moved += 10
    }
    // the last batch starts at about 990 ms: the rate over the run stays the limit
    expect((moved - 10) / (t / 1000)).to.be.within(1000 * 0.97, 1000 * 1.03)
  })
})

describe('journal', () => {
  let dir: string
  const plan: MigrationPlan = {createdAt: '2026-11-22T00:00:00.000Z', kind: 'reshard', moves: [1, 2, 3].map((slot) => ({slot, sourceId: 'a'.repeat(40), targetId: 'b'.repeat(40)})), nodes: [], version: 1}

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-journal-'))
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('records the plan, finished slots and the slot in flight; survives a torn last line', async () => {
    const file = path.join(dir, 'run.jsonl')
    const journal = Journal.create(file, plan, {command: 'slotctl reshard x --resume run.jsonl'})
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
    expect(() => readJournal(file)).to.throw(/other.jsonl line 1 is not a valid slotctl journal line/)
    expect(() => readJournal(path.join(dir, 'missing.jsonl'))).to.throw(/cannot read journal/)
  })
})

describe('journal discovery (fix without --journal)', () => {
  const id = (letter: string) => letter.repeat(40)
  const planFor = (slots: number[], source = id('a'), target = id('b')): MigrationPlan => ({createdAt: '2026-11-22T00:00:00.000Z', kind: 'reshard', moves: slots.map((slot) => ({slot, sourceId: source, targetId: target})), nodes: [], version: 1})
  let dir: string

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-discovery-'))
    await mkdir(dir, {recursive: true})
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('keeps each target\'s replicas, and is found for a slot its failed target still owns only when it has them', async () => {
    const snapshot = {nodes: parseClusterNodes([
      `${id('a')} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-99`,
      `${id('b')} 10.0.0.2:7000@17000 master - 0 0 2 connected 100-199`,
      `${id('e')} 10.0.0.3:7000@17000 slave ${id('b')} 0 0 2 connected`,
      `${id('f')} 10.0.0.4:7000@17000 slave ${id('a')} 0 0 1 connected`,
    ].join('\n'))}
    const plan = planFor([7, 8])
    expect(targetReplicas(snapshot, plan)).to.deep.equal({[id('b')]: [id('e')]})
    const recorded = Journal.create(path.join(dir, 'recorded.jsonl'), plan, {replicas: targetReplicas(snapshot, plan)})
    recorded.slotsStarted([7, 8])
    recorded.slotsDone([{keys: 3, slot: 7}, {keys: 2, slot: 8}])
    expect(readJournal(recorded.path).replicas).to.deep.equal({[id('b')]: [id('e')]})
    const nodeIds = new Set([id('a'), id('b')])
    const found = findJournalFor({deadOwners: new Map([[8, id('b')]]), nodeIds, openSlots: new Set()}, dir)
    expect(found?.path).to.equal(recorded.path)
    // another failed master owning the slot, or no replicas recorded: not this run's business
    expect(findJournalFor({deadOwners: new Map([[8, id('a')]]), nodeIds, openSlots: new Set()}, dir)).to.equal(undefined)
    await rm(recorded.path)
    const older = Journal.create(path.join(dir, 'older.jsonl'), plan)
    older.slotsStarted([8])
    expect(readJournal(older.path).replicas).to.equal(undefined)
    expect(findJournalFor({deadOwners: new Map([[8, id('b')]]), nodeIds, openSlots: new Set()}, dir)).to.equal(undefined)
    await rm(older.path)
  })

  it('finds the newest recent journal with one of the open slots in flight between known nodes', async () => {
    const old = Journal.create(path.join(dir, 'old.jsonl'), planFor([5]))
    old.slotsStarted([5])
    const eightDaysAgo = (Date.now() - 8 * 24 * 3600 * 1000) / 1000
    await utimes(old.path, eightDaysAgo, eightDaysAgo)
    const finished = Journal.create(path.join(dir, 'finished.jsonl'), planFor([5]))
    finished.slotsStarted([5])
    finished.slotsDone([{keys: 1, slot: 5}])
    const elsewhere = Journal.create(path.join(dir, 'elsewhere.jsonl'), planFor([5], id('c'), id('d')))
    elsewhere.slotsStarted([5])
    const wanted = Journal.create(path.join(dir, 'wanted.jsonl'), planFor([5, 6]))
    wanted.slotsStarted([5, 6])
    wanted.slotsDone([{keys: 0, slot: 6}])

    const found = findJournalFor({nodeIds: new Set([id('a'), id('b')]), openSlots: new Set([5])}, dir)
    expect(found?.path).to.equal(wanted.path)
    expect(findJournalFor({nodeIds: new Set([id('a'), id('b')]), openSlots: new Set([6])}, dir), 'slot 6 finished everywhere').to.equal(undefined)
    expect(findJournalFor({nodeIds: new Set([id('a'), id('b')]), openSlots: new Set([5])}, path.join(dir, 'missing'))).to.equal(undefined)
    // without it: the older journal is too old, the finished one has nothing in flight, the other names other nodes
    await rm(wanted.path)
    expect(findJournalFor({nodeIds: new Set([id('a'), id('b')]), openSlots: new Set([5])}, dir)).to.equal(undefined)
    expect(findJournalFor({nodeIds: new Set([id('a'), id('b')]), openSlots: new Set([5])}, dir, Date.now() - 2 * 24 * 3600 * 1000)?.path, 'two days ago the old one was recent').to.equal(old.path)
  })
})

describe('plan and journal files: schema first, one line naming the field', () => {
  const id = (letter: string) => letter.repeat(40)
  const good = {createdAt: '2026-11-30T00:00:00.000Z', kind: 'reshard', moves: [{slot: 5, sourceId: id('a'), targetId: id('b')}], nodes: [{address: '10.0.0.1:7000', id: id('a')}], version: 1}
  let dir: string

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-planfile-'))
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  const cases: Array<[string, unknown, RegExp]> = [
    ['no nodes', {...good, nodes: undefined}, /\(top level\) must have required property 'nodes'/],
    ['a null move', {...good, moves: [null]}, /\/moves\/0 must be object/],
    ['moves not an array', {...good, moves: {slot: 1}}, /\/moves must be array/],
    ['a slot out of range', {...good, moves: [{slot: 16_384, sourceId: id('a'), targetId: id('b')}]}, /\/moves\/0\/slot must be <= 16383/],
    ['a node id that is not one', {...good, moves: [{slot: 1, sourceId: 'abc', targetId: id('b')}]}, /\/moves\/0\/sourceId must match pattern/],
    ['an unknown field', {...good, extra: 1}, /must NOT have additional properties \('extra'\)/],
    ['a slot moved twice', {...good, moves: [good.moves[0], good.moves[0]]}, /\/moves\/1\/slot 5 is moved twice/],
    ['a slot moved to its own source', {...good, moves: [{slot: 1, sourceId: id('a'), targetId: id('a')}]}, /moves slot 1 to its own source/],
    ['another kind', {...good, kind: 'teleport'}, /\/kind must be equal to one of the allowed values \(drain, fix, rebalance, reshard\)/],
  ]
  for (const [what, value, message] of cases) {
    it(`refuses a plan with ${what}`, async () => {
      const file = path.join(dir, 'plan.json')
      await writeFile(file, JSON.stringify(value))
      expect(() => readPlanFile(file)).to.throw(SlotctlError, message).with.property('exitCode', 2)
    })
  }

  it('accepts a good plan, and refuses a file that is not JSON', async () => {
    const file = path.join(dir, 'good.json')
    await writeFile(file, JSON.stringify(good))
    expect(readPlanFile(file).moves).to.deep.equal(good.moves)
    await writeFile(file, '{"version": 1,')
    expect(() => readPlanFile(file)).to.throw(/good.json is not JSON/)
  })

  it('refuses journals with non-array moves, a broken middle line, two plans, or a slot outside the plan', async () => {
    const file = path.join(dir, 'j.jsonl')
    const planLine = JSON.stringify({plan: good, type: 'plan'})
    const write = (lines: string[]) => writeFile(file, `${lines.join('\n')}\n`)
    await write([JSON.stringify({plan: {...good, moves: {}}, type: 'plan'})])
    expect(() => readJournal(file)).to.throw(/line 1 is not a valid slotctl journal line: \/plan\/moves must be array/)
    await write([planLine, '{"type":"slot-st', JSON.stringify({slot: 5, type: 'slot-start'})])
    expect(() => readJournal(file)).to.throw(/line 2 is not JSON/)
    await write([planLine, planLine])
    expect(() => readJournal(file)).to.throw(/a second plan line/)
    await write([planLine, JSON.stringify({slot: 6, type: 'slot-start'})])
    expect(() => readJournal(file)).to.throw(/slot 6 is journaled but not in its plan/)
    await write([planLine, JSON.stringify({keys: -1, slot: 5, type: 'slot-done'})])
    expect(() => readJournal(file)).to.throw(/\/keys must be >= 0/)
  })

  it('creates a journal only where none exists, private to the user, and fails at once where it cannot', async () => {
    const file = path.join(dir, 'private', 'run.jsonl')
    Journal.create(file, good as MigrationPlan)
    expect((await stat(file)).mode & 0o777).to.equal(0o600)
    expect((await stat(path.dirname(file))).mode & 0o777).to.equal(0o700)
    expect(() => Journal.create(file, good as MigrationPlan)).to.throw(/already exists: give a new path, or continue that run with --resume/)
    // a regular file where the directory should be (permissions do not stop root)
    expect(() => Journal.create(path.join(file, 'run.jsonl'), good as MigrationPlan)).to.throw(/cannot create journal '.*run.jsonl\/run.jsonl'/)
  })
})
