import {expect} from 'chai'

import {flattenOclifMessage} from '../../src/lib/cli/base-command.js'
import {parseAddress} from '../../src/lib/cluster/address.js'
import {SlotctlError} from '../../src/lib/core/errors.js'
import {redactSecrets, redactUrls, registerSecret} from '../../src/lib/secrets.js'

function rejection(input: string): SlotctlError {
  try {
    parseAddress(input)
  } catch (error) {
    return error as SlotctlError
  }
  throw new Error(`'${input}' was accepted`)
}

describe('secrets: URL credentials and given passwords never reach a message', () => {
  it('masks URL credentials whatever the scheme case, the password characters or the rest of the URL', () => {
    expect(redactUrls("invalid address 'REDIS://u:PASSWORD@127.0.0.1:abc'")).to.equal("invalid address 'REDIS://u:***@127.0.0.1:abc'")
    expect(redactUrls('redis://u:PASS/WORD@127.0.0.1:7000')).to.equal('redis://u:***@127.0.0.1:7000')
    expect(redactUrls('Unexpected argument: rediss://ops:p@ss:w0rd@h:1 and more')).to.equal('Unexpected argument: rediss://ops:***@h:1 and more')
    expect(redactUrls('redis://onlysecret@h:1')).to.equal('redis://***@h:1')
    expect(redactUrls('Valkey://a:b@h')).to.equal('Valkey://a:***@h')
    expect(redactUrls('no url here: a:b@c')).to.equal('no url here: a:b@c')
  })

  it('masks a registered password verbatim, percent-encoded and JSON-escaped', () => {
    const secret = 'Un1que "pw" / 99%'
    registerSecret(secret)
    expect(redactSecrets(`server said: ${secret}`)).to.equal('server said: ***')
    expect(redactSecrets(`url: x${encodeURIComponent(secret)}y`)).to.equal('url: x***y')
    expect(redactSecrets(JSON.stringify({reply: secret}))).to.equal('{"reply":"***"}')
  })

  it('parses URL passwords holding / : @ or percent escapes, and names a bad port without the password', () => {
    expect(parseAddress('redis://u:PASS/WORD@127.0.0.1:7000')).to.deep.include({host: '127.0.0.1', password: 'PASS/WORD', port: 7000, username: 'u'})
    expect(parseAddress('REDISS://u:p@ss:x@[::1]:7001/0')).to.deep.include({host: '::1', password: 'p@ss:x', port: 7001, tls: true})
    expect(parseAddress('redis://:s3cr%40t%2Fx@h:7002')).to.deep.include({password: 's3cr@t/x', port: 7002})
    expect(parseAddress('redis://:50%off@h:7003')).to.deep.include({password: '50%off'})
    for (const [input, pattern] of [
      ['REDIS://u:PASSWORD@127.0.0.1:abc', /port 'abc' is not a number/],
      ['redis://u:PASSWORD@127.0.0.1:99999', /out of range/],
      ['redis://u:PASSWORD@', /no host/],
      ['redis://u:PASSWORD@::1:7000', /brackets/],
    ] as const) {
      const error = rejection(input)
      expect(error.exitCode, input).to.equal(2)
      expect(error.message).to.match(pattern)
      expect(redactSecrets(error.message)).to.not.include('PASSWORD')
      expect(error.message).to.not.include('PASSWORD')
    }
  })
})

describe('oclif messages in one line', () => {
  it('joins the reason oclif puts on further lines, drops the help pointer, keeps argument names', () => {
    expect(flattenOclifMessage('Parsing --connect-timeout \n\tExpected an integer greater than or equal to 1 but received: 0\nSee more help with --help')).to.equal(
      'Parsing --connect-timeout: Expected an integer greater than or equal to 1 but received: 0',
    )
    expect(flattenOclifMessage('The following error occurred:\n  --replica=b cannot also be provided when using --master\nSee more help with --help')).to.equal(
      'The following error occurred: --replica=b cannot also be provided when using --master',
    )
    expect(flattenOclifMessage('Missing 1 required arg:\naddress  any node of the cluster (HOST:PORT)\nSee more help with --help')).to.equal(
      'Missing 1 required arg: address (any node of the cluster (HOST:PORT))',
    )
    expect(flattenOclifMessage('Unexpected argument: x\nSee more help with --help')).to.equal('Unexpected argument: x')
    expect(flattenOclifMessage('The following errors occurred:\n  --a=true cannot also be provided when using --b\n  --b=true cannot also be provided when using --a\nSee more help with --help')).to.equal(
      'The following errors occurred: --a=true cannot also be provided when using --b; --b=true cannot also be provided when using --a',
    )
  })
})
