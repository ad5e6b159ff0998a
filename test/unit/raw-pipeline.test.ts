import {expect} from 'chai'

import {RawReplyError, encodeCommands, parseReply} from '../../src/lib/cluster/raw-pipeline.js'

/** Every reply in `text`, as parseReply reads them one after another. */
function parseAll(text: string): unknown[] {
  const buffer = Buffer.from(text)
  const replies: unknown[] = []
  for (let at = 0; at < buffer.length; ) {
    const reply = parseReply(buffer, at)
    if (!reply) throw new Error(`incomplete at ${at}`)
    replies.push(reply.value)
    at = reply.end
  }
  return replies
}

describe('raw pipeline: RESP written and read without ioredis', () => {
  it('encodes each command as an array of bulk strings, lengths in bytes (not characters)', () => {
    expect(encodeCommands([['CLUSTER', 'COUNTKEYSINSLOT', 42], ['INFO', 'keyspace']])).to.equal('*3\r\n$7\r\nCLUSTER\r\n$15\r\nCOUNTKEYSINSLOT\r\n$2\r\n42\r\n*2\r\n$4\r\nINFO\r\n$8\r\nkeyspace\r\n')
    expect(encodeCommands([['AUTH', 'üser', 'pässwörd']])).to.equal('*3\r\n$4\r\nAUTH\r\n$5\r\nüser\r\n$10\r\npässwörd\r\n')
    expect(encodeCommands([['ECHO', -7], ['ECHO', 1.5], ['ECHO', '']])).to.equal('*2\r\n$4\r\nECHO\r\n$2\r\n-7\r\n*2\r\n$4\r\nECHO\r\n$3\r\n1.5\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n')
  })

  it('reads integers, simple and bulk strings, nulls, nested arrays and errors', () => {
    const replies = parseAll(':0\r\n:1234567\r\n:-3\r\n+OK\r\n$4\r\nhé!\r\n$-1\r\n*-1\r\n*3\r\n:1\r\n*1\r\n$1\r\na\r\n$0\r\n\r\n-NOPERM no rights\r\n')
    expect(replies.slice(0, 7)).to.deep.equal([0, 1234567, -3, 'OK', 'hé!', null, null])
    expect(replies[7]).to.deep.equal([1, ['a'], ''])
    expect(replies[8]).to.be.instanceOf(RawReplyError)
    expect((replies[8] as Error).message).to.equal('NOPERM no rights')
  })

  it('a reply cut anywhere is incomplete (undefined), never misread', () => {
    const whole = '*2\r\n$11\r\ndb0:keys=10\r\n:-12\r\n'
    for (let cut = 0; cut < whole.length; cut++) expect(parseReply(Buffer.from(whole.slice(0, cut)), 0), `cut at ${cut}`).to.equal(undefined)
    expect(parseReply(Buffer.from(whole), 0)).to.deep.equal({end: whole.length, value: ['db0:keys=10', -12]})
  })

  it('a byte that starts no RESP reply is a protocol error', () => {
    expect(() => parseReply(Buffer.from('?x\r\n'), 0)).to.throw(/unexpected reply/)
  })
})
