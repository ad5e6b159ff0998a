import {expect} from 'chai'

import {type Finding, hasErrors, runChecks, uncoveredSlots} from '../../src/lib/check/checks.js'
import type {ClusterSnapshot, NodeView} from '../../src/lib/cluster/loader.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {A, B, C, GONE, R1, R2, R3, healthy, troubled} from '../fixtures/cluster-nodes.js'

/** A snapshot as loadCluster builds it, where every node sees `text` (optionally changed per node). */
function snapshotOf(text: string, overrides: Record<string, Partial<NodeView>> = {}): ClusterSnapshot {
  const nodes = parseClusterNodes(text).map((node) => ({...node, myself: false}))
  const views: Record<string, NodeView> = {}
  for (const node of nodes) {
    views[node.id] = {address: node.address, clusterInfo: {cluster_state: 'ok'}, id: node.id, nodes: parseClusterNodes(text), reachable: true, ...overrides[node.id]}
  }
  return {nodes, seedAddress: nodes[0].address, seedId: nodes[0].id, views}
}

const codes = (findings: Finding[]) => findings.map((finding) => `${finding.severity}:${finding.code}`).sort()

describe('checks', () => {
  it('finds nothing wrong with a healthy 3+3 cluster spread over hosts', () => {
    expect(runChecks(snapshotOf(healthy))).to.deep.equal([])
  })

  it('reports open slots, uncovered slots and failed masters as errors', () => {
    const text = healthy.replace('0-5460', '0-100 102-5460 [101->-' + B + ']').replace(`${B} 10.0.0.2:7001@17001,node-b.example master`, `${B} 10.0.0.2:7001@17001 master,fail`)
    const findings = runChecks(snapshotOf(text))
    expect(codes(findings)).to.include.members(['error:OPEN_SLOT', 'error:SLOTS_UNCOVERED', 'error:MASTER_FAILED'])
    expect(findings.find((f) => f.code === 'SLOTS_UNCOVERED')).to.deep.include({slotCount: 1, slots: [[101, 101]]})
    expect(hasErrors(findings)).to.equal(true)
  })

  it('reports nodes that disagree on the slot map, naming the outlier', () => {
    const outlierView = parseClusterNodes(healthy.replace('0-5460', '0-5459').replace('5461-10922', '5460-10922'))
    const findings = runChecks(snapshotOf(healthy, {[C]: {nodes: outlierView}}))
    const disagree = findings.find((f) => f.code === 'SLOTS_DISAGREE')
    expect(disagree?.severity).to.equal('error')
    expect(disagree?.nodes?.map((node) => node.id)).to.deep.equal([C])
  })

  it('reports unreachable masters as errors and unreachable replicas as warnings', () => {
    const findings = runChecks(snapshotOf(healthy, {[B]: {error: 'connection refused', reachable: false}, [R2]: {error: 'connection refused', reachable: false}}))
    expect(codes(findings)).to.deep.equal(['error:MASTER_UNREACHABLE', 'warning:REPLICA_UNREACHABLE'])
  })

  it('reports a node whose cluster_state is not ok', () => {
    const findings = runChecks(snapshotOf(healthy, {[A]: {clusterInfo: {cluster_state: 'fail'}}}))
    expect(codes(findings)).to.deep.equal(['error:CLUSTER_STATE'])
  })

  it('warns about masters without replicas and replicas on their master host, without errors', () => {
    const text = healthy.replace(`${R1} 10.0.0.2:7003`, `${R1} 10.0.0.1:7003`).split('\n').filter((line) => !line.startsWith(R3)).join('\n')
    const findings = runChecks(snapshotOf(text))
    expect(codes(findings)).to.deep.equal(['warning:NO_REPLICA', 'warning:REPLICA_SAME_HOST'])
    expect(hasErrors(findings)).to.equal(false)
  })

  it('reports keys held by a master that does not own their slot', () => {
    const findings = runChecks(snapshotOf(healthy), {strayKeys: new Map([[42, [B]]])})
    expect(findings).to.have.length(1)
    expect(findings[0]).to.deep.include({code: 'MULTIPLE_OWNERS', severity: 'error', slotCount: 1, slots: [[42, 42]]})
  })

  it('reads every problem of a troubled topology, errors before warnings', () => {
    const snapshot = snapshotOf(troubled, {[B]: {error: 'connection refused', reachable: false}})
    // loadCluster never dials nodes without an address or in handshake: they have no view
    delete snapshot.views[R2]
    delete snapshot.views[R3]
    const findings = runChecks(snapshot)
    expect(codes(findings)).to.deep.equal([
      'error:MASTER_FAILED',
      'error:MASTER_UNREACHABLE',
      'error:OPEN_SLOT',
      'error:OPEN_SLOT',
      'error:SLOTS_UNCOVERED',
      'warning:NODE_HANDSHAKE',
      'warning:NODE_NOADDR',
      'warning:NODE_SUSPECTED',
      'warning:NO_REPLICA',
      'warning:NO_REPLICA',
      'warning:REPLICA_ORPHANED',
    ])
    const severities = findings.map((finding) => finding.severity)
    expect(severities.lastIndexOf('error')).to.be.lessThan(severities.indexOf('warning'))
    const ids = (finding?: Finding) => finding?.nodes?.map((node) => node.id)
    expect(findings.filter((f) => f.code === 'OPEN_SLOT').map((f) => f.slots?.[0][0]).sort()).to.deep.equal([101, 16_000])
    expect(findings.find((f) => f.code === 'SLOTS_UNCOVERED')).to.deep.include({slotCount: 2, slots: [[101, 101], [16_000, 16_000]]})
    expect(ids(findings.find((f) => f.code === 'NODE_SUSPECTED'))).to.deep.equal([C])
    const orphan = findings.find((f) => f.code === 'REPLICA_ORPHANED')
    expect(ids(orphan)).to.deep.equal([R1])
    expect(orphan?.message).to.include(GONE.slice(0, 8))
    expect(findings.filter((f) => f.code === 'NO_REPLICA').flatMap((f) => ids(f))).to.have.members([A, C])
    for (const finding of findings) expect(finding.message).to.not.include('\n')
  })

  it('gives each problem the command that deals with it: del-node for a dead master, failover --force when it has a replica', () => {
    const dead = healthy.replace(`${B} 10.0.0.2:7001@17001,node-b.example master`, `${B} 10.0.0.2:7001@17001 master,fail`)
    const withReplica = runChecks(snapshotOf(dead, {[B]: {error: 'connection refused', reachable: false}}))
    expect(withReplica.find((f) => f.code === 'MASTER_FAILED')?.hint).to.match(new RegExp(`slotctl failover 10\\.0\\.0\\.1:7000 --replica ${R2} --force`))
    const alone = runChecks(snapshotOf(dead.split('\n').filter((line) => !line.startsWith(R2)).join('\n'), {[B]: {error: 'connection refused', reachable: false}}))
    expect(alone.find((f) => f.code === 'MASTER_UNREACHABLE')?.hint).to.match(new RegExp(`slotctl del-node 10\\.0\\.0\\.1:7000 ${B} --accept-data-loss`))
    const emptied = runChecks(snapshotOf(healthy.replace(`${B} 10.0.0.2:7001@17001,node-b.example master - 0 1700000000000 2 connected 5461-10922`, `${B} 10.0.0.2:7001@17001 master,fail - 0 1700000000000 2 connected`)))
    // removed, never restarted with its old files: its nodes.conf may still import slots (Valkey takes them back)
    const emptiedHint = emptied.find((f) => f.code === 'MASTER_FAILED')?.hint
    expect(emptiedHint).to.match(new RegExp(`^remove it: slotctl del-node 10\\.0\\.0\\.1:7000 ${B}\\. Do not restart it with its old files`))
    expect(emptiedHint).to.match(/start it with an empty data directory and add it: slotctl add-node 10\.0\.0\.2:7001 10\.0\.0\.1:7000$/)
    for (const finding of [...withReplica, ...alone]) expect(finding.hint, finding.code).to.not.include('--replica-of')
  })

  it('a dead master whose replica the cluster promoted: judged from every live view, no data-losing step, a seed with a current view', () => {
    // the seed (A) imports 5461 from B and still gives it to dead B; the rest of the cluster gave all of B's slots to R2
    const seedText = healthy
      .replace(`${B} 10.0.0.2:7001@17001,node-b.example master - 0 1700000000000 2 connected 5461-10922`, `${B} 10.0.0.2:7001@17001 master,fail - 0 1700000000000 2 connected 5461`)
      .replace(`${R2} 10.0.0.3:7004@17004 slave ${B} 0 1700000000000 2 connected`, `${R2} 10.0.0.3:7004@17004 master - 0 1700000000000 4 connected 5462-10922`)
      .replace('connected 0-5460', `connected 0-5460 [5461-<-${B}]`)
    const othersText = healthy
      .replace(`${B} 10.0.0.2:7001@17001,node-b.example master - 0 1700000000000 2 connected 5461-10922`, `${B} 10.0.0.2:7001@17001 master,fail - 0 1700000000000 2 connected`)
      .replace(`${R2} 10.0.0.3:7004@17004 slave ${B} 0 1700000000000 2 connected`, `${R2} 10.0.0.3:7004@17004 master - 0 1700000000000 4 connected 5461-10922`)
    const snapshot = snapshotOf(seedText, {[B]: {error: 'connection refused', reachable: false}})
    for (const id of [B, C, R1, R2, R3]) if (snapshot.views[id].reachable) snapshot.views[id].nodes = parseClusterNodes(othersText)
    // each reachable node's own line: R2 calls itself master of B's slots
    snapshot.nodes = snapshot.nodes.map((node) => (node.id === R2 ? parseClusterNodes(othersText).find((other) => other.id === R2)! : node))
    const hints = runChecks(snapshot).filter((f) => f.nodes?.some((node) => node.id === B)).map((f) => f.hint ?? '')
    expect(hints.length).to.be.greaterThan(0)
    for (const hint of hints) {
      expect(hint).to.not.match(/accept-data-loss|exist only there/)
      expect(hint).to.include(`its slots are served by 10.0.0.3:7004 (${R2.slice(0, 8)})`)
      // the seed named is the promoted replica, whose view gives B nothing; not the importing seed
      expect(hint).to.include(`slotctl fix 10.0.0.3:7004;`)
      expect(hint).to.not.include('10.0.0.1:7000')
    }
  })

  it('a dead target that claimed slots its promoted replica never heard of: no live node is named as serving them', () => {
    // masters name dead B for 5461-5470 (its last claim, epoch 7); R2, promoted (epoch 8), took
    // only B's older slots, and its own view still gives 5461-5470 to their former owner A
    const mastersText = healthy
      .replace(`${A} 10.0.0.1:7000@17000,node-a.example myself,master - 0 0 1 connected 0-5460`, `${A} 10.0.0.1:7000@17000,node-a.example myself,master - 0 0 1 connected 0-5460`)
      .replace(`${B} 10.0.0.2:7001@17001,node-b.example master - 0 1700000000000 2 connected 5461-10922`, `${B} 10.0.0.2:7001@17001,node-b.example master,fail - 0 1700000000000 7 connected 5461-5470`)
      .replace(`${R2} 10.0.0.3:7004@17004 slave ${B} 0 1700000000000 2 connected`, `${R2} 10.0.0.3:7004@17004 master - 0 1700000000000 8 connected 5471-10922`)
    const promotedText = mastersText
      .replace('connected 0-5460', 'connected 0-5470')
      .replace('master,fail - 0 1700000000000 7 connected 5461-5470', 'master,fail - 0 1700000000000 2 connected')
    const snapshot = snapshotOf(mastersText, {[B]: {error: 'connection refused', reachable: false}})
    snapshot.views[R2].nodes = parseClusterNodes(promotedText)
    const hints = runChecks(snapshot).filter((f) => f.nodes?.some((node) => node.id === B)).map((f) => f.hint ?? '')
    expect(hints.length).to.be.greaterThan(0)
    for (const hint of hints) {
      // A serves none of them: only a stale view gives them to it
      expect(hint).to.not.match(/served by|10\.0\.0\.1:7000 serves/)
      expect(hint).to.match(/^restart it: no live master serves its slots\. If it died while slotctl was moving slots to it and its replica has been promoted since, that replica holds their keys: slotctl fix \S+ hands them to it/)
    }
  })

  it('does not flag a slot as open or uncovered while it migrates between two owners', () => {
    // during a reshard the source still owns the slot; only the markers say it moves
    const text = healthy.replace('0-5460', `0-5460 [42->-${B}]`).replace('5461-10922', `5461-10922 [42-<-${A}]`)
    const findings = runChecks(snapshotOf(text))
    expect(codes(findings)).to.deep.equal(['error:OPEN_SLOT', 'error:OPEN_SLOT'])
  })

  it('reports an open slot once, on its master, when its replicas show the same markers (Valkey replicates SETSLOT)', () => {
    const text = healthy
      .replace('0-5460', `0-5460 [42->-${B}]`)
      .replace('5461-10922', `5461-10922 [42-<-${A}]`)
      .replace(`slave ${A} 0 1700000000000 1 connected`, `slave ${A} 0 1700000000000 1 connected [42->-${B}]`)
      .replace(`slave ${B} 0 1700000000000 2 connected`, `slave ${B} 0 1700000000000 2 connected [42-<-${A}]`)
    const findings = runChecks(snapshotOf(text))
    expect(codes(findings)).to.deep.equal(['error:OPEN_SLOT', 'error:OPEN_SLOT'])
    expect(findings.flatMap((finding) => finding.nodes?.map((node) => node.id))).to.have.members([A, B])
  })

  it('reports a marker only a replica shows as its own problem, naming the master that lacks it', () => {
    const text = healthy.replace(`slave ${A} 0 1700000000000 1 connected`, `slave ${A} 0 1700000000000 1 connected [300->-${B}]`)
    const findings = runChecks(snapshotOf(text))
    expect(codes(findings)).to.deep.equal(['error:OPEN_SLOT'])
    expect(findings[0]).to.deep.include({slotCount: 1, slots: [[300, 300]]})
    expect(findings[0].nodes?.map((node) => node.id)).to.deep.equal([R1])
    expect(findings[0].message).to.match(/migrating state: 300 \(only the replica: its master 10\.0\.0\.1:7000 \(a1111111\) does not\)/)
  })

  it('reports a replica marker that differs from its master and one whose master cannot be read', () => {
    const text = healthy
      .replace('0-5460', `0-5460 [42->-${B}]`)
      .replace(`slave ${A} 0 1700000000000 1 connected`, `slave ${A} 0 1700000000000 1 connected [42->-${C}]`)
      .replace(`slave ${C} 0 1700000000000 3 connected`, `slave ${C} 0 1700000000000 3 connected [7-<-${A}]`)
    const findings = runChecks(snapshotOf(text, {[C]: {error: 'connection refused', reachable: false}}))
    const open = findings.filter((finding) => finding.code === 'OPEN_SLOT')
    expect(open.map((finding) => finding.nodes?.[0].id)).to.have.members([A, R1, R3])
    expect(open.find((finding) => finding.nodes?.[0].id === R3)?.message).to.not.include('only the replica')
  })

  it('computes uncovered slots from masters only', () => {
    expect(uncoveredSlots(parseClusterNodes(healthy))).to.deep.equal([])
    expect(uncoveredSlots(parseClusterNodes(healthy.replace('10923-16383', '10923-16380')))).to.deep.equal([16_381, 16_382, 16_383])
  })

  it('every error of a troubled topology names the next step in its hint, cluster_state included', () => {
    const snapshot = snapshotOf(troubled, {[B]: {error: 'connection refused', reachable: false}, [C]: {clusterInfo: {cluster_state: 'fail'}}})
    delete snapshot.views[R2]
    delete snapshot.views[R3]
    const findings = runChecks(snapshot, {strayKeys: new Map([[42, [A]]])})
    expect(codes(findings)).to.include.members(['error:CLUSTER_STATE', 'error:MULTIPLE_OWNERS', 'error:SLOTS_UNCOVERED', 'error:OPEN_SLOT', 'error:MASTER_UNREACHABLE'])
    for (const finding of findings.filter((f) => f.severity === 'error')) expect(finding.hint, finding.code).to.be.a('string').and.match(/slotctl /).and.not.include('\n')
  })
})
