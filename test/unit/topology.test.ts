import {expect} from 'chai'

import {parseClusterNodes, parseInfo, keyCountFromInfo, resolveNodeId, slotMapSignature, slotOwners} from '../../src/lib/cluster/topology.js'
import {SlotctlError} from '../../src/lib/core/errors.js'
import {A, B, C, GONE, R1, R3, healthy, troubled} from '../fixtures/cluster-nodes.js'

describe('topology: CLUSTER NODES parsing', () => {
  it('parses the Redis 7 ip:port@cport,hostname form, empty hostnames and aux fields', () => {
    const nodes = parseClusterNodes(healthy)
    expect(nodes).to.have.length(6)
    const [a, , c, r1] = nodes
    expect(a).to.include({address: '10.0.0.1:7000', busPort: 17_000, host: '10.0.0.1', hostname: 'node-a.example', id: A, myself: true, port: 7000, role: 'master'})
    expect(c.hostname).to.equal(undefined)
    expect(r1.aux).to.deep.equal({'shard-id': 'abc'})
    expect(r1).to.include({masterId: A, role: 'replica'})
    expect(a.slots).to.deep.equal([[0, 5460]])
  })

  it('reads fail, fail?, nofailover, noaddr, handshake and link state', () => {
    const [a, b, c, r1, r2, r3] = parseClusterNodes(troubled)
    expect(a.failed).to.equal(false)
    expect(b).to.include({failed: true, linkConnected: false})
    expect(c).to.include({failed: false, suspectedFailed: true})
    expect(r1.noFailover).to.equal(true)
    expect(r2).to.include({address: '', noAddress: true})
    expect(r3).to.include({handshake: true, role: 'unknown'})
  })

  it('reads open-slot markers apart from owned slots', () => {
    const [a, , c] = parseClusterNodes(troubled)
    expect(a.slots).to.deep.equal([[0, 100], [102, 5460]])
    expect(a.migrating).to.deep.equal({101: B})
    expect(a.importing).to.deep.equal({16000: C})
    expect(c.slots).to.deep.equal([[10_923, 15_999], [16_001, 16_383]])
  })

  it('reads single slots, ranges, markers and stray fields in any mix, tabs and CR included, and merges touching ranges', () => {
    const line = `${A} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 7\t9-12 13 [14->-${B}] 200-100 x 5-\t-3 1-2-3 [15-<-${C}] 100-120 121\r`
    const [a] = parseClusterNodes(line)
    expect(a.slots).to.deep.equal([[7, 7], [9, 13], [100, 121]])
    expect(a.migrating).to.deep.equal({14: B})
    expect(a.importing).to.deep.equal({15: C})
  })

  it('parses the views of one load through a shared cache: equal slot fields become the very same ranges', () => {
    const cache = new Map()
    const first = parseClusterNodes(healthy, cache)
    const second = parseClusterNodes(healthy.replace('myself,master', 'master').replace(`${B} 10.0.0.2:7001@17001,node-b.example master`, `${B} 10.0.0.2:7001@17001,node-b.example myself,master`), cache)
    expect(second[1].slots).to.equal(first[1].slots)
    expect(second.map((node) => node.slots)).to.deep.equal(first.map((node) => node.slots))
    expect(second[1].myself).to.equal(true)
    expect(slotMapSignature(second)).to.equal(slotMapSignature(parseClusterNodes(healthy)))
  })

  it('keeps a replica whose master is unknown', () => {
    const nodes = parseClusterNodes(troubled)
    const orphan = nodes.find((node) => node.id === R1)
    expect(orphan?.masterId).to.equal(GONE)
    expect(nodes.some((node) => node.id === GONE)).to.equal(false)
  })

  it('parses IPv6 endpoints (printed without brackets), noflags and hostname= aux fields', () => {
    const [v6, bare] = parseClusterNodes(
      `${A} ::1:7000@17000,,hostname=db-1.example myself,master - 0 0 1 connected 0-16383\n` + `${B} 10.0.0.9:7001@17001 noflags - 0 0 0 connected`,
    )
    expect(v6).to.include({address: '[::1]:7000', busPort: 17_000, host: '::1', hostname: 'db-1.example', port: 7000})
    expect(bare).to.include({role: 'unknown'})
    expect(bare.flags).to.deep.equal([])
  })

  it('rejects a truncated line with a clear error', () => {
    expect(() => parseClusterNodes('abc 127.0.0.1:1@2 master')).to.throw(SlotctlError, /unexpected CLUSTER NODES line/)
  })

  it('maps slots to owners and builds an order-independent slot-map signature', () => {
    const nodes = parseClusterNodes(healthy)
    const owners = slotOwners(nodes)
    expect(owners.get(0)).to.equal(A)
    expect(owners.get(10_922)).to.equal(B)
    expect(owners.get(16_383)).to.equal(C)
    expect(slotMapSignature([...nodes].reverse())).to.equal(slotMapSignature(nodes))
    const moved = parseClusterNodes(healthy.replace('0-5460', '0-5459'))
    expect(slotMapSignature(moved)).to.not.equal(slotMapSignature(nodes))
  })
})

describe('topology: node id resolution', () => {
  const nodes = parseClusterNodes(healthy)

  it('accepts full ids and unique prefixes', () => {
    expect(resolveNodeId(nodes, A).id).to.equal(A)
    expect(resolveNodeId(nodes, B.slice(0, 4)).id).to.equal(B)
    expect(resolveNodeId(nodes, R3.slice(0, 6).toUpperCase()).id).to.equal(R3)
  })

  it('rejects unknown, ambiguous and malformed ids as usage errors (exit 2)', () => {
    const twins = parseClusterNodes(healthy.replace(new RegExp(B, 'g'), 'a111'.padEnd(40, '7')))
    for (const [list, input, pattern] of [
      [nodes, '1234', /unknown node id/],
      [twins, 'a111', /ambiguous/],
      [nodes, 'zz-top', /not a node id/],
      // a change must not hit a node by a 1-3 character accident (`--to 8`)
      [nodes, 'b', /too short: give at least 4 characters/],
      [nodes, 'b22', /too short/],
    ] as const) {
      try {
        resolveNodeId(list, input)
        expect.fail('should have thrown')
      } catch (error) {
        expect((error as SlotctlError).exitCode).to.equal(2)
        expect((error as Error).message).to.match(pattern)
      }
    }
  })
})

describe('topology: INFO parsing', () => {
  it('parses key:value lines and sums keys over databases', () => {
    const info = parseInfo('# Keyspace\r\ndb0:keys=10,expires=0,avg_ttl=0\r\ndb3:keys=5,expires=1,avg_ttl=9\r\nused_memory:1024\r\n')
    expect(info.used_memory).to.equal('1024')
    expect(keyCountFromInfo(info)).to.equal(15)
    expect(keyCountFromInfo(parseInfo('# Keyspace\r\n'))).to.equal(0)
  })
})
