import {expect} from 'chai'

import {DEFAULT_BIG_KEY_BYTES, DEFAULT_MIGRATE_RATE, MIN_ELEMENT_BYTES, estimateBlockMs, findThresholdBytes} from '../../src/lib/migrate/big-keys.js'

const MIB = 1024 * 1024
const TYPES = ['hash', 'list', 'set', 'stream', 'zset', 'string']

describe('big keys: the blocking-time estimate', () => {
  it('a 96 MiB hash of 1.5M fields (it blocked its master for about 3 s) is estimated above 3 s, above a 2 s node timeout', () => {
    const estimate = estimateBlockMs({bytes: 96 * MIB, elements: 1_500_000, type: 'hash'}, DEFAULT_MIGRATE_RATE)
    // the byte-only estimate of before said 961 ms, under the 1000 ms limit of a 2000 ms node timeout
    expect(estimate).to.be.above(3000)
  })

  it('follows the element count: more fields of the same bytes take longer; a string of the same bytes takes less', () => {
    const few = estimateBlockMs({bytes: 50 * MIB, elements: 100_000, type: 'hash'}, DEFAULT_MIGRATE_RATE)
    const many = estimateBlockMs({bytes: 50 * MIB, elements: 1_000_000, type: 'hash'}, DEFAULT_MIGRATE_RATE)
    const string = estimateBlockMs({bytes: 50 * MIB, type: 'string'}, DEFAULT_MIGRATE_RATE)
    expect(many).to.be.above(few)
    expect(few).to.be.above(string)
  })

  it('is never below the bytes at the assumed rate, and follows that rate', () => {
    for (const type of TYPES) {
      const estimate = estimateBlockMs({bytes: 200 * MIB, elements: 10, type}, DEFAULT_MIGRATE_RATE)
      expect(estimate, type).to.be.at.least(2000)
      expect(estimateBlockMs({bytes: 200 * MIB, elements: 10, type}, DEFAULT_MIGRATE_RATE / 2), type).to.be.above(estimate)
    }
  })

  it('without type and length (not allowed to ask, a module type) assumes the costliest type of those bytes', () => {
    const unknown = estimateBlockMs({bytes: 40 * MIB}, DEFAULT_MIGRATE_RATE)
    expect(estimateBlockMs({bytes: 40 * MIB, type: 'hash'}, DEFAULT_MIGRATE_RATE)).to.equal(unknown)
    expect(estimateBlockMs({bytes: 40 * MIB, elements: 1, type: 'ReJSON-RL'}, DEFAULT_MIGRATE_RATE)).to.equal(unknown)
    for (const type of Object.keys(MIN_ELEMENT_BYTES)) {
      const densest = Math.floor((40 * MIB) / MIN_ELEMENT_BYTES[type])
      expect(unknown, type).to.be.at.least(estimateBlockMs({bytes: 40 * MIB, elements: densest, type}, DEFAULT_MIGRATE_RATE))
    }
  })
})

describe('big keys: the size under which no key needs looking at', () => {
  it('is at most --big-key-bytes', () => {
    expect(findThresholdBytes(MIB, 60_000, DEFAULT_MIGRATE_RATE)).to.equal(MIB)
    expect(findThresholdBytes(DEFAULT_BIG_KEY_BYTES, 7500, DEFAULT_MIGRATE_RATE)).to.be.at.most(DEFAULT_BIG_KEY_BYTES)
  })

  it('no key below it, of any type, as dense in elements as a type can be, is estimated above the limit', () => {
    for (const limitMs of [250, 1000, 7500, 30_000]) {
      for (const rate of [MIB, DEFAULT_MIGRATE_RATE, 1000 * MIB]) {
        const bytes = findThresholdBytes(Number.MAX_SAFE_INTEGER, limitMs, rate) - 1
        expect(estimateBlockMs({bytes}, rate), `unknown type, ${limitMs} ms`).to.be.at.most(limitMs)
        for (const type of Object.keys(MIN_ELEMENT_BYTES)) {
          const elements = Math.floor(bytes / MIN_ELEMENT_BYTES[type])
          expect(estimateBlockMs({bytes, elements, type}, rate), `${type}, ${limitMs} ms, ${rate} B/s`).to.be.at.most(limitMs)
        }
      }
    }
  })

  it('a lower node timeout looks at smaller keys', () => {
    expect(findThresholdBytes(DEFAULT_BIG_KEY_BYTES, 1000, DEFAULT_MIGRATE_RATE)).to.be.below(findThresholdBytes(DEFAULT_BIG_KEY_BYTES, 7500, DEFAULT_MIGRATE_RATE))
  })
})
