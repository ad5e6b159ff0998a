import {mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {appendHistory, matchesCluster, readHistory, redactArgs, type HistoryRecord} from '../../src/lib/history/audit-log.js'
import {invertPlan, planFileText, toPlanFile, validatePlanDocument} from '../../src/lib/plan/plan-file.js'
import {summarizePlan} from '../../src/lib/plan/summary.js'
import type {MigrationPlan} from '../../src/lib/plan/types.js'

const [A, B, C] = ['a', 'b', 'c'].map((letter) => letter.repeat(40))

function plan(): MigrationPlan {
  const moves = [
    ...Array.from({length: 1000}, (_, slot) => ({slot, sourceId: A, targetId: B})),
    ...[2000, 2001, 2002, 9000].map((slot) => ({slot, sourceId: A, targetId: C})),
    ...Array.from({length: 50}, (_, i) => ({slot: 16_000 + i, sourceId: C, targetId: B})),
  ]
  return {createdAt: '2026-12-01T10:00:00.000Z', kind: 'rebalance', moves, nodes: [A, B, C].map((id, i) => ({address: `10.0.0.${i + 1}:7000`, id})), version: 1}
}

describe('audit log records', () => {
  it('never hold a password, in any form it can be given', () => {
    expect(redactArgs(['h:1', '-a', 'pw1', '--password', 'pw2', '--password=pw3', '-apw4', '--from-password', 'pw5', '--from-password=pw6'])).to.deep.equal(['h:1', '-a', '***', '--password', '***', '--password=***', '-a***', '--from-password', '***', '--from-password=***'])
    expect(redactArgs(['redis://user:pw7@h:1', 'rediss://:pw8@h:2'])).to.deep.equal(['redis://user:***@h:1', 'rediss://:***@h:2'])
    expect(redactArgs(['h:1', 'CONFIG', 'SET', 'requirepass', 'pw9', 'masterauth', 'pw10'])).to.deep.equal(['h:1', 'CONFIG', 'SET', 'requirepass', '***', 'masterauth', '***'])
    expect(redactArgs(['h:1', 'AUTH', 'user', 'pw11'])).to.deep.equal(['h:1', 'AUTH', '***', '***'])
    expect(redactArgs(['h:1', 'HELLO', '3', 'AUTH', 'user', 'pw12'])).to.deep.equal(['h:1', 'HELLO', '3', 'AUTH', '***', '***'])
    expect(redactArgs(['h:1', 'ACL', 'SETUSER', 'bob', 'on', '>pw13', '#' + 'f'.repeat(64), '~*'])).to.deep.equal(['h:1', 'ACL', 'SETUSER', 'bob', 'on', '>***', '#***', '~*'])
    // words that only look like flags after -- are the command's; a password there is still masked
    expect(redactArgs(['h:1', '--', 'AUTH', 'pw14'])).to.deep.equal(['h:1', '--', 'AUTH', '***'])
    expect(redactArgs(['h:1', 'GET', 'key', '--yes'])).to.deep.equal(['h:1', 'GET', 'key', '--yes'])
  })

  it('are appended as JSON lines to a private file; a torn line is counted, never fatal; a symlink is refused', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'slotctl-history-unit-'))
    try {
      const file = path.join(dir, 'state', 'history.jsonl')
      const record: HistoryRecord = {args: ['h:1'], cluster: {id: A, masters: ['h:1', 'h:2'], seed: 'h:1'}, exitCode: 0, host: 'box', outcome: 'ok', startedAt: '2026-12-01T10:00:00.000Z', time: '2026-12-01T10:00:01.000Z', user: 'ops', verb: 'fix'}
      expect(appendHistory(record, file)).to.equal(undefined)
      expect(appendHistory({...record, verb: 'failover'}, file)).to.equal(undefined)
      expect(statSync(file).mode & 0o777).to.equal(0o600)
      writeFileSync(file, `${readFileSync(file, 'utf8')}{"torn`, {flag: 'w'})
      const read = readHistory(file)
      expect(read.records.map((entry) => entry.verb)).to.deep.equal(['fix', 'failover'])
      expect(read.unreadable).to.equal(1)
      expect(matchesCluster(record, 'h:2')).to.equal(true)
      expect(matchesCluster(record, 'aaaa')).to.equal(true)
      expect(matchesCluster(record, 'h:3')).to.equal(false)
      const link = path.join(dir, 'link.jsonl')
      symlinkSync(file, link)
      expect(appendHistory(record, link)).to.match(/symlink/)
    } finally {
      rmSync(dir, {force: true, recursive: true})
    }
  })
})

