/**
 * What an operator sees while slots move: the progress line on a real terminal, the Ctrl-C
 * screens, and the resume; progress on stderr in --json mode (lines, or NDJSON events).
 */
import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'
import {execa} from 'execa'

import type {MigrationResult} from '../../src/lib/cli/migration-command.js'
import {type ClusterNode, mastersOf, parseClusterNodes, slotCount} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {runCli, runCliJson, spawnCli, stateHome, waitForJournalLines} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const bin = path.join(root, 'bin', process.env.SLOTCTL_TEST_DEV === '1' ? 'dev.js' : 'run.js')

/** The screen as the terminal shows it: each \r starts the line over, ESC[2K clears it. */
function visibleLines(screen: string): string[] {
  return screen
    .replaceAll('\r\n', '\n')
    .split('\n')
    .map((line) => line.replaceAll('\u001B[2K', '').split('\r').pop() ?? '')
}

/** Every state of the in-place progress line (each redraw). */
function progressDraws(screen: string): string[] {
  return screen
    .replaceAll('\u001B[2K', '')
    .split(/\r\n|\r|\n/)
    .filter((draw) => / keys\/s /.test(draw) || /ETA/.test(draw))
}

/** slotctl on a pseudo-terminal 80 columns wide; `keys` are sent when their pattern shows. */
function onTerminal(args: string[], keys: Array<[RegExp, string]> = []) {
  const command = `stty cols 80 rows 40; ${[process.execPath, bin, ...args].join(' ')}`
  const child = execa('script', ['-qfec', command, '/dev/null'], {
    env: {CI: '', NO_COLOR: '1', TERM: 'xterm', XDG_STATE_HOME: stateHome},
    reject: false,
    stdin: 'pipe',
    timeout: 120_000,
  })
  const output = {screen: ''}
  let next = 0
  child.stdout?.on('data', (chunk: Buffer) => {
    output.screen += chunk.toString()
    while (next < keys.length && keys[next][0].test(output.screen)) {
      child.stdin?.write(keys[next][1])
      next++
    }
  })
  return {child, output}
}

