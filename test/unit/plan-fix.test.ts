import {expect} from 'chai'

import {type MasterEvidence, type SlotEvidence, classifySlot, effectiveClaimants, groupFixes, planFix} from '../../src/lib/plan/fix.js'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)
const DEAD = 'd'.repeat(40)

const masters = (counts: Record<string, number> = {[A]: 5461, [B]: 5461, [C]: 5462}, dead: string[] = []): MasterEvidence[] => [
  ...Object.entries(counts).map(([id, slotCount]) => ({address: `10.0.0.${id[0]}:6379`, configEpoch: 1, id, live: true, slotCount})),
  ...dead.map((id) => ({address: '10.0.0.9:6379', configEpoch: 1, id, live: false, nextStep: `promote its replica: slotctl failover 10.0.0.9:6380 --replica ${'e'.repeat(40)} --force`, slotCount: 0})),
]

/** A slot owned by `owner` in every live view, no markers, keys only at the owner. */
function slot(n: number, owner: null | string, extra: Partial<SlotEvidence> = {}): SlotEvidence {
  return {
    claimants: owner ? [owner] : [],
    importing: {},
    keys: {[A]: 0, [B]: 0, [C]: 0},
    migrating: {},
    slot: n,
    viewOwner: {[A]: owner, [B]: owner, [C]: owner},
    ...extra,
  }
}

