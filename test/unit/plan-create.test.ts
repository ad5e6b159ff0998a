import {expect} from 'chai'

import {type CandidateState, classifyForCreate} from '../../src/lib/nodes/membership.js'
import {type CreateCandidate, type CreatePlan, planCreate} from '../../src/lib/plan/create.js'
import {countSlots, expandRanges} from '../../src/lib/core/slots.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'

/** 6 nodes dealt round-robin over `hostCount` hosts, optionally with zones per host. */
function nodes(count: number, hostCount: number, zoneOfHost?: (host: number) => string): CreateCandidate[] {
  return Array.from({length: count}, (_, i) => {
    const hostIndex = i % hostCount
    const host = `10.0.0.${hostIndex + 1}`
    const node: CreateCandidate = {address: `${host}:${7000 + Math.floor(i / hostCount)}`, host}
    return zoneOfHost ? {...node, zone: zoneOfHost(hostIndex)} : node
  })
}

const distinct = (values: Array<string | undefined>) => new Set(values).size

function masterOf(plan: CreatePlan, address: string) {
  return plan.masters.find((master) => master.address === address)!
}

/** Properties every plan must have, whatever the layout. */
function expectWellFormed(plan: CreatePlan, input: CreateCandidate[], replicas: number): void {
  const masters = Math.floor(input.length / (replicas + 1))
  expect(plan.masters).to.have.length(masters)
  expect(plan.masters.length + plan.replicas.length).to.equal(input.length)
  const used = [...plan.masters, ...plan.replicas].map((node) => node.address)
  expect(new Set(used).size).to.equal(input.length)
  const slots = plan.masters.flatMap((master) => expandRanges(master.slots))
  expect(slots).to.have.length(16_384)
  expect(new Set(slots).size).to.equal(16_384)
  const sizes = plan.masters.map((master) => countSlots(master.slots))
  expect(Math.max(...sizes) - Math.min(...sizes)).to.be.at.most(1)
  const perMaster = plan.masters.map((master) => plan.replicas.filter((replica) => replica.masterAddress === master.address).length)
  expect(Math.min(...perMaster)).to.be.at.least(replicas)
  expect(Math.max(...perMaster) - Math.min(...perMaster)).to.be.at.most(1)
}

function sameHostPairs(plan: CreatePlan): number {
  return plan.replicas.filter((replica) => replica.host === masterOf(plan, replica.masterAddress).host).length
}

function sameZonePairs(plan: CreatePlan): number {
  return plan.replicas.filter((replica) => replica.zone !== undefined && replica.zone === masterOf(plan, replica.masterAddress).zone).length
}

