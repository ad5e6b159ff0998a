/**
 * A picture of the 16384 slots (info --map): a grid whose cells are runs of slots, each
 * marked with its owner's letter (and colour), open slots and unassigned ones marked, and a
 * legend. Pure: the data is built from parsed nodes, and rendering takes the width and the
 * colour decision as arguments, so it is tested on fixtures at any width without a terminal.
 */
import {Chalk, type ChalkInstance} from 'chalk'

import {SLOT_COUNT, type SlotRange, countSlots, toRanges} from '../core/slots.js'
import type {ClusterNode} from '../cluster/topology.js'
import {displayWidth} from './render.js'
import {compareNatural, compareText} from '../core/compare.js'

export interface SlotMapOwner {
  /** the cell mark: A-Z, then a-z, then 0-9; '#' beyond 62 masters */
  letter: string
  id: string
  address: string
  slots: SlotRange[]
  slotCount: number
}

export interface SlotMapOpenSlot {
  slot: number
  state: 'importing' | 'migrating'
  /** the node that marks the slot open */
  id: string
  address: string
  /** the other end: the target of a migrating slot, the source of an importing one */
  peerId: string
}

/** What the map shows, as data (info --map --json): owners by letter, unassigned ranges, open slots, slots two masters claim. */
export interface SlotMapData {
  owners: SlotMapOwner[]
  unassigned: SlotRange[]
  open: SlotMapOpenSlot[]
  conflicts: SlotRange[]
}

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** Marks of cells that are not one owner's, strongest first: a cell shows the strongest it holds. */
export const MAP_MARKS = {conflict: '!', open: '*', unassigned: '.', mixed: '+'} as const

function ownerLetter(index: number): string {
  return LETTERS[index] ?? '#'
}

/** Masters ordered by their first slot (slotless ones last, by address): the order of their letters. */
function mapOrder(a: ClusterNode, b: ClusterNode): number {
  const first = (node: ClusterNode) => node.slots[0]?.[0] ?? SLOT_COUNT
  return first(a) - first(b) || compareNatural(a.address, b.address)
}

/** The map's data from one view of the nodes (a snapshot's nodes: each reachable node's own slots and open slots). */
export function buildSlotMap(nodes: readonly ClusterNode[]): SlotMapData {
  const masters = nodes.filter((node) => node.role === 'master' && node.slots.length > 0).sort(mapOrder)
  const claims = new Uint8Array(SLOT_COUNT)
  for (const node of masters) for (const [start, end] of node.slots) for (let slot = start; slot <= end; slot++) claims[slot] = Math.min(claims[slot] + 1, 2)
  const unassigned: number[] = []
  const conflicts: number[] = []
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    if (claims[slot] === 0) unassigned.push(slot)
    else if (claims[slot] > 1) conflicts.push(slot)
  }
  const open: SlotMapOpenSlot[] = []
  for (const node of nodes) {
    for (const state of ['migrating', 'importing'] as const) {
      for (const [slot, peerId] of Object.entries(node[state])) open.push({address: node.address, id: node.id, peerId, slot: Number(slot), state})
    }
  }
  open.sort((a, b) => a.slot - b.slot || compareText(a.state, b.state))
  return {
    conflicts: toRanges(conflicts),
    open,
    owners: masters.map((node, index) => ({address: node.address, id: node.id, letter: ownerLetter(index), slotCount: countSlots(node.slots), slots: [...node.slots]})),
    unassigned: toRanges(unassigned),
  }
}

export interface SlotMapLayout {
  cellsPerRow: number
  slotsPerCell: number
  rows: number
}

/** Row label: the row's first slot, right-aligned, then a space. */
const LABEL_WIDTH = 6
/** a space between groups of this many cells, so a cell can be counted */
const GROUP = 16
const TARGET_ROWS = 16
/** open slots named under the map; a stuck reshard can leave thousands */
const MAX_OPEN_LISTED = 8
const MAX_CELLS_PER_ROW = 128

function rowWidth(cells: number): number {
  return LABEL_WIDTH + cells + Math.ceil(cells / GROUP) - 1
}

/**
 * Cells per row: the largest power of two (16 to 128) whose row fits `width`, so rows start
 * at round slot numbers; 16 rows, and each cell holds 16384 / (cells × 16) slots.
 */
