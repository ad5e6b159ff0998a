/**
 * The shared file helpers (issue 20): output files are new unless --overwrite, never written
 * through a symlink, and whole (a temp file beside them takes their name); special files
 * (FIFOs, devices, symlinks) are never read as data; journals are never appended through a
 * symlink. Also the bounds of the replication receiver and of an import's SCAN.
 */
import {execFileSync} from 'node:child_process'
import {chmodSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import type {Redis} from 'ioredis'

import {SlotctlError} from '../../src/lib/core/errors.js'
import {appendToFileSync, cutTornLastLine, openRegularFile, readRegularFileSync, writeOutputFile} from '../../src/lib/files.js'
import {RdbReceiver} from '../../src/lib/transfer/rdb-fetch.js'
import {ScanGuard} from '../../src/lib/transfer/scan-guard.js'

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error('expected a rejection')
}

describe('output files', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-output-files-'))
  })
  afterEach(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('a new file is written whole, mode 0600, with no temp file left', async () => {
    const file = path.join(dir, 'plan.json')
    await writeOutputFile(file, '{"a":1}\n')
    expect(readFileSync(file, 'utf8')).to.equal('{"a":1}\n')
    expect(statSync(file).mode & 0o777).to.equal(0o600)
    expect(readdirSync(dir)).to.deep.equal(['plan.json'])
  })

  it('an existing file is refused unless overwrite, which replaces it (not its mode: a new file)', async () => {
    const file = path.join(dir, 'passwd')
    writeFileSync(file, 'root\n')
    chmodSync(file, 0o644)
    const error = await rejection(writeOutputFile(file, 'x', {overwriteFlag: '--overwrite'}))
    expect(error).to.be.instanceOf(SlotctlError)
    expect(error.message).to.match(/already exists/)
    expect((error as SlotctlError).suggestions.join()).to.match(/--overwrite/)
    expect(readFileSync(file, 'utf8')).to.equal('root\n')
    expect(statSync(file).mode & 0o777).to.equal(0o644)
    await writeOutputFile(file, 'new\n', {overwrite: true})
    expect(readFileSync(file, 'utf8')).to.equal('new\n')
    expect(readdirSync(dir)).to.deep.equal(['passwd'])
  })

  it('a symlink is never written through, dangling or not, overwrite or not', async () => {
    const victim = path.join(dir, 'victim')
    writeFileSync(victim, 'keep\n')
    symlinkSync(victim, path.join(dir, 'link'))
    symlinkSync(path.join(dir, 'nowhere'), path.join(dir, 'dangling'))
    for (const name of ['link', 'dangling']) {
      for (const overwrite of [false, true]) expect((await rejection(writeOutputFile(path.join(dir, name), 'x', {overwrite}))).message).to.match(/is a symlink/)
    }
    expect(readFileSync(victim, 'utf8')).to.equal('keep\n')
    expect(readdirSync(dir).sort()).to.deep.equal(['dangling', 'link', 'victim'])
  })

  it('a directory or a FIFO at the name is refused', async () => {
    execFileSync('mkfifo', [path.join(dir, 'fifo')])
    expect((await rejection(writeOutputFile(path.join(dir, 'fifo'), 'x', {overwrite: true}))).message).to.match(/not a regular file/)
    expect((await rejection(writeOutputFile(dir, 'x', {overwrite: true}))).message).to.match(/not a regular file/)
  })

  it('only regular files are opened for reading: a FIFO, a device and a symlink are refused at once', async () => {
    execFileSync('mkfifo', [path.join(dir, 'fifo')])
    symlinkSync('/dev/zero', path.join(dir, 'zero'))
    expect((await rejection(openRegularFile(path.join(dir, 'fifo')))).message).to.equal('it is not a regular file')
    expect((await rejection(openRegularFile('/dev/zero'))).message).to.equal('it is not a regular file')
    expect((await rejection(openRegularFile(path.join(dir, 'zero')))).message).to.equal('it is a symlink')
  })

  it('input files are read only when regular (through a symlink too): a FIFO or a device is refused without blocking', async () => {
    execFileSync('mkfifo', [path.join(dir, 'fifo')])
    writeFileSync(path.join(dir, 'plan.json'), '{}')
    symlinkSync(path.join(dir, 'plan.json'), path.join(dir, 'plan-link.json'))
    expect(() => readRegularFileSync(path.join(dir, 'fifo'))).to.throw('it is not a regular file')
    expect(() => readRegularFileSync('/dev/zero')).to.throw('it is not a regular file')
    expect(() => readRegularFileSync(path.join(dir, 'plan.json'), 1)).to.throw('it is larger than 1 bytes')
    expect(readRegularFileSync(path.join(dir, 'plan-link.json')).toString()).to.equal('{}')
  })

  it('a journal is never appended to, or resumed, through a symlink', async () => {
    const journal = path.join(dir, 'journal.jsonl')
    writeFileSync(journal, '{"type":"plan"}\n')
    symlinkSync(journal, path.join(dir, 'link.jsonl'))
    expect(() => appendToFileSync(path.join(dir, 'link.jsonl'), 'x\n')).to.throw(/ELOOP/)
    expect(() => cutTornLastLine(path.join(dir, 'link.jsonl'))).to.throw(/is a symlink/)
    appendToFileSync(journal, '{"type":"complete"}\n')
    expect(readFileSync(journal, 'utf8')).to.equal('{"type":"plan"}\n{"type":"complete"}\n')
  })
})

