/**
 * The slot protocol's order of commands (migrate/slot-protocol.ts), against a fake pool (no
 * server): the open (IMPORTING at the target before MIGRATING at the source), the close
 * (the target claims the slots in one guarded MULTI with BUMPEPOCH + DELSLOTS/ADDSLOTS, one
 * herald slot closes with SETSLOT NODE, the source and the other masters are told, and on
 * Valkey >= 8 the target hands SETSLOT NODE to its replicas last), and what a close refuses
 * or reports (a target turned replica claims nothing);
 * then executeRun with the legacy mover over the same fake: a resume and a Ctrl-C.
 */
import {expect} from 'chai'

import type {ClusterSnapshot} from '../../src/lib/cluster/loader.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {SlotctlError} from '../../src/lib/core/errors.js'
import type {Journal, JournalState} from '../../src/lib/migrate/journal.js'
import {type EngineSettings, type PreparedRun, type RunContext, type RunEvent, executeRun, refuseStalePlan} from '../../src/lib/migrate/run.js'
import {type SlotMoveTarget, closeSlots, openSlots} from '../../src/lib/migrate/slot-protocol.js'
import type {MigrationPlan, SlotMove} from '../../src/lib/plan/types.js'
import {FakeCluster, type ServerKind, claimLines} from '../helpers/fake-pool.js'

const SLOTS = [1, 2, 3]

/** A source (with the greatest config epoch, so the target must bump), a target with a replica, one more master. */
function clusterOf(server: ServerKind): FakeCluster {
  return new FakeCluster(server, [
    {epoch: 5, name: 'source', slots: [...SLOTS, 4]},
    {epoch: 2, name: 'target', slots: [100]},
    {epoch: 3, name: 'other', slots: [200]},
    {name: 'target-r', replicaOf: 'target'},
  ])
}

function movesOf(cluster: FakeCluster, slots = SLOTS): SlotMoveTarget[] {
  return slots.map((slot) => ({slot, source: cluster.endpoint('source'), target: cluster.endpoint('target')}))
}

/** The slots open from source to target with every key already at the target (slot → keys there). */
function emptiedAtSource(cluster: FakeCluster, keysAtTarget: Record<number, number>): void {
  for (const slot of SLOTS) {
    cluster.open(slot, 'source', 'target')
    cluster.addKeys('target', slot, keysAtTarget[slot] ?? 1)
  }
}

/** Commands that change a node's slot table or epoch, in the order they were sent. */
const CHANGES = /SETSLOT|ADDSLOTS|DELSLOTS|BUMPEPOCH|MULTI|EXEC/
const changes = (cluster: FakeCluster) => cluster.sent(CHANGES)

function close(cluster: FakeCluster, handsDown: boolean, slots = SLOTS) {
  return closeSlots(cluster.pool(), movesOf(cluster, slots), undefined, undefined, handsDown, !handsDown)
}

