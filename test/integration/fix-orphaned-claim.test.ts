/**
 * A target that dies right after claiming slots, before its replica heard of the claim: the
 * masters keep naming the dead target, the replica is promoted without those slots, and the
 * cluster has no live owner for them although their keys are on the promoted replica (Redis
 * replicas learn their master's slots only from its pings; seen in CI as faults-during-moves
 * kill-target). The state is built step by step here, the window held open by stopping the
 * replica between the copy (which it acknowledged) and the claim.
 *
 * Then: check must not name a live node as serving those slots (a stale view gives them to
 * their former owner); fix without the run's journal must leave them alone (nothing says
 * which node holds their keys); fix with it (found in the default place) must give them to
 * the promoted replica, with every key and value as before. Redis only: on Valkey the replica
 * ends up with the slots anyway, and the state cannot be built this way.
 */
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {FixResult} from '../../src/commands/fix.js'
import {type ClusterNode, parseClusterNodes, parseInfo} from '../../src/lib/cluster/topology.js'
import {expandRanges} from '../../src/lib/core/slots.js'
import {journalDir, readJournal} from '../../src/lib/migrate/journal.js'
import {tagForSlot} from '../../src/lib/migrate/durable.js'
import {TestCluster, serverUnderTest} from '../helpers/cluster-harness.js'
import {runCli, runCliJson, stateHome} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'
import {isMaster, waitForOneView, waitUntil} from '../helpers/moves.js'

const ORPHANS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
const KEYS_PER_SLOT = 40