export function mapLayout(width: number): SlotMapLayout {
  let cellsPerRow = MAX_CELLS_PER_ROW
  while (cellsPerRow > GROUP && rowWidth(cellsPerRow) > width) cellsPerRow /= 2
  const slotsPerCell = SLOT_COUNT / (cellsPerRow * TARGET_ROWS)
  return {cellsPerRow, rows: TARGET_ROWS, slotsPerCell}
}

/** Background colours of owners' cells, in letter order (red is kept for problems). */
const OWNER_STYLES: Array<(chalk: ChalkInstance) => ChalkInstance> = [
  (chalk) => chalk.bgBlue.whiteBright,
  (chalk) => chalk.bgGreen.black,
  (chalk) => chalk.bgMagenta.whiteBright,
  (chalk) => chalk.bgCyan.black,
  (chalk) => chalk.bgYellow.black,
  (chalk) => chalk.bgBlueBright.black,
  (chalk) => chalk.bgGreenBright.black,
  (chalk) => chalk.bgMagentaBright.black,
  (chalk) => chalk.bgCyanBright.black,
  (chalk) => chalk.bgWhite.black,
]

function markStyle(chalk: ChalkInstance, mark: string): ChalkInstance {
  if (mark === MAP_MARKS.conflict) return chalk.bgRed.whiteBright.bold
  if (mark === MAP_MARKS.open) return chalk.bgYellowBright.black.bold
  if (mark === MAP_MARKS.unassigned) return chalk.dim
  return chalk.reset
}

/** Each cell's mark: an owner's letter, or one of MAP_MARKS. */
export function cellMarks(map: SlotMapData, slotsPerCell: number): string[] {
  const owner = new Array<string>(SLOT_COUNT).fill('')
  for (const entry of map.owners) for (const [start, end] of entry.slots) for (let slot = start; slot <= end; slot++) owner[slot] = entry.letter
  const special = new Array<string>(SLOT_COUNT).fill('')
  for (const [start, end] of map.unassigned) for (let slot = start; slot <= end; slot++) special[slot] = MAP_MARKS.unassigned
  for (const {slot} of map.open) special[slot] = MAP_MARKS.open
  for (const [start, end] of map.conflicts) for (let slot = start; slot <= end; slot++) special[slot] = MAP_MARKS.conflict
  const strength = (mark: string) => Object.values(MAP_MARKS).indexOf(mark as never)
  const marks: string[] = []
  for (let first = 0; first < SLOT_COUNT; first += slotsPerCell) {
    let strongest = ''
    const owners = new Set<string>()
    for (let slot = first; slot < first + slotsPerCell; slot++) {
      if (special[slot] && (strongest === '' || strength(special[slot]) < strength(strongest))) strongest = special[slot]
      if (owner[slot]) owners.add(owner[slot])
    }
    marks.push(strongest || (owners.size > 1 ? MAP_MARKS.mixed : [...owners][0]))
  }
  return marks
}

/** Pieces joined by `gap`, wrapped to `width` without ever splitting a piece (an address, an id). */
export function joinWrapped(pieces: string[], width: number, gap = '   ', indent = ''): string[] {
  const lines: string[] = []
  let line = ''
  for (const piece of pieces) {
    if (line !== '' && displayWidth(line) + gap.length + displayWidth(piece) > width) {
      lines.push(line)
      line = ''
    }
    line = line === '' ? `${lines.length > 0 ? indent : ''}${piece}` : `${line}${gap}${piece}`
  }
  if (line !== '') lines.push(line)
  return lines
}

export interface SlotMapRenderOptions {
  width: number
  colour: boolean
  /** list the open slots under the legend (default); a migration's map marks them only */
  listOpen?: boolean
}

/**
 * The map as lines of at most `width` columns (at least 22): 16 rows of cells under a row
 * label, the legend of owners (never an address split across lines), what each mark means,
 * and the open slots. Without colour each cell is its letter or mark, so it reads in a pipe.
 */
