import {expect} from 'chai'

import {epochFloor} from '../../src/lib/fix/apply.js'

describe('fix: the epoch a destination must get above', () => {
  it('is the greatest of the other masters\' epochs and the newest of a master that is down', () => {
    expect(epochFloor('a', new Map([['a', 9], ['b', 4], ['c', 6]]), 0)).to.equal(6)
    expect(epochFloor('a', new Map([['a', 1], ['b', 4]]), 7)).to.equal(7)
  })

  it('stops the close when another master\'s epoch could not be read (it is not 0)', () => {
    const epochs = new Map<string, Error | number>([['a', 3], ['b', new Error('10.0.0.2:7000 did not tell its config epoch: connection reset')]])
    expect(() => epochFloor('a', epochs, 0)).to.throw(/10\.0\.0\.2:7000 did not tell its config epoch: connection reset: the slot is not given away without it/)
    // its own epoch is raised anyway: only the others' bound it
    expect(epochFloor('b', epochs, 0)).to.equal(3)
  })
})