describe('fix planner', () => {
  it('leaves a healthy slot alone', () => {
    expect(planFix(masters(), [slot(1, A, {keys: {[A]: 5, [B]: 0, [C]: 0}})])).to.deep.equal([])
  })

  it('rolls an open migration forward when its target already holds keys, moving the rest from the source', () => {
    const [fix] = planFix(masters(), [slot(7, A, {importing: {[B]: A}, keys: {[A]: 3, [B]: 4, [C]: 0}, migrating: {[A]: B}})])
    expect(fix).to.include({action: 'roll-forward', claimsSlot: true, destination: B, problem: 'open-migration'})
    expect(fix.sources).to.deep.equal([A])
  })

  it('closes an open migration back when nothing moved yet and no journal names the target', () => {
    const [fix] = planFix(masters(), [slot(7, A, {importing: {[B]: A}, keys: {[A]: 3, [B]: 0, [C]: 0}, migrating: {[A]: B}})])
    expect(fix).to.include({action: 'close-back', destination: A})
    expect(fix.sources).to.deep.equal([])
  })

  it('importing only: closes back without evidence, rolls forward to the journal\'s intended target', () => {
    const back = planFix(masters(), [slot(9, A, {importing: {[B]: A}, keys: {[A]: 2, [B]: 0, [C]: 0}})])[0]
    expect(back).to.include({action: 'close-back', destination: A, problem: 'importing-only'})
    const forward = planFix(masters(), [slot(9, A, {importing: {[B]: A}, intendedTarget: B, keys: {[A]: 2, [B]: 0, [C]: 0}})])[0]
    expect(forward).to.include({action: 'roll-forward', destination: B, reason: 'the journal names this target'})
    expect(forward.sources).to.deep.equal([A])
  })

  it('after the source failed over, the importing target still rolls forward from the promoted replica', () => {
    // B imports from the dead source; C is its promoted replica and owns the slot now.
    const [fix] = planFix(masters({[B]: 5000, [C]: 5000}, [DEAD]), [{
      claimants: [C], importing: {[B]: DEAD}, keys: {[B]: 2, [C]: 5}, migrating: {}, slot: 11, viewOwner: {[B]: DEAD, [C]: C},
    }])
    expect(fix).to.include({action: 'roll-forward', destination: B, problem: 'importing-only'})
    expect(fix.sources).to.deep.equal([C])
  })

  it('migrating to a node that is gone: closes back and pulls keys a promoted replica holds into the owner', () => {
    const [fix] = planFix(masters(), [slot(3, A, {keys: {[A]: 2, [B]: 0, [C]: 1}, migrating: {[A]: DEAD}})])
    expect(classifySlot(slot(3, A, {migrating: {[A]: DEAD}}), new Set([A, B, C]))).to.equal('migrating-to-gone')
    expect(fix).to.include({action: 'close-back', destination: A, problem: 'migrating-to-gone'})
    expect(fix.sources).to.deep.equal([C])
  })

  it('an uncovered slot goes to the master holding most of its keys; the others hand theirs over', () => {
    const [fix] = planFix(masters(), [slot(5, null, {keys: {[A]: 1, [B]: 0, [C]: 9}})])
    expect(fix).to.include({action: 'assign', claimsSlot: true, destination: C, problem: 'uncovered'})
    expect(fix.sources).to.deep.equal([A])
  })

  it('empty uncovered slots even out the masters in contiguous runs', () => {
    const counts = {[A]: 5000, [B]: 5000, [C]: 4000}
    const empties = Array.from({length: 2384}, (_, i) => slot(14_000 + i, null))
    const fixes = planFix(masters(counts), empties)
    expect(fixes).to.have.length(2384)
    const gained = (id: string) => fixes.filter((fix) => fix.destination === id).length
    const totals = [A, B, C].map((id) => counts[id] + gained(id))
    expect(Math.max(...totals) - Math.min(...totals)).to.be.at.most(1)
    expect(totals.reduce((a, b) => a + b)).to.equal(16_384)
    expect(groupFixes(fixes)).to.have.length(3)
  })

  it('several claimants: the one with most keys keeps the slot and its epoch is bumped', () => {
    const [fix] = planFix(masters(), [slot(4, A, {claimants: [A, B], keys: {[A]: 1, [B]: 6, [C]: 0}, viewOwner: {[A]: A, [B]: B, [C]: A}})])
    expect(fix).to.include({action: 'settle-owner', claimsSlot: true, destination: B, problem: 'multiple-owners'})
    expect(fix.sources).to.deep.equal([A])
  })

  it('several claimants without keys: the one most masters name wins', () => {
    const [fix] = planFix(masters(), [slot(4, A, {claimants: [A, B], viewOwner: {[A]: A, [B]: B, [C]: A}})])
    expect(fix).to.include({destination: A})
  })

  it('keys outside the owner merge into it; a master that names another owner is told', () => {
    const [stray] = planFix(masters(), [slot(8, A, {keys: {[A]: 1, [B]: 2, [C]: 0}})])
    expect(stray).to.include({action: 'merge-keys', claimsSlot: false, destination: A, problem: 'stray-keys'})
    expect(stray.sources).to.deep.equal([B])
    const [disagree] = planFix(masters(), [slot(8, A, {viewOwner: {[A]: A, [B]: A, [C]: B}})])
    expect(disagree).to.include({action: 'reassert-owner', claimsSlot: true, destination: A, problem: 'views-disagree'})
  })

  it('skips a slot whose owner is down, naming the command that deals with it', () => {
    const [fix] = planFix(masters({[A]: 5000}, [DEAD]), [{claimants: [DEAD], importing: {[A]: DEAD}, keys: {[A]: 1}, migrating: {}, slot: 2, viewOwner: {[A]: DEAD}}])
    expect(fix.action).to.equal('skip')
    expect(fix.reason).to.equal(`its owner 10.0.0.9:6379 (dddddddd) is down: promote its replica: slotctl failover 10.0.0.9:6380 --replica ${'e'.repeat(40)} --force`)
  })

  it('a slot a dead target claimed, whose replica the journal names and the cluster promoted, goes to that replica; any other keys follow', () => {
    // A and B name the dead target; C, its promoted replica, missed the claim and names A
    const orphan = slot(51, null, {keys: {[A]: 0, [B]: 1, [C]: 30}, promotedReplica: {id: C, replaces: DEAD}, viewOwner: {[A]: DEAD, [B]: DEAD, [C]: A}})
    const [fix] = planFix(masters({[A]: 5000, [B]: 5000, [C]: 5000}, [DEAD]), [orphan])
    expect(fix).to.include({action: 'assign', claimsSlot: true, destination: C, problem: 'uncovered'})
    expect(fix.sources).to.deep.equal([B])
    expect(fix.reason).to.equal('its owner 10.0.0.9:6379 (dddddddd) is down and was the last to claim it; this node was its replica (the run\'s journal says so) and has taken its place')
    // even with more keys elsewhere and none at the replica: the journal decides, not the counts
    const empty = planFix(masters({[A]: 5000, [B]: 5000, [C]: 5000}, [DEAD]), [{...orphan, keys: {[A]: 4, [B]: 0, [C]: 0}}])[0]
    expect(empty).to.include({destination: C})
    expect(empty.sources).to.deep.equal([A])
  })

  it('a promoted replica\'s slots do not count as empty ones to spread', () => {
    const orphans = [slot(51, null, {promotedReplica: {id: C, replaces: DEAD}}), slot(52, null)]
    const fixes = planFix(masters({[A]: 5000, [B]: 6000, [C]: 5000}, [DEAD]), orphans)
    // the one empty slot goes to the master with fewest slots (A), not to C by a shared quota
    expect(fixes.map((fix) => fix.destination)).to.deep.equal([C, A])
  })

  describe('whose claim counts (the same from every seed)', () => {
    const live = new Set([A, B, C])
    const epochs: Record<string, number> = {[A]: 1, [B]: 7, [C]: 9, [DEAD]: 3}
    const epochOf = (id: string) => epochs[id]

    it('a live master claims what its own view lists', () => {
      expect(effectiveClaimants([C], [C, C, C], live, epochOf)).to.deep.equal([C])
    })

    it('a master that is down and that a stale view still names gives way to a live claimant with a newer epoch', () => {
      // Redis 7: B imports the slot and ignores the promoted replica C's claim, so it names the dead source
      expect(effectiveClaimants([C], [C, DEAD, C], live, epochOf)).to.deep.equal([C])
    })

    it('a master that is down keeps its claim while no live master claims the slot, or none with a newer epoch', () => {
      expect(effectiveClaimants([], [DEAD, DEAD, DEAD], live, epochOf)).to.deep.equal([DEAD])
      expect(effectiveClaimants([A], [A, DEAD, DEAD], live, epochOf)).to.deep.equal([A, DEAD])
    })

    it('nobody claims and nobody is named: uncovered', () => {
      expect(effectiveClaimants([], [], live, epochOf)).to.deep.equal([])
    })
  })

  it('migrating to a node that is no live master: the reason names it', () => {
    const [fix] = planFix(masters(), [slot(3, A, {migrating: {[A]: DEAD}})])
    expect(fix.reason).to.equal('its target dddddddd is no live master any more: the slot stays with its owner')
  })

  it('a marker only a replica shows: SETSLOT STABLE on its master, which passes it on; no key moves', () => {
    const REPLICA = 'e'.repeat(40)
    const replicating = masters().map((master) => ({...master, replicatesSetslot: true}))
    const evidence = slot(300, A, {keys: {[A]: 4, [B]: 0, [C]: 0}, replicaMarkers: {[REPLICA]: A}})
    expect(classifySlot(evidence, new Set([A, B, C]))).to.equal('replica-marker')
    const [fix] = planFix(replicating, [evidence])
    expect(fix).to.include({action: 'clear-replica-marker', claimsSlot: false, destination: A, problem: 'replica-marker'})
    expect(fix.sources).to.deep.equal([])
  })

  it('a replica marker is skipped, saying why, when its master is down or does not replicate SETSLOT', () => {
    const REPLICA = 'e'.repeat(40)
    const down = planFix(masters({[B]: 5461, [C]: 5462}, [A]).map((master) => ({...master, replicatesSetslot: true})), [slot(300, B, {replicaMarkers: {[REPLICA]: A}})])[0]
    expect(down).to.include({action: 'skip', problem: 'replica-marker'})
    expect(down.reason).to.match(/that master is down: bring it back/)
    const redis = planFix(masters(), [slot(300, A, {replicaMarkers: {[REPLICA]: A}})])[0]
    expect(redis).to.include({action: 'skip', problem: 'replica-marker'})
    expect(redis.reason).to.match(/does not pass SETSLOT on/).and.match(/CLUSTER REPLICATE/)
  })

  it('a master\'s own problem wins over its replica\'s marker (closing it reaches the replica too)', () => {
    const [fix] = planFix(masters(), [slot(7, A, {importing: {[B]: A}, migrating: {[A]: B}, replicaMarkers: {['e'.repeat(40)]: A}})])
    expect(fix).to.include({action: 'close-back', problem: 'open-migration'})
  })

  it('groups consecutive slots with the same decision', () => {
    const fixes = planFix(masters(), [slot(1, A, {importing: {[B]: A}}), slot(2, A, {importing: {[B]: A}}), slot(3, A, {migrating: {[A]: B}})])
    expect(groupFixes(fixes).map((group) => [group.slots, group.problem])).to.deep.equal([[[1, 2], 'importing-only'], [[3], 'migrating-only']])
  })
})
