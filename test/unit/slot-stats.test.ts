import {expect} from 'chai'

import {parseSlotStats} from '../../src/lib/cluster/slot-stats.js'

describe('slot-stats: CLUSTER SLOT-STATS replies', () => {
  it('reads key-count per slot and ignores the other metrics', () => {
    const reply = [
      [0, ['key-count', 3]],
      [1, ['key-count', 0]],
      [5460, ['key-count', 12, 'cpu-usec', 40, 'network-bytes-in', 99, 'network-bytes-out', 7]],
    ]
    expect([...parseSlotStats(reply)]).to.deep.equal([[0, 3], [1, 0], [5460, 12]])
  })

  it('tolerates replies that are not slot stats (nothing is read from them)', () => {
    expect(parseSlotStats('OK').size).to.equal(0)
    expect(parseSlotStats([[7, 'garbage'], [8, ['cpu-usec', 1]]]).size).to.equal(0)
  })
})
