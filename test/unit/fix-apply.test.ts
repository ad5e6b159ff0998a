/**
 * fix's repairs (fix/apply.ts) against a fake pool (no server): the evidence is read from the
 * fake cluster, planFix decides, applyFixes acts, and the command log and the cluster's end
 * state are checked. Which node keeps an open slot, the order of the close on Redis and on
 * Valkey >= 8, a failure reported with the slot left open, and nothing sent for a slot that
 * is skipped or interrupted.
 */
import {expect} from 'chai'

import {type FixApplyOptions, applyFixes} from '../../src/lib/fix/apply.js'
import {tagForSlot} from '../../src/lib/migrate/durable.js'
import {type MasterEvidence, type SlotEvidence, type SlotFix, planFix} from '../../src/lib/plan/fix.js'
import {FakeCluster, type ServerKind, claimLines, fakeId} from '../helpers/fake-pool.js'

const MASTERS = ['source', 'target', 'other']
const OPTIONS: FixApplyOptions = {parallel: 4, pipeline: 10, replace: false, settleTimeoutMs: 1000, timeoutMs: 1000}

/** Three masters, the source with the greatest config epoch; the target has a replica. */
function clusterOf(server: ServerKind): FakeCluster {
  return new FakeCluster(server, [
    {epoch: 5, name: 'source', slots: [1, 2, 3]},
    {epoch: 2, name: 'target', slots: [100]},
    {epoch: 3, name: 'other', slots: [200]},
    {name: 'target-r', replicaOf: 'target'},
  ])
}

/** What fix's loader would gather from the fake cluster about `slots` (masters in `down` unreachable). */
function evidenceOf(cluster: FakeCluster, slots: readonly number[], down: readonly string[] = []): {masters: MasterEvidence[]; slots: SlotEvidence[]} {
  const live = MASTERS.filter((name) => !down.includes(name))
  const masters = MASTERS.map((name): MasterEvidence => ({...cluster.endpoint(name), configEpoch: cluster.node(name).configEpoch, live: live.includes(name), slotCount: 1}))
  const ids = (entries: Array<[string, string | undefined]>) => Object.fromEntries(entries.filter(([, peer]) => peer).map(([name, peer]) => [fakeId(name), fakeId(peer!)]))
  return {
    masters,
    slots: slots.map((slot) => {
      const named = live.map((name) => cluster.ownerIn(name, slot))
      return {
        claimants: MASTERS.filter((name) => (live.includes(name) ? cluster.ownerIn(name, slot) === name : named.includes(name))).map(fakeId),
        importing: ids(live.map((name) => [name, cluster.markers(name, slot).importing])),
        keys: Object.fromEntries(live.map((name) => [fakeId(name), cluster.keys(name, slot)])),
        migrating: ids(live.map((name) => [name, cluster.markers(name, slot).migrating])),
        slot,
        viewOwner: Object.fromEntries(live.map((name) => [fakeId(name), cluster.ownerIn(name, slot) && fakeId(cluster.ownerIn(name, slot)!)])),
      }
    }),
  }
}

async function fix(cluster: FakeCluster, slots: readonly number[], options: Partial<FixApplyOptions> = {}, down: readonly string[] = []) {
  const evidence = evidenceOf(cluster, slots, down)
  const fixes = planFix(evidence.masters, evidence.slots)
  const outcome = await applyFixes(cluster.pool(), evidence.masters, evidence.slots, fixes, {...OPTIONS, ...options})
  return {fixes, outcome}
}

const decision = (cluster: FakeCluster, fixed: SlotFix) => ({action: fixed.action, destination: cluster.nameOf(fixed.destination), sources: fixed.sources.map((id) => cluster.nameOf(id))})

/** Every master names `owner` for the slot, none shows a marker, and only `owner` holds its keys. */
function expectSettled(cluster: FakeCluster, slot: number, owner: string, keys: number): void {
  for (const name of MASTERS) {
    expect(cluster.ownerIn(name, slot), `${name}'s view of slot ${slot}`).to.equal(owner)
    expect(cluster.markers(name, slot), `${name}'s markers of slot ${slot}`).to.deep.equal({})
    expect(cluster.keys(name, slot), `keys of slot ${slot} on ${name}`).to.equal(name === owner ? keys : 0)
  }
}

/** Slot 1 open from the source to the target, with 2 of its 4 keys moved. */
function startedMove(cluster: FakeCluster): void {
  cluster.open(1, 'source', 'target')
  cluster.addKeys('source', 1, 4)
  for (const [key, value] of [...cluster.node('source').data].slice(0, 2)) {
    cluster.node('target').data.set(key, value)
    cluster.node('source').data.delete(key)
  }
}

