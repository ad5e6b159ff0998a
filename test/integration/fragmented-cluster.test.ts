/**
 * check, info, rebalance --dry-run and a reshard on a real cluster whose slot map is fully
 * fragmented: every slot dealt to a master at random, so each master owns thousands of
 * mostly single-slot ranges and every node's CLUSTER NODES is larger than one socket read.
 * 4 masters + 4 replicas by default; SLOTCTL_FRAGMENTED_MASTERS=30 runs the same on the
 * 60-node cluster of bench/large-cluster.bench.js (its timings live there, not here).
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {InfoResult} from '../../src/commands/info.js'
import type {RebalanceCommandResult} from '../../src/commands/rebalance.js'
import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {DEFAULT_CONNECTION, NodePool} from '../../src/lib/cluster/connection.js'
import {SLOT_COUNT, countSlots, expandRanges} from '../../src/lib/core/slots.js'
import {applyCreatePlan} from '../../src/lib/nodes/create.js'
import {planCreate} from '../../src/lib/plan/create.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'
import {fragmentedLayout} from '../fixtures/large-cluster.js'
import {readPlanFile} from '../../src/lib/plan/plan-file.js'

const MASTERS = Number(process.env.SLOTCTL_FRAGMENTED_MASTERS ?? 4)

describe(`a fully fragmented cluster (${MASTERS} masters + ${MASTERS} replicas, every slot dealt at random)`, () => {
  let cluster: TestCluster
  let dir: string
  let original: {digest: string; keys: number}

  const healthy = async () => {
    const {exitCode, json, stderr} = await runCliJson<CheckResult>(['check', cluster.seed])
    expect(json.errors, JSON.stringify(json.errors) + stderr).to.deep.equal([])
    expect(exitCode).to.equal(0)
    return json
  }

  before(async function () {
    this.timeout(600_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-fragmented-'))
    // 60 servers on a busy 2-core machine need more than the harness's 2 s node timeout
    cluster = await TestCluster.start({form: false, nodeTimeoutMs: MASTERS > 8 ? 15_000 : undefined, nodes: MASTERS * 2})
    const plan = planCreate(cluster.servers.map((server) => ({address: server.address, host: server.host})), 1)
    const layout = fragmentedLayout(MASTERS, 15)
    plan.masters = plan.masters.map((master, index) => ({...master, slots: layout[index]}))
    const pool = new NodePool({...DEFAULT_CONNECTION, commandTimeoutMs: 60_000})
    try {
      cluster.ids = await applyCreatePlan(pool, plan, {waitTimeoutMs: 120_000})
    } finally {
      await pool.closeAll()
    }
    await writeDataset(cluster.clusterClient(), {keys: 20_000})
    original = await clusterDigest(cluster)
    expect(original.keys).to.equal(20_000)
  })

  after(async () => {
    await cluster?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('check reads every view (each larger than a socket read), finds no error, and lists each master\'s hundreds to thousands of ranges exactly', async () => {
    const nodes = String(await cluster.client().call('CLUSTER', 'NODES'))
    expect(nodes.length).to.be.above(64 * 1024)
    const json = await healthy()
    const masters = json.nodes.filter((node) => node.role === 'master')
    expect(masters).to.have.length(MASTERS)
    expect(masters.reduce((sum, master) => sum + master.slotCount, 0)).to.equal(SLOT_COUNT)
    expect(Math.min(...masters.map((master) => master.slots.length))).to.be.above(SLOT_COUNT / MASTERS / 3)
    const owned = masters.flatMap((master) => expandRanges(master.slots)).sort((a, b) => a - b)
    expect(owned).to.deep.equal(Array.from({length: SLOT_COUNT}, (_, slot) => slot))
  })

  it('info totals every key and slot', async () => {
    const {exitCode, json} = await runCliJson<InfoResult>(['info', cluster.seed])
    expect(exitCode).to.equal(0)
    expect(json.totalKeys).to.equal(original.keys)
    expect(json.totalSlots).to.equal(SLOT_COUNT)
    expect(json.masters.map((master) => master.slotCount)).to.deep.equal(json.masters.map((master) => countSlots(master.slots)))
  })

  it('rebalance --dry-run plans moves from the fuller masters only, each slot from its owner, and changes nothing', async () => {
    const out = path.join(dir, 'plan.json')
    const before = await healthy()
    const {exitCode, json} = await runCliJson<RebalanceCommandResult>(['rebalance', cluster.seed, '--dry-run', '--threshold', '0', '--out', out])
    expect(exitCode).to.equal(0)
    expect(json.status).to.equal('planned')
    const plan = readPlanFile(out)
    expect(plan.moves.length).to.equal(json.slotsToMove).and.to.be.above(0)
    const ownerOf = new Map(before.nodes.filter((node) => node.role === 'master').flatMap((master) => expandRanges(master.slots).map((slot) => [slot, master.id] as const)))
    const share = SLOT_COUNT / MASTERS
    const fuller = new Set(json.nodes.filter((node) => node.slotsBefore > share).map((node) => node.id))
    for (const move of plan.moves) {
      expect(ownerOf.get(move.slot)).to.equal(move.sourceId)
      expect([fuller.has(move.sourceId), fuller.has(move.targetId)]).to.deep.equal([true, false])
    }
    for (const node of json.nodes) expect(Math.abs(node.slotsAfter - share)).to.be.below(1)
    expect((await healthy()).nodes.map((node) => node.slots)).to.deep.equal(before.nodes.map((node) => node.slots))
  })

  it('a reshard of 1000 scattered slots from all masters moves every key intact', async function () {
    this.timeout(600_000)
    const target = (await healthy()).nodes.find((node) => node.role === 'master')!
    const {exitCode, json, stderr} = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--from', 'all', '--to', target.id, '--slots', '1000', '--yes', '--journal', path.join(dir, 'reshard.jsonl')])
    expect(exitCode, stderr).to.equal(0)
    expect(json.status).to.equal('done')
    expect(json.slotsMoved).to.equal(1000)
    const after = await healthy()
    expect(after.nodes.find((node) => node.id === target.id)!.slotCount).to.equal(target.slotCount + 1000)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })
})