describe('slot protocol against a fake pool', () => {
  describe('open', () => {
    it('sets every slot IMPORTING at the target before any MIGRATING at the source', async () => {
      const cluster = clusterOf('redis')
      await openSlots(cluster.pool(), movesOf(cluster))
      expect(changes(cluster)).to.deep.equal([
        'target CLUSTER SETSLOT 1 IMPORTING source',
        'target CLUSTER SETSLOT 2 IMPORTING source',
        'target CLUSTER SETSLOT 3 IMPORTING source',
        'source CLUSTER SETSLOT 1 MIGRATING target',
        'source CLUSTER SETSLOT 2 MIGRATING target',
        'source CLUSTER SETSLOT 3 MIGRATING target',
      ])
      expect(cluster.markers('target', 2)).to.deep.equal({importing: 'source'})
      expect(cluster.markers('source', 2)).to.deep.equal({migrating: 'target'})
    })

    it('never sets MIGRATING when the target refused to import (no ASK towards a node that would not take the key)', async () => {
      const cluster = clusterOf('redis')
      cluster.refuseWhen('target', /SETSLOT 2 IMPORTING/, 'ERR I am busy')
      const error = await openSlots(cluster.pool(), movesOf(cluster)).catch((caught: unknown) => caught)
      expect(error).to.be.instanceOf(SlotctlError)
      expect((error as SlotctlError).message).to.match(/slot 2: .*SETSLOT IMPORTING.*I am busy/)
      expect(cluster.sent(/MIGRATING/)).to.deep.equal([])
    })
  })

  describe('close on Redis', () => {
    it('raises the target above the source, claims in one guarded MULTI that ends with the herald\'s SETSLOT NODE, then tells the source; hands nothing down', async () => {
      const cluster = clusterOf('redis')
      emptiedAtSource(cluster, {1: 4, 2: 2, 3: 1})
      const outcome = await close(cluster, false)
      expect(outcome.closed).to.deep.equal(SLOTS)
      expect(outcome.open).to.deep.equal([])
      const sent = changes(cluster)
      // the herald inside the transaction: its broadcast leaves in the same event-loop turn as the claim
      expect(sent.slice(0, 9)).to.deep.equal(['target CLUSTER BUMPEPOCH', ...claimLines('target', [1, 2], {slot: 3, targetName: 'target'})])
      // Redis replicas learn the claim from the target's pings: no SETSLOT NODE for the claimed slots;
      // the other masters learn it from the herald's broadcast, never from a SETSLOT (redis#12564)
      expect(sent.slice(9)).to.deep.equal(SLOTS.map((slot) => `source CLUSTER SETSLOT ${slot} NODE target`))
      // the guard: ASKING, then inside the transaction a read of the herald's slot, which only an importing master serves
      const all = cluster.sent()
      const multi = all.indexOf('target MULTI')
      expect(all[multi - 1]).to.equal('target ASKING')
      expect(all[multi + 1]).to.match(/^target DEL slotctl:claim:\{.+\}$/)
      // step 1 before step 2: the source's keys and epoch were read before the target bumped
      expect(all.indexOf('source CLUSTER COUNTKEYSINSLOT 3')).to.be.lessThan(all.indexOf('target CLUSTER BUMPEPOCH'))
      expect(cluster.node('target').configEpoch).to.be.greaterThan(cluster.node('source').configEpoch)
      for (const node of ['source', 'target', 'other']) expect(SLOTS.map((slot) => cluster.ownerIn(node, slot))).to.deep.equal(['target', 'target', 'target'])
    })

    it('a target that a failover turned into a replica claims nothing (Redis runs ADDSLOTS on a replica): the transaction aborts, nobody is told', async () => {
      const cluster = clusterOf('redis')
      emptiedAtSource(cluster, {1: 4, 2: 2, 3: 1})
      const target = cluster.node('target')
      target.masterId = cluster.node('target-r').id
      target.importing.clear()
      const error = await close(cluster, false).catch((caught: unknown) => caught)
      expect(error).to.be.instanceOf(SlotctlError)
      expect((error as SlotctlError).message).to.match(/MULTI\/EXEC.*EXECABORT/)
      // the herald was only queued in the aborted transaction; nobody else hears of the slots
      expect(cluster.sent(/^(source|other|target-r) .*SETSLOT \d+ NODE/)).to.deep.equal([])
      expect(SLOTS.map((slot) => cluster.ownerIn('target', slot))).to.deep.equal(['source', 'source', 'source'])
      expect(cluster.markers('source', 1)).to.deep.equal({migrating: 'target'})
    })

    it('leaves a slot the source still holds keys of open, and reports it; the others close', async () => {
      const cluster = clusterOf('redis')
      emptiedAtSource(cluster, {})
      cluster.addKeys('source', 3, 2)
      const outcome = await close(cluster, false)
      expect(outcome.closed).to.deep.equal([1, 2])
      expect(outcome.open).to.deep.equal([{error: `2 key(s) are still at the source ${cluster.address('source')}`, slot: 3}])
      expect(cluster.sent(/SETSLOT 3 /)).to.deep.equal([])
      expect(cluster.markers('source', 3)).to.deep.equal({migrating: 'target'})
      expect(cluster.markers('target', 3)).to.deep.equal({importing: 'source'})
    })

    it("reads the source's view again on a fresh connection when the source dropped it (Valkey 8 turning replica): the close holds", async () => {
      const cluster = clusterOf('redis')
      emptiedAtSource(cluster, {})
      // the first CLUSTER NODES is the epoch check before the close, the second the verification after it
      cluster.dropOnce('source', /^CLUSTER NODES$/, 2)
      const pool = cluster.pool()
      const outcome = await closeSlots(pool, movesOf(cluster), undefined, undefined, false)
      expect(outcome.closed).to.deep.equal(SLOTS)
      expect((pool as unknown as {forgotten: string[]}).forgotten).to.include(cluster.address('source'))
    })

    it('fails the close with E_VERIFY when the source still claims the slots after it was told', async () => {
      const cluster = clusterOf('redis')
      emptiedAtSource(cluster, {})
      // a source that turned replica refuses SETSLOT: tolerated, and the verification reads its view
      // (cut off from the bus, it does not hear the herald's broadcast either)
      cluster.refuseWhen('source', /SETSLOT \d+ NODE/, 'ERR Please use SETSLOT only with masters.')
      cluster.cutOffBus('source')
      const error = await close(cluster, false).catch((caught: unknown) => caught)
      expect(error).to.be.instanceOf(SlotctlError)
      expect((error as SlotctlError).code).to.equal('E_VERIFY')
      expect((error as SlotctlError).message).to.match(/slot\(s\) 1-3 are not owned by .* in the view of .*\(source\)/)
    })
  })

  describe('close on Valkey >= 8 (the target hands SETSLOT to its replicas)', () => {
    it('claims in one MULTI, closes the slot with the fewest keys as herald, tells the source, hands down to the replicas last', async () => {
      const cluster = clusterOf('valkey')
      emptiedAtSource(cluster, {1: 5, 2: 1, 3: 3})
      const outcome = await close(cluster, true)
      expect(outcome.closed).to.deep.equal(SLOTS)
      expect(Object.fromEntries(outcome.targetKeys)).to.deep.equal({1: 5, 2: 1, 3: 3})
      const sent = changes(cluster)
      expect(sent.slice(0, 9)).to.deep.equal([
        'target CLUSTER BUMPEPOCH',
        ...claimLines('target', [1, 3]),
        'target CLUSTER SETSLOT 2 NODE target',
      ])
      expect(sent.slice(9, 12)).to.deep.equal(SLOTS.map((slot) => `source CLUSTER SETSLOT ${slot} NODE target`))
      expect(sent.slice(12)).to.deep.equal(['target CLUSTER SETSLOT 1 NODE target', 'target CLUSTER SETSLOT 3 NODE target'])
    })

    it("hands no replica a slot its primary does not claim yet, but the herald's", async () => {
      const cluster = clusterOf('valkey')
      emptiedAtSource(cluster, {1: 5, 2: 1, 3: 3})
      await close(cluster, true)
      expect(cluster.handDowns).to.deep.equal([
        {primaryClaimed: false, replica: 'target-r', slot: 2},
        {primaryClaimed: true, replica: 'target-r', slot: 1},
        {primaryClaimed: true, replica: 'target-r', slot: 3},
      ])
      expect(SLOTS.map((slot) => cluster.ownerIn('target-r', slot))).to.deep.equal(['target', 'target', 'target'])
    })

    it('tells nobody else when the claim fails: the slots stay open and the error names the refused ADDSLOTS', async () => {
      const cluster = clusterOf('valkey')
      emptiedAtSource(cluster, {1: 5, 2: 1, 3: 3})
      cluster.refuseWhen('target', /ADDSLOTS 3$/, 'ERR Slot 3 is already busy')
      const error = await close(cluster, true).catch((caught: unknown) => caught)
      expect(error).to.be.instanceOf(SlotctlError)
      expect((error as SlotctlError).message).to.match(/^slot 3: .*CLUSTER ADDSLOTS.*already busy/)
      expect(cluster.sent(/SETSLOT \d+ NODE/)).to.deep.equal([])
      expect(cluster.markers('source', 1)).to.deep.equal({migrating: 'target'})
    })
  })
})

