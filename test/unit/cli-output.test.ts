import {expect} from 'chai'

import {formatDurationFlag, parseDuration} from '../../src/lib/cli/duration.js'
import {applyColour, displayWidth, fitList, hangingWrap, renderIssues, table, wrapLine} from '../../src/lib/cli/render.js'
import {byAddress, byFirstSlot, slotSet} from '../../src/lib/core/result.js'
import {closestCommand, editDistance} from '../../src/hooks/command-not-found.js'
import {printable} from '../../src/commands/call.js'

describe('durations on the command line', () => {
  it("accepts units everywhere and keeps a plain number in the flag's own unit", () => {
    expect(parseDuration('500ms', 's')).to.equal(500)
    expect(parseDuration('30s', 'ms')).to.equal(30_000)
    expect(parseDuration('5m', 'ms')).to.equal(300_000)
    expect(parseDuration('1h', 's')).to.equal(3_600_000)
    expect(parseDuration('1m30s', 's')).to.equal(90_000)
    expect(parseDuration('1.5s', 's')).to.equal(1500)
    expect(parseDuration('30', 's')).to.equal(30_000)
    expect(parseDuration('3000', 'ms')).to.equal(3000)
    for (const bad of ['', 'abc', '-5s', '5x', 's', '5 s s']) expect(parseDuration(bad, 's'), bad).to.equal(undefined)
    expect(formatDurationFlag(60_000)).to.equal('1m')
    expect(formatDurationFlag(30_000)).to.equal('30s')
    expect(formatDurationFlag(1500)).to.equal('1500ms')
  })
})

describe('tables', () => {
  before(() => applyColour(false))

  const rows = Array.from({length: 12}, (_, i) => [`127.0.0.1:${7000 + i}`, 'abcdef12', 1365, `${i * 1365}-${i * 1365 + 1364},16000-16010,16020-16030,16040-16050`, 123_456, 1, '2.1 MiB'])
  const head = ['master', 'id', 'slots', 'ranges', 'keys', 'replicas', 'memory']

  it('fit the given width by wrapping the widest column, and rule off the header without colour', () => {
    const text = table(head, rows, {width: 80})
    const lines = text.split('\n')
    for (const line of lines) expect(displayWidth(line), line).to.be.at.most(80)
    expect(lines[2]).to.match(/^├─+┼/)
    expect(lines[1]).to.match(/│ master\s+│ id/)
    // nothing is lost: every range is still there, wrapped
    expect(text.replaceAll(/[│ \n]/g, '')).to.include('16040-16050')
    const wide = table(head, rows, {width: 400}).split('\n')
    expect(Math.max(...wide.map((line) => displayWidth(line)))).to.be.greaterThan(80)
  })

  it('put multi-line cells on several lines and drop the CR of INFO-style replies', () => {
    const text = table(['node', 'reply'], [['127.0.0.1:7000', printable('cluster_state:ok\r\ncluster_slots_assigned:16384\r\n')]])
    expect(text).to.not.include('\r')
    expect(text).to.match(/│ 127\.0\.0\.1:7000 │ cluster_state:ok\s+│\n│\s+│ cluster_slots_assigned:16384 │/)
  })

  it('at 80 columns never split an address or an id across lines, even when the table cannot fit', () => {
    const addresses = Array.from({length: 6}, (_, i) => `[2001:db8:aaaa:bbbb::${i + 1}]:${17_000 + i}`)
    const ids = addresses.map((_, i) => String(i).repeat(40))
    const wideRows = addresses.map((address, i) => ['replica', address, ids[i], '0-100,200-300,400-500', addresses[(i + 1) % 6]])
    for (const width of [80, 60]) {
      const lines = table(['role', 'address', 'id', 'slots', 'replicates'], wideRows, {width}).split('\n')
      for (const word of [...addresses, ...ids]) expect(lines.some((line) => line.includes(word)), `${word} whole at ${width}`).to.equal(true)
    }
    // the info table at 80 columns: addresses, ids and each range stay whole
    const lines = table(head, rows, {width: 80}).split('\n')
    for (const row of rows) expect(lines.some((line) => line.includes(String(row[0]))), String(row[0])).to.equal(true)
    expect(lines.join('\n')).to.not.match(/[│ ]-\d/)
  })

  it('wrap hints at word boundaries under a hanging indent, never inside an address or an id', () => {
    const id = 'f'.repeat(40)
    const hint = `add a replica on another host (slotctl add-node NEW_HOST:PORT 127.0.0.1:16001 --replica --master-id ${id}), then slotctl del-node 127.0.0.1:16001 ${id}`
    const lines = hangingWrap('    hint: ', hint, 10, 80)
    expect(lines.length).to.be.greaterThan(1)
    for (const line of lines) expect(displayWidth(line), line).to.be.at.most(80)
    expect(lines[0].startsWith('    hint: add a replica')).to.equal(true)
    for (const line of lines.slice(1)) expect(line).to.match(/^ {10}\S/)
    expect(lines.map((line) => line.trim()).join(' ')).to.equal(`hint: ${hint}`)
    expect(lines.filter((line) => line.includes(id))).to.have.length(2)
    expect(lines.filter((line) => line.includes('127.0.0.1:16001'))).to.have.length(2)
    // no width (not a terminal, no COLUMNS): one line, as before
    expect(hangingWrap('    hint: ', hint, 10, undefined)).to.deep.equal([`    hint: ${hint}`])
  })

  it('wrap at spaces or commas, and shorten long lists with "and N more"', () => {
    expect(wrapLine('0-5,7-9,11-20', 6)).to.deep.equal(['0-5,', '7-9,', '11-20'])
    expect(wrapLine('link up, lag 0 bytes', 10)).to.deep.equal(['link up,', 'lag 0', 'bytes'])
    // a slot range breaks after its hyphen only when nothing else can; other words never do
    expect(wrapLine('15015-16379', 7)).to.deep.equal(['15015-', '16379'])
    expect(wrapLine('on redis-1:6379', 13)).to.deep.equal(['on', 'redis-1:6379'])
    expect(wrapLine('on 1-2.db:6379', 12)).to.deep.equal(['on', '1-2.db:6379'])
    expect(fitList(['aaaa', 'bbbb', 'cccc', 'dddd'], 21)).to.equal('aaaa, bbbb and 2 more')
    expect(fitList(['aaaa', 'bbbb', 'cccc', 'dddd'], 22)).to.equal('aaaa, bbbb, cccc, dddd')
  })
})

