/**
 * The audit log (one record per run of every verb that changes a cluster), the compact plan
 * format (ranges per pair; version 1 files still read), plan show / plan invert, apply
 * --reverse as an undo (keys and digest unchanged), and --dry-run of add-node, set-timeout
 * and call (nothing changes, the output says what would).
 */
import {existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'

import type {HistoryResult} from '../../src/commands/history.js'
import type {HistoryPruneResult} from '../../src/commands/history/prune.js'
import type {PlanShowResult} from '../../src/commands/plan/show.js'
import {NodePool} from '../../src/lib/cluster/connection.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {expandRanges} from '../../src/lib/core/slots.js'
import {readPlanFile} from '../../src/lib/plan/plan-file.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {type CliOptions, runCli, runCliJson, spawnCli, waitForJournalLines} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'
import {expectContract} from '../helpers/schema.js'
import {StandaloneServer} from '../helpers/standalone.js'

const KEYS = 3000

describe('history, plan files and undo (real servers)', () => {
  let servers: TestCluster
  let target: TestCluster
  let source: StandaloneServer
  let dir: string
  /** this file's own state directory: its history holds only its runs */
  let state: string
  let env: CliOptions
  let seed: string
  const pool = new NodePool()

  const cli = (args: string[]) => runCli(args, env)
  const cliJson = <T>(args: string[]) => runCliJson<T>(args, env)
  const nodesAt = async (address: string) => parseClusterNodes(String(await (await pool.client(address)).call('CLUSTER', 'NODES')))
  const ownerMap = async () => {
    const owners = new Map<number, string>()
    for (const master of mastersOf(await nodesAt(seed))) for (const slot of expandRanges(master.slots)) owners.set(slot, master.id)
    return owners
  }
  const history = async (...flags: string[]) => {
    const result = await cliJson<HistoryResult>(['history', ...flags])
    expect(result.exitCode, result.stderr).to.equal(0)
    expectContract('history', result.json)
    return result.json.records
  }
  const ok = async (args: string[]) => {
    const result = await cli(args)
    expect(result.exitCode, `${args.join(' ')}: ${result.stderr}`).to.equal(0)
    return result
  }

  before(async function () {
    this.timeout(240_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-history-'))
    state = path.join(dir, 'state')
    env = {env: {XDG_STATE_HOME: state}}
    ;[servers, target, source] = await Promise.all([TestCluster.start({form: false, nodes: 6}), TestCluster.start({masters: 3, replicas: 0}), StandaloneServer.start()])
    seed = servers.addresses[0]
    const client = source.client()
    for (let i = 0; i < 50; i++) await client.set(`imported:${i}`, `v${i}`)
  })

  after(async () => {
    await pool.closeAll()
    await Promise.all([servers?.stop(), target?.stop(), source?.stop()])
    await rm(dir, {force: true, recursive: true})
  })

  it('every verb that changes a cluster appends one record: who, where, what, on which cluster, how it ended, its journal', async function () {
    this.timeout(600_000)
    const [a, b, c, d, e] = servers.addresses
    await ok(['create', a, b, c, '--replicas', '0', '--yes'])
    await writeDataset(servers.clusterClient(), {keys: KEYS})
    const backupDir = path.join(dir, 'backup')
    await ok(['backup', seed, backupDir, '--no-verify'])
    await ok(['restore', backupDir, '--into', target.seed, '--yes'])
    await ok(['set-timeout', seed, '15s'])
    await ok(['call', seed, 'CONFIG', 'SET', 'slowlog-max-len', '200', '--yes'])
    await ok(['call', seed, 'PING'])
    await ok(['add-node', d, seed])
    const dId = (await nodesAt(d)).find((node) => node.flags.includes('myself'))!.id
    await ok(['add-node', e, seed, '--replica', '--master-id', dId])
    const eId = (await nodesAt(e)).find((node) => node.flags.includes('myself'))!.id
    await ok(['reshard', seed, '--slot-range', '0-99', '--to', dId, '--yes'])
    await ok(['rebalance', seed, '--yes'])
    const planFile = path.join(dir, 'reshard-plan.json')
    const lastOwner = (await ownerMap()).get(16_383)
    const other = mastersOf(await nodesAt(seed)).find((node) => node.id !== lastOwner)!.id
    await ok(['reshard', seed, '--slot-range', '16380-16383', '--to', other, '--dry-run', '--out', planFile])
    await ok(['apply', planFile, '--seed', seed, '--yes'])
    await ok(['failover', seed, '--replica', eId, '--yes'])
    await ok(['del-node', seed, dId, '--yes'])
    await ok(['fix', seed, '--yes'])
    await ok(['import', seed, '--from', source.address, '--copy', '--yes'])
    const refused = await cli(['reshard', seed, '--slot-range', '0-9', '--to', 'f'.repeat(40), '--yes'])
    expect(refused.exitCode).to.equal(2)

    const records = await history()
    expect(records.map((record) => record.verb)).to.deep.equal(['create', 'restore', 'set-timeout', 'call', 'add-node', 'add-node', 'reshard', 'rebalance', 'apply', 'failover', 'del-node', 'fix', 'import', 'reshard'])
    const [user, host] = [records[0].user, records[0].host]
    for (const record of records.slice(0, -1)) {
      expect(record.outcome, JSON.stringify(record)).to.equal('ok')
      expect(record.exitCode).to.equal(0)
      expect(record.user).to.equal(user).and.not.equal('')
      expect(record.host).to.equal(host).and.not.equal('')
      expect(Date.parse(record.time)).to.be.at.least(Date.parse(record.startedAt))
      expect(record.cluster?.id, record.verb).to.match(/^[0-9a-f]{40}$/)
    }
    const last = records.at(-1)!
    expect(last).to.include({exitCode: 2, outcome: 'failed'})
    expect(last.error).to.match(/f{8}/)
    expect(records[3].args).to.deep.equal([seed, 'CONFIG', 'SET', 'slowlog-max-len', '200', '--yes'])
    for (const record of records.filter((entry) => ['reshard', 'rebalance', 'apply', 'import'].includes(entry.verb) && entry.outcome === 'ok')) {
      expect(record.journal, record.verb).to.be.a('string')
      expect(existsSync(record.journal!), record.journal).to.equal(true)
    }
    expect(records[1].cluster?.seed).to.equal(target.seed)
    // --cluster by any master's address; --verb
    expect((await history('--cluster', target.seed)).map((record) => record.verb)).to.deep.equal(['restore'])
    expect((await history('--cluster', b)).map((record) => record.verb)).to.not.include('restore')
    expect((await history('--verb', 'failover')).map((record) => record.args)).to.deep.equal([[seed, '--replica', eId, '--yes']])
    expect(await history('--limit', '2')).to.deep.equal(records.slice(-2))
    const text = await ok(['history'])
    expect(text.stdout).to.match(/failover .*--replica/)
    // the log is private to the user
    expect(lstatSync(path.join(state, 'slotctl', 'history.jsonl')).mode & 0o777).to.equal(0o600)
  })

  it('a password never reaches the log, however it was given', async function () {
    this.timeout(60_000)
    const secret = 'not-the-password-s3cret'
    await ok(['call', seed, 'ACL', 'SETUSER', 'history-user', 'on', `>${secret}`, '--yes'])
    for (const address of servers.addresses.slice(0, 5)) await (await pool.client(address)).call('ACL', 'DELUSER', 'history-user').catch(() => 0)
    // the servers have no password: whether AUTH fails or not, each run has its record
    await cli(['set-timeout', `redis://someone:${secret}@${seed}`, '15s', '-a', secret, '--no-auth-warning'])
    await cli(['set-timeout', seed, '15s', `--password=${secret}`, '--no-auth-warning'])
    await cli(['set-timeout', seed, '15s', `-a${secret}`, '--no-auth-warning'])
    const log = readFileSync(path.join(state, 'slotctl', 'history.jsonl'), 'utf8')
    expect(log).to.not.include(secret)
    const records = (await history()).slice(-4)
    expect(records.map((record) => record.verb)).to.deep.equal(['call', 'set-timeout', 'set-timeout', 'set-timeout'])
    expect(records[0].args).to.deep.equal([seed, 'ACL', 'SETUSER', 'history-user', 'on', '>***', '--yes'])
    expect(records[1].args).to.deep.equal([`redis://someone:***@${seed}`, '15s', '-a', '***', '--no-auth-warning'])
    expect(records[2].args).to.deep.equal([seed, '15s', '--password=***', '--no-auth-warning'])
    expect(records[3].args).to.deep.equal([seed, '15s', '-a***', '--no-auth-warning'])
  })

  it('a log that cannot be written is a warning: the run still succeeds, and no symlink is written through', async function () {
    this.timeout(60_000)
    const other = path.join(dir, 'hostile-state')
    mkdirSync(path.join(other, 'slotctl'), {recursive: true})
    const victim = path.join(dir, 'victim.txt')
    writeFileSync(victim, 'precious\n')
    symlinkSync(victim, path.join(other, 'slotctl', 'history.jsonl'))
    const result = await runCli(['set-timeout', seed, '15s'], {env: {XDG_STATE_HOME: other}})
    expect(result.exitCode, result.stderr).to.equal(0)
    expect(result.stderr).to.match(/slotctl: warning: this run is not in the history log: .*symlink/)
    expect(readFileSync(victim, 'utf8')).to.equal('precious\n')
    expect(readlinkSync(path.join(other, 'slotctl', 'history.jsonl'))).to.equal(victim)
  })

  it('plans are written as ranges per pair; plan show summarizes them; apply --reverse undoes a rebalance with every key intact', async function () {
    this.timeout(600_000)
    const masters = mastersOf(await nodesAt(seed)).filter((node) => node.slots.length > 0)
    const [from, to] = masters
    // unbalance first: 1500 slots onto one master
    await ok(['reshard', seed, '--from', from.id, '--to', to.id, '--slots', '1500', '--yes'])
    const plan = path.join(dir, 'rebalance.json')
    await ok(['rebalance', seed, '--dry-run', '--out', plan])
    const text = readFileSync(plan, 'utf8')
    const file = JSON.parse(text) as {version: number; transfers: Array<{sourceId: string; targetId: string; slots: string; count: number}>; moves?: unknown; keys: number; clusterId: string}
    expect(file.version).to.equal(2)
    expect(file.moves).to.equal(undefined)
    expect(file.transfers.length).to.be.above(0)
    // one line per pair: hundreds of slots in a few dozen lines
    const slots = file.transfers.reduce((sum, transfer) => sum + transfer.count, 0)
    expect(slots).to.be.above(500)
    expect(text.split('\n').length).to.be.below(30)

    const owners = await ownerMap()
    let keysInPlan = 0
    const clients = new Map<string, ClusterNode>(mastersOf(await nodesAt(seed)).map((node) => [node.id, node]))
    for (const transfer of file.transfers) {
      const client = await pool.client(clients.get(transfer.sourceId)!.address)
      for (const part of transfer.slots.split(',')) {
        const [first, lastSlot = first] = part.split('-').map(Number)
        for (let slot = first; slot <= lastSlot; slot++) {
          expect(owners.get(slot)).to.equal(transfer.sourceId)
          keysInPlan += Number(await client.call('CLUSTER', 'COUNTKEYSINSLOT', String(slot)))
        }
      }
    }
    expect(file.keys).to.equal(keysInPlan)

    const shown = await cliJson<PlanShowResult>(['plan', 'show', plan])
    expect(shown.exitCode, shown.stderr).to.equal(0)
    expectContract('plan:show', shown.json)
    expect(shown.json).to.include({clusterId: file.clusterId, inverted: false, keys: keysInPlan, kind: 'rebalance', slots, version: 2})
    expect(shown.json.pairs.map((pair) => [pair.sourceId, pair.targetId, pair.slotCount, pair.slots])).to.deep.equal(file.transfers.map((transfer) => [transfer.sourceId, transfer.targetId, transfer.count, transfer.slots]))
    expect(shown.json.expectedMs).to.equal(Math.round((keysInPlan / shown.json.nominalKeysPerSec) * 1000))
    expect(shown.json.ageMs).to.be.at.least(0).and.below(600_000)
    const human = await ok(['plan', 'show', plan])
    expect(human.stdout).to.match(/^rebalance plan \(format version 2\)/)
    expect(human.stdout).to.include(`${file.transfers.length} pair(s), ${slots} slot(s), ${keysInPlan} key(s) when made`)

    const before = await clusterDigest(servers)
    await ok(['apply', plan, '--seed', seed, '--yes'])
    const moved = await ownerMap()
    expect(moved).to.not.deep.equal(owners)
    await ok(['apply', plan, '--reverse', '--seed', seed, '--yes'])
    expect(await ownerMap()).to.deep.equal(owners)
    const after = await clusterDigest(servers)
    expect(after.keys).to.equal(before.keys)
    expect(after.digest).to.equal(before.digest)
    // checked against the live cluster like any plan: undone already, so nothing is where the reverse expects it
    const again = await cli(['apply', plan, '--reverse', '--seed', seed, '--yes'])
    expect(again.exitCode).to.equal(1)
    expect(again.stderr).to.match(/no longer belong to their planned source; nothing was changed/)
    expect(await ownerMap()).to.deep.equal(owners)

    // plan invert writes the same undo as a file to review
    const undo = path.join(dir, 'undo.json')
    await ok(['plan', 'invert', plan, '--out', undo])
    const inverted = JSON.parse(readFileSync(undo, 'utf8')) as typeof file & {inverted: boolean}
    expect(inverted.inverted).to.equal(true)
    expect(inverted.transfers.map((transfer) => [transfer.targetId, transfer.sourceId, transfer.slots].join(' ')).sort()).to.deep.equal(file.transfers.map((transfer) => [transfer.sourceId, transfer.targetId, transfer.slots].join(' ')).sort())
    expect(lstatSync(undo).mode & 0o777).to.equal(0o600)
    expect((await cliJson<PlanShowResult>(['plan', 'show', undo])).json.inverted).to.equal(true)
    expect((await cli(['plan', 'invert', plan, '--out', undo])).exitCode).to.equal(2)
    const again2 = await cliJson<{out: string; slots: number; pairs: number}>(['plan', 'invert', undo, '--out', path.join(dir, 'redo.json')])
    expect(again2.exitCode, again2.stderr).to.equal(0)
    expectContract('plan:invert', again2.json)
    expect(again2.json).to.include({pairs: file.transfers.length, slots})
    // inverting twice gives the plan back
    expect(readPlanFile(path.join(dir, 'redo.json')).moves).to.deep.equal(readPlanFile(plan).moves)
    expect(JSON.parse(readFileSync(path.join(dir, 'redo.json'), 'utf8')).inverted).to.equal(undefined)
  })

  it('an interrupted run is recorded as interrupted with its journal; its --resume is a record of its own', async function () {
    this.timeout(300_000)
    const [first, second] = mastersOf(await nodesAt(seed)).filter((node) => node.slots.length > 0)
    const journal = path.join(dir, 'interrupted.jsonl')
    const child = spawnCli(['reshard', seed, '--from', first.id, '--to', second.id, '--slots', '2000', '--max-keys-per-sec', '500', '--yes', '--journal', journal], {XDG_STATE_HOME: state})
    await waitForJournalLines(journal, 2)
    child.kill('SIGINT')
    expect((await child).exitCode).to.equal(130)
    await ok(['reshard', seed, '--resume', journal, '--yes'])
    const [stopped, resumed] = (await history()).slice(-2)
    expect(stopped).to.deep.include({exitCode: 130, journal, outcome: 'interrupted', verb: 'reshard'})
    expect(resumed).to.deep.include({exitCode: 0, journal, outcome: 'ok', verb: 'reshard'})
    expect(resumed.args).to.deep.equal([seed, '--resume', journal, '--yes'])
  })

  it('version 1 plan files (one entry per slot) are still read by plan show and apply', async function () {
    this.timeout(300_000)
    const masters = mastersOf(await nodesAt(seed)).filter((node) => node.slots.length > 0)
    const compact = path.join(dir, 'small.json')
    await ok(['reshard', seed, '--from', masters[0].id, '--to', masters[1].id, '--slots', '20', '--dry-run', '--out', compact])
    const old = path.join(dir, 'old.json')
    const plan = readPlanFile(compact)
    await writeFile(old, JSON.stringify({...plan, version: 1}, null, 2))
    expect(JSON.parse(readFileSync(old, 'utf8')).moves).to.have.length(20)
    const shown = await cliJson<PlanShowResult>(['plan', 'show', old])
    expect(shown.exitCode, shown.stderr).to.equal(0)
    expectContract('plan:show', shown.json)
    expect(shown.json).to.include({kind: 'reshard', slots: 20, version: 1})
    expect(shown.json.keys).to.equal(undefined)
    const owners = await ownerMap()
    await ok(['apply', old, '--seed', seed, '--yes'])
    const after = await ownerMap()
    for (const move of plan.moves) expect(after.get(move.slot)).to.equal(move.targetId)
    await ok(['apply', old, '--reverse', '--seed', seed, '--yes'])
    expect(await ownerMap()).to.deep.equal(owners)
  })

  it('--dry-run of add-node, set-timeout and call changes nothing, says what would change, and leaves no record', async function () {
    this.timeout(120_000)
    const spare = servers.addresses[5]
    const recordsBefore = (await history()).length
    const clusterBefore = (await nodesAt(seed)).map((node) => `${node.id} ${node.flags.join(',')} ${JSON.stringify(node.slots)}`).sort()

    const add = await cliJson<{status: string; role: string; wouldRun: Array<{address: string; command: string}>}>(['add-node', spare, seed, '--dry-run'])
    expect(add.exitCode, add.stderr).to.equal(0)
    expectContract('add-node', add.json)
    expect(add.json.status).to.equal('planned')
    expect(add.json.wouldRun.map((step) => step.command)).to.include.members([`CLUSTER MEET (${seed})`])
    expect((await nodesAt(spare)).length).to.equal(1)
    const addText = await ok(['add-node', spare, seed, '--dry-run'])
    expect(addText.stdout).to.match(/--dry-run: nothing was changed\. .* would join as a master without slots/)

    const timeouts = async () => Promise.all(servers.addresses.slice(0, 5).map(async (address) => ((await (await pool.client(address)).config('GET', 'cluster-node-timeout')) as string[])[1]))
    const timeoutsBefore = await timeouts()
    const setTimeout = await cliJson<{status: string; nodes: Array<{address: string; currentMs: number; set: boolean}>}>(['set-timeout', seed, '9s', '--dry-run'])
    expect(setTimeout.exitCode, setTimeout.stderr).to.equal(0)
    expectContract('set-timeout', setTimeout.json)
    expect(setTimeout.json.status).to.equal('planned')
    expect(setTimeout.json.nodes.every((node) => node.currentMs === 15_000 && !node.set)).to.equal(true)
    expect(await timeouts()).to.deep.equal(timeoutsBefore)
    expect((await ok(['set-timeout', seed, '9s', '--dry-run'])).stdout).to.match(/nothing was set\. cluster-node-timeout 9000 ms would be set on \d+ node\(s\), a change on \d+/)

    const write = await cliJson<{status: string; change?: string; wouldRunOn: unknown[]; replies: unknown[]}>(['call', seed, 'SET', 'dry:key', 'v', '--dry-run'])
    expect(write.exitCode, write.stderr).to.equal(0)
    expectContract('call', write.json)
    expect(write.json.status).to.equal('planned')
    expect(write.json.change).to.match(/SET may change data/)
    expect(write.json.wouldRunOn).to.have.length((await nodesAt(seed)).length)
    expect(write.json.replies).to.deep.equal([])
    expect(await servers.clusterClient().exists('dry:key')).to.equal(0)
    const read = await cliJson<{change?: string}>(['call', seed, 'GET', 'dry:key', '--dry-run'])
    expect(read.json.change).to.equal(undefined)
    expect((await ok(['call', seed, 'SET', 'dry:key', 'v', '--dry-run'])).stdout).to.match(/--dry-run: nothing was run\. SET would run on \d+ node\(s\); SET may change data/)

    expect((await nodesAt(seed)).map((node) => `${node.id} ${node.flags.join(',')} ${JSON.stringify(node.slots)}`).sort()).to.deep.equal(clusterBefore)
    expect((await history()).length).to.equal(recordsBefore)
  })

  it('history prune removes old journals and records (only slotctl\'s own files), keeps the newest, and says what it removed', async function () {
    this.timeout(60_000)
    const own = path.join(dir, 'prune-state')
    const journals = path.join(own, 'slotctl', 'journals')
    mkdirSync(journals, {recursive: true})
    const day = 86_400_000
    const names = ['reshard-2026-01-01T00-00-00-000Z.jsonl', 'rebalance-2026-01-02T00-00-00-000Z.jsonl', 'import-2026-01-03T00-00-00-000Z.jsonl', 'drain-2026-01-04T00-00-00-000Z.jsonl']
    const ages = [40, 35, 31, 1]
    for (const [i, name] of names.entries()) {
      writeFileSync(path.join(journals, name), '{"type":"plan"}\n')
      const when = new Date(Date.now() - ages[i] * day)
      utimesSync(path.join(journals, name), when, when)
    }
    // not slotctl's: an operator's file, and a symlink named like a journal
    const notes = path.join(journals, 'notes.txt')
    writeFileSync(notes, 'mine\n')
    utimesSync(notes, new Date(0), new Date(0))
    const outside = path.join(dir, 'outside.jsonl')
    writeFileSync(outside, 'outside\n')
    symlinkSync(outside, path.join(journals, 'fix-2025-01-01T00-00-00-000Z.jsonl'))
    const record = (ageDays: number, verb: string) => JSON.stringify({args: [], exitCode: 0, host: 'h', outcome: 'ok', startedAt: new Date(Date.now() - ageDays * day).toISOString(), time: new Date(Date.now() - ageDays * day).toISOString(), user: 'u', verb})
    writeFileSync(path.join(own, 'slotctl', 'history.jsonl'), `${[record(60, 'create'), record(45, 'reshard'), record(2, 'failover')].join('\n')}\n`, {mode: 0o600})
    const options = {env: {XDG_STATE_HOME: own}}

    const dry = await runCliJson<HistoryPruneResult>(['history', 'prune', '--older-than', '30d', '--keep', '1', '--dry-run'], options)
    expect(dry.exitCode, dry.stderr).to.equal(0)
    expectContract('history:prune', dry.json)
    expect(dry.json.status).to.equal('planned')
    expect(dry.json.journalsRemoved.map((journal) => path.basename(journal.path)).sort()).to.deep.equal(names.slice(0, 3).sort())
    expect(dry.json.recordsRemoved).to.equal(2)
    for (const name of names) expect(existsSync(path.join(journals, name))).to.equal(true)

    const text = await runCli(['history', 'prune', '--older-than', '30d', '--keep', '1'], options)
    expect(text.exitCode, text.stderr).to.equal(0)
    expect(text.stdout).to.match(/Journals: removed 3 \(48 B\), kept 1/)
    expect(text.stdout).to.match(/History: removed 2 record\(s\), kept 1/)
    expect(text.stdout).to.include(names[0])
    for (const name of names.slice(0, 3)) expect(existsSync(path.join(journals, name))).to.equal(false)
    expect(existsSync(path.join(journals, names[3]))).to.equal(true)
    expect(readFileSync(notes, 'utf8')).to.equal('mine\n')
    expect(lstatSync(path.join(journals, 'fix-2025-01-01T00-00-00-000Z.jsonl')).isSymbolicLink()).to.equal(true)
    expect(readFileSync(outside, 'utf8')).to.equal('outside\n')
    const left = await runCliJson<HistoryResult>(['history'], options)
    expect(left.json.records.map((entry) => entry.verb)).to.deep.equal(['failover'])
    // --keep holds the newest whatever their age
    const kept = await runCliJson<HistoryPruneResult>(['history', 'prune', '--older-than', '1s', '--keep', '1'], options)
    expect(kept.json).to.include({journalsKept: 1, recordsKept: 1})
    expect((await runCli(['history', 'prune', '--older-than', 'soon'], options)).stderr).to.match(/--older-than 'soon' is not an age/)
  })
})
