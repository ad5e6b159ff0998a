/**
 * Issue 25 #2: a target killed mid-move, its replica promoted, fix rolls the open slots to
 * it; then the hint for the dead target is followed exactly as printed. Restarting that node
 * with its old nodes.conf (the hint of old) let Valkey take the slots it was importing, and
 * with a new config epoch its whole shard, back from the promoted replica, deleting the
 * writes made there since. Every key and every acknowledged write must survive the hint.
 */
import {rm} from 'node:fs/promises'

import {expect} from 'chai'

import type {CheckResult} from '../../src/commands/check.js'
import type {FixResult} from '../../src/commands/fix.js'
import {type ClusterNode, mastersOf, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {AckedWriter} from '../helpers/acked-writer.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCli, runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

const delay = (ms: number) =>
  new Promise((resolve) => {
    setTimeout(resolve, ms)
  })

async function viewOf(cluster: TestCluster, address: string): Promise<ClusterNode[]> {
  return parseClusterNodes(String(await cluster.client(address).call('CLUSTER', 'NODES')))
}

/** Until the replica is a master owning slots in its own view and every other live node flags the dead one fail. */
async function waitForTakeover(cluster: TestCluster, dead: ClusterNode, heir: ClusterNode): Promise<void> {
  const others = cluster.addresses.filter((address) => address !== dead.address)
  for (let i = 0; i < 300; i++) {
    const views = await Promise.all(others.map(async (address) => viewOf(cluster, address)))
    const self = views[others.indexOf(heir.address)].find((node) => node.myself)!
    const flagged = views.every((view) => view.find((node) => node.id === dead.id)?.failed)
    const info = await Promise.all(others.map(async (address) => String(await cluster.client(address).call('CLUSTER', 'INFO'))))
    if (self.role === 'master' && self.slots.length > 0 && flagged && info.every((text) => /cluster_state:ok/.test(text))) return
    await delay(100)
  }
  throw new Error(`${heir.address} did not take over from ${dead.address}`)
}

/** Each `slotctl ...` command in a hint: its words up to the end of the sentence or clause. */
function slotctlCommands(hint: string): string[][] {
  const commands: string[][] = []
  for (const part of hint.split('slotctl ').slice(1)) {
    const args: string[] = []
    for (const word of part.split(/\s+/)) {
      if (!word || /^[A-Z(]/.test(word)) break
      args.push(word.replace(/[.,;)]+$/, ''))
      if (/[.,;)]$/.test(word)) break
    }
    commands.push(args)
  }
  return commands
}

/**
 * Does what a hint says, as an operator would: "restart it ..." restarts the node as it is;
 * otherwise each `slotctl ...` command in it runs in order (--yes: no terminal here), and a
 * step that says to start the server with an empty data directory does that before add-node.
 */
async function followHint(cluster: TestCluster, dead: ClusterNode, hint: string): Promise<string[]> {
  const done: string[] = []
  if (/^restart it\b/.test(hint)) {
    await cluster.restart(dead.address)
    return ['restart']
  }
  for (const args of slotctlCommands(hint)) {
    const command = `slotctl ${args.join(' ')}`
    if (args[0] === 'add-node') {
      expect(hint).to.match(/start it with an empty data directory/)
      const server = cluster.server(dead.address)
      await rm(server.dir, {force: true, recursive: true})
      await cluster.restart(dead.address)
      done.push('restart empty')
    }
    const result = await runCli([...args, '--yes'])
    expect(result.exitCode, `${command}: ${result.stderr}`).to.equal(0)
    done.push(args[0])
  }
  return done
}

describe('the hint after a target died mid-move', () => {
  it('followed as printed, it keeps every key and every acknowledged write', async function () {
    this.timeout(300_000)
    const cluster = await TestCluster.start({masters: 3, replicas: 1})
    let writer: AckedWriter | undefined
    try {
      await writeDataset(cluster.clusterClient(), {keys: 4000})
      const masters = mastersOf(await viewOf(cluster, cluster.seed))
      const [source, target] = masters.filter((node) => node.address !== cluster.seed)
      const heir = (await viewOf(cluster, cluster.seed)).find((node) => node.masterId === target.id)!
      const sourceClient = cluster.client(source.address)
      const targetClient = cluster.client(target.address)
      // 20 slots open from the source to the target, about half of their keys moved
      const moving: number[] = []
      for (let slot = source.slots[0][0]; moving.length < 20; slot++) if (Number(await sourceClient.call('CLUSTER', 'COUNTKEYSINSLOT', slot)) >= 2) moving.push(slot)
      for (const slot of moving) {
        await targetClient.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
        await sourceClient.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id)
        const total = Number(await sourceClient.call('CLUSTER', 'COUNTKEYSINSLOT', slot))
        const keys = (await sourceClient.callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, Math.floor(total / 2))) as Buffer[]
        await sourceClient.callBuffer('MIGRATE', target.host, target.port, '', 0, 5000, 'KEYS', ...keys)
      }
      // acknowledged = replicated: the target's replica has every key it took
      for (const master of masters) expect(await cluster.client(master.address).call('WAIT', 1, 10_000)).to.equal(1)
      const before = await clusterDigest(cluster)

      cluster.kill(target.address)
      await waitForTakeover(cluster, target, heir)
      const fixed = await runCliJson<FixResult>(['fix', cluster.seed, '--yes'])
      // from now on a client writes to the slots fix moved and to the shard the replica took over
      const ownSlots = target.slots.flatMap(([start]) => [start, start + 1, start + 2])
      writer = new AckedWriter(cluster.clusterClient(), {keys: 400, maxMs: 120_000, maxWrites: 50_000, pauseMs: 5, slots: [...moving, ...ownSlots]}).start()
      await delay(1000)
      expect(fixed.json.errors.filter((error) => error.code === 'E_FIX_FAILED'), fixed.stderr).to.deep.equal([])
      expect(fixed.json.fixes.every((group) => group.targetId === heir.id || group.targetId === source.id)).to.equal(true)
      const findings = [...(fixed.json.after?.errors ?? []), ...(fixed.json.after?.warnings ?? [])]
      const aboutTarget = findings.find((finding) => finding.nodes?.some((node) => node.id === target.id) && finding.hint)
      expect(aboutTarget, JSON.stringify(findings)).to.not.equal(undefined)
      const steps = await followHint(cluster, target, aboutTarget!.hint!)
      expect(steps.length).to.be.greaterThan(0)

      // the node that came back (or not) has had time to claim what its old files say
      await delay(8000)
      await writer.stop()
      expect(writer.acknowledged).to.be.greaterThan(200)
      const reader = cluster.clusterClient()
      expect(await writer.lostWrites(reader), `after: ${steps.join(', ')}`).to.deep.equal([])
      const {json: check} = await runCliJson<CheckResult>(['check', cluster.seed, '--search-multiple-owners'])
      expect(check.errors, JSON.stringify(check.errors)).to.deep.equal([])
      await writer.cleanUp(reader)
      expect(await clusterDigest(cluster)).to.deep.equal(before)
    } finally {
      await writer?.stop()
      await cluster.stop()
    }
  })
})
