/**
 * Every dead end names the next command, and that command works: a dead master without a
 * replica goes from check to fix to del-node --accept-data-loss to fix to a clean check; dry runs never
 * ask for confirmation; fix --dry-run tells "would change" (3) from "nothing to do" (0).
 */
import {expect} from 'chai'

import {mastersOf, parseClusterNodes, slotCount} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli} from '../helpers/cli.js'

describe('guidance: dead ends name the command that works', function () {
  this.timeout(180_000)
  let cluster: TestCluster
  let spare: TestCluster

  before(async () => {
    ;[cluster, spare] = await Promise.all([TestCluster.start({masters: 3, replicas: 0}), TestCluster.start({form: false, nodes: 1})])
    const client = cluster.clusterClient()
    await Promise.all(Array.from({length: 300}, (_, i) => client.set(`g:${i}`, String(i))))
  })

  after(async () => {
    await Promise.all([cluster?.stop(), spare?.stop()])
  })

  const nodes = async (address = cluster.seed) => parseClusterNodes(String(await cluster.client(address).call('CLUSTER', 'NODES')))

  it('--dry-run never asks: del-node --dry-run without a terminal exits 0 and removes nothing', async () => {
    const added = await runCli(['add-node', spare.seed, cluster.seed])
    expect(added.exitCode, added.stderr).to.equal(0)
    expect(added.stderr).to.match(/^>>> /m)
    const id = String(await spare.client().call('CLUSTER', 'MYID'))
    const dry = await runCli(['del-node', cluster.seed, id, '--dry-run'])
    expect(dry.exitCode, dry.stderr).to.equal(0)
    expect(dry.stdout).to.match(new RegExp(`dry run: would remove master ${spare.seed} \\(${id.slice(0, 8)}\\): re-point 0 replica\\(s\\), forget it on 3 node\\(s\\); nothing changed`))
    expect((await nodes()).map((node) => node.id)).to.include(id)
    const master = mastersOf(await nodes()).find((node) => node.slots.length > 0)!
    const drain = await runCli(['del-node', cluster.seed, master.id, '--drain', '--dry-run'])
    expect(drain.exitCode, drain.stderr).to.equal(0)
    expect(drain.stdout).to.match(/dry run: would drain, then remove/)
    expect(slotCount(mastersOf(await nodes()).find((node) => node.id === master.id)!)).to.equal(slotCount(master))
    // --quiet: no step notes, only the result
    const removed = await runCli(['del-node', cluster.seed, id, '--yes', '--quiet'])
    expect(removed.exitCode).to.equal(0)
    expect(removed.stderr).to.equal('')
    expect(removed.stdout).to.match(/\[OK\] removed master/)
  })

  it('tables fit 80 columns (COLUMNS when not a terminal) without splitting an address, and rule off their header without colour', async () => {
    const addresses = (await nodes()).map((node) => node.address)
    for (const args of [['info', cluster.seed], ['rebalance', cluster.seed, '--dry-run', '--threshold', '0'], ['call', cluster.seed, 'CLUSTER', 'INFO']]) {
      const narrow = await runCli(args, {env: {COLUMNS: '80'}})
      const lines = narrow.stdout.split('\n').filter((line) => line.startsWith('│') || line.startsWith('┌'))
      expect(lines.length, args.join(' ')).to.be.greaterThan(2)
      for (const line of lines) expect([...line].length, `${args[0]}: ${line}`).to.be.at.most(80)
      expect(narrow.stdout, args[0]).to.match(/\n├─+┼/)
      // every address the table names is on one line (none is cut into "127.0.0.1:4" / "002")
      const cells = lines.flatMap((line) => line.split('│').map((cell) => cell.trim()))
      for (const cell of cells.filter((text) => /^\d+\.\d+\.\d+\.\d+:/.test(text))) expect(addresses, `${args[0]}: ${cell}`).to.include(cell)
    }
  })

  it('a node id prefix for a change needs 4 characters', async () => {
    const [master] = mastersOf(await nodes())
    expectOneCleanLine(await runCli(['reshard', cluster.seed, '--to', master.id.slice(0, 1), '--from', 'all', '--slots', '1', '--yes']), 2, /node id prefix '.' is too short: give at least 4 characters/)
    expectOneCleanLine(await runCli(['failover', cluster.seed, '--master', master.id.slice(0, 3)]), 2, /too short/)
  })

  it('fix prints no line per slot unless --verbose', async () => {
    const [owner, other] = mastersOf(await nodes()).filter((node) => node.slots.length > 0)
    const slots = owner.slots[0][0]
    const open = async () => {
      for (let slot = slots; slot < slots + 20; slot++) await cluster.client(other.address).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
    }
    await open()
    const plain = await runCli(['fix', cluster.seed, '--yes'])
    expect(plain.exitCode, plain.stderr).to.equal(0)
    expect(plain.stdout + plain.stderr).to.not.match(/^slot \d+: /m)
    expect(plain.stdout).to.match(/fixed 20 slot\(s\)/)
    await open()
    const verbose = await runCli(['fix', cluster.seed, '--yes', '--verbose'])
    expect(verbose.stderr.match(/^slot \d+: 0 key\(s\) moved into/gm) ?? []).to.have.length.at.most(20)
  })

  it('fix --dry-run: 0 when there is nothing to do, 3 when it would change something', async () => {
    const clean = await runCli(['fix', cluster.seed, '--dry-run'])
    expect(clean.exitCode, clean.stderr).to.equal(0)
    expect(clean.stdout).to.match(/nothing to fix/)
    const [owner, other] = mastersOf(await nodes()).filter((node) => node.slots.length > 0)
    const slot = owner.slots[0][0]
    await cluster.client(other.address).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner.id)
    try {
      const dirty = await runCli(['fix', cluster.seed, '--dry-run'])
      expect(dirty.exitCode, dirty.stderr).to.equal(3)
      expect(dirty.stdout).to.match(/dry run: 1 slot fix\(es\) would be applied; nothing changed/)
    } finally {
      await cluster.client(other.address).call('CLUSTER', 'SETSLOT', slot, 'STABLE')
    }
  })

  it('a dead master without a replica: check and fix name del-node --accept-data-loss, which with fix leaves a clean cluster', async () => {
    const victim = mastersOf(await nodes()).find((node) => node.address !== cluster.seed && node.slots.length > 0)!
    cluster.kill(victim.address)
    const hint = `slotctl del-node ${cluster.seed} ${victim.id} --accept-data-loss`

    const check = await runCli(['check', cluster.seed])
    expect(check.exitCode).to.equal(3)
    expect(check.stdout).to.include(hint)

    // fix cannot help, and says who can instead of "see their hints" with no hints
    const fix = await runCli(['fix', cluster.seed, '--dry-run'])
    expect(fix.exitCode).to.equal(3)
    expect(fix.stdout).to.include(hint)
    expect(fix.stdout).to.match(/nothing fix can do about the errors above: their hints say what can/)

    // without --accept-data-loss del-node refuses, and says it is the way for a dead one
    const refused = await runCli(['del-node', cluster.seed, victim.id, '--yes'])
    expectOneCleanLine(refused, 1, /still owns \d+ slot\(s\)/)
    expect(refused.stderr).to.match(/hint: if it is lost for good: add --accept-data-loss/)

    const removed = await runCli(['del-node', cluster.seed, victim.id, '--accept-data-loss', '--yes'])
    expect(removed.exitCode, removed.stderr).to.equal(0)
    expect(removed.stderr).to.match(new RegExp(`its ${slotCount(victim)} slot\\(s\\) .* are uncovered now\\n {4}hint: slotctl fix ${cluster.seed} --yes gives them to the other masters`))

    const fixed = await runCli(['fix', cluster.seed, '--yes'])
    expect(fixed.exitCode, fixed.stdout + fixed.stderr).to.equal(0)
    const after = await runCli(['check', cluster.seed])
    expect(after.exitCode, after.stdout).to.equal(0)
    expect(mastersOf(await nodes()).reduce((sum, node) => sum + slotCount(node), 0)).to.equal(16_384)
  })
})
