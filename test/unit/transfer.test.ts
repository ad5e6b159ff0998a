/**
 * The pure parts of import, backup and restore: the content digest's canonical forms, the
 * replication-protocol receiver (bulk length, EOF mark split across chunks, keep-alive
 * newlines, refusals), the import journal, key names in results, keys-only progress.
 */
import {readFileSync} from 'node:fs'
import {appendFile, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {progressLine} from '../../src/lib/cli/progress.js'
import {DIGEST_ALGORITHM, combineDigests, keyHash, typeOfDump} from '../../src/lib/keys/digest.js'
import {keyName} from '../../src/lib/transfer/import.js'
import {readManifest} from '../../src/lib/transfer/manifest.js'
import {ImportJournal, type ImportSettings, readImportJournal} from '../../src/lib/transfer/journal.js'
import {RdbReceiver, rdbFormat} from '../../src/lib/transfer/rdb-fetch.js'
import {keyspaceOf, serverVersionOf} from '../../src/lib/transfer/source.js'

const b = (text: string) => Buffer.from(text)

describe('content digest: canonical forms', () => {
  it('a set or hash read in another order hashes the same; another value does not', () => {
    expect(keyHash(b('s'), 'set', [b('x'), b('y'), b('1')])).to.deep.equal(keyHash(b('s'), 'set', [b('1'), b('x'), b('y')]))
    expect(keyHash(b('h'), 'hash', [b('f1'), b('v1'), b('f2'), b('v2')])).to.deep.equal(keyHash(b('h'), 'hash', [b('f2'), b('v2'), b('f1'), b('v1')]))
    expect(keyHash(b('h'), 'hash', [b('f1'), b('v1'), b('f2'), b('v2')])).to.not.deep.equal(keyHash(b('h'), 'hash', [b('f1'), b('v2'), b('f2'), b('v1')]))
    expect(keyHash(b('s'), 'set', [b('x')])).to.not.deep.equal(keyHash(b('t'), 'set', [b('x')]))
  })

  it('lists keep their order; a score is the same double however a server prints it', () => {
    expect(keyHash(b('l'), 'list', [b('a'), b('b')])).to.not.deep.equal(keyHash(b('l'), 'list', [b('b'), b('a')]))
    expect(keyHash(b('z'), 'zset', [b('m'), b('0.1')])).to.deep.equal(keyHash(b('z'), 'zset', [b('m'), b('0.10000000000000001')]))
    expect(keyHash(b('z'), 'zset', [b('m'), b('inf')])).to.not.deep.equal(keyHash(b('z'), 'zset', [b('m'), b('-inf')]))
  })

  it('length prefixes keep concatenations apart, and the type counts', () => {
    expect(keyHash(b('l'), 'list', [b('ab'), b('c')])).to.not.deep.equal(keyHash(b('l'), 'list', [b('a'), b('bc')]))
    expect(keyHash(b('k'), 'string', b('1'))).to.not.deep.equal(keyHash(b('k'), 'list', [b('1')]))
  })

  it('hash field expiry times count (a field without one counts as before); vector set elements are order-free, each with its embedding and attributes', () => {
    const fields = [b('f1'), b('v1'), b('f2'), b('v2')]
    expect(keyHash(b('h'), 'hash', fields, [-1, -1])).to.deep.equal(keyHash(b('h'), 'hash', fields))
    expect(keyHash(b('h'), 'hash', fields, [1_796_568_442_527, -1])).to.not.deep.equal(keyHash(b('h'), 'hash', fields))
    expect(keyHash(b('h'), 'hash', fields, [1_796_568_442_527, -1])).to.not.deep.equal(keyHash(b('h'), 'hash', fields, [1_796_568_442_528, -1]))
    expect(keyHash(b('h'), 'hash', fields, [5, -1])).to.deep.equal(keyHash(b('h'), 'hash', [b('f2'), b('v2'), b('f1'), b('v1')], [-1, 5]))
    const vemb = (blob: string) => [b('int8'), b(blob), b('3.2'), b('0.6')]
    const elements = [b('a'), b('b')]
    const details = [[vemb('xy'), b('{"i":1}')], [vemb('zw'), null]]
    expect(keyHash(b('v'), 'vectorset', elements, details)).to.deep.equal(keyHash(b('v'), 'vectorset', [b('b'), b('a')], [details[1], details[0]]))
    expect(keyHash(b('v'), 'vectorset', elements, details)).to.not.deep.equal(keyHash(b('v'), 'vectorset', elements, [details[0], [vemb('zz'), null]]))
    expect(keyHash(b('v'), 'vectorset', elements, details)).to.not.deep.equal(keyHash(b('v'), 'vectorset', elements, [details[0], [vemb('zw'), b('{}')]]))
  })

  it('digests combine by XOR: order-free, and a digest cancels itself', () => {
    const [x, y] = ['0123456789abcdef0123456789abcdef01234567', 'ffffffffffffffffffff00000000000000000000']
    expect(combineDigests([x, y])).to.equal(combineDigests([y, x]))
    expect(combineDigests([x, x])).to.equal('0'.repeat(40))
    expect(combineDigests([])).to.equal('0'.repeat(40))
  })

  it('the type of a DUMP payload from its first byte; unknown encodings are left to TYPE', () => {
    expect([0, 18, 11, 17, 16, 21].map((byte) => typeOfDump(Buffer.from([byte])))).to.deep.equal(['string', 'list', 'set', 'zset', 'hash', 'stream'])
    expect(typeOfDump(Buffer.from([7]))).to.equal(undefined)
  })
})

/** Feeds `chunks` to a receiver and returns what it wrote, what it sent, and whether it finished. */
function receive(chunks: Array<Buffer | string>, auth?: string[]) {
  const sent: string[] = []
  const written: Buffer[] = []
  const receiver = new RdbReceiver((text) => sent.push(text), (chunk) => written.push(Buffer.from(chunk)) > 0, auth, 'node:1')
  receiver.start()
  let done = false
  for (const chunk of chunks) done = receiver.receive(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk).done || done
  return {done, payload: Buffer.concat(written), result: receiver.result(), sent: sent.join('')}
}

const RDB = Buffer.concat([Buffer.from('REDIS0011\u00fa\u0005hello'), Buffer.from([0xff, 1, 2, 3, 4, 5, 6, 7, 8])])
const MARK = 'a'.repeat(20) + 'b'.repeat(20)

describe('backup manifest: digests of another algorithm', () => {
  it('are dropped on reading (restore then digests the files itself); this algorithm\'s are kept', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-manifest-'))
    try {
      const entry = {bytes: 18, digest: 'ab'.repeat(20), file: 'a.rdb', keys: 1, keysWithExpiry: 0, master: {address: '127.0.0.1:7000', id: 'a'.repeat(40)}, sha256: 'cd'.repeat(32), slots: [[0, 16_383]]}
      const manifest = (algorithm: string) => ({digestAlgorithm: algorithm, files: [entry], kind: 'slotctl-backup', schemaVersion: 1})
      await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest('slotctl-content-v1')))
      expect((await readManifest(dir)).files[0].digest).to.equal(null)
      await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest(DIGEST_ALGORITHM)))
      expect((await readManifest(dir)).files[0].digest).to.equal('ab'.repeat(20))
    } finally {
      await rm(dir, {force: true, recursive: true})
    }
  })
})

