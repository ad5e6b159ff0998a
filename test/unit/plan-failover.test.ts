import {expect} from 'chai'

import {chooseReplica, type HealthOf, planFromHost, stepForReplica} from '../../src/lib/plan/failover.js'
import {type ClusterNode, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import type {SlotctlError} from '../../src/lib/core/errors.js'

const id = (c: string) => c.repeat(40)
const nodes: ClusterNode[] = parseClusterNodes(
  [
    `${id('a')} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8191`,
    `${id('b')} 10.0.0.2:7000@17000 master - 0 0 2 connected 8192-16383`,
    `${id('c')} 10.0.0.1:7001@17001 slave ${id('a')} 0 0 1 connected`,
    `${id('d')} 10.0.0.2:7001@17001 slave ${id('a')} 0 0 1 connected`,
    `${id('e')} 10.0.0.2:7002@17002 slave ${id('b')} 0 0 2 connected`,
  ].join('\n'),
)
const byId = (c: string) => nodes.find((n) => n.id === id(c)) as ClusterNode
const health =
  (table: Record<string, {linkUp: boolean; lag?: number}>): HealthOf =>
  (replicaId) =>
    table[replicaId[0]]

describe('failover planner', () => {
  it('prefers the smallest lag, then a replica on another host', () => {
    expect(chooseReplica(byId('a'), nodes, health({c: {lag: 0, linkUp: true}, d: {lag: 0, linkUp: true}})).replicaId).to.equal(id('d'))
    expect(chooseReplica(byId('a'), nodes, health({c: {lag: 0, linkUp: true}, d: {lag: 50, linkUp: true}})).replicaId).to.equal(id('c'))
  })

  it('with zones, prefers a replica in another zone over one that is only on another host', () => {
    const h = health({c: {lag: 0, linkUp: true}, d: {lag: 0, linkUp: true}})
    // 10.0.0.2 shares the master's zone; 10.0.0.1 is the master's own host
    const zones: Record<string, string> = {'10.0.0.1': 'z1', '10.0.0.2': 'z1'}
    const sameZone = chooseReplica(byId('a'), nodes, h, false, (host) => zones[host] ?? host)
    expect(sameZone.replicaId).to.be.oneOf([id('c'), id('d')])
    const split = chooseReplica(byId('a'), nodes, h, false, (host) => ({'10.0.0.1': 'z1', '10.0.0.2': 'z2'})[host] ?? host)
    expect(split.replicaId).to.equal(id('d'))
    expect(() => planFromHost('10.0.0.1', nodes, h, (host) => zones[host] ?? host)).to.throw(/no healthy replica on another host/)
  })

  it('skips a replica whose link is down unless forced', () => {
    const h = health({c: {lag: 0, linkUp: false}, d: {lag: 10, linkUp: true}})
    expect(chooseReplica(byId('a'), nodes, h).replicaId).to.equal(id('d'))
    expect(() => chooseReplica(byId('a'), nodes, health({c: {linkUp: false}, d: {linkUp: false}}))).to.throw(/no replica of 10.0.0.1:7000 can be promoted/)
    expect(chooseReplica(byId('a'), nodes, health({c: {linkUp: false}, d: {linkUp: false}}), true).replicaId).to.be.oneOf([id('c'), id('d')])
  })

  it('suggests --replica ID --force when no replica qualifies for a graceful failover, and add-node --replica when there is none', () => {
    const suggestions = (fn: () => unknown): string[] => {
      try {
        fn()
      } catch (error) {
        return (error as SlotctlError).suggestions
      }
      return expect.fail('should have thrown')
    }
    const down = suggestions(() => chooseReplica(byId('a'), nodes, health({c: {lag: 0, linkUp: false}, d: {lag: 5, linkUp: false}}), false, (h) => h, '10.0.0.9:7000'))
    expect(down).to.deep.equal([`if the master is down, promote a replica without its agreement: slotctl failover 10.0.0.9:7000 --replica ${id('c')} --force`])
    const lonely = parseClusterNodes(`${id('a')} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-16383`)
    expect(suggestions(() => chooseReplica(lonely[0], lonely, health({}), false, (h) => h, '10.0.0.9:7000'))).to.deep.equal([`add one with: slotctl add-node NEW_HOST:PORT 10.0.0.9:7000 --replica --master-id ${id('a')}`])
    // --from-host named a flag that does not exist (--replica-of)
    const hint = suggestions(() => planFromHost('10.0.0.2', nodes, health({e: {lag: 0, linkUp: true}}), (h) => h, '10.0.0.9:7000'))
    expect(hint).to.deep.equal([`add a replica on another host first: slotctl add-node NEW_HOST:PORT 10.0.0.9:7000 --replica --master-id ${id('b')}`])
  })

  it('rejects a replica as --master and a master as --replica', () => {
    expect(() => chooseReplica(byId('c'), nodes, health({}))).to.throw(/is a replica, not a master/)
    expect(() => stepForReplica(byId('b'), nodes, health({}))).to.throw(/is a master, not a replica/)
    expect(stepForReplica(byId('e'), nodes, health({e: {lag: 0, linkUp: true}})).masterId).to.equal(id('b'))
  })

  it('--from-host moves masters only to replicas on another host', () => {
    const h = health({c: {lag: 0, linkUp: true}, d: {lag: 9, linkUp: true}, e: {lag: 0, linkUp: true}})
    const steps = planFromHost('10.0.0.1', nodes, h)
    expect(steps.map((s) => s.replicaId)).to.deep.equal([id('d')])
    expect(() => planFromHost('10.0.0.2', nodes, h)).to.throw(/no healthy replica on another host/)
  })
})