describe('warnings and errors', () => {
  const sameHost = Array.from({length: 12}, (_, i) => ({code: 'REPLICA_SAME_HOST', message: `replica 10.0.0.${i}:7001 is on the same host as its master`, nodes: [{address: `10.0.0.${i}:7001`, id: 'a'.repeat(40)}], hint: 'move it'}))
  const summary = (code: string) => (code === 'REPLICA_SAME_HOST' ? 'replicas share a host with their master' : undefined)

  it('group identical warnings into one line, unless verbose', () => {
    const lines = renderIssues('Warnings', 'WARN', [...sameHost, {code: 'NO_REPLICA', message: 'master x has no replica', hint: 'add one'}], {groupSummary: summary})
    expect(lines[0]).to.equal('Warnings (13):')
    expect(lines.filter((line) => line.includes('[WARN]'))).to.have.length(2)
    expect(lines[1]).to.match(/^ {2}\[WARN\] 12 replicas share a host with their master: 10\.0\.0\.0:7001, /)
    expect(lines).to.include('    hint: add one')
    expect(renderIssues('Warnings', 'WARN', sameHost, {groupSummary: summary, verbose: true}).filter((line) => line.includes('[WARN]'))).to.have.length(12)
  })
})

describe('one order and one vocabulary', () => {
  it('sorts by address with numeric ports, or by first slot where slots matter', () => {
    const nodes = [{address: '127.0.0.1:7010', slots: [] as Array<[number, number]>}, {address: '127.0.0.1:7002', slots: [[100, 200]] as Array<[number, number]>}, {address: '127.0.0.1:7001', slots: [[0, 99]] as Array<[number, number]>}]
    expect([...nodes].sort(byAddress).map((n) => n.address)).to.deep.equal(['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7010'])
    expect([...nodes].sort(byFirstSlot).map((n) => n.address)).to.deep.equal(['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7010'])
    expect(slotSet([5, 3, 4, 9])).to.deep.equal({slotCount: 4, slots: [[3, 5], [9, 9]]})
  })
})

describe('mistyped verbs', () => {
  const ids = ['check', 'create', 'del-node', 'add-node', 'fix', 'info', 'sandbox:start', 'sandbox:stop', 'sandbox:status']

  it('suggest the closest verb when it is close enough, and nothing for noise', () => {
    expect(editDistance('chek', 'check')).to.equal(1)
    expect(closestCommand('chek:127.0.0.1:7000', ids)).to.equal('check')
    expect(closestCommand('del-nod', ids)).to.equal('del-node')
    expect(closestCommand('sandbox:strat', ids)).to.equal('sandbox:start')
    expect(closestCommand('kubernetes', ids)).to.equal(undefined)
  })
})

describe('flags with an optional value (--watch)', () => {
  it('a bare --watch takes its default; a following duration is its value; an address or a flag is not', async () => {
    const {fillOptionalFlagValues} = await import('../../src/lib/cli/base-command.js')
    const defaults = {watch: '2s'}
    expect(fillOptionalFlagValues(['127.0.0.1:7000', '--watch'], defaults)).to.deep.equal(['127.0.0.1:7000', '--watch', '2s'])
    expect(fillOptionalFlagValues(['--watch', '5s', '127.0.0.1:7000'], defaults)).to.deep.equal(['--watch', '5s', '127.0.0.1:7000'])
    expect(fillOptionalFlagValues(['--watch', '1', 'x:1'], defaults)).to.deep.equal(['--watch', '1', 'x:1'])
    expect(fillOptionalFlagValues(['--watch', '127.0.0.1:7000'], defaults)).to.deep.equal(['--watch', '2s', '127.0.0.1:7000'])
    expect(fillOptionalFlagValues(['--watch', '--json', 'x:1'], defaults)).to.deep.equal(['--watch', '2s', '--json', 'x:1'])
    expect(fillOptionalFlagValues(['--watch=3s', 'x:1'], defaults)).to.deep.equal(['--watch=3s', 'x:1'])
    // after --, nothing is a flag
    expect(fillOptionalFlagValues(['x:1', '--', '--watch'], defaults)).to.deep.equal(['x:1', '--', '--watch'])
    expect(fillOptionalFlagValues(['--watch'], {})).to.deep.equal(['--watch'])
  })
})