describe('fix: slots a dead target claimed that its promoted replica never heard of', () => {
  let cluster: TestCluster | undefined
  let dir: string

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-orphan-'))
  })

  afterEach(async () => {
    await cluster?.stop()
    cluster = undefined
  })

  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  it('check names no live server for them; fix hands them to the replica the run\'s journal names, nothing lost', async function () {
    this.timeout(240_000)
    // Valkey: the replica, stopped before the claim, still owns the slots once promoted (seen
    // on 8.0.1 and 9.1.2), so this construction cannot hold the window open there; fix's part
    // is the same code on every server
    if (serverUnderTest().product === 'valkey') this.skip()
    cluster = await TestCluster.start({masters: 3, nodeTimeoutMs: 2000, replicas: 1})
    const c = cluster
    const view = async (address = c.seed): Promise<ClusterNode[]> => parseClusterNodes(String(await c.client(address).call('CLUSTER', 'NODES')))
    const nodes = await view()
    const source = nodes.find((node) => node.role === 'master' && expandRanges(node.slots).includes(0))!
    const [target, other] = nodes.filter((node) => node.role === 'master' && node.id !== source.id)
    const replica = nodes.find((node) => node.masterId === target.id)!

    // a real run records the target's replicas in its journal; the orphaned move below reuses its header
    const real = path.join(dir, 'real.jsonl')
    const moved = await runCli(['reshard', source.address, '--from', source.id, '--to', target.id, '--slot-range', '100-101', '--yes', '--journal', real])
    expect(moved.exitCode, moved.stderr).to.equal(0)
    expect(readJournal(real).replicas).to.deep.equal({[target.id]: [replica.id]})

    const client = c.clusterClient()
    await writeDataset(client, {keys: 2000})
    for (const slot of ORPHANS) await Promise.all(Array.from({length: KEYS_PER_SLOT}, (_, i) => client.set(`{${tagForSlot(slot)}}:${i}`, `orphan-${slot}-${i}`)))
    const before = await clusterDigest(c)

    // the keys move to the target, and its replica acknowledges them, as in a durable move
    const from = c.client(source.address)
    const to = c.client(target.address)
    for (const slot of ORPHANS) {
      await to.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
      await from.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
      const keys = (await from.callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, 1000)) as Buffer[]
      await from.callBuffer('MIGRATE', target.host, target.port, '', 0, 5000, 'KEYS', ...keys)
    }
    expect(await to.call('WAIT', 1, 10_000)).to.equal(1)

    // the claim, which the replica (stopped) never hears of; the masters are told
    process.kill(c.server(replica.address).pid, 'SIGSTOP')
    try {
      await to.multi().call('CLUSTER', 'DELSLOTS', ...ORPHANS).call('CLUSTER', 'ADDSLOTS', ...ORPHANS).call('CLUSTER', 'BUMPEPOCH').exec()
      for (const master of [source, other]) for (const slot of ORPHANS) await c.client(master.address).call('CLUSTER', 'SETSLOT', slot, 'NODE', target.id)
      c.kill(target.address)
    } finally {
      process.kill(c.server(replica.address).pid, 'SIGCONT')
    }
    await waitUntil('the target\'s replica to take over', () => isMaster(c, replica.address))
    await waitUntil('the masters to see the promoted replica\'s claim', async () => {
      const seen = await view(other.address)
      return (seen.find((node) => node.id === replica.id)?.slots.length ?? 0) > 0 && Boolean(seen.find((node) => node.id === target.id)?.failed)
    })
    const left = (await view(other.address)).find((node) => node.id === target.id)!
    expect(expandRanges(left.slots), 'the slots the masters still give the dead target').to.deep.equal(ORPHANS)

    // check: nobody serves them; a stale view must not make the source look like it does
    const {json: checked} = await runCliJson<CheckResult>(['check', other.address])
    const hints = [...checked.errors, ...checked.warnings].filter((finding) => finding.nodes?.some((node) => node.id === target.id)).map((finding) => finding.hint ?? '')
    expect(hints.length, JSON.stringify(checked.errors)).to.be.greaterThan(0)
    for (const hint of hints) {
      expect(hint).to.not.match(/served by/)
      expect(hint).to.include('its replica has been promoted since, that replica holds their keys')
    }

    // without the journal: nothing says where their keys are, so fix leaves them alone
    const blind = await runCliJson<FixResult>(['fix', other.address, '--dry-run'])
    const blindActions = blind.json.fixes.filter((group) => group.slots.some(([start]) => start <= 9))
    expect(blindActions.map((group) => group.action), blind.stdout).to.deep.equal(['skip'])

    // the interrupted run's journal, in the default place: fix finds it and hands the slots over
    const header = JSON.parse(readFileSync(real, 'utf8').split('\n')[0]) as {plan: {moves: unknown[]}}
    const plan = {...header.plan, moves: ORPHANS.map((slot) => ({slot, sourceId: source.id, targetId: target.id}))}
    const journals = journalDir({XDG_STATE_HOME: stateHome})
    mkdirSync(journals, {recursive: true})
    const lines = [{...header, plan}, ...ORPHANS.map((slot) => ({slot, type: 'slot-start'}))]
    const journal = path.join(journals, 'reshard-orphaned.jsonl')
    writeFileSync(journal, lines.map((line) => `${JSON.stringify(line)}\n`).join(''), {mode: 0o600})

    const fixed = await runCliJson<FixResult>(['fix', other.address, '--yes'])
    expect(fixed.json.journal, fixed.stdout).to.equal(journal)
    const handed = fixed.json.fixes.filter((group) => group.slots.some(([start]) => start <= 9))
    expect(handed.map((group) => [group.action, group.targetId]), fixed.stdout).to.deep.equal([['assign', replica.id]])
    // what remains is the dead node itself, which fix does not remove
    expect(fixed.json.errors.every((finding) => finding.nodes?.every((node) => node.id === target.id)), JSON.stringify(fixed.json.errors)).to.equal(true)

    await waitUntil('cluster_state:ok after fix', async () => parseInfo(String(await c.client(other.address).call('CLUSTER', 'INFO'))).cluster_state === 'ok', 30_000)
    await waitForOneView(c)
    const promoted = (await view(replica.address)).find((node) => node.myself)!
    expect(expandRanges(promoted.slots)).to.include.members(ORPHANS)
    expect(await clusterDigest(c)).to.deep.equal(before)

    // and it goes as its hint says now, without --accept-data-loss; then check is clean
    const removal = (await runCliJson<CheckResult>(['check', other.address])).json.errors.find((finding) => finding.nodes?.some((node) => node.id === target.id))?.hint ?? ''
    expect(removal).to.match(new RegExp(`^remove it: slotctl del-node \\S+ ${target.id}\\.`))
    const removed = await runCli(['del-node', other.address, target.id, '--yes'])
    expect(removed.exitCode, removed.stderr).to.equal(0)
    const {exitCode, json} = await runCliJson<CheckResult>(['check', other.address])
    expect(exitCode, JSON.stringify(json.errors)).to.equal(0)
    expect(await clusterDigest(c)).to.deep.equal(before)
  })
})