describe('bounds of the replication receiver', () => {
  const receiver = (maxBytes: number) => {
    const r = new RdbReceiver(() => {}, () => true, undefined, 'node:1', maxBytes)
    // rdb-only, capa, version: then SYNC's reply
    for (const reply of ['+OK\r\n', '+OK\r\n', '+OK\r\n']) r.receive(Buffer.from(reply))
    return r
  }

  it('an announced length over the limit is refused before a byte is stored', () => {
    expect(() => receiver(1000).receive(Buffer.from('$1001\r\n'))).to.throw(/announced an RDB of more than 1000 bytes/)
    expect(() => receiver(1000).receive(Buffer.from('$1000\r\n'))).to.not.throw()
  })

  it('a stream past the limit is refused', () => {
    const r = receiver(1000)
    r.receive(Buffer.from(`$EOF:${'m'.repeat(40)}\r\n`))
    r.receive(Buffer.alloc(900, 0x41))
    expect(() => r.receive(Buffer.alloc(200, 0x41))).to.throw(/sent an RDB of more than 1000 bytes/)
  })

  it('a reply line that never ends is refused', () => {
    expect(() => receiver(1000).receive(Buffer.alloc(70 * 1024, 0x41))).to.throw(/without a line end/)
  })
})

describe('an import SCAN must end', () => {
  const source = (dbsize: number) => ({dbsize: async () => dbsize}) as unknown as Redis

  it('a cursor that comes back is refused at once', async () => {
    const guard = new ScanGuard(source(10), 'the source s:1', 10, 1000)
    await guard.step('5')
    await guard.step('9')
    expect((await rejection(guard.step('5'))).message).to.match(/the source s:1 does not finish its SCAN: its cursor 5 came back after 3 call\(s\)/)
  })

  it('new cursors forever: refused once the calls exceed what the key count allows, re-read first', async () => {
    const guard = new ScanGuard(source(1000), 'the source s:1', 0, 1000)
    let calls = 0
    const error = await rejection((async () => {
      for (;;) await guard.step(String(++calls))
    })())
    // 100 always, then 10 per COUNT keys of the DBSIZE read when the first budget ran out
    expect(calls).to.equal(111)
    expect(error.message).to.match(/111 SCAN calls \(COUNT 1000\) have not covered the 1000 key\(s\) it reports/)
  })

  it('cursor 0 ends it, whatever came before', async () => {
    const guard = new ScanGuard(source(0), 'the source s:1', 0, 1000)
    for (let i = 1; i <= 100; i++) await guard.step(String(i))
    await guard.step('0')
  })
})
