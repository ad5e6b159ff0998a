/**
 * The pieces of "lock first" and bounded file work that need no server: what counts as a
 * change of the cluster, how a lock marker is judged, and which paths are refused.
 */
import {mkdtempSync, rmSync, statSync, symlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import {clusterChange} from '../../src/lib/cluster/changes.js'
import type {ClusterSnapshot} from '../../src/lib/cluster/loader.js'
import {LIVE_IDLE_SECONDS, isLive, otherRunsIn} from '../../src/lib/cluster/run-lock.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {ensurePrivateDirSync, refuseKernelPath} from '../../src/lib/files.js'
import {A, B, C, R1, healthy} from '../fixtures/cluster-nodes.js'

const snapshotOf = (text: string): ClusterSnapshot => ({nodes: parseClusterNodes(text), seedAddress: '10.0.0.1:7000', seedId: A, views: {}})

describe('clusterChange: the read under the lock against the one a run decided on', () => {
  it('sees nothing in the same cluster', () => {
    expect(clusterChange(snapshotOf(healthy), snapshotOf(healthy))).to.equal(undefined)
  })

  it('names slots that changed owner, with the first one\'s old and new owner', () => {
    const moved = healthy.replace('0-5460', '10-5460').replace('5461-10922', '0-9 5461-10922')
    expect(clusterChange(snapshotOf(healthy), snapshotOf(moved))).to.equal('10 slot(s) changed owner (0-9; slot 0: 10.0.0.1:7000 (a1111111) -> 10.0.0.2:7001 (b2222222))')
  })

  it('names a node that joined, left or changed role, and slots that opened', () => {
    const extra = `${healthy}${'ab'.padEnd(40, 'c')} 10.0.0.4:7006@17006 master - 0 0 7 connected\n`
    expect(clusterChange(snapshotOf(healthy), snapshotOf(extra))).to.match(/^10\.0\.0\.4:7006 \(abcccccc\) joined the cluster$/)
    expect(clusterChange(snapshotOf(extra), snapshotOf(healthy))).to.match(/left the cluster$/)
    const swapped = healthy.replace(`${R1} 10.0.0.2:7003@17003,,shard-id=abc slave ${A}`, `${R1} 10.0.0.2:7003@17003,,shard-id=abc slave ${B}`)
    expect(clusterChange(snapshotOf(healthy), snapshotOf(swapped))).to.match(/^replica 10\.0\.0\.2:7003 \(d4444444\) now replicates b2222222 \(was a1111111\)$/)
    const open = healthy.replace('0-5460', `0-5460 [7-<-${C}]`)
    expect(clusterChange(snapshotOf(healthy), snapshotOf(open))).to.equal('the importing slot(s) of 10.0.0.1:7000 (a1111111) changed (7)')
  })
})

describe('lock markers', () => {
  const line = (name: string, idle: number) => `id=42 addr=10.0.0.9:5555 laddr=10.0.0.1:7000 fd=9 name=${name} age=100 idle=${idle} flags=N db=0 cmd=client|setname`
  const marker = 'slotctl:reshard:host-a:123:20260101T000000Z:n0nce1'

  it('a marker renewed within the limit is a live run; one idle longer is not, whatever its name says', () => {
    const [fresh] = otherRunsIn(line(marker, 0), 'own', '10.0.0.1:7000')
    expect(fresh).to.include({clientAddress: '10.0.0.9:5555', clientId: '42', host: 'host-a', name: marker, pid: 123, verb: 'reshard'})
    expect(isLive(fresh)).to.equal(true)
    const [idle] = otherRunsIn(line(marker, LIVE_IDLE_SECONDS), 'own', '10.0.0.1:7000')
    expect(isLive(idle)).to.equal(false)
  })

  it('ignores its own marker and names that are not markers', () => {
    expect(otherRunsIn([line(marker, 0), line('slotctl:nonsense', 0), line('app-worker', 0)].join('\n'), marker, '10.0.0.1:7000')).to.deep.equal([])
  })
})

describe('paths on kernel filesystems', () => {
  let dir: string

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'slotctl-paths-'))
  })

  after(() => {
    rmSync(dir, {force: true, recursive: true})
  })

  it('refuses /proc, /sys and /dev, and a symlink into them, by the resolved path', () => {
    for (const target of ['/proc/slotctl/x', '/sys/slotctl', '/dev/slotctl/j.jsonl', '/proc/self/slotctl']) expect(() => refuseKernelPath(target), target).to.throw(/is on a kernel filesystem/)
    symlinkSync('/proc/self', path.join(dir, 'link'))
    expect(() => refuseKernelPath(path.join(dir, 'link', 'deeper', 'j.jsonl'))).to.throw(/is on a kernel filesystem \(\/proc\)/)
  })

  it('creates ordinary directories level by level, private, and keeps /dev/shm usable', () => {
    const deep = path.join(dir, 'a', 'b', 'c')
    ensurePrivateDirSync(deep)
    expect(statSync(deep).isDirectory()).to.equal(true)
    expect(statSync(path.join(dir, 'a')).mode & 0o777).to.equal(0o700)
    ensurePrivateDirSync(deep) // existing: nothing to do
    expect(() => refuseKernelPath('/dev/shm/slotctl-test')).to.not.throw()
  })
})