describe('planCreate', () => {
  it('splits slots like redis-cli for 3 masters', () => {
    const plan = planCreate(nodes(3, 3), 0)
    expect(plan.masters.map((master) => master.slots)).to.deep.equal([[[0, 5460]], [[5461, 10_922]], [[10_923, 16_383]]])
    expect(plan.replicas).to.have.length(0)
    expect(plan.violations).to.deep.equal([])
  })

  for (const hostCount of [1, 2, 3, 6]) {
    for (const replicas of [0, 1]) {
      it(`6 nodes on ${hostCount} host(s), replicas ${replicas}: masters on as many hosts as possible, replicas off their master's host when possible`, () => {
        const input = nodes(6, hostCount)
        const plan = planCreate(input, replicas)
        expectWellFormed(plan, input, replicas)
        expect(distinct(plan.masters.map((master) => master.host))).to.equal(Math.min(hostCount, plan.masters.length))
        if (hostCount > 1 || replicas === 0) {
          expect(sameHostPairs(plan)).to.equal(0)
          expect(plan.violations).to.deep.equal([])
        } else {
          expect(plan.violations).to.have.length(sameHostPairs(plan))
          expect(sameHostPairs(plan)).to.equal(plan.replicas.length)
        }
      })
    }
  }

  for (const hostCount of [1, 3, 9]) {
    it(`9 nodes on ${hostCount} host(s), replicas 2: replicas of one master on distinct hosts, none on the master's host`, () => {
      const input = nodes(9, hostCount)
      const plan = planCreate(input, 2)
      expectWellFormed(plan, input, 2)
      if (hostCount >= 3) {
        expect(sameHostPairs(plan)).to.equal(0)
        for (const master of plan.masters) {
          const own = plan.replicas.filter((replica) => replica.masterAddress === master.address)
          expect(distinct(own.map((replica) => replica.host))).to.equal(own.length)
        }
        expect(plan.violations).to.deep.equal([])
      } else {
        expect(plan.violations.some((violation) => violation.includes('same host'))).to.equal(true)
      }
    })
  }

  for (const hostCount of [1, 2, 3, 6]) {
    it(`6 nodes on ${hostCount} host(s), replicas 2 (2 masters; the command enforces the 3-master floor): spread as far as the hosts allow`, () => {
      const input = nodes(6, hostCount)
      const plan = planCreate(input, 2)
      expectWellFormed(plan, input, 2)
      expect(distinct(plan.masters.map((master) => master.host))).to.equal(Math.min(hostCount, 2))
      if (hostCount > 1) expect(sameHostPairs(plan)).to.equal(0)
      for (const master of plan.masters) {
        const own = plan.replicas.filter((replica) => replica.masterAddress === master.address)
        const siblingsSpread = distinct(own.map((replica) => replica.host)) === own.length
        // with 3 or more hosts both replicas of a master fit on two other, distinct hosts
        if (hostCount >= 3) expect(siblingsSpread, master.address).to.equal(true)
        if (!siblingsSpread) expect(plan.violations).to.include(`several replicas of ${master.address} share a host`)
      }
    })
  }

  it('with zones: masters in every zone, no replica in its master zone', () => {
    // 6 hosts in 3 zones: hosts 0,1 → a; 2,3 → b; 4,5 → c
    const input = nodes(6, 6, (host) => ['a', 'a', 'b', 'b', 'c', 'c'][host])
    const plan = planCreate(input, 1)
    expectWellFormed(plan, input, 1)
    expect(distinct(plan.masters.map((master) => master.zone))).to.equal(3)
    expect(sameZonePairs(plan)).to.equal(0)
    expect(sameHostPairs(plan)).to.equal(0)
    expect(plan.violations).to.deep.equal([])
  })

  it('with zones given unevenly: zone spread beats host spread for masters', () => {
    // hosts 1 and 2 in zone a, host 3 in zone b: masters must cover both zones
    const input = nodes(6, 3, (host) => (host === 2 ? 'b' : 'a'))
    const plan = planCreate(input, 1)
    expectWellFormed(plan, input, 1)
    expect(distinct(plan.masters.map((master) => master.zone))).to.equal(2)
    expect(sameHostPairs(plan)).to.equal(0)
  })

  it('with 2 zones and 2 replicas: a same-zone replica is unavoidable and reported', () => {
    const input = nodes(9, 9, (host) => (host % 2 === 0 ? 'a' : 'b'))
    const plan = planCreate(input, 2)
    expectWellFormed(plan, input, 2)
    expect(sameHostPairs(plan)).to.equal(0)
    // each master has 2 replicas and only one other zone exists, so each master gets at least one... at most one same-zone replica
    for (const master of plan.masters) {
      const own = plan.replicas.filter((replica) => replica.masterAddress === master.address)
      expect(own.filter((replica) => replica.zone === master.zone).length).to.be.at.most(1)
    }
    expect(plan.violations.length).to.equal(sameZonePairs(plan) + plan.masters.filter((master) => {
      const zones = plan.replicas.filter((replica) => replica.masterAddress === master.address).map((replica) => replica.zone)
      return new Set(zones).size < zones.length
    }).length)
  })

  it('fixes what a greedy pass would strand: hosts A A A A B C, 3+3', () => {
    const input: CreateCandidate[] = [
      {address: 'a:1', host: 'a'}, {address: 'a:2', host: 'a'}, {address: 'a:3', host: 'a'}, {address: 'a:4', host: 'a'},
      {address: 'b:1', host: 'b'}, {address: 'c:1', host: 'c'},
    ]
    const plan = planCreate(input, 1)
    expectWellFormed(plan, input, 1)
    expect(distinct(plan.masters.map((master) => master.host))).to.equal(3)
    // two masters are on hosts b and c, whose replicas can come from a; the one on a must take a as well
    expect(sameHostPairs(plan)).to.be.at.most(1)
    expect(plan.violations).to.have.length(sameHostPairs(plan))
  })
})

