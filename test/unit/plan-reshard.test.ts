import {expect} from 'chai'

import {planReshard} from '../../src/lib/plan/reshard.js'
import {SlotctlError} from '../../src/lib/core/errors.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {A, B, C, healthy} from '../fixtures/cluster-nodes.js'

const masters = parseClusterNodes(healthy).filter((node) => node.role === 'master')

function expectUsageError(fn: () => unknown, pattern: RegExp): void {
  try {
    fn()
    expect.fail('should have thrown')
  } catch (error) {
    expect(error).to.be.instanceOf(SlotctlError)
    expect((error as SlotctlError).exitCode).to.equal(2)
    expect((error as Error).message).to.match(pattern)
  }
}

describe('reshard planner', () => {
  it('takes exactly the requested count, proportionally, lowest-numbered slots first', () => {
    const plan = planReshard(masters, {from: 'all', slots: 1001, to: C})
    expect(plan.moves).to.have.length(1001)
    const fromA = plan.moves.filter((move) => move.sourceId === A)
    const fromB = plan.moves.filter((move) => move.sourceId === B)
    expect(Math.abs(fromA.length - fromB.length)).to.be.at.most(1)
    expect(fromA.map((move) => move.slot)).to.deep.equal(Array.from({length: fromA.length}, (_, i) => i))
    expect(fromB[0].slot).to.equal(5461)
    expect(plan.moves.every((move) => move.targetId === C)).to.equal(true)
    expect(new Set(plan.moves.map((move) => move.slot)).size).to.equal(1001)
    expect(plan.nodes.map((node) => node.id).sort()).to.deep.equal([A, B, C].sort())
  })

  it('moves only from the named sources', () => {
    const plan = planReshard(masters, {from: [B], slots: 10, to: A})
    expect(plan.moves.map((move) => move.slot)).to.deep.equal([5461, 5462, 5463, 5464, 5465, 5466, 5467, 5468, 5469, 5470])
    expect(plan.moves.every((move) => move.sourceId === B)).to.equal(true)
  })

  it('moves exact slots from whoever owns them', () => {
    const plan = planReshard(masters, {exactSlots: [0, 5461], from: 'all', to: C})
    expect(plan.moves.map((move) => [move.slot, move.sourceId])).to.deep.equal([[0, A], [5461, B]])
    expectUsageError(() => planReshard(masters, {exactSlots: [16_383], from: 'all', to: C}), /already belongs to the target/)
  })

  it('rejects impossible requests as usage errors', () => {
    expectUsageError(() => planReshard(masters, {from: 'all', slots: 0, to: A}), /--slots must be/)
    expectUsageError(() => planReshard(masters, {from: 'all', slots: 16_385, to: A}), /--slots must be/)
    expectUsageError(() => planReshard(masters, {from: [A], slots: 5, to: A}), /also listed as a source/)
    expectUsageError(() => planReshard(masters, {from: [B], slots: 6000, to: A}), /own only 5462 slots/)
    expectUsageError(() => planReshard(masters, {from: 'all', slots: 5, to: 'f'.repeat(40)}), /not a master/)
  })
})