describe('fix: applyFixes against a fake pool', () => {
  it('closes a migration that never got going back to the node holding the keys: no key moves, no epoch bump, the import cleared', async () => {
    const cluster = clusterOf('redis')
    cluster.open(1, 'source', 'target')
    cluster.addKeys('source', 1, 4)
    const {fixes, outcome} = await fix(cluster, [1])
    expect(decision(cluster, fixes[0])).to.deep.equal({action: 'close-back', destination: 'source', sources: []})
    expect(outcome).to.deep.equal({failures: [], fixedSlots: [1], keysMoved: 0, skippedSlots: []})
    expect(cluster.sent(/MIGRATE|BUMPEPOCH|ADDSLOTS/)).to.deep.equal([])
    expect(cluster.sent(/SETSLOT/)).to.deep.equal([
      'source CLUSTER SETSLOT 1 STABLE',
      'target CLUSTER SETSLOT 1 STABLE',
      'source CLUSTER SETSLOT 1 NODE source',
      'target CLUSTER SETSLOT 1 NODE source',
      'other CLUSTER SETSLOT 1 NODE source',
    ])
    expectSettled(cluster, 1, 'source', 4)
  })

  it('rolls a started migration forward on Redis: the rest of the keys move, the target closes first with an epoch above every master, then the others', async () => {
    const cluster = clusterOf('redis')
    startedMove(cluster)
    const {fixes, outcome} = await fix(cluster, [1])
    expect(decision(cluster, fixes[0])).to.deep.equal({action: 'roll-forward', destination: 'target', sources: ['source']})
    expect(outcome).to.deep.equal({failures: [], fixedSlots: [1], keysMoved: 2, skippedSlots: []})
    const changes = cluster.sent(/MIGRATE|SETSLOT|BUMPEPOCH|ADDSLOTS/).map((line) => line.replace(/ KEYS .*/, ' KEYS ...'))
    expect(changes).to.deep.equal([
      `source MIGRATE ${cluster.address('target').replace(':', ' ')}  0 1000 KEYS ...`,
      'target CLUSTER BUMPEPOCH',
      'target CLUSTER SETSLOT 1 NODE target',
      'source CLUSTER SETSLOT 1 NODE target',
      'other CLUSTER SETSLOT 1 NODE target',
    ])
    expect(cluster.node('target').configEpoch).to.be.greaterThan(cluster.node('source').configEpoch)
    expectSettled(cluster, 1, 'target', 4)
  })

  it('on Redis 7.0.15 (redis#12564) a master that learned the destination from its broadcast is not told with SETSLOT NODE; the former owner is', async () => {
    const cluster = clusterOf('redis')
    cluster.redisVersion = '7.0.15'
    startedMove(cluster)
    const {outcome} = await fix(cluster, [1])
    expect(outcome).to.deep.equal({failures: [], fixedSlots: [1], keysMoved: 2, skippedSlots: []})
    expect(cluster.sent(/SETSLOT 1 NODE/)).to.deep.equal(['target CLUSTER SETSLOT 1 NODE target', 'source CLUSTER SETSLOT 1 NODE target'])
    expectSettled(cluster, 1, 'target', 4)
  })

  it('on Redis 7.0.15 a master that names the former owner and hears no claim is told once the gossip wait is over, after the former owner', async () => {
    const cluster = clusterOf('redis')
    cluster.redisVersion = '7.0.15'
    startedMove(cluster)
    cluster.cutOffBus('other')
    const started = Date.now()
    const {outcome} = await fix(cluster, [1], {gossipWaitMs: 300})
    expect(Date.now() - started).to.be.at.least(300)
    expect(outcome).to.deep.equal({failures: [], fixedSlots: [1], keysMoved: 2, skippedSlots: []})
    expect(cluster.sent(/SETSLOT 1 NODE/)).to.deep.equal(['target CLUSTER SETSLOT 1 NODE target', 'source CLUSTER SETSLOT 1 NODE target', 'other CLUSTER SETSLOT 1 NODE target'])
    expectSettled(cluster, 1, 'target', 4)
  })

  it('on Valkey >= 8 the destination claims the slot (MULTI with BUMPEPOCH, DELSLOTS + ADDSLOTS) before SETSLOT NODE reaches its replicas', async () => {
    const cluster = clusterOf('valkey')
    cluster.open(1, 'source', 'target')
    cluster.open(2, 'source', 'target')
    for (const slot of [1, 2]) cluster.addKeys('target', slot, 3)
    const {fixes, outcome} = await fix(cluster, [1, 2])
    expect(fixes.map((fixed) => decision(cluster, fixed))).to.deep.equal([1, 2].map(() => ({action: 'roll-forward', destination: 'target', sources: []})))
    expect(outcome).to.deep.equal({failures: [], fixedSlots: [1, 2], keysMoved: 0, skippedSlots: []})
    expect(cluster.sent(/SETSLOT|BUMPEPOCH|ADDSLOTS|DELSLOTS|MULTI|EXEC/)).to.deep.equal([
      'target CLUSTER BUMPEPOCH',
      ...claimLines('target', [1, 2]),
      'target CLUSTER SETSLOT 1 NODE target',
      'target CLUSTER SETSLOT 2 NODE target',
      'source CLUSTER SETSLOT 1 NODE target',
      'source CLUSTER SETSLOT 2 NODE target',
      'other CLUSTER SETSLOT 1 NODE target',
      'other CLUSTER SETSLOT 2 NODE target',
    ])
    expect(cluster.handDowns.every((handDown) => handDown.primaryClaimed)).to.equal(true)
    expect(cluster.handDowns.map((handDown) => handDown.slot)).to.deep.equal([1, 2])
    for (const slot of [1, 2]) expectSettled(cluster, slot, 'target', 3)
  })

  it('reports a slot whose keys could not move and leaves it open, closing the others', async () => {
    const cluster = clusterOf('redis')
    for (const slot of [1, 2]) {
      cluster.open(slot, 'source', 'target')
      cluster.addKeys('source', slot, 3)
      cluster.addKeys('target', slot, 1, 'moved')
    }
    cluster.refuseWhen('source', new RegExp(`^MIGRATE .* KEYS k0:\\{${tagForSlot(2)}\\}`), 'ERR Target instance replied with error: NOPERM this user has no permissions')
    const {outcome} = await fix(cluster, [1, 2])
    expect(outcome.fixedSlots).to.deep.equal([1])
    expect(outcome.keysMoved).to.equal(3)
    expect(outcome.failures.map((failure) => failure.slot)).to.deep.equal([2])
    expect(outcome.failures[0].error).to.match(/slot 2: .*MIGRATE.*NOPERM/)
    expect(cluster.sent(/SETSLOT 2 /)).to.deep.equal([])
    expect(cluster.markers('source', 2)).to.deep.equal({migrating: 'target'})
    expect(cluster.markers('target', 2)).to.deep.equal({importing: 'source'})
    expect([cluster.keys('source', 2), cluster.keys('target', 2)]).to.deep.equal([3, 1])
    expectSettled(cluster, 1, 'target', 4)
  })

  it('reports a slot the destination refused to take, and tells no other master to give it away', async () => {
    const cluster = clusterOf('redis')
    for (const slot of [1, 2]) {
      cluster.open(slot, 'source', 'target')
      cluster.addKeys('target', slot, 2)
    }
    cluster.refuseWhen('target', /SETSLOT 2 NODE target$/, 'ERR disk full')
    const {outcome} = await fix(cluster, [1, 2])
    expect(outcome.fixedSlots).to.deep.equal([1])
    expect(outcome.failures).to.deep.equal([{error: `${cluster.address('target')}: ERR disk full`, slot: 2}])
    expect(cluster.sent(/SETSLOT 2 NODE/)).to.deep.equal(['target CLUSTER SETSLOT 2 NODE target'])
    expect(cluster.ownerIn('source', 2)).to.equal('source')
    expectSettled(cluster, 1, 'target', 2)
  })

  it('sends nothing for a slot whose owner is down, nor, after Ctrl-C, for a slot not started', async () => {
    const cluster = clusterOf('redis')
    cluster.open(1, 'source', 'target')
    cluster.addKeys('target', 1, 2)
    // slot 200 belongs to "other", which is down, and the target imports it with keys of it: only "other" can say which copy counts
    cluster.open(200, 'other', 'target')
    cluster.addKeys('target', 200, 2)
    cluster.takeDown('other')
    const {fixes, outcome} = await fix(cluster, [1, 200], {signal: AbortSignal.abort()}, ['other'])
    expect(fixes.map((fixed) => [fixed.slot, fixed.action])).to.deep.equal([
      [1, 'roll-forward'],
      [200, 'skip'],
    ])
    expect(outcome).to.deep.equal({failures: [], fixedSlots: [], keysMoved: 0, skippedSlots: [1]})
    expect(cluster.sent(/SETSLOT|MIGRATE|ADDSLOTS|BUMPEPOCH/)).to.deep.equal([])
    expect(cluster.sent(/ 200( |$)/)).to.deep.equal([])
  })
})
