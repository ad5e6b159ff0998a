import {expect} from 'chai'

import {formatAddress, isBareHost, parseAddress, parseAddressList, redactUrl, splitAddress} from '../../src/lib/cluster/address.js'
import {SlotctlError} from '../../src/lib/core/errors.js'

describe('address parsing', () => {
  it('parses host:port, host port and bracketed IPv6', () => {
    expect(parseAddress('127.0.0.1:7000')).to.deep.equal({host: '127.0.0.1', port: 7000})
    expect(parseAddress('redis-1.internal', '6380')).to.deep.equal({host: 'redis-1.internal', port: 6380})
    expect(parseAddress('[::1]:7000')).to.deep.equal({host: '::1', port: 7000})
    expect(formatAddress({host: '::1', port: 7000})).to.equal('[::1]:7000')
  })

  it('parses redis:// and rediss:// URLs with user and password', () => {
    expect(parseAddress('redis://ops:s3cr%40t@10.1.2.3:7001')).to.deep.equal({host: '10.1.2.3', password: 's3cr@t', port: 7001, tls: false, username: 'ops'})
    expect(parseAddress('rediss://:pw@[::1]:7002')).to.deep.include({host: '::1', password: 'pw', port: 7002, tls: true})
    expect(parseAddress('redis://cache.local')).to.deep.include({host: 'cache.local', port: 6379})
  })

  it('accepts the host port form inside address lists', () => {
    expect(parseAddressList(['127.0.0.1', '7000', '127.0.0.1:7001', 'h', '7002']).map(formatAddress)).to.deep.equal(['127.0.0.1:7000', '127.0.0.1:7001', 'h:7002'])
    expect(parseAddressList(['[::1]', '7000', '[fe80::2]:7001']).map(formatAddress)).to.deep.equal(['[::1]:7000', '[fe80::2]:7001'])
  })

  it('tells a bare host (first half of host port) from a full address', () => {
    for (const word of ['127.0.0.1', 'redis-1.internal', '[::1]']) expect(isBareHost(word), word).to.equal(true)
    for (const word of ['127.0.0.1:7000', '[::1]:7000', '::1', 'redis://h', 'rediss://h:1', '[::1']) expect(isBareHost(word), word).to.equal(false)
  })

  it('rejects malformed addresses as usage errors with one clear line', () => {
    for (const [input, pattern] of [
      ['127.0.0.1', /missing port/],
      ['127.0.0.1:abc', /not a number/],
      ['127.0.0.1:70000', /out of range/],
      ['::1:7000', /brackets/],
      [':7000', /missing host/],
      ['', /missing node address/],
    ] as const) {
      try {
        parseAddress(input)
        expect.fail(`'${input}' should be rejected`)
      } catch (error) {
        expect(error).to.be.instanceOf(SlotctlError)
        expect((error as SlotctlError).exitCode).to.equal(2)
        expect((error as Error).message).to.match(pattern)
        expect((error as Error).message).to.not.include('\n')
      }
    }
  })

  it('never echoes a URL password in an error', () => {
    expect(redactUrl('redis://ops:hunter2@host:1')).to.equal('redis://ops:***@host:1')
    try {
      parseAddress('redis://ops:hunter2@host:99999')
      expect.fail('should be rejected')
    } catch (error) {
      expect((error as Error).message).to.not.include('hunter2')
    }
  })
})

describe('splitAddress: addresses slotctl formatted or a node reported', () => {
  it('splits at the last colon and drops brackets', () => {
    expect(splitAddress('127.0.0.1:7000')).to.deep.equal({host: '127.0.0.1', port: 7000})
    expect(splitAddress('[::1]:7001')).to.deep.equal({host: '::1', port: 7001})
    expect(splitAddress('::1:7002')).to.deep.equal({host: '::1', port: 7002})
    expect(splitAddress('redis-1:6379')).to.deep.equal({host: 'redis-1', port: 6379})
  })
})