describe('plan files', () => {
  it('version 2 holds one line per source/target pair, and reads back to the same moves', () => {
    const original = plan()
    const text = planFileText(toPlanFile(original, {clusterId: A, keys: 1234}))
    // header, nodes and transfers: a line each, whatever the number of slots
    expect(text.split('\n').length).to.equal(18)
    expect(text.length * 20).to.be.below(JSON.stringify(original, null, 2).length)
    expect(text).to.include('{"sourceId":"' + A + '","targetId":"' + B + '","count":1000,"slots":"0-999"}')
    expect(text).to.include('"slots":"2000-2002,9000"')
    const {meta, plan: back} = validatePlanDocument(JSON.parse(text), 'plan.json')
    expect(back.moves).to.deep.equal(original.moves)
    expect(meta).to.deep.include({clusterId: A, keys: 1234, version: 2})
  })

  it('version 1 files are still read as they are', () => {
    const original = plan()
    const {meta, plan: back} = validatePlanDocument(JSON.parse(JSON.stringify(original)), 'old.json')
    expect(meta.version).to.equal(1)
    expect(back.moves).to.deep.equal(original.moves)
  })

  it('refuses ranges that are malformed, out of order, miscounted or overlapping, in one line naming the place', () => {
    const base = JSON.parse(planFileText(toPlanFile(plan()))) as {transfers: Array<Record<string, unknown>>}
    const withTransfer = (transfer: Record<string, unknown>) => ({...base, transfers: [transfer]})
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{count: 1, slots: '16384', sourceId: A, targetId: B}, /\/transfers\/0\/slots is not a list of slot ranges/],
      [{count: 1, slots: '1,,2', sourceId: A, targetId: B}, /\/transfers\/0\/slots is not a list of slot ranges/],
      [{count: 3, slots: '9-7', sourceId: A, targetId: B}, /\/transfers\/0\/slots: range 9-7 runs backwards/],
      [{count: 4, slots: '1-3', sourceId: A, targetId: B}, /\/transfers\/0: count is 4 but slots names 3/],
      [{count: 4, slots: '1-3,2', sourceId: A, targetId: B}, /slot 2 is moved twice/],
      [{count: 1, slots: '5', sourceId: A, targetId: A}, /moves slot 5 to its own source/],
      [{count: 1, slots: '5', sourceId: A}, /must have required property 'targetId'/],
    ]
    for (const [transfer, message] of bad) expect(() => validatePlanDocument(withTransfer(transfer), 'p.json'), JSON.stringify(transfer)).to.throw(message)
    expect(() => validatePlanDocument({...base, moves: []}, 'p.json')).to.throw(/additional properties \('moves'\)|must NOT have additional properties/)
  })

  it('invert swaps every source and target; the summary counts pairs, slots, keys and a rough time', () => {
    const original = plan()
    const inverse = invertPlan(original, new Date('2026-12-02T00:00:00.000Z'))
    expect(inverse.moves.map((move) => [move.slot, move.sourceId, move.targetId])).to.deep.equal(original.moves.map((move) => [move.slot, move.targetId, move.sourceId]))
    const summary = summarizePlan(original, {keys: 100_000, version: 2}, Date.parse('2026-12-01T12:00:00.000Z'))
    expect(summary).to.deep.include({ageMs: 2 * 3_600_000, expectedMs: 2000, keys: 100_000, slots: 1054})
    expect(summary.pairs.map((pair) => [pair.sourceAddress, pair.targetAddress, pair.slotCount])).to.deep.equal([['10.0.0.1:7000', '10.0.0.2:7000', 1000], ['10.0.0.1:7000', '10.0.0.3:7000', 4], ['10.0.0.3:7000', '10.0.0.2:7000', 50]])
  })
})
