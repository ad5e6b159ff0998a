/**
 * The command-line surface: a snapshot of every verb's arguments and flags (from
 * oclif.manifest.json) so that an accidental interface change fails, help that fits (one-line
 * summaries, per-verb exit codes, -h), version, did-you-mean, and a password-protected sandbox.
 */
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {copyFile, mkdtemp, readFile, rm, symlink} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import {execa} from 'execa'

import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'
import {root} from '../helpers/schema.js'

interface ManifestFlag {
  type: 'boolean' | 'option'
  char?: string
  default?: unknown
  multiple?: boolean
  options?: string[]
  allowNo?: boolean
  exclusive?: string[]
  helpValue?: string
}

interface ManifestCommand {
  args: Record<string, {name: string; required?: boolean}>
  flags: Record<string, ManifestFlag>
}

const snapshotFile = path.join(root, 'test', 'fixtures', 'cli-interface.json')

/** What a script depends on: names, kinds, short forms, defaults, choices; not the help texts. */
function interfaceOf(commands: Record<string, ManifestCommand>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const id of Object.keys(commands).sort()) {
    const command = commands[id]
    const flags: Record<string, unknown> = {}
    for (const name of Object.keys(command.flags).sort()) {
      const {allowNo, char, default: value, exclusive, multiple, options, type} = command.flags[name]
      flags[name] = {type, ...(char ? {char} : {}), ...(value === undefined ? {} : {default: value}), ...(multiple ? {multiple} : {}), ...(options ? {options} : {}), ...(allowNo ? {allowNo} : {}), ...(exclusive?.length ? {exclusive: [...exclusive].sort()} : {})}
    }
    out[id] = {args: Object.values(command.args).map((arg) => `${arg.name}${arg.required ? '' : '?'}`), flags}
  }
  return out
}

/**
 * Builds the manifest as `npm run build` does, in a scratch package (package.json copied, dist
 * and node_modules linked) under exactly the given environment: nothing of the caller's. Run
 * from the scratch dir: `oclif manifest` first deletes ./oclif.manifest.json.
 */
