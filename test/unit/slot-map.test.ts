import {expect} from 'chai'

import {stripAnsi, displayWidth} from '../../src/lib/cli/render.js'
import {MAP_MARKS, applyMoves, buildSlotMap, cellMarks, joinWrapped, mapLayout, renderSlotMap} from '../../src/lib/cli/slot-map.js'
import {ProgressReporter} from '../../src/lib/cli/progress.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {A, B, C, healthy, troubled} from '../fixtures/cluster-nodes.js'

// eslint-disable-next-line no-control-regex
const ANSI = /\u001B\[[0-9;]*m/

/** The grid rows of a rendered map (label, then cells), without the legend. */
function gridRows(lines: string[]): string[] {
  return lines.slice(0, lines.indexOf(''))
}

describe('slot map: data', () => {
  it('gives each master a letter in slot order, and no unassigned, open or doubly claimed slot on a healthy cluster', () => {
    const map = buildSlotMap(parseClusterNodes(healthy))
    expect(map.owners.map((owner) => [owner.letter, owner.id, owner.slotCount])).to.deep.equal([
      ['A', A, 5461],
      ['B', B, 5462],
      ['C', C, 5461],
    ])
    expect(map.unassigned).to.deep.equal([])
    expect(map.open).to.deep.equal([])
    expect(map.conflicts).to.deep.equal([])
  })

  it('finds the unassigned slots and the open ones (with their other end) of a troubled view', () => {
    const map = buildSlotMap(parseClusterNodes(troubled))
    // A's ranges skip 101 (migrating away) and 16000 (importing): both are unowned in this view
    expect(map.unassigned).to.deep.equal([
      [101, 101],
      [16_000, 16_000],
    ])
    expect(map.open.map((entry) => [entry.slot, entry.state, entry.id, entry.peerId])).to.deep.equal([
      [101, 'migrating', A, B],
      [16_000, 'importing', A, C],
    ])
  })

  it('reports a slot two masters claim', () => {
    const nodes = parseClusterNodes(healthy.replace('10923-16383', '10900-16383'))
    expect(buildSlotMap(nodes).conflicts).to.deep.equal([[10_900, 10_922]])
  })
})

describe('slot map: layout and rendering', () => {
  it('uses 64 cells of 16 slots per row at 80 columns and 128 of 8 at 200, 16 rows each', () => {
    expect(mapLayout(80)).to.deep.equal({cellsPerRow: 64, rows: 16, slotsPerCell: 16})
    expect(mapLayout(200)).to.deep.equal({cellsPerRow: 128, rows: 16, slotsPerCell: 8})
    expect(mapLayout(40)).to.deep.equal({cellsPerRow: 32, rows: 16, slotsPerCell: 32})
  })

  for (const width of [80, 200]) {
    for (const colour of [false, true]) {
      it(`fits ${width} columns ${colour ? 'with' : 'without'} colour, every cell marked by its owner`, () => {
        const map = buildSlotMap(parseClusterNodes(healthy))
        const lines = renderSlotMap(map, {colour, width})
        for (const line of lines) expect(displayWidth(line), line).to.be.at.most(width)
        expect(lines.some((line) => ANSI.test(line))).to.equal(colour)
        const rows = gridRows(lines.map((line) => stripAnsi(line)))
        expect(rows).to.have.length(16)
        const {cellsPerRow, slotsPerCell} = mapLayout(width)
        expect(rows[0].startsWith('    0 ')).to.equal(true)
        expect(rows[15].trimStart().startsWith(String(15 * cellsPerRow * slotsPerCell))).to.equal(true)
        const cells = rows.map((row) => row.slice(6).replaceAll(' ', '')).join('')
        expect(cells).to.have.length(16_384 / slotsPerCell)
        // each owner's slots fill their share of cells; the cells at a boundary (5460/5461, 10922/10923) hold two owners
        const count = (mark: string) => [...cells].filter((cell) => cell === mark).length
        expect(count('A') + count('B') + count('C') + count(MAP_MARKS.mixed)).to.equal(cells.length)
        expect(count('A')).to.equal(Math.floor(5461 / slotsPerCell))
        expect(count(MAP_MARKS.mixed)).to.equal(2)
      })
    }
  }

  it('the coloured map reads the same as the plain one once its colours are removed', () => {
    const map = buildSlotMap(parseClusterNodes(troubled))
    for (const width of [80, 200]) {
      expect(renderSlotMap(map, {colour: true, width}).map((line) => stripAnsi(line))).to.deep.equal(renderSlotMap(map, {colour: false, width}))
    }
  })

  it('marks open slots over unassigned ones, and lists them with their ends under the map', () => {
    const map = buildSlotMap(parseClusterNodes(troubled))
    const marks = cellMarks(map, 16)
    // slot 101 (open) is in cell 6, slot 16000 (open and unassigned) in cell 1000
    expect(marks[6]).to.equal(MAP_MARKS.open)
    expect(marks[1000]).to.equal(MAP_MARKS.open)
    expect(marks[0]).to.equal('A')
    const lines = renderSlotMap(map, {colour: false, width: 80})
    const openLines = lines.slice(lines.findIndex((line) => line.startsWith('open slots (2):'))).join('\n')
    expect(openLines).to.include('101 A→B (on the source)')
    expect(openLines).to.include('16000 C→A (on the target)')
  })

  it('marks an unassigned run with dots, and says what a cell holds and what each mark means', () => {
    const map = buildSlotMap(parseClusterNodes(healthy.replace('10923-16383', '10923-16000')))
    const lines = renderSlotMap(map, {colour: false, width: 80})
    // 16001-16383 unassigned: cell 1000 (16000-16015) holds C and unassigned slots, 1001-1023 only unassigned
    expect(cellMarks(map, 16).slice(1000)).to.deep.equal(Array.from({length: 24}, () => MAP_MARKS.unassigned))
    expect(lines.at(-1)).to.not.include('open slots')
    // a migration's map (listOpen false) marks open slots without listing them
    const troubledMap = buildSlotMap(parseClusterNodes(troubled))
    expect(renderSlotMap(troubledMap, {colour: false, listOpen: false, width: 80}).join('\n')).to.not.include('open slots')
    expect(renderSlotMap(troubledMap, {colour: false, width: 80}).join('\n')).to.include('open slots (2)')
    const legend = lines.join('\n')
    for (const text of ['each cell: 16 slots', '. unassigned', '* open (migrating/importing)', '+ several owners', '! claimed twice']) expect(legend).to.include(text)
  })

  it('never splits an owner (address, id, slot count) across lines, with many masters at 80 columns', () => {
    const many = Array.from({length: 30}, (_, index) => {
      const start = Math.floor((index * 16_384) / 30)
      const end = Math.floor(((index + 1) * 16_384) / 30) - 1
      return `${String(index).padStart(2, '0').padEnd(40, 'a')} 192.168.100.${index + 100}:${17_000 + index}@27000 master - 0 0 ${index + 1} connected ${start}-${end}`
    })
    const map = buildSlotMap(parseClusterNodes(many.join('\n')))
    expect(map.owners.at(-1)?.letter).to.equal('d')
    const lines = renderSlotMap(map, {colour: false, width: 80})
    for (const line of lines) expect(displayWidth(line)).to.be.at.most(80)
    for (const owner of map.owners) {
      const entry = `${owner.letter} ${owner.address} ${owner.id.slice(0, 8)} ${owner.slotCount} slots`
      expect(lines.filter((line) => line.includes(entry)), entry).to.have.length(1)
    }
  })

  it('wraps pieces without splitting one', () => {
    expect(joinWrapped(['aaaa', 'bbbb', 'cccc'], 11, ' ')).to.deep.equal(['aaaa bbbb', 'cccc'])
    expect(joinWrapped(['aaaa', 'bbbb', 'cccc'], 11, ' ', '  ')).to.deep.equal(['aaaa bbbb', '  cccc'])
  })
})

describe('slot map: a migration filling in', () => {
  const D = 'd7'.padEnd(40, '7')
  const moves = (slots: number[]) => slots.map((slot) => ({slot, sourceId: A, targetAddress: '10.0.0.9:7009', targetId: D}))

  it('gives moved slots to their target (a new owner gets the next letter), marks the moving ones open, and keeps the letters', () => {
    const base = buildSlotMap(parseClusterNodes(healthy))
    const done = Array.from({length: 32}, (_, index) => index)
    const after = applyMoves(base, moves(done), moves([32]))
    expect(after.owners.map((owner) => [owner.letter, owner.id, owner.slotCount])).to.deep.equal([
      ['A', A, 5461 - 32],
      ['B', B, 5462],
      ['C', C, 5461],
      ['D', D, 32],
    ])
    expect(after.open).to.deep.equal([{address: '10.0.0.1:7000', id: A, peerId: D, slot: 32, state: 'migrating'}])
    const marks = cellMarks(after, 16)
    expect(marks.slice(0, 3)).to.deep.equal(['D', 'D', MAP_MARKS.open])
    // the map it started from is not changed
    expect(base.owners).to.have.length(3)
  })

  it('--progress map draws the map above the bar and redraws it in place (up, clear, draw)', () => {
    const writes: string[] = []
    const stream = {columns: 80, isTTY: true, rows: 40, write: (text: string) => writes.push(text)} as unknown as NodeJS.WriteStream
    const base = buildSlotMap(parseClusterNodes(healthy))
    const closed: number[] = []
    const reporter = new ProgressReporter({keys: 0, slots: 2}, 'map', stream, 5000, (width) => renderSlotMap(applyMoves(base, moves(closed)), {colour: false, width}))
    closed.push(0)
    reporter.onEvent({keys: 0, slot: 0, type: 'slot-done'})
    reporter.say('a note')
    reporter.stop()
    const screen = writes.join('')
    // first drawing: 16 map rows, the legend, the bar; then cleared (up N-1 lines, clear to the end) for the note
    // eslint-disable-next-line no-control-regex -- ANSI colour codes
    expect(screen).to.match(/^\u001B\[2K {4}0 \+A/)
    // eslint-disable-next-line no-control-regex -- ANSI colour codes
    expect(screen).to.match(/\u001B\[\d+A\r\u001B\[J/)
    expect(screen).to.include('a note\n')
    expect(screen).to.include('D 10.0.0.9:7009 d7777777 1 slots')
    // as a terminal shows each line: from its last carriage return on
    // eslint-disable-next-line no-control-regex -- ANSI colour codes
    for (const line of screen.replaceAll(/\u001B\[[0-9]*[AJK]/g, '').split('\n')) expect(displayWidth(line.split('\r').pop() ?? '')).to.be.at.most(80)
  })

  it('a terminal too short for the map gets the bar alone', () => {
    const writes: string[] = []
    const stream = {columns: 80, isTTY: true, rows: 10, write: (text: string) => writes.push(text)} as unknown as NodeJS.WriteStream
    const base = buildSlotMap(parseClusterNodes(healthy))
    const reporter = new ProgressReporter({keys: 0, slots: 2}, 'map', stream, 5000, (width) => renderSlotMap(base, {colour: false, width}))
    reporter.onEvent({keys: 0, slot: 0, type: 'slot-done'})
    reporter.stop()
    expect(writes.join('')).to.not.include('each cell')
    expect(writes.join('')).to.include('1/2 slots')
  })
})
