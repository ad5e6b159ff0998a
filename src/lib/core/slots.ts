/** Hash-slot arithmetic: CRC16 key slots with hash tags, and slot-range compaction. */

export const SLOT_COUNT = 16_384

export type SlotRange = [start: number, end: number]

const CRC16_TABLE = buildCrc16Table()

function buildCrc16Table(): Uint16Array {
  // CRC-16/XMODEM (poly 0x1021), the variant Redis Cluster specifies for key hashing.
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80_00 ? ((crc << 1) ^ 0x10_21) & 0xff_ff : (crc << 1) & 0xff_ff
    table[i] = crc
  }
  return table
}

export function crc16(bytes: Uint8Array): number {
  let crc = 0
  for (const byte of bytes) crc = ((crc << 8) & 0xff_ff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]
  return crc
}

/** The bytes that are hashed: the first non-empty `{...}` section if there is one. */
function hashTagPart(key: Buffer): Buffer {
  const open = key.indexOf(0x7b)
  if (open === -1) return key
  const close = key.indexOf(0x7d, open + 1)
  if (close === -1 || close === open + 1) return key
  return key.subarray(open + 1, close)
}

export function keySlot(key: Buffer | string): number {
  const bytes = typeof key === 'string' ? Buffer.from(key) : key
  return crc16(hashTagPart(bytes)) % SLOT_COUNT
}

/** Compacts slot numbers (any order, duplicates allowed) into sorted inclusive ranges. */
export function toRanges(slots: Iterable<number>): SlotRange[] {
  // a typed array sorts numerically without a comparator: this runs on every slot of a view
  const sorted = Float64Array.from(slots).sort()
  const ranges: SlotRange[] = []
  let last: SlotRange | undefined
  for (const slot of sorted) {
    if (last && slot <= last[1] + 1) last[1] = Math.max(last[1], slot)
    else ranges.push((last = [slot, slot]))
  }
  return ranges
}

/**
 * Sorted, non-overlapping ranges from ranges in any order that may overlap or touch. Takes
 * ownership of `ranges`: it is returned as it is when already sorted and apart (as CLUSTER
 * NODES lists them), so the common case allocates nothing.
 */
export function mergeRanges(ranges: SlotRange[]): SlotRange[] {
  let normal = true
  for (let i = 1; i < ranges.length && normal; i++) normal = ranges[i][0] > ranges[i - 1][1] + 1
  if (normal) return ranges
  const merged: SlotRange[] = []
  for (const [start, end] of ranges.sort((a, b) => a[0] - b[0])) {
    const last = merged.at(-1)
    if (last && start <= last[1] + 1) last[1] = Math.max(last[1], end)
    else merged.push([start, end])
  }
  return merged
}

/** Runs of consecutive slots, in the order given (not sorted, duplicates kept): [5, 6, 7, 2, 3] → 5-7, 2-3. */
export function runsInOrder(slots: readonly number[]): SlotRange[] {
  const runs: SlotRange[] = []
  let run: SlotRange | undefined
  for (const slot of slots) {
    if (run && slot === run[1] + 1) run[1] = slot
    else runs.push((run = [slot, slot]))
  }
  return runs
}

export function expandRanges(ranges: readonly SlotRange[]): number[] {
  const slots: number[] = []
  for (const [start, end] of ranges) for (let s = start; s <= end; s++) slots.push(s)
  return slots
}

export function countSlots(ranges: readonly SlotRange[]): number {
  let total = 0
  for (const [start, end] of ranges) total += end - start + 1
  return total
}

/** `0-5460,10923` style, the form operators paste into commands. */
export function formatRanges(ranges: readonly SlotRange[]): string {
  return ranges.map(([start, end]) => (start === end ? String(start) : `${start}-${end}`)).join(',')
}

export function formatSlots(slots: Iterable<number>): string {
  return formatRanges(toRanges(slots))
}

export function isValidSlot(slot: number): boolean {
  return Number.isInteger(slot) && slot >= 0 && slot < SLOT_COUNT
}

/** Parses `A-B`, `A` and comma-separated lists of those; returns null when malformed. */
export function parseSlotRanges(text: string): SlotRange[] | null {
  const slots: number[] = []
  for (const part of text.split(',')) {
    const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part)
    if (!match) return null
    const start = Number(match[1])
    const end = match[2] === undefined ? start : Number(match[2])
    if (!isValidSlot(start) || !isValidSlot(end) || end < start) return null
    for (let s = start; s <= end; s++) slots.push(s)
  }
  return toRanges(slots)
}

/**
 * Splits `total` slots into `parts` contiguous ranges whose sizes differ by at most one,
 * rounding boundaries the way operators know from redis-cli (3 parts: 0-5460, 5461-10922,
 * 10923-16383), so layouts made by either tool look the same.
 */
export function splitEvenly(parts: number, total = SLOT_COUNT): SlotRange[] {
  const share = total / parts
  const ranges: SlotRange[] = []
  for (let i = 0; i < parts; i++) {
    const start = Math.round(i * share)
    const end = i === parts - 1 ? total - 1 : Math.round((i + 1) * share - 1)
    ranges.push([start, end])
  }
  return ranges
}
