import {expect} from 'chai'

import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {outvoted} from '../../src/lib/nodes/failover.js'
import type {FailoverStep} from '../../src/lib/plan/failover.js'

const OLD = 'a'.repeat(40)
const PROMOTED = 'b'.repeat(40)
const OTHER = 'c'.repeat(40)

const step: FailoverStep = {candidates: [], masterAddress: '127.0.0.1:7001', masterId: OLD, replicaAddress: '127.0.0.1:7004', replicaId: PROMOTED, slotCount: 5462, slots: [[0, 5461]]}

/** One node's CLUSTER NODES: the promoted node and the old master with these epochs and slots. */
function view(myself: string, promoted: {role: 'master' | 'slave'; epoch: number; slots?: string}, old: {epoch: number; slots?: string}) {
  const line = (id: string, port: number, flags: string, master: string, epoch: number, slots = '') => `${id} 127.0.0.1:${port}@${port + 10_000} ${id === myself ? `myself,${flags}` : flags} ${master} 0 0 ${epoch} connected ${slots}`.trim()
  return {
    nodes: parseClusterNodes(
      [
        line(OLD, 7001, 'master,fail', '-', old.epoch, old.slots),
        line(PROMOTED, 7004, promoted.role, promoted.role === 'master' ? '-' : OLD, promoted.epoch, promoted.slots),
        line(OTHER, 7002, 'master', '-', 3, '5462-16383'),
      ].join('\n'),
    ),
  }
}

describe('failover: a promotion the other views never take', () => {
  it('is outvoted when the promoted node owns the slots in its own view and another view keeps them with the old master at an epoch not below its own', () => {
    // the CI run on Redis 7: the replica won at epoch 7, every view had its failed master at 8
    const own = view(PROMOTED, {epoch: 7, role: 'master', slots: '0-5461'}, {epoch: 8})
    const other = view(OTHER, {epoch: 8, role: 'master'}, {epoch: 8, slots: '0-5461'})
    expect(outvoted([own, other], step)).to.equal(true)
    // a tie is not enough either: a slot changes hands only for a greater epoch
    expect(outvoted([view(PROMOTED, {epoch: 8, role: 'master', slots: '0-5461'}, {epoch: 8}), other], step)).to.equal(true)
  })

  it('is not outvoted while the claim can still win (a greater epoch), before the promotion, or once every view took it', () => {
    const waiting = view(OTHER, {epoch: 6, role: 'slave'}, {epoch: 6, slots: '0-5461'})
    expect(outvoted([view(PROMOTED, {epoch: 9, role: 'master', slots: '0-5461'}, {epoch: 6}), waiting], step)).to.equal(false)
    expect(outvoted([view(PROMOTED, {epoch: 6, role: 'slave'}, {epoch: 6, slots: '0-5461'}), waiting], step)).to.equal(false)
    const taken = view(OTHER, {epoch: 9, role: 'master', slots: '0-5461'}, {epoch: 8})
    expect(outvoted([view(PROMOTED, {epoch: 9, role: 'master', slots: '0-5461'}, {epoch: 8}), taken], step)).to.equal(false)
    // without the promoted node's own view nothing is known of its epoch
    expect(outvoted([view(OTHER, {epoch: 8, role: 'master'}, {epoch: 8, slots: '0-5461'})], step)).to.equal(false)
  })
})