describe('progress and Ctrl-C screens', () => {
  let cluster: TestCluster
  let dir: string
  let original: {digest: string; keys: number}

  const masters = async (): Promise<ClusterNode[]> => mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))
  const pair = async () => {
    const sorted = (await masters()).sort((a, b) => slotCount(b) - slotCount(a))
    return [sorted[0], sorted[sorted.length - 1]]
  }

  before(async function () {
    this.timeout(120_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-screens-'))
    cluster = await TestCluster.start({masters: 3, replicas: 0})
    await writeDataset(cluster.clusterClient(), {keys: 24_000})
    original = await clusterDigest(cluster)
  })

  after(async () => {
    await cluster?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('the progress line counts keys with percent, rate, elapsed and a real ETA, and fits 80 columns', async function () {
    this.timeout(120_000)
    const [source, target] = await pair()
    const {child, output} = onTerminal(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '2000', '--max-keys-per-sec', '800', '--yes', '--journal', path.join(dir, 'bar.jsonl')])
    const {exitCode} = await child
    expect(exitCode, output.screen).to.equal(0)
    const draws = progressDraws(output.screen)
    expect(draws.length, output.screen).to.be.greaterThan(3)
    for (const draw of draws) expect(draw.length, draw).to.be.at.most(80)
    const middle = draws.find((draw) => /\b([1-9]\d?)%/.test(draw) && /ETA \d/.test(draw))
    expect(middle, draws.join('\n')).to.not.equal(undefined)
    expect(middle).to.match(/\d+\/\d+ keys/)
    expect(middle).to.match(/\d+ keys\/s/)
    expect(middle).to.match(/elapsed/)
    expect(output.screen).to.not.match(/NaN|Infinity|ETA NF/)
    // the summary is not written over the bar
    expect(visibleLines(output.screen).some((line) => /^2000 slot\(s\) and \d+ key\(s\)/.test(line)), output.screen).to.equal(true)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('Ctrl-C: a clean screen that says what happens, exit 130, and a resume that keeps the throttle', async function () {
    this.timeout(120_000)
    const [source, target] = await pair()
    const journal = path.join(dir, 'ctrlc.jsonl')
    const {child, output} = onTerminal(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '3000', '--max-keys-per-sec', '500', '--yes', '--journal', journal], [[/ keys\/s .*ETA \d/, '\u0003']])
    const {exitCode} = await child
    expect(exitCode, output.screen).to.equal(130)
    const lines = visibleLines(output.screen)
    const notice = lines.find((line) => /SIGINT: finishing the \d+ slot\(s\) in flight/.test(line))
    expect(notice, output.screen).to.match(/^slotctl: SIGINT: finishing the \d+ slot\(s\) in flight, then stopping/)
    const interrupted = lines.find((line) => /interrupted: \d+ slot\(s\) not moved/.test(line))
    expect(interrupted, output.screen).to.match(new RegExp(`^interrupted: \\d+ slot\\(s\\) not moved; no slot was left open\\. Continue with: slotctl reshard ${cluster.seed} --resume ${journal} --yes$`))
    const state = readFileSync(journal, 'utf8').split('\n')[0]
    expect(JSON.parse(state).settings.maxKeysPerSec).to.equal(500)
    expect(JSON.parse(state).verb).to.equal('reshard')

    const resumed = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--resume', journal, '--max-keys-per-sec', '20000', '--yes'])
    expect(resumed.exitCode, resumed.stderr).to.equal(0)
    expect(resumed.json.slotsMoved! + resumed.json.slotsFinished!).to.be.greaterThan(0)
    const again = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--resume', journal, '--yes'])
    expect(again.json.status).to.equal('nothing-to-do')
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('a resume without throttle flags runs at the recorded rate and says so', async function () {
    this.timeout(120_000)
    const [source, target] = await pair()
    const journal = path.join(dir, 'keep.jsonl')
    const {child, output} = onTerminal(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '1500', '--max-keys-per-sec', '700', '--yes', '--journal', journal], [[/ keys\/s .*ETA \d/, '\u0003']])
    expect((await child).exitCode, output.screen).to.equal(130)
    const resumed = await runCli(['reshard', cluster.seed, '--resume', journal, '--yes', '--progress', 'none'])
    expect(resumed.exitCode, resumed.stderr).to.equal(0)
    expect(resumed.stderr).to.match(/resuming with the run's settings: .*--max-keys-per-sec 700/)
    const [, keys, rate] = /slot\(s\) and (\d+) key\(s\) .* \((\d+) keys\/s\)/.exec(resumed.stdout) ?? []
    // over a run long enough to measure (two seconds at the limit), the recorded limit holds
    if (Number(keys) > 1400) expect(Number(rate), resumed.stdout).to.be.at.most(700 * 1.1)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('a second Ctrl-C exits at once and names the open slots and the command that finishes them', async function () {
    this.timeout(120_000)
    const [source, target] = await pair()
    const journal = path.join(dir, 'twice.jsonl')
    const {child, output} = onTerminal(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '3000', '--max-keys-per-sec', '300', '--yes', '--journal', journal], [
      [/ keys\/s .*ETA \d/, '\u0003'],
      [/SIGINT: finishing/, '\u0003'],
    ])
    const {exitCode} = await child
    expect(exitCode, output.screen).to.equal(130)
    const last = visibleLines(output.screen).find((line) => /SIGINT again/.test(line))
    expect(last, output.screen).to.match(new RegExp(`^slotctl: SIGINT again: exiting now; \\d+ slot\\(s\\) are left open \\(migrating/importing\\)\\. Finish them with: slotctl reshard ${cluster.seed} --resume ${journal} --yes$`))
    const resumed = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--resume', journal, '--max-keys-per-sec', '50000', '--yes'])
    expect(resumed.exitCode, resumed.stderr).to.equal(0)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('--json keeps stdout for the result and still shows progress on stderr: lines, or NDJSON with --progress json', async function () {
    this.timeout(120_000)
    const [source, target] = await pair()
    const lines = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '2500', '--max-keys-per-sec', '500', '--yes', '--journal', path.join(dir, 'lines.jsonl')])
    expect(lines.exitCode, lines.stderr).to.equal(0)
    expect(lines.json.status).to.equal('done')
    expect(lines.stderr).to.match(/^progress: .*\d+% \| \d+\/\d+ keys/m)
    const [a, b] = await pair()
    const events = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--from', a.id, '--to', b.id, '--slots', '2500', '--max-keys-per-sec', '500', '--progress', 'json', '--yes', '--journal', path.join(dir, 'ndjson.jsonl')])
    expect(events.exitCode, events.stderr).to.equal(0)
    const records = events.stderr.trim().split('\n').map((line) => JSON.parse(line) as {event: string; keysMoved?: number; keys?: number})
    expect(records[0]).to.include({event: 'start'})
    expect(records[0].keys).to.be.greaterThan(0)
    expect(records.some((record) => record.event === 'progress')).to.equal(true)
    const end = records.at(-1)!
    expect(end.event).to.equal('end')
    expect(end.keysMoved).to.equal(events.json.keysMoved)
    const quiet = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--from', b.id, '--to', a.id, '--slots', '50', '--progress', 'none', '--yes', '--journal', path.join(dir, 'none.jsonl')])
    expect(quiet.stderr).to.equal('')
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('after fix rolled part of an interrupted run forward, --resume counts only the slots it moved itself', async function () {
    this.timeout(120_000)
    const [source, target] = await pair()
    const journal = path.join(dir, 'rolled.jsonl')
    const child = spawnCli(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '2000', '--max-keys-per-sec', '400', '--yes', '--journal', journal])
    await waitForJournalLines(journal, 3)
    child.kill('SIGKILL')
    await child
    const open = mastersOf(parseClusterNodes(String(await cluster.client(source.address).call('CLUSTER', 'NODES')))).find((node) => node.id === source.id)!
    const rolled = Object.keys(open.migrating).length
    expect(rolled, 'kill -9 left slots open').to.be.greaterThan(0)
    const done = readFileSync(journal, 'utf8').split('\n').filter((line) => line.includes('slot-done')).length
    const fixed = await runCli(['fix', cluster.seed, '--yes', '--journal', journal])
    expect(fixed.exitCode, fixed.stderr).to.equal(0)
    const resumed = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--resume', journal, '--max-keys-per-sec', '50000', '--yes'])
    expect(resumed.exitCode, resumed.stderr).to.equal(0)
    // the slots fix rolled forward (and any the kill caught between close and journal) are
    // finished, not moved, by this run
    expect(resumed.json.slotsFinished, 'slots fix had already moved').to.be.at.least(rolled)
    expect(resumed.json.slotsMoved).to.be.at.most(2000 - done - rolled)
    expect(resumed.json.slotsMoved! + resumed.json.slotsFinished!).to.equal(2000 - done)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })

  it('SIGTERM (a CI job cancelled, systemd stopping a unit) stops like Ctrl-C within a few seconds, leaving no slot open', async function () {
    this.timeout(120_000)
    const [source, target] = await pair()
    const journal = path.join(dir, 'sigterm.jsonl')
    const child = spawnCli(['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '3000', '--max-keys-per-sec', '600', '--yes', '--journal', journal])
    await waitForJournalLines(journal, 5)
    const sent = Date.now()
    child.kill('SIGTERM')
    const run = await child
    const stopMs = Date.now() - sent
    expect(run.exitCode, String(run.stderr)).to.equal(130)
    expect(String(run.stderr)).to.match(/slotctl: SIGTERM: finishing the \d+ slot\(s\) in flight, then stopping/)
    // about a second of slots is open at a time under a throttle: the stop is quick
    expect(stopMs, `stopped after ${stopMs} ms`).to.be.below(8000)
    // each node shows its own markers only
    for (const address of cluster.addresses) {
      const self = parseClusterNodes(String(await cluster.client(address).call('CLUSTER', 'NODES'))).find((node) => node.myself)!
      expect({...self.importing, ...self.migrating}, address).to.deep.equal({})
    }
    const resumed = await runCliJson<MigrationResult>(['reshard', cluster.seed, '--resume', journal, '--max-keys-per-sec', '50000', '--yes'])
    expect(resumed.exitCode, resumed.stderr).to.equal(0)
    expect(await clusterDigest(cluster)).to.deep.equal(original)
  })
})
