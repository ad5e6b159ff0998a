/**
 * The run lock as operators meet it: a run decides on a read of the cluster, waits for its
 * yes, and must not act on that read if another run changed the cluster meanwhile; every verb
 * that changes the cluster respects the lock, and only --ignore-lock overrides it; a marker
 * no live run renews is called stale or forged; paths under /proc are refused at once; a
 * first SIGTERM with nothing in flight ends the run.
 */
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {type Server, createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'
import {execa} from 'execa'
import type {Redis} from 'ioredis'

import {type ClusterNode, mastersOf, parseClusterNodes, slotOwners} from '../../src/lib/cluster/topology.js'
import {expectOneCleanLine, runCli, spawnCli, stateHome, waitForJournalLines} from '../helpers/cli.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const bin = path.join(root, 'bin', process.env.SLOTCTL_TEST_DEV === '1' ? 'dev.js' : 'run.js')

/**
 * Runs slotctl on a pseudo-terminal (util-linux `script`) and, once `prompt` shows, runs
 * `meanwhile` (another run changing the cluster) before answering yes: a run confirmed late.
 */
async function confirmedLate(args: string[], prompt: RegExp, meanwhile: () => Promise<void>): Promise<{exitCode: number; screen: string}> {
  const child = execa('script', ['-qfec', [process.execPath, bin, ...args].join(' '), '/dev/null'], {
    env: {CI: '', NO_COLOR: '1', TERM: 'dumb', XDG_STATE_HOME: stateHome},
    reject: false,
    stdin: 'pipe',
    timeout: 120_000,
  })
  let screen = ''
  let asked = false
  child.stdout?.on('data', (chunk: Buffer) => {
    screen += chunk.toString()
    if (asked || !prompt.test(screen)) return
    asked = true
    void meanwhile().then(
      () => child.stdin?.write('y\r'),
      (error: unknown) => {
        screen += `\n[test: the other run failed: ${String(error)}]`
        child.kill()
      },
    )
  })
  const result = await child
  expect(asked, screen).to.equal(true)
  return {exitCode: result.exitCode ?? -1, screen}
}

const FORGED = 'slotctl:reshard:forger-host:4242:20260101T000000Z:abc123'

describe('the run lock: decisions re-checked under it, every changing verb behind it', () => {
  let cluster: TestCluster
  let spare: TestCluster
  let dir: string

  const nodes = async (address = cluster.seed) => parseClusterNodes(String(await cluster.client(address).call('CLUSTER', 'NODES')))
  const masters = async () => mastersOf(await nodes()).sort((a, b) => (a.slots[0]?.[0] ?? 99_999) - (b.slots[0]?.[0] ?? 99_999))
  const openSlots = (list: ClusterNode[]) => list.flatMap((node) => [...Object.keys(node.migrating), ...Object.keys(node.importing)])
  const ownerOf = async (slot: number) => slotOwners(await nodes()).get(slot)

  async function expectHealthy(): Promise<void> {
    for (const address of cluster.addresses) {
      const info = String(await cluster.client(address).call('CLUSTER', 'INFO'))
      expect(info, address).to.match(/cluster_state:ok/)
      expect(openSlots(await nodes(address)), address).to.deep.equal([])
    }
  }

  /** A client on `address` that names itself like a slotctl run; `renew` keeps it as active as a live run. */
  async function marker(address: string, renew: boolean): Promise<{client: Redis; stop: () => void}> {
    const client = cluster.client(address).duplicate()
    await client.call('CLIENT', 'SETNAME', FORGED)
    // renewed as a live run renews it (CLIENT SETNAME again): a marker that sends anything else is forged
    const timer = renew ? setInterval(() => void client.call('CLIENT', 'SETNAME', FORGED).catch(() => {}), 500) : undefined
    return {client, stop: () => {
      clearInterval(timer)
      client.disconnect()
    }}
  }

  before(async function () {
    this.timeout(180_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-lock-'))
    cluster = await TestCluster.start({masters: 3, replicas: 1})
    spare = await TestCluster.start({form: false, nodes: 1})
    await writeDataset(cluster.clusterClient(), {keys: 6000})
  })

  after(async () => {
    await cluster?.stop()
    await spare?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('a reshard confirmed after another run moved its slots is refused under the lock; nothing changes', async function () {
    this.timeout(180_000)
    const [, b, c] = await masters()
    const original = await clusterDigest(cluster)
    const journal = path.join(dir, 'stale.jsonl')
    const late = await confirmedLate(['reshard', cluster.seed, '--slot-range', '0-9', '--to', b.id, '--journal', journal], /now\?/, async () => {
      const other = await runCli(['reshard', cluster.seed, '--slot-range', '0-9', '--to', c.id, '--yes'])
      if (other.exitCode !== 0) throw new Error(other.stderr)
    })
    expect(late.exitCode, late.screen).to.equal(1)
    expect(late.screen).to.match(/slotctl: error: the cluster changed since this run read it \(another run\?\): 10 slot\(s\) changed owner \(0-9; slot 0: \S+ \(\w+\) -> \S+ \(\w+\)\); nothing was changed/)
    expect(existsSync(journal), 'no journal: nothing was started').to.equal(false)
    for (let slot = 0; slot < 10; slot++) expect(await ownerOf(slot)).to.equal(c.id)
    await expectHealthy()
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('a del-node confirmed after a reshard gave that node slots is refused; the node and its slots stay', async function () {
    this.timeout(180_000)
    const [newNode] = spare.addresses
    const added = await runCli(['add-node', newNode, cluster.seed])
    expect(added.exitCode, added.stderr).to.equal(0)
    const id = String(await cluster.client(newNode).call('CLUSTER', 'MYID'))
    const [a] = await masters()
    const late = await confirmedLate(['del-node', cluster.seed, id], /from the cluster\?/, async () => {
      const other = await runCli(['reshard', cluster.seed, '--slot-range', '100-199', '--to', id, '--yes'])
      if (other.exitCode !== 0) throw new Error(other.stderr)
    })
    expect(late.exitCode, late.screen).to.equal(1)
    expect(late.screen, late.screen).to.match(/slotctl: error: the cluster changed since this run read it \(another run\?\): 100 slot\(s\) changed owner \(100-199;/)
    expect(late.screen).to.not.match(/\[OK\] removed/)
    for (const address of cluster.addresses) expect((await nodes(address)).some((node) => node.id === id), address).to.equal(true)
    expect(await ownerOf(150)).to.equal(id)
    await expectHealthy()
    const back = await runCli(['reshard', cluster.seed, '--slot-range', '100-199', '--to', a.id, '--yes'])
    expect(back.exitCode, back.stderr).to.equal(0)
  })

  it('a fix confirmed after the cluster changed refuses fixes it did not show; nothing changes', async function () {
    this.timeout(180_000)
    const [a, b, c] = await masters()
    const owned = [...slotOwners(await nodes())].filter(([, id]) => id === a.id).map(([slot]) => slot)
    const [shownSlot, laterSlot] = [owned[500], owned[600]]
    await cluster.client(b.address).call('CLUSTER', 'SETSLOT', String(shownSlot), 'IMPORTING', a.id)
    try {
      const late = await confirmedLate(['fix', cluster.seed], /slot fix\(es\)\?/, async () => {
        await cluster.client(c.address).call('CLUSTER', 'SETSLOT', String(laterSlot), 'IMPORTING', a.id)
      })
      expect(late.exitCode, late.screen).to.equal(1)
      expect(late.screen, late.screen).to.match(new RegExp(`slotctl: error: the cluster changed since fix read it \\(another run\\?\\): slot\\(s\\) ${laterSlot} now need fixes that were not shown; nothing was changed`))
      const after = await nodes(b.address)
      expect(after.find((node) => node.myself)?.importing[shownSlot], 'the fix shown was not applied either').to.equal(a.id)
    } finally {
      await cluster.client(b.address).call('CLUSTER', 'SETSLOT', String(shownSlot), 'STABLE')
      await cluster.client(c.address).call('CLUSTER', 'SETSLOT', String(laterSlot), 'STABLE')
    }
    await expectHealthy()
  })

  it('failover, add-node, del-node and set-timeout respect the lock; --force does not pass it, --ignore-lock does', async function () {
    this.timeout(240_000)
    const [newNode] = spare.addresses
    const id = String(await cluster.client(newNode).call('CLUSTER', 'MYID'))
    const [a, other] = await masters()
    // on another master than the one failed over: failover --force does not read that one
    const held = await marker(other.address, true)
    const locked = /another slotctl run is changing this cluster: 'reshard' from pid 4242 on forger-host/
    try {
      expectOneCleanLine(await runCli(['set-timeout', cluster.seed, '15s']), 1, locked)
      expectOneCleanLine(await runCli(['failover', cluster.seed, '--master', a.id]), 1, locked)
      expectOneCleanLine(await runCli(['failover', cluster.seed, '--master', a.id, '--force']), 1, locked)
      expectOneCleanLine(await runCli(['del-node', cluster.seed, id, '--yes']), 1, locked)
      expectOneCleanLine(await runCli(['del-node', cluster.seed, id, '--yes', '--force']), 2, /--force no longer overrides the run lock: use --ignore-lock/)
      expectOneCleanLine(await runCli(['reshard', cluster.seed, '--slot-range', '0-9', '--to', a.id, '--yes', '--force']), 2, /--force no longer overrides the run lock/)
      expect((await masters()).map((node) => node.id)).to.include(a.id)
      expect((await nodes()).some((node) => node.id === id)).to.equal(true)

      const removed = await runCli(['del-node', cluster.seed, id, '--yes', '--ignore-lock'])
      expect(removed.exitCode, removed.stderr).to.equal(0)
      expect(removed.stderr).to.match(/warning: another slotctl run is changing this cluster: .*; going on because of --ignore-lock/)
      expectOneCleanLine(await runCli(['add-node', newNode, cluster.seed]), 1, locked)
      expect((await nodes()).some((node) => node.id === id)).to.equal(false)
      const readded = await runCli(['add-node', newNode, cluster.seed, '--ignore-lock'])
      expect(readded.exitCode, readded.stderr).to.equal(0)
      const timeout = ((await cluster.client().config('GET', 'cluster-node-timeout')) as string[])[1]
      const set = await runCli(['set-timeout', cluster.seed, timeout, '--no-persist', '--ignore-lock'])
      expect(set.exitCode, set.stderr).to.equal(0)
      const failover = await runCli(['failover', cluster.seed, '--master', a.id, '--ignore-lock'])
      expect(failover.exitCode, failover.stderr).to.equal(0)
      expect((await masters()).map((node) => node.id)).to.not.include(a.id)
    } finally {
      held.stop()
    }
    await expectHealthy()
  })

  it('a marker nobody renews is reported as stale or forged, with the override; a live run renews its own', async function () {
    this.timeout(240_000)
    const [a, b] = await masters()
    const forged = await marker(a.address, false)
    try {
      const clientId = String(await forged.client.call('CLIENT', 'ID'))
      await new Promise((resolve) => {
        setTimeout(resolve, 11_500)
      })
      const stale = new RegExp(`a stale or forged slotctl lock marker holds this cluster: client ${clientId} \\(\\S+\\) on ${a.address} is named '${FORGED}' but has been idle for \\d+ s`)
      for (const args of [['reshard', cluster.seed, '--slot-range', '0-9', '--to', b.id, '--yes'], ['fix', cluster.seed, '--yes'], ['set-timeout', cluster.seed, '15s']]) {
        const refused = await runCli(args)
        expectOneCleanLine(refused, 1, stale)
        expect(refused.stderr).to.include(`hint: if no slotctl run is active (a stopped one may wake up and go on), go on with --ignore-lock, or remove the marker: CLIENT KILL ID ${clientId} on ${a.address}`)
      }
      // a dry run changes nothing: it plans, and says what a real run will meet
      for (const args of [['reshard', cluster.seed, '--slot-range', '0-9', '--to', b.id, '--dry-run'], ['fix', cluster.seed, '--dry-run']]) {
        const planned = await runCli(args)
        expect(planned.exitCode, planned.stderr).to.equal(0)
        expect(planned.stderr).to.match(/warning: a stale or forged slotctl lock marker .*; a run that changes the cluster refuses until it is gone \(or --ignore-lock\)/)
      }
      const timeout = ((await cluster.client().config('GET', 'cluster-node-timeout')) as string[])[1]
      const passed = await runCli(['set-timeout', cluster.seed, timeout, '--no-persist', '--ignore-lock'])
      expect(passed.exitCode, passed.stderr).to.equal(0)
      expect(passed.stderr).to.match(/warning: a stale or forged slotctl lock marker .*; going on because of --ignore-lock/)
    } finally {
      forged.stop()
    }
    // a real run, well past the idle limit, still holds the lock as a live one
    const journal = path.join(dir, 'live.jsonl')
    const from = (await masters()).find((node) => node.id !== b.id && node.slots.length > 0)!
    const run = spawnCli(['reshard', cluster.seed, '--from', from.id, '--to', b.id, '--slots', '3000', '--max-keys-per-sec', '40', '--yes', '--journal', journal])
    await waitForJournalLines(journal, 1)
    await new Promise((resolve) => {
      setTimeout(resolve, 12_000)
    })
    expectOneCleanLine(await runCli(['set-timeout', cluster.seed, '15s']), 1, new RegExp(`another slotctl run is changing this cluster: 'reshard' from pid ${run.pid} on `))
    run.kill('SIGINT')
    const stopped = await run
    expect(stopped.exitCode, String(stopped.stderr)).to.equal(130)
    await expectHealthy()
  })

  describe('paths under /proc (Node 20\'s recursive mkdir never returns there)', () => {
    const bounded = async (args: string[], env: Record<string, string> = {}) => {
      const started = Date.now()
      const result = await runCli(args, {env, timeoutMs: 60_000})
      // generous: the point is that it ends, not how fast a loaded machine is
      expect(Date.now() - started, 'ends within a bound').to.be.below(20_000)
      return result
    }

    it('--journal, XDG_STATE_HOME and backup DIR there: one line, exit 2, nothing moved, within 20 s', async function () {
      this.timeout(120_000)
      const [, b] = await masters()
      const before = slotOwners(await nodes())
      const refused = /is on a kernel filesystem \(\/proc\), not a place for slotctl's files/
      expectOneCleanLine(await bounded(['reshard', cluster.seed, '--slot-range', '0-9', '--to', b.id, '--yes', '--journal', '/proc/slotctl-test/deep/j.jsonl']), 2, refused)
      expectOneCleanLine(await bounded(['reshard', cluster.seed, '--slot-range', '0-9', '--to', b.id, '--yes'], {XDG_STATE_HOME: '/proc/slotctl-test/state'}), 2, refused)
      expectOneCleanLine(await bounded(['backup', cluster.seed, '/proc/slotctl-test/backup']), 2, refused)
      expectOneCleanLine(await bounded(['backup', cluster.seed, '/proc/self/slotctl-backup']), 2, refused)
      expect(slotOwners(await nodes())).to.deep.equal(before)
      await expectHealthy()
    })
  })

  describe('SIGTERM', () => {
    let silent: Server
    let connected: Promise<void>

    before(async () => {
      // accepts connections and never answers: a run waits on it with nothing in flight
      connected = new Promise((resolve) => {
        silent = createServer(() => resolve())
      })
      await new Promise<void>((resolve) => {
        silent.listen(0, '127.0.0.1', resolve)
      })
    })

    after(() => {
      silent?.close()
    })

    it('the first one ends a run that has nothing in flight within a few seconds (exit 130)', async function () {
      this.timeout(120_000)
      const {port} = silent.address() as {port: number}
      const child = spawnCli(['reshard', `127.0.0.1:${port}`, '--slot-range', '0-9', '--to', 'abcd', '--yes', '--read-timeout', '90s'])
      // connected: the run is past its start (signal handlers installed) and waits on the node
      await connected
      await new Promise((resolve) => {
        setTimeout(resolve, 500)
      })
      const sent = Date.now()
      child.kill('SIGTERM')
      const done = await child
      expect(Date.now() - sent, String(done.stderr)).to.be.below(10_000)
      expect(done.exitCode, String(done.stderr)).to.equal(130)
      expect(String(done.stderr)).to.match(/slotctl: interrupted \(SIGTERM\)/)
    })
  })
})
