/**
 * Hostile inputs, round two (part B): secrets in any URL, the cluster's password kept from an
 * import source, ACL rights checked without ACL DRYRUN, commands judged by every node's
 * command table, streaming commands refused, a login refused named as such, forged lock
 * markers told from live runs, control characters escaped, durations and weights bounded,
 * repeated sources counted once. Every refusal: its exit code, one line, no stack trace, no
 * secret, and the cluster exactly as it was.
 */
import {readFileSync, statSync} from 'node:fs'
import {mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import type {Redis} from 'ioredis'

import {type ClusterNode, mastersOf, openSlotsOf, parseClusterNodes, slotMapSignature} from '../../src/lib/cluster/topology.js'
import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {TestCluster, isValkeyAtLeast, serverUnderTest} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'
import {StandaloneServer} from '../helpers/standalone.js'
import type {SandboxState} from '../../src/lib/local/sandbox.js'
import {stopServer} from '../../src/lib/local/servers.js'

const PASSWORD = 'hostile-B-secret/77'
const AUTH = {env: {REDISCLI_AUTH: PASSWORD}}
const USER_PASSWORD = 'acl-user-pw-9k2'
/** The rules of docs/acl.md for changes, as the ACL suite uses them. */
const CHANGE_RULES = [
  '+cluster|nodes +cluster|info +info +client|setname +command|info +cluster|countkeysinslot +client|list +cluster|setslot +cluster|getkeysinslot',
  '+migrate +restore-asking +select +dump +asking +memory|usage +cluster|addslots +cluster|delslots +cluster|bumpepoch +cluster|failover +cluster|replicate +cluster|forget',
  '+cluster|reset +cluster|meet +cluster|addslotsrange +cluster|set-config-epoch +function|list +function|dump +function|restore +script|load +evalsha +evalsha_ro +pexpiretime +get',
  '+dbsize +multi +exec +watch +unwatch +del +set +wait +exists +restore ~*',
  isValkeyAtLeast(8) ? '+cluster|slot-stats' : '',
  isValkeyAtLeast(9) ? '+cluster|getslotmigrations +cluster|migrateslots +cluster|cancelslotmigrations' : '',
].join(' ').trim()
const FORGED = 'slotctl:reshard:forger-host:4242:20260101T000000Z:abc123'

describe('hostile inputs, round two: secrets, rights, commands, names and bounds', function () {
  this.timeout(240_000)
  let cluster: TestCluster
  let dir: string
  let masters: ClusterNode[]
  let unchanged: {digest: {digest: string; keys: number}; signatures: string[]}

  const nodes = async (address = cluster.seed) => parseClusterNodes(String(await cluster.client(address).call('CLUSTER', 'NODES')))

  /** Every node's own slot map (no open slot), and the digest of every key and value. */
  async function fingerprint(): Promise<{digest: {digest: string; keys: number}; signatures: string[]}> {
    const signatures: string[] = []
    for (const address of cluster.addresses) {
      const seen = await nodes(address)
      expect(seen.flatMap((node) => openSlotsOf(node)), `open slots seen by ${address}`).to.deep.equal([])
      signatures.push(slotMapSignature(seen))
    }
    return {digest: await clusterDigest(cluster), signatures}
  }

  const expectUnchanged = async () => expect(await fingerprint()).to.deep.equal(unchanged)

  async function waitForClusterOk(): Promise<void> {
    const deadline = Date.now() + 60_000
    for (;;) {
      const states = await Promise.all(cluster.addresses.map(async (address) => String(await cluster.client(address).call('CLUSTER', 'INFO').catch(() => ''))))
      if (states.every((info) => info.includes('cluster_state:ok'))) return
      if (Date.now() > deadline) throw new Error('the cluster did not come back to cluster_state:ok within 60 s')
      await new Promise((resolve) => {
        setTimeout(resolve, 200)
      })
    }
  }

  async function setUser(name: string, rules: string): Promise<void> {
    for (const address of cluster.addresses) await cluster.client(address).call('ACL', 'SETUSER', name, 'reset', 'on', `>${USER_PASSWORD}`, '-@all', ...rules.split(' '))
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-hostile-b-'))
    cluster = await TestCluster.start({masters: 3, password: PASSWORD, replicas: 0})
    // FLUSHALL renamed away on the seed only: the seed's command table does not know it
    const seed = cluster.seed
    cluster.kill(seed)
    // SIGKILL lands asynchronously: until the old process is gone its port is still bound
    for (let attempt = 1; ; attempt++) {
      try {
        await cluster.restart(seed, ['--rename-command', 'FLUSHALL', 'FLUSHALL-renamed-b7'])
        break
      } catch (error) {
        if (attempt >= 10 || !/Address already in use/.test(String(error))) throw error
        await new Promise((resolve) => {
          setTimeout(resolve, 300)
        })
      }
    }
    await waitForClusterOk()
    await writeDataset(cluster.clusterClient(), {keys: 600})
    // a key whose name would forge an output line and clear the screen
    await cluster.clusterClient().set('evil\nFORGED-LINE \u001B[2J\u001B]0;title\u0007', 'x')
    masters = mastersOf(await nodes()).sort((a, b) => (a.slots[0]?.[0] ?? 99_999) - (b.slots[0]?.[0] ?? 99_999))
    unchanged = await fingerprint()
  })

  after(async () => {
    await cluster?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  describe('secrets', () => {
    it('masks the credentials of a URL of any scheme, in the error line and in --json', async () => {
      for (const url of ['http://u:PASSWORD-x1@127.0.0.1:3010', 'HTTPS://u:PASSWORD-x1@127.0.0.1:3010', 'ftp://PASSWORD-x1@h:1', 'redis+sentinel://u:PASSWORD-x1@h:26379']) {
        const result = await runCli(['check', url])
        expectOneCleanLine(result, 2, /invalid address '[^']*\*\*\*@[^']*': \S+:\/\/ is not a node address/, ['PASSWORD-x1'])
        const json = await runCliJson<{error: {message: string}}>(['check', url])
        expect(json.stdout + json.stderr).to.not.include('PASSWORD-x1')
        expect(json.json.error.message).to.include('***@')
      }
    })

    it('import never sends the cluster password to the source: it relays the keys itself, and the source copy goes only once it is in the cluster', async () => {
      const source = await StandaloneServer.start()
      const monitor = await source.client().monitor()
      const seen: string[] = []
      monitor.on('monitor', (_time: string, args: string[]) => seen.push(args.join(' ')))
      try {
        const writer = source.client()
        for (let i = 0; i < 300; i++) await writer.set(`import:${i}`, `v${i}`)
        await writer.set('import:ttl', 'x', 'EX', 5000)
        const moved = await runCli(['import', cluster.seed, '--from', source.address, '--yes', '--journal', path.join(dir, 'import.jsonl')], AUTH)
        expect(moved.exitCode, moved.stderr).to.equal(0)
        expect(await writer.dbsize()).to.equal(0)
        const into = cluster.clusterClient()
        expect(await into.get('import:7')).to.equal('v7')
        expect(await into.ttl('import:ttl')).to.be.within(4000, 5000)
        await new Promise((resolve) => {
          setTimeout(resolve, 200)
        })
        expect(seen.some((command) => /^dump /i.test(command)), 'the source saw the relay').to.equal(true)
        expect(seen.filter((command) => command.includes(PASSWORD) || /^auth /i.test(command) || /^migrate /i.test(command))).to.deep.equal([])
      } finally {
        monitor.disconnect()
        for (let i = 0; i < 300; i++) await cluster.clusterClient().del(`import:${i}`)
        await cluster.clusterClient().del('import:ttl')
        await source.stop()
      }
      await expectUnchanged()
    })

    it('relayed keys keep import\'s rules: an equal key is dropped from the source, a different one is a conflict until --replace', async () => {
      const source = await StandaloneServer.start()
      const into = cluster.clusterClient()
      try {
        const writer = source.client()
        await writer.set('import:same', 'v')
        await writer.set('import:differs', 'source')
        for (let i = 0; i < 50; i++) await writer.set(`import:new:${i}`, String(i))
        await into.set('import:same', 'v')
        await into.set('import:differs', 'cluster')
        const first = await runCliJson<{errors: Array<{code: string; message: string}>; status: string}>(['import', cluster.seed, '--from', source.address, '--yes', '--journal', path.join(dir, 'relay-1.jsonl')], AUTH)
        expect(first.exitCode, first.stderr).to.equal(1)
        expect(first.json.status).to.equal('partial')
        expect(first.json.errors.find((error) => error.code === 'E_CONFLICTS')?.message).to.match(/^1 key\(s\) exist in the cluster with different values/)
        expect(await writer.keys('import:*')).to.deep.equal(['import:differs'])
        expect(await into.get('import:differs')).to.equal('cluster')
        const replaced = await runCli(['import', cluster.seed, '--from', source.address, '--yes', '--replace', '--journal', path.join(dir, 'relay-2.jsonl')], AUTH)
        expect(replaced.exitCode, replaced.stderr).to.equal(0)
        expect(replaced.stderr + replaced.stdout).to.match(/moved 1 key\(s\)/)
        expect(await into.get('import:differs')).to.equal('source')
        expect(await writer.dbsize()).to.equal(0)
      } finally {
        for (const key of ['import:same', 'import:differs', ...Array.from({length: 50}, (_, i) => `import:new:${i}`)]) await into.del(key)
        await source.stop()
      }
      await expectUnchanged()
    })

    it('a source that needs a password gets only its own: without --from-password the run stops at the source, naming the flag', async () => {
      const source = await StandaloneServer.start({password: 'source-own-pw'})
      try {
        await source.client().set('k', 'v')
        const refused = await runCli(['import', cluster.seed, '--from', source.address, '--copy', '--yes'], AUTH)
        expectOneCleanLine(refused, 1, /authentication failed at the source .* it requires a password/, [PASSWORD])
        expect(refused.stderr).to.include('--from-password')
      } finally {
        await source.stop()
      }
      await expectUnchanged()
    })
  })

  describe('rights checked before anything changes', () => {
    it('without ACL DRYRUN, a user without CLUSTER BUMPEPOCH is refused up front: no slot opened', async () => {
      await setUser('no-bump', CHANGE_RULES.replace(' +cluster|bumpepoch', ''))
      const [a, b] = masters
      const refused = await runCli(['reshard', cluster.seed, '--slot-range', `${a.slots[0][0]}-${a.slots[0][0] + 2}`, '--to', b.id, '--yes', '--user', 'no-bump', '-a', USER_PASSWORD, '--no-auth-warning'])
      expectOneCleanLine(refused, 1, /user 'no-bump' may not run what this needs: .*CLUSTER BUMPEPOCH/, [USER_PASSWORD])
      await expectUnchanged()
    })

    it('without ACL DRYRUN, a user without MULTI/EXEC is refused up front (a transaction is how those are checked)', async () => {
      await setUser('no-multi', CHANGE_RULES.replace(' +multi', ''))
      const [a, b] = masters
      const refused = await runCli(['reshard', cluster.seed, '--slot-range', `${a.slots[0][0]}-${a.slots[0][0] + 2}`, '--to', b.id, '--yes', '--user', 'no-multi', '-a', USER_PASSWORD, '--no-auth-warning'])
      expectOneCleanLine(refused, 1, /user 'no-multi' may not run what this needs: .*MULTI/, [USER_PASSWORD])
      await expectUnchanged()
    })

    it('a user with every right passes the check: its run leaves no denied command in ACL LOG but ACL DRYRUN (and the optional CONFIG GET)', async () => {
      await setUser('all-rights', CHANGE_RULES)
      for (const address of cluster.addresses) await cluster.client(address).call('ACL', 'LOG', 'RESET')
      const [a, b] = masters
      const slot = a.slots[0][0]
      const as = ['--user', 'all-rights', '-a', USER_PASSWORD, '--no-auth-warning']
      const moved = await runCli(['reshard', cluster.seed, '--slot-range', String(slot), '--to', b.id, '--yes', ...as])
      expect(moved.exitCode, moved.stderr).to.equal(0)
      const back = await runCli(['reshard', cluster.seed, '--slot-range', String(slot), '--to', a.id, '--yes', ...as])
      expect(back.exitCode, back.stderr).to.equal(0)
      const denied: string[] = []
      for (const address of cluster.addresses) {
        for (const entry of (await cluster.client(address).call('ACL', 'LOG', 100)) as unknown[][]) {
          const object = String(entry[entry.indexOf('object') + 1])
          // as in the ACL suite: +config|get is optional (the node timeout is read if allowed)
          if (object !== 'acl|dryrun' && object !== 'config|get') denied.push(`${address} ${object}`)
        }
      }
      expect(denied).to.deep.equal([])
      await expectUnchanged()
    })

    it('import has a pre-flight: a user without RESTORE is refused before the question, the source untouched', async () => {
      await setUser('no-restore', CHANGE_RULES.replace(' +restore ', ' '))
      const source = await StandaloneServer.start()
      try {
        await source.client().set('import:one', '1')
        const refused = await runCli(['import', cluster.seed, '--from', source.address, '--yes', '--user', 'no-restore', '-a', USER_PASSWORD, '--no-auth-warning'])
        expectOneCleanLine(refused, 1, /user 'no-restore' may not run what this needs: RESTORE on /, [USER_PASSWORD])
        expect(await source.client().get('import:one')).to.equal('1')
      } finally {
        await source.stop()
      }
      await expectUnchanged()
    })
  })

  describe('commands judged by every node', () => {
    it('FLUSHALL unknown to the seed (renamed there) still needs a confirmation: nothing is flushed', async () => {
      const refused = await runCli(['call', cluster.seed, 'FLUSHALL'], AUTH)
      expectOneCleanLine(refused, 4, /FLUSHALL .*needs confirmation/, [PASSWORD])
      await expectUnchanged()
    })

    it('subscribe-, monitor- and sync-like commands are refused in one line, before any node is asked', async () => {
      for (const command of [['SUBSCRIBE', 'ch'], ['psubscribe', 'ch*'], ['SSUBSCRIBE', 'ch'], ['MONITOR'], ['SYNC'], ['PSYNC', '?', '-1'], ['CLIENT', 'REPLY', 'OFF']]) {
        const refused = await runCli(['call', cluster.seed, ...command], AUTH)
        expectOneCleanLine(refused, 2, /call runs commands that answer once; .* streams or silences replies/, [PASSWORD])
      }
      await expectUnchanged()
    })
  })

  describe('wording', () => {
    it('a master whose password was rotated is MASTER_AUTH_FAILED, with no failover or data-losing hint', async () => {
      const victim = masters[1]
      const client = cluster.client(victim.address)
      await client.call('CONFIG', 'SET', 'requirepass', 'rotated-pw-1')
      try {
        const checked = await runCliJson<{errors: Array<{code: string; hint?: string; message: string}>}>(['check', cluster.seed], AUTH)
        expect(checked.exitCode).to.equal(3)
        const finding = checked.json.errors.find((f) => f.code === 'MASTER_AUTH_FAILED')
        expect(finding?.message).to.match(new RegExp(`master ${victim.address.replace(/\./g, '\\.')}.* refuses this login \\(authentication failed`))
        expect(checked.json.errors.map((f) => f.code)).to.not.include('MASTER_UNREACHABLE')
        const text = await runCli(['check', cluster.seed], AUTH)
        expect(text.stdout + text.stderr).to.not.match(/failover|--force|accept-data-loss|del-node/)
        const fix = await runCli(['fix', cluster.seed, '--yes'], AUTH)
        expect(fix.stdout + fix.stderr).to.not.match(/failover|--force|accept-data-loss/)
      } finally {
        await client.call('AUTH', 'rotated-pw-1')
        await client.call('CONFIG', 'SET', 'requirepass', PASSWORD)
      }
      await expectUnchanged()
    })

    it('key names are printed escaped: no forged line, no terminal escape', async () => {
      const listed = await runCli(['call', cluster.seed, 'KEYS', 'evil*', '--lines', '--masters'], AUTH)
      expect(listed.exitCode, listed.stderr).to.equal(0)
      expect(listed.stdout).to.include('evil\\nFORGED-LINE \\x1b[2J\\x1b]0;title\\x07')
      expect(listed.stdout).to.not.match(/^FORGED-LINE/m)
      expect(listed.stdout + listed.stderr).to.not.include('\u001B')
      const table = await runCli(['call', cluster.seed, 'KEYS', 'evil*', '--masters'], AUTH)
      expect(table.stdout).to.not.include('\u001B')
      expect(table.stdout).to.not.match(/│ FORGED-LINE/)
    })

    it('control characters in an address are escaped, not echoed', async () => {
      const result = await runCli(['check', '127.0.0.1:70\u001B[2J\u0007'])
      expectOneCleanLine(result, 2, /invalid address '127\.0\.0\.1:70\\x1b\[2J\\x07'/)
      expect(result.stderr).to.not.include('\u001B')
    })

    it('a duration beyond a day is refused in one line, without Node\'s TimeoutOverflowWarning', async () => {
      for (const args of [['--connect-timeout', '99999999999h'], ['--read-timeout', '25h'], ['--connect-timeout', '9'.repeat(400)]]) {
        const result = await runCli(['check', cluster.seed, ...args], AUTH)
        expectOneCleanLine(result, 2, new RegExp(`${args[0]} \\S+ is too long: at most 24h`))
        expect(result.stderr).to.not.include('TimeoutOverflowWarning')
      }
    })

    it('--weight 1e308 is out of range, not "not a number"', async () => {
      const result = await runCli(['rebalance', cluster.seed, '--weight', `${masters[0].id.slice(0, 8)}=1e308`, '--dry-run'], AUTH)
      expectOneCleanLine(result, 2, /--weight '\w+=1e308': 1e308 is out of range \(0 to 1000000/)
    })

    it('--from a,a is planned as the slots it moves: a repeated source counts once', async () => {
      const [a, b] = masters
      const planned = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--from', `${a.id},${a.id.slice(0, 10)}`, '--to', b.id, '--slots', '4', '--dry-run'], AUTH)
      expect(planned.exitCode, planned.stderr).to.equal(0)
      expect(planned.json.slotsPlanned).to.equal(4)
      expect(planned.json.moves.map((pair) => [pair.sourceId, pair.slotCount])).to.deep.equal([[a.id, 4]])
      await expectUnchanged()
    })
  })

  describe('forged lock markers', () => {
    /** A client named like a lock marker that keeps its connection busy (PING every 500 ms), as a live run's would be. */
    async function busyForger(address: string): Promise<{client: Redis; stop: () => void}> {
      const client = cluster.client(address).duplicate()
      await client.call('CLIENT', 'SETNAME', FORGED)
      const timer = setInterval(() => void client.ping().catch(() => {}), 500)
      return {client, stop: () => {
        clearInterval(timer)
        client.disconnect()
      }}
    }

    it('a busy client calling itself slotctl:reshard:... is reported as forged, not as a slotctl run; fix --dry-run and backup only warn', async () => {
      const [a, b] = masters
      const forger = await busyForger(a.address)
      try {
        const clientId = String(await forger.client.call('CLIENT', 'ID'))
        await new Promise((resolve) => {
          setTimeout(resolve, 700)
        })
        const forged = new RegExp(`a stale or forged slotctl lock marker holds this cluster: client ${clientId} .* is named '${FORGED}' but last sent 'ping'`)
        for (const args of [['reshard', cluster.seed, '--slot-range', '0-1', '--to', b.id, '--yes'], ['fix', cluster.seed, '--yes']]) {
          const refused = await runCli(args, AUTH)
          expectOneCleanLine(refused, 1, forged, [PASSWORD])
          expect(refused.stderr).to.not.include('another slotctl run')
          expect(refused.stderr).to.include(`CLIENT KILL ID ${clientId}`)
        }
        const dry = await runCli(['fix', cluster.seed, '--dry-run'], AUTH)
        expect(dry.exitCode, dry.stderr).to.equal(0)
        expect(dry.stderr).to.match(/warning: a stale or forged slotctl lock marker/)
        const backup = await runCli(['backup', cluster.seed, path.join(dir, 'backup-forged')], {...AUTH, timeoutMs: 180_000})
        expect(backup.exitCode, backup.stderr).to.equal(0)
        expect(backup.stderr).to.match(/warning: a stale or forged slotctl lock marker/)
      } finally {
        forger.stop()
      }
      await expectUnchanged()
    })
  })
})

describe('hostile inputs, round two: the sandbox keeps its password to itself', function () {
  this.timeout(240_000)
  const SANDBOX_PASSWORD = 'sandbox-B-secret-19'
  const env = {env: {REDISCLI_AUTH: SANDBOX_PASSWORD}}
  let dir: string
  let state: SandboxState | undefined

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-hostile-sandbox-'))
    const started = await runCliJson<SandboxState>(['sandbox', 'start', '--masters', '3', '--replicas', '0', '--dir', path.join(dir, 'box'), '--server', serverUnderTest().path], env)
    expect(started.exitCode, started.stderr).to.equal(0)
    state = started.json
  })

  after(async () => {
    await Promise.all((state?.nodes ?? []).map((node) => stopServer(node)))
    await rm(dir, {force: true, recursive: true})
  })

  it('after set-timeout (CONFIG REWRITE) the password sits only in 0600 files in 0700 directories, never on a command line', async () => {
    const set = await runCli(['set-timeout', state!.seed, '16s', '--yes'], env)
    expect(set.exitCode, set.stderr).to.equal(0)
    const withPassword: string[] = []
    for (const node of state!.nodes) {
      expect(statSync(node.dir).mode & 0o777, node.dir).to.equal(0o700)
      for (const name of await readdir(node.dir)) {
        const file = path.join(node.dir, name)
        expect(statSync(file).mode & 0o077, `${file} is its owner's only`).to.equal(0)
        if (readFileSync(file, 'utf8').includes(SANDBOX_PASSWORD)) withPassword.push(name)
      }
      expect(readFileSync(`/proc/${node.pid}/cmdline`, 'utf8')).to.not.include(SANDBOX_PASSWORD)
    }
    expect(withPassword.some((name) => name.endsWith('.conf')), 'requirepass is in the config file').to.equal(true)
    expect(statSync(path.join(dir, 'box', 'sandbox.json')).mode & 0o077).to.equal(0)
  })

  it('status sends no password to an address edited into sandbox.json', async () => {
    const stateFile = path.join(dir, 'box', 'sandbox.json')
    const original = readFileSync(stateFile, 'utf8')
    const [first] = state!.nodes
    // a listener on another loopback address, same port: what the edited entry points at
    const received: Buffer[] = []
    const listener = createServer((socket) => {
      socket.on('data', (data) => received.push(data))
      socket.on('error', () => {})
    })
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject)
      listener.listen(first.port, '127.0.0.2', resolve)
    })
    try {
      const edited = JSON.parse(original) as SandboxState
      edited.nodes[0] = {...edited.nodes[0], address: `127.0.0.2:${first.port}`, host: '127.0.0.2'}
      await writeFile(stateFile, JSON.stringify(edited, null, 2))
      const status = await runCliJson<{nodes: Array<{address: string; role: string}>}>(['sandbox', 'status', '--dir', path.join(dir, 'box')], env)
      expect(status.exitCode, status.stderr).to.equal(0)
      expect(status.json.nodes.find((node) => node.address === `127.0.0.2:${first.port}`)?.role).to.equal('unknown')
      expect(status.json.nodes.filter((node) => node.role === 'master')).to.have.length(2)
      await new Promise((resolve) => {
        setTimeout(resolve, 200)
      })
      expect(Buffer.concat(received).toString('latin1')).to.not.include(SANDBOX_PASSWORD)
      expect(received, 'nothing was sent there at all').to.deep.equal([])
    } finally {
      await new Promise((resolve) => {
        listener.close(resolve)
      })
      await writeFile(stateFile, original)
    }
  })

  it('start refuses a port in use before it announces anything', async () => {
    const refused = await runCli(['sandbox', 'start', '--masters', '3', '--replicas', '0', '--dir', path.join(dir, 'other'), '--port', String(state!.nodes[0].port), '--server', serverUnderTest().path], env)
    expectOneCleanLine(refused, 2, /port\(s\) .* are in use/, [SANDBOX_PASSWORD])
    expect(refused.stderr).to.not.include('starting')
    const invalid = await runCli(['sandbox', 'start', '--dir', path.join(dir, 'other'), '--port', '70000', '--server', serverUnderTest().path], env)
    expectOneCleanLine(invalid, 2, /--port 70000 is too high/)
    expect(invalid.stderr).to.not.include('starting')
  })
})