export function renderSlotMap(map: SlotMapData, options: SlotMapRenderOptions): string[] {
  const chalk = new Chalk({level: options.colour ? 1 : 0})
  const layout = mapLayout(options.width)
  const styleOf = new Map(map.owners.map((entry, index) => [entry.letter, OWNER_STYLES[index % OWNER_STYLES.length](chalk)]))
  const paintMark = (mark: string) => (styleOf.get(mark) ?? markStyle(chalk, mark))(mark)
  const marks = cellMarks(map, layout.slotsPerCell)
  const lines: string[] = []
  for (let row = 0; row < layout.rows; row++) {
    const cells = marks.slice(row * layout.cellsPerRow, (row + 1) * layout.cellsPerRow)
    const groups: string[] = []
    for (let start = 0; start < cells.length; start += GROUP) groups.push(cells.slice(start, start + GROUP).map(paintMark).join(''))
    lines.push(`${String(row * layout.cellsPerRow * layout.slotsPerCell).padStart(LABEL_WIDTH - 1)} ${groups.join(' ')}`)
  }
  lines.push('')
  const owners = map.owners.map((entry) => `${paintMark(entry.letter)} ${entry.address || '(no address)'} ${entry.id.slice(0, 8)} ${entry.slotCount} slots`)
  lines.push(...joinWrapped(owners, options.width))
  const legend = [
    `each cell: ${layout.slotsPerCell} slots`,
    `${paintMark(MAP_MARKS.unassigned)} unassigned`,
    `${paintMark(MAP_MARKS.open)} open (migrating/importing)`,
    `${paintMark(MAP_MARKS.mixed)} several owners`,
    `${paintMark(MAP_MARKS.conflict)} claimed twice`,
  ]
  lines.push(...joinWrapped(legend, options.width))
  if (map.open.length > 0 && options.listOpen !== false) {
    const letterOf = new Map(map.owners.map((entry) => [entry.id, entry.letter]))
    const name = (id: string, address?: string) => letterOf.get(id) ?? address ?? id.slice(0, 8)
    const open = map.open.map((entry) => `${entry.slot} ${entry.state === 'migrating' ? `${name(entry.id, entry.address)}→${name(entry.peerId)}` : `${name(entry.peerId)}→${name(entry.id, entry.address)}`} (${entry.state === 'migrating' ? 'on the source' : 'on the target'})`)
    const shown = open.length > MAX_OPEN_LISTED ? [...open.slice(0, MAX_OPEN_LISTED), `and ${open.length - MAX_OPEN_LISTED} more (--json lists each)`] : open
    lines.push(...joinWrapped([`open slots (${map.open.length}):`, ...shown], options.width, '  ', '  '))
  }
  return lines
}

export interface MapMove {
  slot: number
  sourceId: string
  targetId: string
  targetAddress: string
}

/**
 * The map after `done` moves (their slots now the target's) with `inFlight` slots marked
 * open: the map of a migration as it fills in. Owners keep their letters (one that lost every
 * slot stays in the legend with 0); a target that owned nothing gets the next letter.
 */
export function applyMoves(map: SlotMapData, done: readonly MapMove[], inFlight: readonly MapMove[] = []): SlotMapData {
  const owner = new Array<string>(SLOT_COUNT).fill('')
  for (const entry of map.owners) for (const [start, end] of entry.slots) for (let slot = start; slot <= end; slot++) owner[slot] = entry.id
  const owners = map.owners.map((entry) => ({...entry}))
  for (const move of done) {
    owner[move.slot] = move.targetId
    if (!owners.some((entry) => entry.id === move.targetId)) owners.push({address: move.targetAddress, id: move.targetId, letter: ownerLetter(owners.length), slotCount: 0, slots: []})
  }
  const slotsOf = new Map<string, number[]>(owners.map((entry) => [entry.id, []]))
  for (let slot = 0; slot < SLOT_COUNT; slot++) if (owner[slot]) slotsOf.get(owner[slot])?.push(slot)
  const addressOf = new Map(owners.map((entry) => [entry.id, entry.address]))
  const open: SlotMapOpenSlot[] = inFlight.map((move) => ({address: addressOf.get(move.sourceId) ?? '', id: move.sourceId, peerId: move.targetId, slot: move.slot, state: 'migrating'}))
  return {
    ...map,
    open: [...map.open, ...open].sort((a, b) => a.slot - b.slot),
    owners: owners.map((entry) => {
      const slots = toRanges(slotsOf.get(entry.id) ?? [])
      return {...entry, slotCount: countSlots(slots), slots}
    }),
  }
}
