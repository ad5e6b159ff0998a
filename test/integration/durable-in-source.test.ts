/**
 * The core of durable moves run inside the source (durable-in-source.ts): a batch copied by
 * the copy script is deleted by the delete script only if no key of it changed since the
 * copy. Each change a client can make between the two (a new value, a new expiry, a
 * delete, an expiry) keeps the whole batch at the source; an untouched batch is deleted,
 * and the target holds exactly what left. The quiet path (no fingerprints) deletes only
 * while the source's write stamp is the copy's: any client write on the source, in the slot
 * or not, deletes nothing, and so does an expiry (the listing changed). Run on a real
 * two-master cluster, the slot opened by hand as a move opens it.
 */
import {randomBytes} from 'node:crypto'

import {expect} from 'chai'
import type {Redis} from 'ioredis'

import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {tagForSlot} from '../../src/lib/migrate/durable.js'
import {IN_SOURCE_MAX_KEY_BYTES, type QuietBatch, copyBatchInSource, copyQuiet, deleteIfUnchanged, deleteQuiet} from '../../src/lib/migrate/durable-in-source.js'
import {TestCluster} from '../helpers/cluster-harness.js'

describe('durable moves inside the source: delete only what was copied unchanged', function () {
  this.timeout(120_000)
  let cluster: TestCluster
  let source: Redis
  let target: Redis
  let targetPort: number
  let slot: number
  let ids: {source: string; target: string}
  const keys = ['a', 'b', 'c'].map((name) => `k:${name}`)

  before(async () => {
    cluster = await TestCluster.start({masters: 2})
    const view = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
    const [owner, other] = view.filter((node) => node.role === 'master').sort((a, b) => a.slots[0][0] - b.slots[0][0])
    slot = owner.slots[0][0]
    source = cluster.client(owner.address)
    target = cluster.client(other.address)
    targetPort = Number(other.address.split(':')[1])
    ids = {source: owner.id, target: other.id}
  })
  after(async () => {
    await cluster.stop()
  })

  const name = (key: string) => `${key}{${tagForSlot(slot)}}`
  const migrateArgs = () => ['127.0.0.1', targetPort, '', 0, 5000]

  /** Three keys written while the slot is stable (a migrating source sends new keys away), then the slot opened. */
  async function freshBatch(): Promise<{keys: Buffer[]; token: string}> {
    for (const node of [source, target]) await node.call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    await source.call('FLUSHALL')
    await target.call('FLUSHALL')
    for (const key of keys) await source.set(name(key), `value of ${key}`)
    await source.pexpire(name(keys[2]), 600_000)
    await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids.source)
    await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', ids.target)
    const {result, token} = await copyBatchInSource(source, slot, 100, migrateArgs(), false)
    expect(result.error).to.equal(undefined)
    expect(result.keys.map(String).sort()).to.deep.equal(keys.map(name).sort())
    expect(result.listed).to.equal(3)
    expect(token).to.match(/^[0-9a-f]{40}$/)
    for (const key of keys) expect(await target.call('ASKING').then(() => target.get(name(key)))).to.equal(`value of ${key}`)
    return {keys: result.keys, token}
  }

  async function atSource(): Promise<number> {
    let present = 0
    for (const key of keys) present += await source.exists(name(key)).catch(() => 0)
    return present
  }

  it('an untouched batch is deleted at the source, and the copies keep their values and expiry', async () => {
    const batch = await freshBatch()
    expect(await deleteIfUnchanged(source, batch.token, batch.keys)).to.equal(3)
    expect(await atSource()).to.equal(0)
    await target.call('ASKING')
    expect(await target.pttl(name(keys[2]))).to.be.within(1, 600_000)
  })

  const changes: Array<[string, () => Promise<unknown>]> = [
    ['a new value', () => source.set(name(keys[0]), 'changed')],
    ['the same value written again without its expiry', () => source.set(name(keys[2]), `value of ${keys[2]}`)],
    ['a new expiry', () => source.pexpire(name(keys[1]), 900_000)],
    ['a delete', () => source.del(name(keys[0]))],
    ['an expiry', async () => {
      await source.pexpire(name(keys[1]), 1)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }],
  ]
  for (const [change, apply] of changes) {
    it(`${change} between copy and delete keeps the whole batch at the source`, async () => {
      const batch = await freshBatch()
      const before = await atSource()
      await apply()
      const present = await atSource()
      expect(await deleteIfUnchanged(source, batch.token, batch.keys)).to.equal(undefined)
      expect(await atSource()).to.equal(present)
      expect(present).to.be.at.most(before)
      // a changed value is still the source's, not the copy's
      if (change === 'a new value') expect(await source.get(name(keys[0]))).to.equal('changed')
    })
  }

  it('a key above the in-source limit copies nothing: its slot goes on through slotctl', async () => {
    await freshBatch()
    for (const node of [source, target]) await node.call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    // random bytes: DUMP compresses a repeated character to almost nothing
    await source.set(name('big'), randomBytes(IN_SOURCE_MAX_KEY_BYTES + 1))
    await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids.source)
    await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', ids.target)
    await target.call('FLUSHALL')
    const {result, token} = await copyBatchInSource(source, slot, 100, migrateArgs(), true)
    expect(result.big).to.equal(true)
    expect(token).to.equal('')
    expect(await target.dbsize()).to.equal(0)
  })

  describe('the quiet path', () => {
    /** freshBatch's keys, the slot re-opened, copied by the quiet script. */
    async function quietBatch(): Promise<{batch: QuietBatch; stamp: string}> {
      await freshBatch()
      await target.call('FLUSHALL')
      const {batch, result, stamp} = await copyQuiet(source, slot, 100, migrateArgs(), true)
      expect(result.error).to.equal(undefined)
      expect(result.listed).to.equal(3)
      expect(result.keys).to.deep.equal([])
      expect(stamp).to.match(/^\d+:\d+:\d+$/)
      for (const key of keys) expect(await target.call('ASKING').then(() => target.get(name(key)))).to.equal(`value of ${key}`)
      return {batch: batch as QuietBatch, stamp: stamp as string}
    }

    it('deletes an untouched batch; the copies keep their values and expiry', async () => {
      const {batch, stamp} = await quietBatch()
      expect(await deleteQuiet(source, stamp, [batch])).to.deep.equal([3])
      expect(await atSource()).to.equal(0)
      await target.call('ASKING')
      expect(await target.pttl(name(keys[2]))).to.be.within(1, 600_000)
    })

    const writes: Array<[string, () => Promise<unknown>]> = [...changes.filter(([change]) => change !== 'an expiry'), ['a write to a key of another slot', () => source.set(`elsewhere{${tagForSlot(slot + 1)}}`, '1')]]
    for (const [change, apply] of writes) {
      it(`${change} between copy and delete deletes nothing`, async () => {
        const {batch, stamp} = await quietBatch()
        const before = await atSource()
        await apply()
        const present = await atSource()
        expect(await deleteQuiet(source, stamp, [batch])).to.equal('changed')
        expect(await atSource()).to.equal(present)
        expect(present).to.be.at.most(before)
        if (change === 'a new value') expect(await source.get(name(keys[0]))).to.equal('changed')
      })
    }

    it('a key that expires between copy and delete (no write) of a slot listed whole is gone on both sides; the rest is deleted', async () => {
      await freshBatch()
      await target.call('FLUSHALL')
      await source.pexpire(name(keys[1]), 50)
      const {batch, stamp} = await copyQuiet(source, slot, 100, migrateArgs(), true)
      expect(batch?.digest).to.equal('*')
      await new Promise((resolve) => setTimeout(resolve, 150))
      // reclaimed or not yet (then listed, and skipped by DEL), the other two keys were copied and go
      expect(await deleteQuiet(source, stamp as string, [batch as QuietBatch])).to.deep.equal([2])
      expect(await atSource()).to.equal(0)
      await target.call('ASKING')
      expect(await target.exists(name(keys[1]))).to.equal(0)
      for (const key of [keys[0], keys[2]]) expect(await target.call('ASKING').then(() => target.get(name(key)))).to.equal(`value of ${key}`)
    })

    it('a slot listed in part: a copied key that expires lets in a key never copied, so nothing of the slot is deleted', async () => {
      await freshBatch()
      await target.call('FLUSHALL')
      const [first, second, uncopied] = ((await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 3)) as string[]).map(String)
      await source.pexpire(first, 50)
      const {batch, stamp} = await copyQuiet(source, slot, 2, migrateArgs(), true)
      expect(batch?.digest).to.match(/^[0-9a-f]{40}$/)
      await target.call('ASKING')
      expect(await target.exists(uncopied)).to.equal(0)
      // the expired key is reclaimed (touched, or by the server's expiry cycle): the listing now has the uncopied key
      const listing = async () => ((await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 2)) as string[]).map(String)
      for (let wait = 0; wait < 50 && (await listing()).includes(first); wait++) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        await source.exists(first).catch(() => 0)
      }
      expect(await listing()).to.deep.equal([second, uncopied])
      // -1: the listing changed; 'changed' where reclaiming counts as a write
      expect(JSON.stringify(await deleteQuiet(source, stamp as string, [batch as QuietBatch]))).to.be.oneOf(['[-1]', '"changed"'])
      expect(await source.exists(second)).to.equal(1)
      expect(await source.exists(uncopied)).to.equal(1)
    })

    it('a stamp of another moment deletes nothing', async () => {
      const {batch} = await quietBatch()
      expect(await deleteQuiet(source, '0:0:0', [batch])).to.equal('changed')
      expect(await deleteQuiet(source, '', [batch])).to.equal('changed')
      expect(await atSource()).to.equal(3)
    })
  })

  it('a token of another batch deletes nothing', async () => {
    const batch = await freshBatch()
    expect(await deleteIfUnchanged(source, '0'.repeat(40), batch.keys)).to.equal(undefined)
    expect(await atSource()).to.equal(3)
  })
})