describe('RDB over the replication protocol', () => {
  it('asks one thing at a time (AUTH, rdb-only, capa eof, version, SYNC), then takes a bulk of the announced length', () => {
    const {done, payload, result, sent} = receive(['+OK\r\n', '+OK\r\n', '-ERR unknown option\r\n', '-ERR Unrecognized REPLCONF option: version\r\n', '\n', '\n', `$${RDB.length}\r\n`, RDB.subarray(0, 5), Buffer.concat([RDB.subarray(5), Buffer.from('*1\r\n$4\r\nPING\r\n')])], ['secret'])
    expect(sent).to.equal('*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*3\r\n$8\r\nREPLCONF\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n*3\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n*3\r\n$8\r\nREPLCONF\r\n$7\r\nversion\r\n$11\r\n255.255.255\r\n*1\r\n$4\r\nSYNC\r\n')
    expect(done).to.equal(true)
    expect(payload).to.deep.equal(RDB)
    expect(rdbFormat(result.head)).to.equal('REDIS0011')
    expect(result.trailer[0]).to.equal(0xff)
  })

  it('EOF-mark mode: the payload ends at the mark, even when the mark arrives split over chunks', () => {
    const stream = Buffer.concat([Buffer.from(`$EOF:${MARK}\r\n`), RDB, Buffer.from(MARK)])
    for (let cut = 1; cut < stream.length; cut += 7) {
      const {done, payload} = receive(['+OK\r\n', '+OK\r\n', '+OK\r\n', stream.subarray(0, cut), stream.subarray(cut)])
      expect(done, `cut at ${cut}`).to.equal(true)
      expect(payload, `cut at ${cut}`).to.deep.equal(RDB)
    }
  })

  it('a refused AUTH or SYNC is an error naming the node', () => {
    expect(() => receive(['-WRONGPASS invalid username-password pair\r\n'], ['x'])).to.throw(/authentication failed at node:1/)
    expect(() => receive(['+OK\r\n', '+OK\r\n', '+OK\r\n', "-NOPERM this user has no permissions to run the 'sync' command\r\n"])).to.throw(/node:1 refused SYNC/)
  })

  it('recognizes Redis and Valkey file headers only', () => {
    expect(rdbFormat(Buffer.from('VALKEY080xyz'))).to.equal('VALKEY080')
    expect(rdbFormat(Buffer.from('REDIS0010'))).to.equal('REDIS0010')
    expect(rdbFormat(Buffer.from('+FULLRESY'))).to.equal(undefined)
  })
})

