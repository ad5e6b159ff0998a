/**
 * Least privilege on real servers: the ACL rules docs/acl.md documents are enough for every
 * verb (nothing denied in ACL LOG), and a user missing a right is refused up front, naming
 * what is missing on which node, before anything changes, whether ACL DRYRUN or the harmless
 * probes do the checking.
 */
import {expect} from 'chai'

import {PERMISSIONS, findMissingPermissions} from '../../src/lib/acl/preflight.js'
import {NodePool} from '../../src/lib/cluster/connection.js'
import {type ClusterNode, mastersOf, openSlotsOf, parseClusterNodes, slotMapSignature} from '../../src/lib/cluster/topology.js'
import {TestCluster, isValkeyAtLeast} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

const ATOMIC = isValkeyAtLeast(9)
/** The rules of docs/acl.md, word for word: read-only use (check, info); Valkey >= 8 adds its SLOT-STATS, Valkey >= 9 its slot-migration jobs. */
const READ_RULES = `+cluster|nodes +cluster|info +info +client|setname +command|info +cluster|countkeysinslot${isValkeyAtLeast(8) ? ' +cluster|slot-stats' : ''}${ATOMIC ? ' +cluster|getslotmigrations' : ''}`
/** The rules of docs/acl.md for changes (reshard, rebalance, apply, fix, failover, create, add-node, del-node). */
const CHANGE_RULES = `${READ_RULES} +client|list +command|info +cluster|setslot +cluster|getkeysinslot +cluster|countkeysinslot +migrate +restore-asking +select +dump +asking +memory|usage`
  + ' +cluster|addslots +cluster|delslots +cluster|bumpepoch +cluster|failover +cluster|replicate +cluster|forget +cluster|reset +cluster|meet +cluster|addslotsrange +cluster|set-config-epoch'
  + ' +function|list +function|dump +function|restore +script|load +evalsha +evalsha_ro +pexpiretime +get +dbsize +multi +exec +watch +unwatch +del +set +wait ~*'
  + (ATOMIC ? ' +cluster|migrateslots +cluster|cancelslotmigrations' : '')

const USERS: Record<string, string> = {
  changer: CHANGE_RULES,
  // the same, one right short, once checked by probes and once by ACL DRYRUN
  'no-restore': CHANGE_RULES.replace(' +restore-asking', ''),
  'no-restore-dry': `${CHANGE_RULES.replace(' +restore-asking', '')} +acl|dryrun`,
  'narrow-keys': CHANGE_RULES.replace('~*', '~app:*'),
  // Valkey 9: everything but atomic slot migration
  ...(ATOMIC ? {'no-atomic': CHANGE_RULES.replace(' +cluster|migrateslots', '')} : {}),
  nothing: '+client|setname',
  reader: READ_RULES,
}
const PASSWORD = 'acl-test-pw-31f'
const as = (user: string) => ['--user', user, '--no-auth-warning', '-a', PASSWORD]

async function createUsers(cluster: TestCluster): Promise<void> {
  for (const address of cluster.addresses) {
    const client = cluster.client(address)
    for (const [user, rules] of Object.entries(USERS)) await client.call('ACL', 'SETUSER', user, 'reset', 'on', `>${PASSWORD}`, '-@all', ...rules.split(' '))
    await client.call('ACL', 'LOG', 'RESET')
  }
}

async function aclLog(cluster: TestCluster): Promise<string[]> {
  const entries: string[] = []
  for (const address of cluster.addresses) {
    const log = (await cluster.client(address).call('ACL', 'LOG', 1000)) as unknown[][]
    for (const entry of log) {
      const fields = new Map<string, unknown>()
      for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1])
      entries.push(`${address} ${fields.get('username')} ${fields.get('reason')} ${fields.get('object')}`)
    }
  }
  return entries
}

async function resetAclLog(cluster: TestCluster): Promise<void> {
  for (const address of cluster.addresses) await cluster.client(address).call('ACL', 'LOG', 'RESET')
}

