import {expect} from 'chai'

import {chooseMasterFor, planReplicaMoves} from '../../src/lib/plan/placement.js'
import {type ClusterNode, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {parseZoneText, readZones, unusedZoneKeys, zoneLookup, zoneLookupWithReported} from '../../src/lib/nodes/zones.js'

const id = (n: number) => String(n).repeat(40).slice(0, 40)

/** A topology from compact specs: masters on hosts with slots, replicas pointing at them. */
function topology(spec: Array<{n: number; host: string; master?: number; slots?: string; fail?: boolean}>): ClusterNode[] {
  const lines = spec.map((node) => {
    const role = node.master === undefined ? 'master' : 'slave'
    const flags = node.fail ? `${role},fail` : role
    return `${id(node.n)} ${node.host}:${7000 + node.n}@${17_000 + node.n} ${flags} ${node.master === undefined ? '-' : id(node.master)} 0 0 1 connected ${node.slots ?? ''}`
  })
  return parseClusterNodes(lines.join('\n'))
}

describe('chooseMasterFor', () => {
  const nodes = topology([
    {host: 'h1', n: 1, slots: '0-5460'},
    {host: 'h2', n: 2, slots: '5461-10922'},
    {host: 'h3', n: 3, slots: '10923-16383'},
    {host: 'h2', master: 1, n: 4},
    {host: 'h4', n: 5},
  ])

  it('never picks a master on the replica host when another exists, and prefers fewer replicas', () => {
    const master = chooseMasterFor({host: 'h3'}, nodes)!
    expect(master.host).to.not.equal('h3')
    // masters 1 (one replica) and 2 (none) are both on other hosts: fewer replicas wins
    expect(master.id).to.equal(id(2))
  })

  it('prefers a master with slots over an empty one, whatever their replica counts', () => {
    const master = chooseMasterFor({host: 'h9'}, nodes)!
    expect(master.slots.length).to.be.greaterThan(0)
  })

  it('falls back to the same host only when nothing else is left', () => {
    const single = topology([{host: 'h1', n: 1, slots: '0-16383'}])
    expect(chooseMasterFor({host: 'h1'}, single)!.id).to.equal(id(1))
  })

  it('keeps a replica out of its master zone when zones are given', () => {
    const zones = zoneLookup(parseZoneText('h1=a\nh2=b\nh3=a\n'))
    // spot in zone a: only the master on h2 (zone b) is in another zone
    expect(chooseMasterFor({host: 'h5', zone: 'a'}, nodes, zones)!.host).to.equal('h2')
  })

  it('skips failed masters', () => {
    const withFailed = topology([
      {fail: true, host: 'h1', n: 1, slots: '0-8191'},
      {host: 'h1', n: 2, slots: '8192-16383'},
    ])
    expect(chooseMasterFor({host: 'h1'}, withFailed)!.id).to.equal(id(2))
  })
})

describe('planReplicaMoves', () => {
  it('re-points every replica of the removed node to live masters, spreading them and avoiding their hosts', () => {
    const nodes = topology([
      {host: 'h1', n: 1, slots: '0-5460'},
      {host: 'h2', n: 2, slots: '5461-10922'},
      {host: 'h3', n: 3, slots: '10923-16383'},
      {host: 'h4', n: 4},
      {host: 'h1', master: 4, n: 5},
      {host: 'h2', master: 4, n: 6},
    ])
    const moves = planReplicaMoves(nodes, id(4))
    expect(moves.map((move) => move.replicaId).sort()).to.deep.equal([id(5), id(6)])
    const hostOf = new Map(nodes.map((node) => [node.id, node.host]))
    for (const move of moves) {
      expect(move.masterId).to.not.equal(id(4))
      expect(hostOf.get(move.masterId)).to.not.equal(hostOf.get(move.replicaId))
    }
    expect(new Set(moves.map((move) => move.masterId)).size).to.equal(2)
  })

  it('plans nothing for a node without replicas', () => {
    const nodes = topology([{host: 'h1', n: 1, slots: '0-16383'}, {host: 'h2', n: 2}])
    expect(planReplicaMoves(nodes, id(2))).to.deep.equal([])
  })
})

describe('zones', () => {
  it('parses HOST_OR_ADDR=ZONE lines with comments, an exact address winning over its host', () => {
    const map = parseZoneText('# zones\n10.0.0.1=a\n10.0.0.1:7001 = b  # this node moved\n\n10.0.0.2=b\n')
    const zoneOf = zoneLookup(map)
    expect(zoneOf({address: '10.0.0.1:7000', host: '10.0.0.1'})).to.equal('a')
    expect(zoneOf({address: '10.0.0.1:7001', host: '10.0.0.1'})).to.equal('b')
    expect(zoneOf({address: '10.0.0.3:7000', host: '10.0.0.3'})).to.equal(undefined)
    expect(unusedZoneKeys(map, [{address: '10.0.0.1:7000', host: '10.0.0.1'}])).to.deep.equal(['10.0.0.1:7001', '10.0.0.2'])
  })

  it('rejects malformed and contradictory entries with a usage error', () => {
    expect(() => readZones(['10.0.0.1'])).to.throw(/expected HOST_OR_ADDR=ZONE/)
    expect(() => readZones(['10.0.0.1=a', '10.0.0.1=b'])).to.throw(/two zones/)
    expect(() => readZones([], '/nonexistent/zones.txt')).to.throw(/cannot read --zones-file/)
  })

  it('a node the operator names no zone for takes the zone its server reports; the operator\'s wins', () => {
    const zoneOf = zoneLookupWithReported(parseZoneText('10.0.0.1=operator\n'), new Map([['10.0.0.1:7000', 'reported-1'], ['10.0.0.2:7000', 'reported-2']]))
    expect(zoneOf({address: '10.0.0.1:7000', host: '10.0.0.1'})).to.equal('operator')
    expect(zoneOf({address: '10.0.0.2:7000', host: '10.0.0.2'})).to.equal('reported-2')
    expect(zoneOf({address: '10.0.0.3:7000', host: '10.0.0.3'})).to.equal(undefined)
  })
})