describe('import journal', () => {
  let dir: string
  const settings: ImportSettings = {copy: true, db: 0, pipeline: 1000, replace: false, seed: '10.0.0.1:7000', source: '10.0.0.9:6379', timeoutMs: 60_000}
  const owner = {address: '10.0.0.1:7000', id: 'a'.repeat(40)}

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-import-journal-'))
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('adds up checkpoints, keeps binary conflict names, survives a torn last line, and is never reused', async () => {
    const file = path.join(dir, 'a.jsonl')
    const journal = ImportJournal.create(file, settings, 'slotctl import ... --resume a.jsonl')
    journal.checkpoint({conflicts: [], cursor: '123', keys: 1000})
    journal.checkpoint({conflicts: [{key: Buffer.from([0xff, 0x00, 0x41]), owner}], cursor: '456', keys: 999})
    await appendFile(file, '{"type":"checkpoint","cursor":"789","ke')
    const state = readImportJournal(file)
    expect(state).to.include({complete: false, cursor: '456', keys: 1999})
    expect(state.settings).to.deep.equal(settings)
    expect(state.conflicts.map((conflict) => conflict.key)).to.deep.equal([Buffer.from([0xff, 0x00, 0x41])])
    ImportJournal.reopen(file).complete()
    expect(readImportJournal(file).complete).to.equal(true)
    expect(readFileSync(file, 'utf8')).to.not.include('"ke\n')
    expect(() => ImportJournal.create(file, settings, '')).to.throw(/already exists/)
  })

  it('refuses a file that is not an import journal', async () => {
    const file = path.join(dir, 'plan.jsonl')
    await appendFile(file, '{"type":"plan","plan":{}}\n')
    expect(() => readImportJournal(file)).to.throw(/not a slotctl import journal/)
  })
})

describe('small shapes', () => {
  it('key names in results: text when valid UTF-8, hex otherwise', () => {
    expect(keyName(Buffer.from('user:é'))).to.deep.equal({encoding: 'utf8', key: 'user:é'})
    expect(keyName(Buffer.from([0xff, 0xfe, 0x31]))).to.deep.equal({encoding: 'hex', key: 'fffe31'})
  })

  it('INFO keyspace and versions', () => {
    expect(keyspaceOf({db0: 'keys=10,expires=2,avg_ttl=0', db3: 'keys=1,expires=0,avg_ttl=0', redis_version: '7.0.15'})).to.deep.equal([
      {db: 0, expires: 2, keys: 10},
      {db: 3, expires: 0, keys: 1},
    ])
    expect(serverVersionOf({redis_version: '7.2.4', valkey_version: '8.0.1'})).to.equal('valkey 8.0.1')
    expect(serverVersionOf({redis_version: '7.0.15'})).to.equal('redis 7.0.15')
  })

  it('progress without slots (import, restore): percent and ETA by keys, no slot count', () => {
    const line = progressLine({bytesMoved: 0, elapsedMs: 2000, keysMoved: 500, slotsDone: 0}, {keys: 1000, slots: 0}, 200)
    expect(line).to.include(' 50%').and.include('500/1000 keys').and.include('250 keys/s').and.include('ETA 2.00 s')
    expect(line).to.not.include('slots')
    expect(line).to.not.include(' B ')
  })
})