async function manifestBuiltWith(env: Record<string, string>): Promise<Record<string, ManifestCommand>> {
  const scratch = await mkdtemp(path.join(tmpdir(), 'slotctl-manifest-'))
  try {
    await copyFile(path.join(root, 'package.json'), path.join(scratch, 'package.json'))
    await symlink(path.join(root, 'dist'), path.join(scratch, 'dist'))
    await symlink(path.join(root, 'node_modules'), path.join(scratch, 'node_modules'))
    const oclif = path.join(root, 'node_modules', 'oclif', 'bin', 'run.js')
    const built = await execa(process.execPath, [oclif, 'manifest', scratch], {cwd: scratch, env: {OCLIF_SKIP_NEW_VERSION_CHECK: 'true', PATH: process.env.PATH ?? '', ...env}, extendEnv: false, reject: false})
    expect(built.exitCode, built.stderr).to.equal(0)
    return (JSON.parse(await readFile(path.join(scratch, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, ManifestCommand>}).commands
  } finally {
    await rm(scratch, {force: true, recursive: true})
  }
}

const snapshotMessage = 'the interface changed: if on purpose, rerun with SLOTCTL_UPDATE_SNAPSHOT=1 and commit test/fixtures/cli-interface.json'

describe('the command-line interface', () => {
  it('matches the snapshot of every verb\'s arguments and flags (SLOTCTL_UPDATE_SNAPSHOT=1 rewrites it)', async () => {
    const manifest = JSON.parse(await readFile(path.join(root, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, ManifestCommand>}
    const current = interfaceOf(manifest.commands)
    if (process.env.SLOTCTL_UPDATE_SNAPSHOT === '1' || !existsSync(snapshotFile)) writeFileSync(snapshotFile, `${JSON.stringify(current, null, 2)}\n`)
    const snapshot = JSON.parse(readFileSync(snapshotFile, 'utf8')) as Record<string, unknown>
    expect(current, snapshotMessage).to.deep.equal(snapshot)
  })

  it('the snapshot holds for a manifest built with another HOME, or with XDG_STATE_HOME set: no default carries the builder\'s machine', async () => {
    const snapshot = JSON.parse(readFileSync(snapshotFile, 'utf8')) as Record<string, unknown>
    const home = await mkdtemp(path.join(tmpdir(), 'slotctl-home-'))
    try {
      expect(interfaceOf(await manifestBuiltWith({HOME: home})), `HOME=${home}: ${snapshotMessage}`).to.deep.equal(snapshot)
      const xdg = {HOME: home, XDG_CONFIG_HOME: path.join(home, 'config'), XDG_DATA_HOME: path.join(home, 'data'), XDG_STATE_HOME: path.join(home, 'state')}
      expect(interfaceOf(await manifestBuiltWith(xdg)), `XDG_STATE_HOME set: ${snapshotMessage}`).to.deep.equal(snapshot)
    } finally {
      await rm(home, {force: true, recursive: true})
    }
  })

  it('the sandbox --dir default is shown literally and resolved at run time: $XDG_STATE_HOME, else ~/.local/state', async () => {
    const home = await mkdtemp(path.join(tmpdir(), 'slotctl-home-'))
    try {
      const help = await runCli(['sandbox', 'status', '--help'], {env: {HOME: home}})
      expect(help.stdout).to.include('[default: $XDG_STATE_HOME/slotctl/sandbox]')
      expect(help.stdout).to.not.include(home)
      const xdg = path.join(home, 'state')
      expect((await runCli(['sandbox', 'status'], {env: {HOME: home, XDG_STATE_HOME: xdg}})).stdout).to.include(`no sandbox recorded in ${path.join(xdg, 'slotctl', 'sandbox')};`)
      // an empty XDG_STATE_HOME counts as unset (the XDG spec's rule)
      expect((await runCli(['sandbox', 'status'], {env: {HOME: home, XDG_STATE_HOME: ''}})).stdout).to.include(`no sandbox recorded in ${path.join(home, '.local', 'state', 'slotctl', 'sandbox')};`)
    } finally {
      await rm(home, {force: true, recursive: true})
    }
  })

  it('slotctl --help gives every verb a one-line summary at 80 columns; -h works everywhere', async () => {
    const help = await runCli(['--help'], {env: {COLUMNS: '80'}})
    expect(help.exitCode).to.equal(0)
    const commands = help.stdout.split('COMMANDS\n')[1].trimEnd().split('\n')
    // a wrapped summary would leave a line that starts with spaces only
    for (const line of commands) expect(line, line).to.match(/^ {2}[a-z-]+ +\S/)
    expect(commands.map((line) => line.trim().split(/\s+/)[0])).to.include.members(['check', 'fix', 'reshard', 'rebalance', 'version'])
    const topics = help.stdout.split('TOPICS\n')[1].split('\n\n')[0].split('\n')
    for (const line of topics) expect(line, line).to.match(/^ {2}[a-z-]+ +\S/)
    expect(topics.map((line) => line.trim().split(/\s+/)[0])).to.deep.equal(['context', 'history', 'plan', 'sandbox'])
    expect((await runCli(['-h'])).stdout).to.equal((await runCli(['--help'])).stdout)
    const short = await runCli(['check', '-h'])
    expect(short.exitCode).to.equal(0)
    expect(short.stdout).to.equal((await runCli(['check', '--help'])).stdout)
  })

  it('each verb lists its own exit codes in its help', async () => {
    const check = (await runCli(['check', '--help'])).stdout
    expect(check).to.match(/EXIT CODES\n {2}0 {4}healthy .*\n {2}1 {4}.*\n {2}2 {4}bad input.*\n {2}3 {4}errors found.*\n {2}130 {2}interrupted/)
    // one line per code at 80 columns, for every verb
    const manifest = JSON.parse(await readFile(path.join(root, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, unknown>}
    for (const id of Object.keys(manifest.commands)) {
      const help = (await runCli([...id.split(':'), '--help'], {env: {COLUMNS: '80'}})).stdout
      const codes = help.split('EXIT CODES\n')[1]?.split('\n\n')[0]
      expect(codes, id).to.be.a('string')
      for (const line of codes.split('\n')) expect(line, `${id}: ${line}`).to.match(/^ {2}\d+ +\S/)
    }
    expect(check).to.not.match(/\n {2}4 {4}/)
    const fix = (await runCli(['fix', '--help'])).stdout
    expect(fix).to.match(/\n {2}3 {4}problems remain .*--dry-run: fix would change some/)
    expect(fix).to.match(/\n {2}4 {4}a confirmation was needed/)
    expect((await runCli(['version', '--help'])).stdout).to.not.match(/\n {2}[34] {4}/)
  })

  it('version and --version print the version', async () => {
    const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as {version: string}
    const version = await runCli(['version'])
    expect(version.exitCode).to.equal(0)
    expect(version.stdout).to.match(new RegExp(`^slotctl ${pkg.version.replaceAll('.', '\\.')} \\(node v\\d+`))
    expect((await runCli(['--version'])).stdout).to.include(`slotctl/${pkg.version}`)
    expect((await runCliJson<{version: string}>(['version'])).json.version).to.equal(pkg.version)
  })

  it('a mistyped verb: one line naming the closest verb, exit 2, nothing run', async () => {
    const typo = await runCli(['chek', '127.0.0.1:1'])
    expectOneCleanLine(typo, 2, /^slotctl: error: 'chek' is not a slotctl command$/)
    expect(typo.stderr).to.include("hint: did you mean 'check'?")
    expectOneCleanLine(await runCli(['sandbox', 'strat']), 2, /'sandbox strat' is not a slotctl command/)
    const noise = await runCli(['kubernetes'])
    expectOneCleanLine(noise, 2, /'kubernetes' is not a slotctl command/)
    expect(noise.stderr).to.not.include('did you mean')
  })

  it("redis-cli habits never pass a CI gate: -h HOST -p PORT and --cluster-* flags exit 2 with the slotctl form", async () => {
    // a gate written as for redis-cli: with oclif's -h it printed help and exited 0
    const gate = await runCli(['check', '-h', '127.0.0.1', '-p', '4002', '--json'])
    expect(gate.exitCode, gate.stdout).to.equal(2)
    const document = JSON.parse(gate.stdout) as {status: string; error: {code: string; message: string; suggestions: string[]}}
    expect(document.status).to.equal('error')
    expect(document.error.message).to.match(/-h -p: redis-cli's way of naming a node/)
    expect(document.error.suggestions).to.deep.equal(['run: slotctl check 127.0.0.1:4002 --json'])
    expectOneCleanLine(await runCli(['check', '-p', '7000']), 2, /^slotctl: error: -p: redis-cli's way of naming a node/)
    // -h among other arguments is not help either
    const late = await runCli(['check', '127.0.0.1:1', '--json', '-h'])
    expect(late.exitCode).to.equal(2)
    expect(late.stdout).to.include('-h is help only alone after the verb')
    const flags = await runCli(['create', '127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3', '--cluster-replicas', '1', '--cluster-yes'])
    expectOneCleanLine(flags, 2, /^slotctl: error: redis-cli flags: --cluster-replicas is --replicas, --cluster-yes is --yes in slotctl$/)
    expect(flags.stderr).to.include('hint: run: slotctl create 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 --replicas 1 --yes')
    const from = await runCli(['reshard', '127.0.0.1:1', '--cluster-from=abc', '--cluster-to', 'def', '--cluster-slots', '10'])
    expectOneCleanLine(from, 2, /--cluster-from is --from, --cluster-to is --to, --cluster-slots is --slots/)
    // the password given with --pass is never echoed: REDISCLI_AUTH carries it
    const pass = await runCli(['check', '127.0.0.1:1', '--pass', 'sekrit'])
    expectOneCleanLine(pass, 2, /--pass is --password/, ['sekrit'])
    expect(pass.stderr).to.include('hint: run: REDISCLI_AUTH=<password> slotctl check 127.0.0.1:1')
    expectOneCleanLine(await runCli(['--cluster', 'check', '127.0.0.1:1']), 2, /--cluster is redis-cli's/)
    // -h alone after a verb is still help
    const help = await runCli(['reshard', '-h'])
    expect(help.exitCode).to.equal(0)
    expect(help.stdout).to.include('USAGE')
  })

  it('durations take units on every time flag; a bad one is one clean line', async () => {
    expectOneCleanLine(await runCli(['check', '127.0.0.1:7000', '--connect-timeout', '5x']), 2, /--connect-timeout '5x' is not a duration: use e\.g\. 500ms, 30s, 5m \(a plain number is milliseconds\)/)
    expectOneCleanLine(await runCli(['failover', '127.0.0.1:7000', '--master', 'abcd', '--timeout', 'soon']), 2, /--timeout 'soon' is not a duration.*a plain number is seconds/)
    expectOneCleanLine(await runCli(['fix', '127.0.0.1:7000', '--wait-timeout', '1y']), 2, /--wait-timeout '1y' is not a duration/)
    const started = Date.now()
    // a unit on the connect timeout is honoured: 300ms against a port nothing listens on fails fast
    expectOneCleanLine(await runCli(['check', '127.0.0.1:1', '--connect-timeout', '300ms']), 1, /127\.0\.0\.1:1/)
    expect(Date.now() - started).to.be.below(30_000)
  })

  describe('sandbox start with a password', () => {
    let dir: string
    const password = 'sandbox-s3cret-pw'

    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'slotctl-sandbox-auth-'))
    })

    after(async () => {
      await runCli(['sandbox', 'stop', '--dir', dir])
      await rm(dir, {force: true, recursive: true})
    })

    it('-a (or REDISCLI_AUTH) gives every server the password, stored nowhere; other connection flags are refused', async function () {
      this.timeout(120_000)
      expectOneCleanLine(await runCli(['sandbox', 'start', '--dir', dir, '--tls']), 2, /sandbox start does not support --tls/)
      const started = await runCli(['sandbox', 'start', '--dir', dir, '--replicas', '0', '--keys', '50', '-a', password])
      expect(started.exitCode, started.stderr).to.equal(0)
      expect(started.stdout).to.include('password required')
      expect(started.stdout + started.stderr).to.not.include(password)
      expect(await readFile(path.join(dir, 'sandbox.json'), 'utf8')).to.not.include(password)
      const seed = /seed: (\S+)/.exec(started.stdout)![1]
      expectOneCleanLine(await runCli(['check', seed]), 1, /requires a password|NOAUTH|auth/i)
      const check = await runCli(['check', seed], {env: {REDISCLI_AUTH: password}})
      expect(check.exitCode, check.stderr).to.equal(0)
      const status = await runCliJson<{nodes: Array<{role: string}>}>(['sandbox', 'status', '--dir', dir], {env: {REDISCLI_AUTH: password}})
      expect(status.json.nodes.map((node) => node.role)).to.deep.equal(['master', 'master', 'master'])
    })
  })
})