describe('classifyForCreate', () => {
  const id = (n: number) => String(n).repeat(40).slice(0, 40)
  const line = (n: number, self: boolean, slots = '') => `${id(n)} 127.0.0.1:${7000 + n}@${17_000 + n} ${self ? 'myself,' : ''}master - 0 0 ${n} connected ${slots}`

  function state(n: number, options: {knows?: number[]; slots?: string; keys?: number; clusterState?: string} = {}): CandidateState {
    const others = (options.knows ?? []).map((other) => line(other, false))
    return {
      address: `127.0.0.1:${7000 + n}`,
      clusterEnabled: true,
      clusterState: options.clusterState ?? 'fail',
      id: id(n),
      keys: options.keys ?? 0,
      nodes: parseClusterNodes([line(n, true, options.slots), ...others].join('\n')),
      reachable: true,
    }
  }

  it('fresh nodes: go ahead', () => {
    expect(classifyForCreate([state(1), state(2), state(3)]).kind).to.equal('fresh')
  })

  it('nodes that already form one healthy cluster: exists', () => {
    const all = [1, 2, 3]
    const states = all.map((n) => state(n, {clusterState: 'ok', knows: all.filter((o) => o !== n)}))
    expect(classifyForCreate(states).kind).to.equal('exists')
  })

  it('unreachable and non-cluster nodes are refused, one problem per node, naming it', () => {
    const down = {...state(1), error: 'cannot connect to 127.0.0.1:7001: connection refused', reachable: false}
    const plain = {...state(2), clusterEnabled: false}
    const result = classifyForCreate([down, plain, state(3)])
    expect(result.kind).to.equal('refused')
    if (result.kind !== 'refused') return
    expect(result.problems).to.have.length(2)
    expect(result.problems[0]).to.include('127.0.0.1:7001')
    expect(result.problems[1]).to.include('127.0.0.1:7002').and.to.include('not cluster-enabled')
  })

  it('a node with keys or one that knows foreign nodes is refused', () => {
    const result = classifyForCreate([state(1, {keys: 3, slots: '0-16383'}), state(2, {knows: [9]}), state(3)])
    expect(result.kind).to.equal('refused')
    if (result.kind !== 'refused') return
    expect(result.problems.join('\n')).to.match(/7001 is not empty: it holds 3 key/).and.to.match(/7002 .*1 node\(s\) not given here/)
  })

  it('slots assigned but never met: half-formed, suggests a reset', () => {
    const result = classifyForCreate([state(1, {slots: '0-5460'}), state(2, {slots: '5461-10922'}), state(3)])
    expect(result.kind).to.equal('half-formed')
    if (result.kind !== 'half-formed') return
    expect(result.message).to.include('127.0.0.1:7001').and.to.include('have not joined')
    expect(result.nextStep).to.match(/CLUSTER RESET HARD/)
  })

  it('a working cluster among the nodes plus fresh ones: half-formed, suggests add-node for the fresh ones', () => {
    const joined = [1, 2, 3]
    const states = [...joined.map((n) => state(n, {clusterState: 'ok', knows: joined.filter((o) => o !== n)})), state(4)]
    const result = classifyForCreate(states)
    expect(result.kind).to.equal('half-formed')
    if (result.kind !== 'half-formed') return
    expect(result.nextStep).to.match(/add-node/).and.to.include('127.0.0.1:7004')
  })
})
