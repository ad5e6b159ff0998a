import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import type {Redis} from 'ioredis'

import type {CheckResult} from '../../src/commands/check.js'
import type {FixResult} from '../../src/commands/fix.js'
import {keySlot} from '../../src/lib/core/slots.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {handsBackTakenSlots} from '../../src/lib/cluster/server-info.js'
import {TestCluster, serverUnderTest} from '../helpers/cluster-harness.js'
import {runCli, runCliJson, stateHome} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

/** Broken slot states made by hand with the commands an operator (or a crash) leaves behind. */
describe('fix: every broken slot state, made by hand on a real cluster', () => {
  let cluster: TestCluster
  let original: {digest: string; keys: number}

  const masters = async (): Promise<ClusterNode[]> => mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))
  const node = (master: ClusterNode): Redis => cluster.client(master.address)
  const ownerOf = async (slot: number) => (await masters()).find((m) => m.slots.some(([a, b]) => slot >= a && slot <= b))!
  const others = async (owner: ClusterNode) => (await masters()).filter((m) => m.id !== owner.id)
  const keysIn = async (master: ClusterNode, slot: number) => Number(await node(master).call('CLUSTER', 'COUNTKEYSINSLOT', slot))

  /** A slot holding at least `min` keys of the dataset. */
  const slotWithKeys = async (min: number, skip: number[] = []): Promise<number> => {
    for (let i = 0; ; i += 8) {
      const slot = keySlot(`str:${i}`)
      if (skip.includes(slot)) continue
      if ((await keysIn(await ownerOf(slot), slot)) >= min) return slot
    }
  }

  const moveKeys = async (from: ClusterNode, to: ClusterNode, slot: number, count: number) => {
    const keys = (await node(from).callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, count)) as Buffer[]
    await node(from).callBuffer('MIGRATE', to.host, to.port, '', 0, 5000, 'KEYS', ...keys)
  }

  const fix = async (...extra: string[]) => {
    const result = await runCliJson<FixResult>(['fix', cluster.seed, '--yes', ...extra])
    return result
  }

  const expectHealthyAndIntact = async () => {
    const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed, '--search-multiple-owners'])
    expect(json.errors, JSON.stringify(json.errors)).to.deep.equal([])
    expect(exitCode).to.equal(0)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  }

  before(async function () {
    this.timeout(120_000)
    cluster = await TestCluster.start({masters: 3, replicas: 0})
    await writeDataset(cluster.clusterClient(), {keys: 40_000})
    original = await clusterDigest(cluster)
    expect(original.keys).to.equal(40_000)
  })

  after(async () => {
    await cluster?.stop()
  })

  it('a healthy cluster: nothing to fix, exit 0, nothing changed', async () => {
    const {exitCode, json} = await fix()
    expect(exitCode).to.equal(0)
    expect(json.status).to.equal('clean')
    expect(json.fixes).to.deep.equal([])
  })

  it('an open migration that got going (half its keys moved) rolls forward to its target', async () => {
    const slot = await slotWithKeys(4)
    const source = await ownerOf(slot)
    const [target] = await others(source)
    await node(target).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
    await node(source).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
    const total = await keysIn(source, slot)
    await moveKeys(source, target, slot, Math.floor(total / 2))

    const dry = await runCliJson<FixResult>(['fix', cluster.seed, '--dry-run'])
    // like terraform's -detailed-exitcode: 3 = the dry run would change something
    expect(dry.exitCode).to.equal(3)
    expect(dry.json.fixes).to.have.length(1)
    expect(dry.json.fixes[0]).to.include({action: 'roll-forward', targetId: target.id, problem: 'open-migration', slotCount: 1})
    expect(dry.json.fixes[0].slots).to.deep.equal([[slot, slot]])
    expect(await keysIn(source, slot), 'dry run changes nothing').to.equal(total - Math.floor(total / 2))

    const {exitCode, json, stderr} = await fix()
    expect(exitCode, stderr).to.equal(0)
    expect(json.status).to.equal('fixed')
    expect(json.keysMoved).to.equal(total - Math.floor(total / 2))
    expect((await ownerOf(slot)).id).to.equal(target.id)
    expect(await keysIn(target, slot)).to.equal(total)
    await expectHealthyAndIntact()
  })

  it('rolling forward, the third master learns the new owner by the target\'s broadcast on Redis 7.0.13-7.2.3 (redis#12564: a SETSLOT NODE could keep a stale mark), by SETSLOT NODE on other servers', async () => {
    const slot = await slotWithKeys(4)
    const source = await ownerOf(slot)
    const [target, third] = await others(source)
    await node(target).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
    await node(source).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
    const total = await keysIn(source, slot)
    await moveKeys(source, target, slot, Math.floor(total / 2))
    // MONITOR does not show admin commands such as SETSLOT: the command statistics count them
    await node(third).call('CONFIG', 'RESETSTAT')
    const {exitCode, stderr} = await fix()
    expect(exitCode, stderr).to.equal(0)
    const stats = String(await node(third).call('INFO', 'commandstats'))
    const told = Number(/cmdstat_cluster\|setslot:calls=(\d+)/.exec(stats)?.[1] ?? 0)
    const server = serverUnderTest()
    expect(told, `SETSLOTs the third master got (${server.product} ${server.version})`).to.equal(handsBackTakenSlots({name: server.product, version: server.version}) ? 0 : 1)
    const thirdView = parseClusterNodes(String(await node(third).call('CLUSTER', 'NODES')))
    expect(thirdView.find((entry) => entry.slots.some(([a, b]) => slot >= a && slot <= b))?.id, 'the third master names the target').to.equal(target.id)
    expect(await keysIn(target, slot)).to.equal(total)
    await expectHealthyAndIntact()
  })

  it('importing without migrating (a crash between the two SETSLOTs) closes back to the owner', async () => {
    const slot = await slotWithKeys(2)
    const owner = await ownerOf(slot)
    const [target] = await others(owner)
    await node(target).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
    const {exitCode, json, stderr} = await fix()
    expect(exitCode, stderr).to.equal(0)
    expect(json.fixes[0]).to.include({action: 'close-back', targetId: owner.id, problem: 'importing-only'})
    expect((await ownerOf(slot)).id).to.equal(owner.id)
    await expectHealthyAndIntact()
  })

  it('migrating without importing closes back; with the journal naming the target it rolls forward', async () => {
    const slotA = await slotWithKeys(2)
    const owner = await ownerOf(slotA)
    const [target] = await others(owner)
    await node(owner).call('CLUSTER', 'SETSLOT', slotA, 'MIGRATING', target.id)
    const {exitCode, json} = await fix()
    expect(exitCode).to.equal(0)
    expect(json.fixes[0]).to.include({action: 'close-back', targetId: owner.id, problem: 'migrating-only'})
    expect((await ownerOf(slotA)).id).to.equal(owner.id)
    await expectHealthyAndIntact()

    const slotB = await slotWithKeys(2, [slotA])
    const ownerB = await ownerOf(slotB)
    const targetB = (await others(ownerB))[0]
    const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-fix-'))
    const journal = path.join(dir, 'interrupted.jsonl')
    const plan = {createdAt: new Date().toISOString(), kind: 'reshard', moves: [{slot: slotB, sourceId: ownerB.id, targetId: targetB.id}], nodes: [], version: 1}
    await writeFile(journal, `${JSON.stringify({plan, type: 'plan'})}\n${JSON.stringify({slot: slotB, type: 'slot-start'})}\n`)
    await node(ownerB).call('CLUSTER', 'SETSLOT', slotB, 'MIGRATING', targetB.id)
    const forward = await fix('--journal', journal)
    expect(forward.exitCode, forward.stderr).to.equal(0)
    expect(forward.json.fixes[0]).to.include({action: 'roll-forward', targetId: targetB.id, reason: 'the journal names this target'})
    expect((await ownerOf(slotB)).id).to.equal(targetB.id)
    await expectHealthyAndIntact()
    await rm(dir, {force: true, recursive: true})

    // without --journal, fix finds the interrupted run's journal in the default place
    const slotC = await slotWithKeys(2, [slotA, slotB])
    const ownerC = await ownerOf(slotC)
    const targetC = (await others(ownerC))[0]
    const journals = path.join(stateHome, 'slotctl', 'journals')
    await mkdir(journals, {recursive: true})
    const found = path.join(journals, 'reshard-interrupted.jsonl')
    const planC = {createdAt: new Date().toISOString(), kind: 'reshard', moves: [{slot: slotC, sourceId: ownerC.id, targetId: targetC.id}], nodes: [], version: 1}
    await writeFile(found, `${JSON.stringify({plan: planC, type: 'plan'})}\n${JSON.stringify({slot: slotC, type: 'slot-start'})}\n`)
    await node(ownerC).call('CLUSTER', 'SETSLOT', slotC, 'MIGRATING', targetC.id)
    const discovered = await fix()
    expect(discovered.exitCode, discovered.stderr).to.equal(0)
    expect(discovered.json.journal).to.equal(found)
    expect(discovered.json.fixes[0]).to.include({action: 'roll-forward', targetId: targetC.id, reason: 'the journal names this target'})
    await rm(found)
    await expectHealthyAndIntact()
  })

  it('uncovered slots: one whose owner dropped it keeps its keys there; keys on two nodes merge; empty ones are spread', async () => {
    const all = await masters()
    // a slot nobody owns, with keys on two masters
    const split = await slotWithKeys(4)
    const splitOwner = await ownerOf(split)
    const [helper] = await others(splitOwner)
    await node(helper).call('CLUSTER', 'SETSLOT', split, 'IMPORTING', splitOwner.id)
    await node(splitOwner).call('CLUSTER', 'SETSLOT', split, 'MIGRATING', helper.id)
    await moveKeys(splitOwner, helper, split, 1)
    // a slot whose owner dropped it (its keys stay there)
    const dropped = await slotWithKeys(2, [split])
    const dropper = await ownerOf(dropped)
    await node(dropper).call('CLUSTER', 'DELSLOTS', dropped)
    // empty slots owned by nobody anywhere
    const empties: number[] = []
    for (let slot = 16_383; empties.length < 4; slot--) if ((await keysIn(await ownerOf(slot), slot)) === 0) empties.push(slot)
    for (const master of all) {
      await node(master).call('CLUSTER', 'SETSLOT', split, 'STABLE')
      await node(master).call('CLUSTER', 'DELSLOTS', split, ...empties.filter((s) => master.slots.some(([a, b]) => s >= a && s <= b))).catch(() => {})
    }
    for (const master of all) for (const slot of empties) expect(await keysIn(master, slot)).to.equal(0)

    const {exitCode, json, stderr} = await fix()
    expect(exitCode, stderr).to.equal(0)
    const action = (slot: number) => json.fixes.find((group) => group.slots.some(([a, b]) => slot >= a && slot <= b))
    expect(action(dropped)).to.include({action: 'assign', targetId: dropper.id})
    expect(action(split)).to.include({action: 'assign', problem: 'uncovered'})
    expect(action(split)?.sources).to.have.length(1)
    expect(action(empties[0])).to.include({action: 'assign', reason: 'nobody owns the slot and no master holds keys for it'})
    expect((await ownerOf(dropped)).id).to.equal(dropper.id)
    await expectHealthyAndIntact()
  })

  it('keys stored on a master that does not own their slot move into the owner (--search-multiple-owners)', async () => {
    const slot = await slotWithKeys(1)
    const owner = await ownerOf(slot)
    const [stranger] = await others(owner)
    let name = ''
    for (let i = 0; ; i++) {
      name = `stray:${i}`
      if (keySlot(name) === slot) break
    }
    await node(stranger).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
    await node(stranger).pipeline().call('ASKING').set(name, 'from-the-stranger').exec()
    await node(stranger).call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    expect(await keysIn(stranger, slot)).to.equal(1)

    const check = await runCli(['check', cluster.seed, '--search-multiple-owners'])
    expect(check.exitCode).to.equal(3)
    const {exitCode, json, stderr} = await fix('--search-multiple-owners')
    expect(exitCode, stderr).to.equal(0)
    expect(json.fixes[0]).to.include({action: 'merge-keys', targetId: owner.id, problem: 'stray-keys'})
    expect(await keysIn(stranger, slot)).to.equal(0)
    expect(await cluster.clusterClient().get(name)).to.equal('from-the-stranger')
    await cluster.clusterClient().del(name)
    await expectHealthyAndIntact()
  })

  it('a key on two nodes with different values is listed and left alone; --replace makes the moved copy win', async () => {
    const slot = await slotWithKeys(1)
    const owner = await ownerOf(slot)
    const [stranger] = await others(owner)
    const [key] = (await node(owner).callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, 1)) as Buffer[]
    const type = String(await node(owner).type(key))
    const ownerDump = await node(owner).dumpBuffer(key)
    await node(stranger).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
    await node(stranger).pipeline().call('ASKING').restore(key, 0, ownerDump).exec()
    // now change the stranger's copy so the two differ
    await node(stranger).pipeline().call('ASKING').del(key).call('ASKING').set(key, 'different').exec()
    await node(stranger).call('CLUSTER', 'SETSLOT', slot, 'STABLE')

    const conflict = await fix('--search-multiple-owners')
    expect(conflict.exitCode).to.equal(1)
    const failed = conflict.json.errors.filter((error) => error.code === 'E_FIX_FAILED')
    expect(failed).to.have.length(1)
    expect(failed[0].message).to.match(/different values/)
    // the key left on both nodes is what the check afterwards still reports
    expect(conflict.json.errors.filter((error) => error.code !== 'E_FIX_FAILED').map((error) => error.code)).to.include('MULTIPLE_OWNERS')
    expect(await keysIn(stranger, slot), 'the conflicting copy is left alone').to.equal(1)
    expect(await node(owner).dumpBuffer(key)).to.deep.equal(ownerDump)
    // the stranger holds a key of the slot: its import marker stays (without it, a restart
    // deletes the key on Valkey), and the slot is left open for the next fix
    const strangerView = parseClusterNodes(String(await node(stranger).call('CLUSTER', 'NODES'))).find((n) => n.myself)!
    expect(strangerView.importing).to.deep.equal({[slot]: owner.id})
    expect(String(await node(stranger).pipeline().call('ASKING').get(key).exec().then((replies) => replies?.[1]?.[1]))).to.equal('different')

    const replaced = await fix('--search-multiple-owners', '--replace')
    expect(replaced.exitCode, replaced.stderr).to.equal(0)
    // one copy is left, at the slot's owner: the moved copy won
    const keeper = await ownerOf(slot)
    const other = keeper.id === owner.id ? stranger : owner
    expect(await keysIn(other, slot)).to.equal(0)
    if (keeper.id === owner.id) expect(String(await node(owner).get(key))).to.equal('different')
    else expect(await node(keeper).dumpBuffer(key)).to.deep.equal(ownerDump)
    // put the original value back so the dataset digest holds
    await node(keeper).del(key)
    await node(keeper).restore(key, 0, ownerDump)
    expect(String(await node(keeper).type(key))).to.equal(type)
    await expectHealthyAndIntact()
  })

  it('refuses without --yes when there is no terminal (exit 4), and changes nothing', async () => {
    const slot = await slotWithKeys(1)
    const owner = await ownerOf(slot)
    const [target] = await others(owner)
    await node(target).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
    const {exitCode, stderr} = await runCli(['fix', cluster.seed])
    expect(exitCode).to.equal(4)
    expect(stderr).to.match(/confirmation/)
    const view = parseClusterNodes(String(await node(target).call('CLUSTER', 'NODES'))).find((n) => n.myself)!
    expect(view.importing[slot]).to.equal(owner.id)
    expect((await fix()).exitCode).to.equal(0)
    await expectHealthyAndIntact()
  })

  it('--forget-failed forgets a node stuck in handshake', async () => {
    // MEET an address where nothing listens: the entry stays in handshake
    await cluster.client().call('CLUSTER', 'MEET', '127.0.0.1', 1)
    const before = String(await cluster.client().call('CLUSTER', 'NODES'))
    expect(before).to.match(/handshake/)
    const {exitCode, json, stderr} = await fix('--forget-failed')
    expect(exitCode, stderr).to.equal(0)
    expect(json.forgotten.map((f) => f.reason)).to.include('handshake')
    expect(String(await cluster.client().call('CLUSTER', 'NODES'))).not.to.match(/handshake/)
  })
})
