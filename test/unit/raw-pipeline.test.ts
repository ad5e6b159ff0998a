import {expect} from 'chai'

import {RawReplyError, ReplyReader, countKeysBatch, encodeCommands, parseReply} from '../../src/lib/cluster/raw-pipeline.js'
import {runsInOrder} from '../../src/lib/core/slots.js'

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
    expect(encodeCommands([['CLUSTER', 'COUNTKEYSINSLOT', 42], ['INFO', 'keyspace']]).toString()).to.equal('*3\r\n$7\r\nCLUSTER\r\n$15\r\nCOUNTKEYSINSLOT\r\n$2\r\n42\r\n*2\r\n$4\r\nINFO\r\n$8\r\nkeyspace\r\n')
    expect(encodeCommands([['AUTH', 'üser', 'pässwörd']]).toString()).to.equal('*3\r\n$4\r\nAUTH\r\n$5\r\nüser\r\n$10\r\npässwörd\r\n')
    expect(encodeCommands([['ECHO', -7], ['ECHO', 1.5], ['ECHO', '']]).toString()).to.equal('*2\r\n$4\r\nECHO\r\n$2\r\n-7\r\n*2\r\n$4\r\nECHO\r\n$3\r\n1.5\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n')
  })

  it('encodes whole numbers of any length, and the same words each time', () => {
    const numbers = [0, 9, 10, 99, 100, 16383, 1234567890, Number.MAX_SAFE_INTEGER]
    const expected = numbers.map((n) => `*3\r\n$7\r\nCLUSTER\r\n$15\r\nCOUNTKEYSINSLOT\r\n$${String(n).length}\r\n${n}\r\n`).join('')
    expect(encodeCommands(numbers.map((n) => ['CLUSTER', 'COUNTKEYSINSLOT', n])).toString()).to.equal(expected)
    const many = Array.from({length: 12}, (_, i) => ['ECHO', i])
    expect(encodeCommands([['X', ...Array.from({length: 10}, () => 'a')], ...many]).toString()).to.equal(`*11\r\n$1\r\nX\r\n${'$1\r\na\r\n'.repeat(10)}${many.map(([, i]) => `*2\r\n$4\r\nECHO\r\n$${String(i).length}\r\n${i}\r\n`).join('')}`)
  })

  it('a batch of COUNTKEYSINSLOT copied out of its table is what encoding each command gives, for every slot', () => {
    const every = Array.from({length: 16_384}, (_, slot) => ['CLUSTER', 'COUNTKEYSINSLOT', slot])
    expect(countKeysBatch([[0, 16_383]]).bytes.equals(encodeCommands(every))).to.equal(true)
    const before = [['INFO', 'keyspace']]
    const batch = countKeysBatch([[9998, 10_001], [5, 5], [98, 101]], before)
    const commands = [...before, ...[9998, 9999, 10_000, 10_001, 5, 98, 99, 100, 101].map((slot) => ['CLUSTER', 'COUNTKEYSINSLOT', slot])]
    expect(batch.count).to.equal(10)
    expect(batch.commands()).to.deep.equal(commands)
    expect(batch.bytes.toString()).to.equal(encodeCommands(commands).toString())
    expect(countKeysBatch([]).count).to.equal(0)
    for (const bad of [[-1, 3], [16_383, 16_384], [7, 6], [1.5, 2]]) expect(() => countKeysBatch([bad as [number, number]]), String(bad)).to.throw(RangeError)
  })

  it('runsInOrder keeps the order the counts come back in', () => {
    expect(runsInOrder([5, 6, 7, 2, 3, 3, 9])).to.deep.equal([[5, 7], [2, 3], [3, 3], [9, 9]])
    expect(runsInOrder([])).to.deep.equal([])
  })

  it('the reader gives the same replies however the stream is cut, integers read on their fast path or not', () => {
    const stream = ':0\r\n:42\r\n:123456789012345\r\n:1234567890123456\r\n:-3\r\n:\r\n+OK\r\n:7\r\n$2\r\n:1\r\n*2\r\n:5\r\n:6\r\n-ERR x\r\n:16383\r\n'
    const expected = parseAll(stream)
    expect(expected.slice(0, 5)).to.deep.equal([0, 42, 123_456_789_012_345, 1_234_567_890_123_456, -3])
    const bytes = Buffer.from(stream)
    for (let cut = 0; cut <= bytes.length; cut++) {
      const reader = new ReplyReader()
      reader.push(bytes.subarray(0, cut))
      reader.push(bytes.subarray(cut))
      expect(reader.replies, `cut at ${cut}`).to.deep.equal(expected)
    }
    const byteByByte = new ReplyReader()
    for (let i = 0; i < bytes.length; i++) byteByByte.push(bytes.subarray(i, i + 1))
    expect(byteByByte.replies).to.deep.equal(expected)
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
