import {mkdir, readFile, rm, writeFile} from 'node:fs/promises'

import {expect} from 'chai'

import type {CallResult} from '../../src/commands/call.js'
import type {InfoResult} from '../../src/commands/info.js'
import type {SetTimeoutResult} from '../../src/commands/set-timeout.js'
import {configFile} from '../../src/lib/local/servers.js'
import {SLOT_COUNT, keySlot} from '../../src/lib/core/slots.js'
import {parseClusterNodes, slotOwners} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {AUTH_WARNING, SPARE_PASSWORD_WARNING, expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'

const PASSWORD = 'spare-pa55word-not-needed'
const KEYS = 1000

describe('info, call, set-timeout on a real 3+3 cluster', () => {
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 1})
  })

  after(async () => {
    await cluster?.stop()
  })

  const timeoutOf = async (address: string): Promise<string> => ((await cluster.client(address).config('GET', 'cluster-node-timeout')) as string[])[1]
  const configText = (address: string): Promise<string> => readFile(configFile(cluster.server(address)), 'utf8')

  it('keySlot agrees with CLUSTER KEYSLOT for text, tagged and binary keys', async () => {
    const keys: Buffer[] = []
    for (let i = 0; i < 300; i++) {
      keys.push(Buffer.from(`key:${i}`), Buffer.from(`{tag${i % 7}}:${i}`), Buffer.from(`a{}{b${i}}`), Buffer.from([0xff, i & 0xff, 0x80, 0x7b, i % 3, 0x7d, 0x00]))
    }
    const pipeline = cluster.client().pipeline()
    for (const key of keys) pipeline.call('CLUSTER', 'KEYSLOT', key)
    const replies = (await pipeline.exec()) ?? []
    expect(replies.map(([, slot]) => Number(slot))).to.deep.equal(keys.map((key) => keySlot(key)))
  })

  it('info: per-master key counts equal the keys written to each master’s slots', async () => {
    const writer = cluster.clusterClient()
    const names = Array.from({length: KEYS}, (_, i) => `info:${i}`)
    for (let i = 0; i < KEYS; i += 100) await Promise.all(names.slice(i, i + 100).map((name) => writer.set(name, 'v')))
    const owners = slotOwners(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))
    const expected = new Map<string, number>()
    for (const name of names) {
      const owner = owners.get(keySlot(name)) as string
      expected.set(owner, (expected.get(owner) ?? 0) + 1)
    }

    const {exitCode, json} = await runCliJson<InfoResult>(['info', cluster.seed])
    expect(exitCode).to.equal(0)
    expect(json).to.include({keysPerSlot: KEYS / SLOT_COUNT, totalKeys: KEYS, totalSlots: SLOT_COUNT})
    expect(json.masters).to.have.length(3)
    for (const master of json.masters) {
      expect(master.keys, master.address).to.equal(expected.get(master.id))
      expect(master).to.include({reachable: true, replicaCount: 1})
      expect(master.usedMemory).to.be.greaterThan(0)
    }
    expect(json.masters.reduce((sum, master) => sum + master.slotCount, 0)).to.equal(SLOT_COUNT)

    const human = await runCli(['info', cluster.seed])
    expect(human.exitCode).to.equal(0)
    expect(human.stdout).to.match(/1000 keys in 3 masters, 16384 slots assigned, 0\.06 keys per slot/)
    for (const master of json.masters) expect(human.stdout).to.match(new RegExp(`${master.address} .* ${master.keys} `))
  })

  it('call: runs on every node, or only masters / replicas, with --json replies', async () => {
    const all = await runCliJson<CallResult>(['call', cluster.seed, 'PING'])
    expect(all.exitCode).to.equal(0)
    expect(all.json.command).to.deep.equal(['PING'])
    expect(all.json.replies.map((reply) => reply.reply)).to.deep.equal(Array(6).fill('PONG'))
    expect(new Set(all.json.replies.map((reply) => reply.address))).to.deep.equal(new Set(cluster.addresses))

    const masters = await runCliJson<CallResult>(['call', cluster.seed, 'DBSIZE', '--masters'])
    expect(masters.json.replies.map((reply) => reply.role)).to.deep.equal(['master', 'master', 'master'])
    expect(masters.json.replies.reduce((sum, reply) => sum + Number(reply.reply), 0)).to.equal(KEYS)

    const replicas = await runCliJson<CallResult>(['call', cluster.seed, 'ROLE', '--replicas'])
    expect(replicas.json.replies).to.have.length(3)
    for (const reply of replicas.json.replies) expect((reply.reply as unknown[])[0]).to.equal('slave')

    const human = await runCli(['call', cluster.seed, 'DBSIZE', '--masters'])
    expect(human.exitCode).to.equal(0)
    for (const reply of masters.json.replies) expect(human.stdout).to.match(new RegExp(`${reply.address} .*master .*${reply.reply}`))

    // unknown to every node: nothing says it is harmless, so it runs only when confirmed
    expectOneCleanLine(await runCli(['call', cluster.seed, 'NOSUCHCOMMAND']), 4, /NOSUCHCOMMAND is unknown to 6 of 6 node\(s\)/)
    const failing = await runCli(['call', cluster.seed, 'NOSUCHCOMMAND', '--yes'])
    expect(failing.exitCode).to.equal(1)
    expect(failing.stdout).to.include('(error)')
    expect(failing.stdout).to.include('unknown command')
    expect(failing.stderr.trim()).to.equal('slotctl: 6 of 6 node(s) answered with an error')
  })

  it('call: multi-line replies without \\r, in a table or as redis-cli-style host:port lines (--lines)', async () => {
    const table = await runCli(['call', cluster.seed, 'CLUSTER', 'INFO', '--masters'])
    expect(table.exitCode, table.stderr).to.equal(0)
    expect(table.stdout).to.not.include('\r')
    expect(table.stdout).to.match(/│ 127\.0\.0\.1:\d+ +│ master │ cluster_state:ok +│\n│ +│ +│ cluster_slots_assigned:16384 +│/)
    const lines = await runCli(['call', cluster.seed, 'CLUSTER', 'INFO', '--lines'])
    expect(lines.exitCode).to.equal(0)
    expect(lines.stdout).to.not.include('\r')
    const stateLines = lines.stdout.split('\n').filter((line) => line.includes('cluster_state:'))
    expect(stateLines.map((line) => line.split(': ')[0]).sort()).to.deep.equal([...cluster.addresses].sort())
    for (const line of stateLines) expect(line).to.match(/^127\.0\.0\.1:\d+: cluster_state:ok$/)
    // every line of a node's reply carries its address, so grep works
    expect(lines.stdout.trim().split('\n').every((line) => /^127\.0\.0\.1:\d+: /.test(line))).to.equal(true)
  })

  it('call: a password the servers do not need leaves no ioredis [WARN], is never printed, and is warned about once', async () => {
    for (const auth of [['-a', PASSWORD], ['--json']]) {
      const result = await runCli(['call', cluster.seed, 'PING', ...auth], {env: {REDISCLI_AUTH: PASSWORD}})
      expect(result.exitCode, result.stderr).to.equal(0)
      // the warning that -a shows the password in ps, and (text mode) the one naming the nodes that need none
      const other = result.stderr.split('\n').filter((line) => line && !AUTH_WARNING.test(line))
      if (auth[0] === '--json') {
        expect(other).to.deep.equal([])
        const warnings = (JSON.parse(result.stdout) as {warnings: Array<{code: string; message: string}>}).warnings
        expect(warnings.filter((warning) => warning.code === 'PASSWORD_NOT_NEEDED')).to.have.length(1)
      } else {
        expect(other).to.have.length(1)
        expect(other[0]).to.match(SPARE_PASSWORD_WARNING)
        for (const address of cluster.addresses) expect(other[0]).to.satisfy((line: string) => line.includes(address) || / and \d+ more/.test(line))
      }
      expect(result.stdout).to.include('PONG')
      expect(result.stdout + result.stderr).to.not.include(PASSWORD)
    }
  })

  it('set-timeout: sets and persists cluster-node-timeout on every node', async () => {
    const {exitCode, json} = await runCliJson<SetTimeoutResult>(['set-timeout', cluster.seed, '2500'])
    expect(exitCode).to.equal(0)
    expect(json).to.include({persist: true, timeoutMs: 2500})
    expect(json.nodes).to.have.length(6)
    expect(json.nodes.every((node) => node.set && node.rewritten && !node.error)).to.equal(true)
    for (const address of cluster.addresses) {
      expect(await timeoutOf(address)).to.equal('2500')
      expect(await configText(address)).to.match(/^cluster-node-timeout 2500$/m)
    }
  })

  it('set-timeout --no-persist changes the live value only', async () => {
    const {exitCode, json} = await runCliJson<SetTimeoutResult>(['set-timeout', cluster.seed, '3000', '--no-persist'])
    expect(exitCode).to.equal(0)
    expect(json.nodes.every((node) => node.set && !node.rewritten)).to.equal(true)
    for (const address of cluster.addresses) {
      expect(await timeoutOf(address)).to.equal('3000')
      expect(await configText(address)).to.match(/^cluster-node-timeout 2500$/m)
    }
  })

  it('set-timeout: a node that cannot rewrite its config is a partial result, exit 1, value still live', async () => {
    const victim = cluster.addresses[1]
    const file = configFile(cluster.server(victim))
    const original = await readFile(file, 'utf8')
    // A directory where the config file was makes CONFIG REWRITE fail, as on a server without one.
    await rm(file)
    await mkdir(file)
    try {
      const {exitCode, json} = await runCliJson<SetTimeoutResult>(['set-timeout', cluster.seed, '2600'])
      expect(exitCode).to.equal(1)
      const failed = json.nodes.filter((node) => !node.rewritten)
      expect(failed.map((node) => node.address)).to.deep.equal([victim])
      expect(failed[0].set).to.equal(true)
      expect(failed[0].error).to.match(/^set, but not persisted: ERR Rewriting config file/)
      expect(json.nodes.filter((node) => node.set && node.rewritten)).to.have.length(5)
      for (const address of cluster.addresses) expect(await timeoutOf(address)).to.equal('2600')

      const human = await runCli(['set-timeout', cluster.seed, '2700'])
      expect(human.exitCode).to.equal(1)
      expect(human.stdout).to.match(new RegExp(`${victim} .*yes .*no .*not persisted`))
      expect(human.stdout).to.include('set on 6 of 6 nodes, persisted on 5')
      expect(human.stderr).to.match(/lost|old value/)
    } finally {
      await rm(file, {force: true, recursive: true})
      await writeFile(file, original)
    }
  })

  it('set-timeout rejects values under 100 and non-numbers with exit 2, changing nothing', async () => {
    const before = await timeoutOf(cluster.seed)
    for (const bad of ['99', 'abc', '-200']) {
      const result = await runCli(['set-timeout', cluster.seed, '--', bad])
      expect(result.exitCode, `${bad}: ${result.stderr}`).to.equal(2)
      expect(result.stderr).to.match(/^slotctl: error: invalid timeout .*at least 100/)
    }
    expect(await timeoutOf(cluster.seed)).to.equal(before)
  })
})
