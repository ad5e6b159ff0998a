/**
 * QuietLedger (durable-in-source.ts): which stamp a quiet delete must find. A round whose
 * copies read stamps of the chain of our own deletes must find its tip; a round that read one
 * stamp outside the chain starts a new chain from it; anything else cannot be vouched for.
 * Deletes of one source run one after another.
 */
import {expect} from 'chai'

import {QuietLedger} from '../../src/lib/migrate/durable-in-source.js'

const stamps = (...values: string[]) => new Set(values)

describe('QuietLedger', () => {
  it('the first round of a source must find the stamp its copies read', () => {
    expect(new QuietLedger().expected(stamps('10:0:1'))).to.equal('10:0:1')
  })

  it('copies that read a stamp of the chain must find its tip: every change since was one of our deletes', () => {
    const ledger = new QuietLedger()
    ledger.passed('10:0:1', '70:0:1')
    ledger.passed('70:0:1', '130:0:1')
    expect(ledger.expected(stamps('10:0:1'))).to.equal('130:0:1')
    expect(ledger.expected(stamps('10:0:1', '70:0:1'))).to.equal('130:0:1')
    expect(ledger.expected(stamps('130:0:1'))).to.equal('130:0:1')
  })

  it('one stamp outside the chain starts a new chain from it, and the old chain vouches for nothing more', () => {
    const ledger = new QuietLedger()
    ledger.passed('10:0:1', '70:0:1')
    // a client wrote after our delete: the next round's copies read 71
    expect(ledger.expected(stamps('71:0:1'))).to.equal('71:0:1')
    ledger.passed('71:0:1', '90:0:1')
    expect(ledger.expected(stamps('10:0:1'))).to.equal('10:0:1')
    expect(ledger.expected(stamps('71:0:1'))).to.equal('90:0:1')
  })

  it('copies that read different stamps, not all of the chain, cannot be vouched for', () => {
    const ledger = new QuietLedger()
    expect(ledger.expected(stamps('10:0:1', '11:0:1'))).to.equal(undefined)
    ledger.passed('10:0:1', '70:0:1')
    expect(ledger.expected(stamps('70:0:1', '71:0:1'))).to.equal(undefined)
  })

  it('after a delete found the stamp changed, nothing of the chain is trusted', () => {
    const ledger = new QuietLedger()
    ledger.passed('10:0:1', '70:0:1')
    ledger.broken()
    expect(ledger.expected(stamps('10:0:1', '70:0:1'))).to.equal(undefined)
    expect(ledger.expected(stamps('10:0:1'))).to.equal('10:0:1')
  })

  it('runs deletes one after another, also after one failed', async () => {
    const ledger = new QuietLedger()
    const order: string[] = []
    const slow = ledger.serialize(async () => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      order.push('first')
      throw new Error('lost')
    })
    const next = ledger.serialize(async () => order.push('second'))
    await slow.catch(() => undefined)
    await next
    expect(order).to.deep.equal(['first', 'second'])
  })
})