describe('least privilege: documented ACL rules, refused up front when short', function () {
  this.timeout(240_000)
  let cluster: TestCluster
  let spare: TestCluster
  let fresh: TestCluster
  let original: {digest: string; keys: number}

  const nodes = async () => parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
  const masters = async () => mastersOf(await nodes()).filter((node) => node.slots.length > 0)
  const shape = async () => {
    const all = await nodes()
    return {open: all.flatMap((node) => openSlotsOf(node)), signature: slotMapSignature(all)}
  }

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 1})
    spare = await TestCluster.start({form: false, nodes: 1})
    fresh = await TestCluster.start({form: false, nodes: 3})
    for (const group of [cluster, spare, fresh]) await createUsers(group)
    await writeDataset(cluster.clusterClient(), {keys: 3000})
    original = await clusterDigest(cluster)
  })

  after(async () => {
    await cluster?.stop()
    await spare?.stop()
    await fresh?.stop()
  })

  it('the probes: a user without rights is denied each one, a user with all of them is not, and nothing changes', async () => {
    const before = await shape()
    const withRights = (user: string) => new NodePool({commandTimeoutMs: 5000, connectTimeoutMs: 2000, password: PASSWORD, username: user})
    // servers without atomic slot migration do not know its subcommands: nobody may run them there
    const atomicOnly = new Set<unknown>([PERMISSIONS.clusterGetslotmigrations, PERMISSIONS.clusterMigrateslots])
    const all = Object.values(PERMISSIONS).filter((permission) => permission.probe && (ATOMIC || !atomicOnly.has(permission)))
    const address = cluster.seed
    const allButSetname = all.filter((permission) => permission !== PERMISSIONS.clientSetname).map((permission) => permission.command).sort()
    // the change rules do not cover import's EXISTS and RESTORE (docs/acl.md lists them apart)
    for (const [user, expected] of [['nothing', allButSetname], ['changer', ['EXISTS', 'RESTORE']]] as const) {
      const pool = withRights(user)
      try {
        const [missing] = await findMissingPermissions(pool, [{addresses: [address], permissions: all}])
        expect((missing?.missing ?? []).map((m) => m.command).sort(), user).to.deep.equal(expected)
      } finally {
        await pool.closeAll()
      }
    }
    expect(await shape()).to.deep.equal(before)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
    await resetAclLog(cluster)
  })

  it('read-only rules: check and info work, and no command was denied', async () => {
    const check = await runCli(['check', cluster.seed, ...as('reader')])
    expect(check.exitCode, check.stdout + check.stderr).to.equal(0)
    const info = await runCliJson<{totalKeys: number}>(['info', cluster.seed, ...as('reader')])
    expect(info.exitCode, info.stdout + info.stderr).to.equal(0)
    expect(info.json.totalKeys).to.equal(original.keys)
    expect(await aclLog(cluster)).to.deep.equal([])
  })

  it('a read-only user asking for a failover is refused before anything happens, naming what is missing where', async () => {
    const [master] = await masters()
    const replica = (await nodes()).find((node) => node.masterId === master.id) as ClusterNode
    const result = await runCli(['failover', cluster.seed, '--master', master.id, ...as('reader')])
    expectOneCleanLine(result, 1, new RegExp(`user 'reader' may not run what this needs: .*CLUSTER FAILOVER on ${replica.address}`), [PASSWORD])
    expect(result.stderr).to.match(/hint: grant it on those nodes, e\.g\. ACL SETUSER reader .*\+cluster\|failover/)
    expect((await nodes()).find((node) => node.id === master.id)?.role).to.equal('master')
    await resetAclLog(cluster)
  })

  for (const [user, path] of [['no-restore', 'probes'], ['no-restore-dry', 'ACL DRYRUN']] as const) {
    it(`a reshard one right short is refused up front, naming RESTORE-ASKING on the target (${path})`, async () => {
      const [target] = await masters()
      const before = await shape()
      const result = await runCli(['reshard', cluster.seed, '--from', 'all', '--to', target.id, '--slots', '300', '--yes', ...as(user)])
      expectOneCleanLine(result, 1, new RegExp(`user '${user}' may not run what this needs: RESTORE-ASKING on ${target.address}$`), [PASSWORD])
      expect(result.stderr).to.match(/ACL SETUSER .* \+restore-asking ~\*/)
      expect(await shape()).to.deep.equal(before)
      expect(before.open).to.deep.equal([])
      expect(await clusterDigest(cluster)).to.deep.equal(original)
      // probes leave the denial in ACL LOG, as the real command would; ACL DRYRUN leaves none
      const denied = (await aclLog(cluster)).filter((entry) => entry.includes('restore-asking'))
      expect(denied.length > 0, JSON.stringify(denied)).to.equal(path === 'probes')
      await resetAclLog(cluster)
    })
  }

  it('a user whose keys are limited to a pattern cannot move slots: MIGRATE, RESTORE-ASKING and the durable moves\' key commands need every key (~*)', async () => {
    const [target] = await masters()
    const before = await shape()
    const result = await runCli(['reshard', cluster.seed, '--from', 'all', '--to', target.id, '--slots', '300', '--yes', ...as('narrow-keys')])
    expectOneCleanLine(result, 1, /user 'narrow-keys' may not run what this needs: /, [PASSWORD])
    // SET, DEL and WATCH (durable moves) have no harmless probe: the transaction check finds them
    expect(result.stderr, result.stderr).to.match(new RegExp(`RESTORE-ASKING, DUMP, DEL, SET on ${target.address}`))
    expect(result.stderr).to.match(/MIGRATE, MEMORY USAGE, DUMP, WATCH, DEL on /)
    expect(await shape()).to.deep.equal(before)
    await resetAclLog(cluster)
  })

  it('Valkey 9: a user without CLUSTER MIGRATESLOTS is refused up front for an atomic move, and --legacy-migrate moves without it', async function () {
    if (!ATOMIC) this.skip()
    const [target] = await masters()
    const before = await shape()
    const refused = await runCli(['reshard', cluster.seed, '--from', 'all', '--to', target.id, '--slots', '200', '--yes', '--durability', 'server', ...as('no-atomic')])
    expectOneCleanLine(refused, 1, /user 'no-atomic' may not run what this needs: CLUSTER MIGRATESLOTS on /, [PASSWORD])
    expect(refused.stderr).to.match(/\+cluster\|migrateslots/)
    expect(refused.stderr).to.match(/--legacy-migrate/)
    expect(await shape()).to.deep.equal(before)
    const legacy = await runCli(['reshard', cluster.seed, '--from', 'all', '--to', target.id, '--slots', '200', '--yes', '--legacy-migrate', ...as('no-atomic')])
    expect(legacy.exitCode, legacy.stderr).to.equal(0)
    expect(legacy.stderr).to.not.match(/MIGRATESLOTS \(atomic/)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
    await resetAclLog(cluster)
  })

  it('change rules: reshard, rebalance, fix, failover, add-node, del-node and create all work; ACL LOG holds only the one ACL DRYRUN attempt per run', async () => {
    let runs = 0
    const run = async (...args: string[]) => {
      const result = await runCli([...args, ...as('changer')])
      expect(result.exitCode, `${args.join(' ')}: ${result.stderr}`).to.equal(0)
      runs++
      return result
    }
    const [target] = await masters()
    await run('reshard', cluster.seed, '--from', 'all', '--to', target.id, '--slots', '500', '--yes')
    await run('rebalance', cluster.seed, '--yes')
    expect(await clusterDigest(cluster)).to.deep.equal(original)

    // an open slot made by hand, for fix to close
    const other = (await masters()).find((master) => master.id !== target.id) as ClusterNode
    const slot = other.slots[0][0]
    await cluster.client(target.address).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', other.id)
    await run('fix', cluster.seed, '--yes')
    expect((await shape()).open).to.deep.equal([])

    await run('failover', cluster.seed, '--master', other.id)
    await run('add-node', spare.seed, cluster.seed)
    const added = String(await spare.client().call('CLUSTER', 'MYID'))
    await run('del-node', cluster.seed, added, '--yes')
    await run('create', ...fresh.addresses, '--yes')
    expect(await clusterDigest(cluster)).to.deep.equal(original)
    const denied = [...(await aclLog(cluster)), ...(await aclLog(spare)), ...(await aclLog(fresh))]
    // without +acl|dryrun the pre-flight probes instead, after one refused try; +config|get is
    // not granted on purpose (it would show the passwords): the big-key check assumes the
    // default node timeout then (docs/acl.md)
    const expected = (entry: string) => entry.endsWith(' changer command acl|dryrun') || entry.endsWith(' changer command config|get')
    expect(denied.filter((entry) => !expected(entry))).to.deep.equal([])
    expect(denied.filter((entry) => entry.endsWith('acl|dryrun')).length).to.be.at.most(runs)
  })
})
