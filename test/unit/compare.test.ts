import {expect} from 'chai'

import {compareNatural, compareText} from '../../src/lib/core/compare.js'

describe('orderings without ICU', () => {
  it('compareText: code-unit order, 0 only for equal strings', () => {
    expect(['b', 'a', 'B', 'a1', ''].sort(compareText)).to.deep.equal(['', 'B', 'a', 'a1', 'b'])
    expect(compareText('abc', 'abc')).to.equal(0)
  })

  it('compareNatural: numeric parts as numbers, so addresses sort by host then port', () => {
    const addresses = ['127.0.0.10:7000', '127.0.0.2:7010', '127.0.0.2:7002', '127.0.0.1:17000', '127.0.0.1:7000', 'node-b:1', 'node-a:20']
    expect([...addresses].sort(compareNatural)).to.deep.equal(['127.0.0.1:7000', '127.0.0.1:17000', '127.0.0.2:7002', '127.0.0.2:7010', '127.0.0.10:7000', 'node-a:20', 'node-b:1'])
  })

  it('compareNatural: agrees with localeCompare(numeric) on the addresses slotctl shows, and is a total order', () => {
    const addresses = ['10.0.0.1:6379', '10.0.0.1:6380', '10.0.1.1:6379', '9.9.9.9:1', '10.0.0.11:6379', 'redis-1:6379', 'redis-10:6379', 'redis-2:6379']
    const byIcu = [...addresses].sort((a, b) => a.localeCompare(b, 'en', {numeric: true}))
    expect([...addresses].sort(compareNatural)).to.deep.equal(byIcu)
    // the one departure: text is in code-unit order, so IPv6 brackets come after IPv4, before names
    expect(['redis-1:1', '[::1]:7000', '[::1]:700', '10.0.0.1:1'].sort(compareNatural)).to.deep.equal(['10.0.0.1:1', '[::1]:700', '[::1]:7000', 'redis-1:1'])
    expect(compareNatural('a007', 'a7')).to.not.equal(0)
    expect(Math.sign(compareNatural('a007', 'a7'))).to.equal(-Math.sign(compareNatural('a7', 'a007')))
    expect(compareNatural('x', 'x')).to.equal(0)
  })
})