describe('executeRun against a fake pool', () => {
  const SETTINGS: EngineSettings = {durability: 'none', legacyMigrate: false, parallel: 1, pipeline: 10, replace: false, replicaWaitMs: 1000, timeoutMs: 1000}

  /** What the loader would read: each master's own line, every view reachable. */
  function snapshotOf(cluster: FakeCluster, names: readonly string[]): ClusterSnapshot {
    const views: ClusterSnapshot['views'] = {}
    const nodes = names.map((name) => {
      const view = parseClusterNodes(cluster.clusterNodes(name))
      const {address, id} = cluster.endpoint(name)
      views[id] = {address, id, nodes: view, reachable: true}
      return view.find((node) => node.myself)!
    })
    return {nodes, seedAddress: cluster.address(names[0]), seedId: nodes[0].id, views}
  }

  const NAMES = ['source', 'target', 'other']

  const planOf = (cluster: FakeCluster, moves: SlotMove[]): MigrationPlan => ({
    createdAt: '2026-01-01T00:00:00.000Z',
    kind: 'reshard',
    moves,
    nodes: NAMES.map((name) => cluster.endpoint(name)),
    version: 1,
  })

  function prepared(cluster: FakeCluster, moves: SlotMove[], resume?: JournalState): PreparedRun {
    const snapshot = snapshotOf(cluster, NAMES)
    const plan = planOf(cluster, moves)
    const done = resume?.doneSlots ?? new Set<number>()
    return {
      addresses: new Map(NAMES.map((name) => [cluster.endpoint(name).id, cluster.address(name)])),
      bigKeys: [],
      cautions: [],
      choice: {atomic: false, atomicIds: new Set(), durableOnly: false, features: new Map(), offered: false, throttled: false},
      closeOnly: refuseStalePlan(snapshot, plan, resume),
      counted: new Map(),
      done,
      plan,
      planToSave: plan,
      remaining: moves.filter((move) => !done.has(move.slot)),
      resume,
      snapshot,
      warnings: [],
    }
  }

  /** Runs the plan; the journal's lines and the events come back with the outcome. */
  async function run(cluster: FakeCluster, prepare: PreparedRun, onEvent: (event: RunEvent, abort: () => void) => void = () => undefined) {
    const journal: string[] = []
    const controller = new AbortController()
    const context: RunContext = {
      commandHint: (args) => `slotctl ${args}`,
      onEvent: (event) => onEvent(event, () => controller.abort()),
      pool: cluster.pool(),
      settings: SETTINGS,
      signal: controller.signal,
    }
    const fakeJournal = {
      slotsDone: (done: ReadonlyArray<{slot: number}>) => journal.push(`done ${done.map((entry) => entry.slot).join(',')}`),
      slotsStarted: (slots: readonly number[]) => journal.push(`start ${slots.join(',')}`),
    }
    const outcome = await executeRun(context, prepare, {journal: fakeJournal as unknown as Journal, keyFlagsGiven: [], plannedKeys: 10})
    return {journal, outcome}
  }

  const move = (cluster: FakeCluster, source: string, slot: number): SlotMove => ({slot, sourceId: cluster.endpoint(source).id, targetId: cluster.endpoint('target').id})

  it('resumes: a done slot is left alone, a slot left open is not opened again, both remaining slots move and close', async () => {
    const cluster = clusterOf('redis')
    // the interrupted run had closed slot 1 and opened slot 2, half of its keys moved
    for (const name of ['source', 'target', 'other']) cluster.node(name).owners.set(1, cluster.endpoint('target').id)
    cluster.open(2, 'source', 'target')
    cluster.addKeys('target', 2, 2, 'moved')
    cluster.addKeys('source', 2, 3)
    cluster.addKeys('source', 3, 4)
    const moves = [1, 2, 3].map((slot) => move(cluster, 'source', slot))
    const resume: JournalState = {doneSlots: new Set([1]), inFlight: new Set([2]), plan: planOf(cluster, moves), settings: {}}
    const {journal, outcome} = await run(cluster, prepared(cluster, moves, resume))
    expect(outcome.failures).to.deep.equal([])
    expect([...outcome.closed]).to.deep.equal([2, 3])
    expect([outcome.slotsMoved, outcome.keysMoved, outcome.interrupted]).to.deep.equal([2, 7, false])
    expect(journal).to.deep.equal(['start 2,3', 'done 2,3'])
    expect(cluster.sent(/ 1( |$)/)).to.deep.equal([])
    expect(cluster.sent(/IMPORTING|MIGRATING/)).to.deep.equal(['target CLUSTER SETSLOT 3 IMPORTING source', 'source CLUSTER SETSLOT 3 MIGRATING target'])
    for (const slot of [2, 3]) expect(['source', 'target', 'other'].map((name) => cluster.ownerIn(name, slot))).to.deep.equal(['target', 'target', 'target'])
    expect([cluster.keys('source', 2), cluster.keys('target', 2), cluster.keys('source', 3), cluster.keys('target', 3)]).to.deep.equal([0, 5, 0, 4])
  })

  it('Ctrl-C: the wave in flight finishes and closes, no other wave opens', async () => {
    const cluster = clusterOf('redis')
    cluster.addKeys('source', 1, 2)
    cluster.addKeys('other', 200, 2)
    const moves = [move(cluster, 'source', 1), move(cluster, 'source', 2), move(cluster, 'other', 200)]
    const {journal, outcome} = await run(cluster, prepared(cluster, moves), (event, abort) => {
      if (event.type === 'slot-start') abort()
    })
    expect(outcome.interrupted).to.equal(true)
    expect(outcome.failures).to.deep.equal([])
    expect([...outcome.closed]).to.deep.equal([1, 2])
    expect(journal).to.deep.equal(['start 1,2', 'done 1,2'])
    expect(cluster.sent(/ 200( |$)/)).to.deep.equal([])
    expect(cluster.ownerIn('other', 200)).to.equal('other')
    expect(['source', 'target', 'other'].map((name) => cluster.ownerIn(name, 1))).to.deep.equal(['target', 'target', 'target'])
  })
})
