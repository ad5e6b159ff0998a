import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {InfoResult} from '../../src/commands/info.js'
import type {CallResult} from '../../src/commands/call.js'
import type {SetTimeoutResult} from '../../src/commands/set-timeout.js'
import {keySlot} from '../../src/lib/slots.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCli, runCliJson} from '../helpers/cli.js'

const codesOf = (result: CheckResult) => result.findings.map((finding) => finding.code)

describe('check, info, call, set-timeout on a real 3+3 cluster', () => {
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 1})
  })

  after(async () => {
    await cluster?.stop()
  })

  const masterOwning = async (slot: number) => {
    const nodes = String(await cluster.client().call('CLUSTER', 'NODES'))
    for (const line of nodes.trim().split('\n')) {
      const fields = line.split(' ')
      if (!fields[2].includes('master')) continue
      for (const range of fields.slice(8)) {
        const [a, b = a] = range.split('-').map(Number)
        if (slot >= a && slot <= b) return {address: fields[1].split('@')[0], id: fields[0]}
      }
    }
    throw new Error(`no owner for ${slot}`)
  }

  it('check: a healthy cluster exits 0 and --json says healthy', async () => {
    const human = await runCli(['check', cluster.seed])
    expect(human.exitCode, human.stderr).to.equal(0)
    expect(human.stdout).to.include('[OK] all 16384 slots covered')
    const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed])
    expect(exitCode).to.equal(0)
    expect(json.healthy).to.equal(true)
    expect(json.nodes.filter((node) => node.role === 'master')).to.have.length(3)
    expect(json.nodes.filter((node) => node.role === 'replica')).to.have.length(3)
  })

  it('check: keySlot agrees with CLUSTER KEYSLOT for text, tagged and binary keys', async () => {
    const client = cluster.client()
    const keys: Buffer[] = []
    for (let i = 0; i < 300; i++) keys.push(Buffer.from(`key:${i}`), Buffer.from(`{tag${i % 7}}:${i}`), Buffer.from([0xff, i & 0xff, 0x80, 0x7b, i % 3, 0x7d]))
    const pipeline = client.pipeline()
    for (const key of keys) pipeline.call('CLUSTER', 'KEYSLOT', key)
    const replies = (await pipeline.exec()) ?? []
    expect(replies.map(([, slot]) => Number(slot))).to.deep.equal(keys.map((key) => keySlot(key)))
  })

  it('info: key counts equal the keys written', async () => {
    const writer = cluster.clusterClient()
    for (let i = 0; i < 1000; i += 100) await Promise.all(Array.from({length: 100}, (_, j) => writer.set(`info:${i + j}`, 'v')))
    const {exitCode, json} = await runCliJson<InfoResult>(['info', cluster.seed])
    expect(exitCode).to.equal(0)
    expect(json.totalKeys).to.equal(1000)
    expect(json.masters.reduce((sum, master) => sum + (master.keys ?? 0), 0)).to.equal(1000)
    expect(json.totalSlots).to.equal(16_384)
    const owner = await masterOwning(keySlot('info:0'))
    expect(json.masters.find((master) => master.id === owner.id)?.keys).to.be.greaterThan(0)
    const human = await runCli(['info', cluster.seed])
    expect(human.stdout).to.match(/1000 keys in 3 masters/)
  })

  it('call: runs on every node, or only masters / replicas', async () => {
    const all = await runCliJson<CallResult>(['call', cluster.seed, 'PING'])
    expect(all.json.replies.map((reply) => reply.reply)).to.deep.equal(Array(6).fill('PONG'))
    const masters = await runCliJson<CallResult>(['call', cluster.seed, 'DBSIZE', '--masters'])
    expect(masters.json.replies.every((reply) => reply.role === 'master')).to.equal(true)
    expect(masters.json.replies.reduce((sum, reply) => sum + Number(reply.reply), 0)).to.equal(1000)
    const replicas = await runCliJson<CallResult>(['call', cluster.seed, 'ROLE', '--replicas'])
    expect(replicas.json.replies).to.have.length(3)
    const failing = await runCli(['call', cluster.seed, 'NOSUCHCOMMAND'])
    expect(failing.exitCode).to.equal(1)
    expect(failing.stdout).to.include('unknown command')
  })

  it('set-timeout: sets and persists cluster-node-timeout on every node; rejects values under 100', async () => {
    const {exitCode, json} = await runCliJson<SetTimeoutResult>(['set-timeout', cluster.seed, '2500'])
    expect(exitCode).to.equal(0)
    expect(json.nodes.filter((node) => node.set && node.rewritten)).to.have.length(6)
    for (const address of cluster.addresses) {
      const [, value] = (await cluster.client(address).config('GET', 'cluster-node-timeout')) as string[]
      expect(value).to.equal('2500')
    }
    const low = await runCli(['set-timeout', cluster.seed, '99'])
    expect(low.exitCode).to.equal(2)
    expect(low.stderr).to.match(/at least 100/)
  })

  it('check: an open slot exits 3 and names the slot', async () => {
    const slot = 42
    const source = await masterOwning(slot)
    const target = cluster.addresses.find((address) => address !== source.address && cluster.ids.has(address) && address !== cluster.seed) as string
    const targetId = cluster.ids.get(target) as string
    await cluster.client(target).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id).catch(() => {})
    await cluster.client(source.address).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId).catch(() => {})
    try {
      const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed])
      expect(exitCode).to.equal(3)
      expect(codesOf(json)).to.include('OPEN_SLOT')
      expect(json.findings.filter((f) => f.code === 'OPEN_SLOT').map((f) => f.slots)).to.include('42')
    } finally {
      for (const address of [source.address, target]) await cluster.client(address).call('CLUSTER', 'SETSLOT', slot, 'STABLE').catch(() => {})
    }
    expect((await runCli(['check', cluster.seed])).exitCode).to.equal(0)
  })

  it('check: an uncovered slot exits 3 and lists it', async () => {
    const slot = 16_000
    const owner = await masterOwning(slot)
    const masters = (await runCliJson<CheckResult>(['check', cluster.seed])).json.nodes.filter((n) => n.role === 'master')
    for (const master of masters) await cluster.client(master.address).call('CLUSTER', 'DELSLOTS', slot).catch(() => {})
    try {
      const {exitCode, json} = await runCliJson<CheckResult>(['check', cluster.seed])
      expect(exitCode).to.equal(3)
      expect(json.findings.find((f) => f.code === 'SLOTS_UNCOVERED')?.slots).to.equal('16000')
    } finally {
      await cluster.client(owner.address).call('CLUSTER', 'ADDSLOTS', slot)
    }
  })

  it('check: a killed master exits 3 and is reported', async () => {
    const victim = await masterOwning(100)
    const seed = cluster.addresses.find((address) => address !== victim.address) as string
    cluster.kill(victim.address)
    const {exitCode, json} = await runCliJson<CheckResult>(['check', seed])
    expect(exitCode).to.equal(3)
    const unreachable = json.findings.find((f) => f.code === 'MASTER_UNREACHABLE')
    expect(unreachable?.nodes).to.deep.equal([victim.id])
    expect(json.nodes.find((node) => node.id === victim.id)?.reachable).to.equal(false)
  })
})
