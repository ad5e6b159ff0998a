import {expect} from 'chai'

import {tagForSlot} from '../../src/lib/migrate/durable.js'
import {SLOT_COUNT, countSlots, crc16, expandRanges, formatRanges, keySlot, parseSlotRanges, splitEvenly, toRanges} from '../../src/lib/core/slots.js'

describe('slots', () => {
  it('computes CRC16/XMODEM as the cluster spec defines (check value of "123456789" is 0x31C3)', () => {
    expect(crc16(Buffer.from('123456789'))).to.equal(0x31_c3)
  })

  it('hashes only the first non-empty {tag}', () => {
    expect(keySlot('{user1000}.following')).to.equal(keySlot('{user1000}.followers'))
    expect(keySlot('foo{}{bar}')).to.equal(keySlot(Buffer.from('foo{}{bar}')))
    expect(keySlot('foo{{bar}}zap')).to.equal(keySlot('{bar'))
    expect(keySlot('foo{bar}{zap}')).to.equal(keySlot('bar'))
    expect(keySlot('foo')).to.equal(12_182)
  })

  it('handles binary (non-UTF-8) keys byte for byte', () => {
    const key = Buffer.from([0xff, 0xfe, 0x7b, 0x80, 0x7d, 0x00])
    expect(keySlot(key)).to.equal(crc16(Buffer.from([0x80])) % SLOT_COUNT)
  })

  it('gives every slot a hash tag whose keys live in it (the barrier keys and the tests rely on it)', () => {
    const tags = new Set<string>()
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      const tag = tagForSlot(slot)
      expect(keySlot(`barrier:{${tag}}`), `slot ${slot}`).to.equal(slot)
      tags.add(tag)
    }
    expect(tags.size).to.equal(SLOT_COUNT)
  })

  it('compacts, expands, counts and prints slot ranges', () => {
    const ranges = toRanges([5, 3, 4, 10, 0, 4])
    expect(ranges).to.deep.equal([[0, 0], [3, 5], [10, 10]])
    expect(formatRanges(ranges)).to.equal('0,3-5,10')
    expect(expandRanges(ranges)).to.deep.equal([0, 3, 4, 5, 10])
    expect(countSlots(ranges)).to.equal(5)
  })

  it('parses slot range text and rejects bad ranges', () => {
    expect(parseSlotRanges('0-5,7, 9-9')).to.deep.equal([[0, 5], [7, 7], [9, 9]])
    for (const bad of ['5-1', '16384', '-1', 'a-b', '1-2-3', '']) expect(parseSlotRanges(bad), bad).to.equal(null)
  })

  it('splits slots evenly as redis-cli does', () => {
    expect(splitEvenly(3)).to.deep.equal([[0, 5460], [5461, 10_922], [10_923, 16_383]])
    for (const parts of [3, 4, 5, 7, 15, 100]) {
      const ranges = splitEvenly(parts)
      expect(countSlots(ranges)).to.equal(SLOT_COUNT)
      const sizes = ranges.map(([a, b]) => b - a + 1)
      expect(Math.max(...sizes) - Math.min(...sizes)).to.be.at.most(1)
      for (let i = 1; i < ranges.length; i++) expect(ranges[i][0]).to.equal(ranges[i - 1][1] + 1)
    }
  })
})
