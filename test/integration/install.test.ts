/**
 * Installs like any CLI: a copy of the project as a fresh clone has it (no dist/, no
 * manifest) is packed with `npm pack` (prepack builds it), the tarball is installed globally
 * into a temporary prefix from the npm cache, and the installed `slotctl` runs --help and
 * check against a real cluster from that prefix's bin/.
 */
import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {chmod, mkdir, mkdtemp, readdir, rm, symlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import {execa} from 'execa'

import {TestCluster} from '../helpers/cluster-harness.js'
import {root} from '../helpers/schema.js'

/** The files a fresh clone has: tracked, plus new ones not ignored (so uncommitted work is packed too). */
function cloneFiles(): string[] {
  return execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {cwd: root, encoding: 'utf8'})
    .split('\0')
    .filter((file) => file && existsSync(path.join(root, file)))
}

describe('install: npm pack, install the tarball, run slotctl from the prefix', function () {
  this.timeout(300_000)
  let dir: string
  let cluster: TestCluster

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-install-'))
    cluster = await TestCluster.start({masters: 3, replicas: 0})
  })

  after(async () => {
    await cluster?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('packs a tarball with the build, the manifest and the LICENSE (not bin/dev.js), installs it offline and runs it', async () => {
    const clone = path.join(dir, 'clone')
    await execa('tar', ['-cf', path.join(dir, 'clone.tar'), '-C', root, ...cloneFiles()])
    await execa('mkdir', ['-p', clone])
    await execa('tar', ['-xf', path.join(dir, 'clone.tar'), '-C', clone])
    expect(existsSync(path.join(clone, 'dist')), 'a fresh clone has no build').to.equal(false)
    // the build tools come from the project's own node_modules, as after `npm ci`
    await symlink(path.join(root, 'node_modules'), path.join(clone, 'node_modules'))

    const pack = await execa('npm', ['pack', '--json', '--pack-destination', dir], {cwd: clone, env: {npm_config_update_notifier: 'false'}})
    // prepack's build writes to stdout too; npm's JSON report is the last thing there
    const [packed] = JSON.parse(pack.stdout.slice(pack.stdout.search(/^\[/m))) as Array<{filename: string; files: Array<{path: string}>}>
    const files = packed.files.map((file) => file.path)
    expect(files).to.include.members(['bin/run.js', 'bin/bundle-loader.cjs', 'oclif.manifest.json', 'LICENSE', 'README.md', 'schemas/check.schema.json', 'schemas/error.schema.json', 'schemas/plan.schema.json'])
    // the bundle and its code cache are the whole CLI: tsc's module tree (dist/commands, dist/lib) stays at home
    expect(files.filter((file) => file.startsWith('dist/')).sort()).to.deep.equal(['dist/slotctl.cjs', 'dist/slotctl.cjs.cache'])
    expect(files).to.not.include('bin/dev.js')
    expect(files.some((file) => file.startsWith('src/') || file.startsWith('test/'))).to.equal(false)
    expect(pack.stderr).to.not.match(/update available/)

    const prefix = path.join(dir, 'prefix')
    const started = Date.now()
    // everything it needs is in the npm cache after `npm ci`: no network when it is there
    await execa('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, packed.filename)], {env: {npm_config_update_notifier: 'false'}})
    const installSeconds = (Date.now() - started) / 1000
    process.stderr.write(`      (npm install of the tarball took ${installSeconds.toFixed(1)} s)\n`)

    const slotctl = path.join(prefix, 'bin', 'slotctl')
    expect(existsSync(slotctl)).to.equal(true)
    expect(await readdir(path.join(prefix, 'lib', 'node_modules', 'slotctl'))).to.not.include('src')
    const env = {NO_COLOR: '1', PATH: `${path.join(prefix, 'bin')}${path.delimiter}${process.env.PATH}`}
    const help = await execa(slotctl, ['--help'], {env, reject: false})
    expect(help.exitCode, help.stderr).to.equal(0)
    expect(help.stdout).to.match(/\n {2}check +Is the cluster healthy/)
    const check = await execa(slotctl, ['check', cluster.seed], {env, reject: false})
    expect(check.exitCode, check.stderr).to.equal(0)
    expect(check.stdout).to.include('[OK] all 16384 slots covered')
    // the code cache was made by this Node for this bundle: V8 takes it (it would silently compile otherwise)
    const loader = path.join(prefix, 'lib', 'node_modules', 'slotctl', 'bin', 'bundle-loader.cjs')
    const cache = await execa(process.execPath, ['-e', `const {cacheRejected} = require(${JSON.stringify(loader)}).loadBundle(); console.log(cacheRejected); process.exit()`], {env, reject: false})
    expect(cache.stdout, cache.stderr).to.equal('false')
    // the plan schemas are found from the bundle (dist/slotctl.js), and ajv from node_modules
    const plan = path.join(dir, 'bad-plan.json')
    await writeFile(plan, '{"version": 1}\n')
    const apply = await execa(slotctl, ['apply', plan, '--seed', cluster.seed], {env, reject: false})
    expect(apply.exitCode, apply.stderr).to.equal(2)
    expect(apply.stderr).to.match(/is not a valid slotctl plan: \(top level\) must have required property 'kind'/)
    // installed on PATH, the banner-style hints name plain `slotctl`
    const status = await execa(slotctl, ['sandbox', 'status', '--dir', path.join(dir, 'no-sandbox')], {env, reject: false})
    expect(status.stdout).to.match(/start one with: slotctl sandbox start/)
  })

  it('npm run demo without redis-server, not as root: prints the one command that installs it, and stops', async () => {
    // a PATH with no server binary, where `id -u` says an ordinary user
    const bin = path.join(dir, 'bare-bin')
    await mkdir(bin, {recursive: true})
    await symlink(execFileSync('bash', ['-c', 'command -v dirname'], {encoding: 'utf8'}).trim(), path.join(bin, 'dirname'))
    await writeFile(path.join(bin, 'id'), '#!/bin/sh\necho 1000\n')
    await chmod(path.join(bin, 'id'), 0o755)
    const demo = await execa('/bin/bash', [path.join(root, 'scripts', 'demo.sh')], {env: {PATH: bin}, extendEnv: false, reject: false})
    expect(demo.exitCode).to.equal(1)
    expect(demo.stderr).to.equal('demo: redis-server is not installed; install it, then run npm run demo again:\n  sudo apt-get install -y redis-server')
  })
})
