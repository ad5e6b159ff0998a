import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'
import {execa} from 'execa'

import type {CheckResult} from '../../src/commands/check.js'
import type {InfoResult} from '../../src/commands/info.js'
import {parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {configHome, runCli, runCliJson, spawnCli, stateHome} from '../helpers/cli.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

const bin = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..'), 'bin', 'run.js')

/** Resolves once `text` has appeared `times` times in what the child wrote to stdout (or rejects after `timeoutMs`). */
async function waitForOutput(child: ReturnType<typeof spawnCli>, text: string, times: number, timeoutMs: number): Promise<string> {
  let out = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`'${text}' not seen ${times} times within ${timeoutMs} ms; stdout so far: ${out.slice(-2000)}`)), timeoutMs)
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.split(text).length - 1 >= times) {
        clearTimeout(timer)
        resolve(out)
      }
    })
  })
}

describe('info --map and --watch on a real cluster', () => {
  let cluster: TestCluster

  before(async () => {
    cluster = await TestCluster.start({masters: 3, replicas: 0})
  })

  after(async () => {
    await cluster?.stop()
  })

  it('info --map draws 16 rows of owner letters at 80 columns, an open slot marked, and --json gives the ranges', async () => {
    const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
    const masters = nodes.filter((node) => node.role === 'master')
    const [source, target] = masters
    const slot = source.slots[0][0]
    await cluster.client(target.address).call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id)
    try {
      const human = await runCli(['info', cluster.seed, '--map'], {env: {COLUMNS: '80'}})
      expect(human.exitCode, human.stderr).to.equal(0)
      const lines = human.stdout.split('\n')
      const rows = lines.filter((line) => /^ {0,4}\d+ [A-Z*.+! ]+$/.test(line))
      expect(rows).to.have.length(16)
      for (const line of lines) expect(line.length, line).to.be.at.most(80)
      expect(human.stdout).to.include('* open (migrating/importing)')
      expect(human.stdout).to.include(`open slots (1):  ${slot} `)
      const {exitCode, json} = await runCliJson<InfoResult>(['info', cluster.seed, '--map'])
      expect(exitCode).to.equal(0)
      expect(json.map?.owners.map((owner) => owner.letter)).to.deep.equal(['A', 'B', 'C'])
      expect(json.map?.owners.reduce((sum, owner) => sum + owner.slotCount, 0)).to.equal(16_384)
      expect(json.map?.unassigned).to.deep.equal([])
      expect(json.map?.open).to.deep.equal([{address: target.address, id: target.id, peerId: source.id, slot, state: 'importing'}])
      const owner = json.map?.owners.find((entry) => entry.id === source.id)
      expect(owner?.slots).to.deep.equal(source.slots)
    } finally {
      await cluster.client(target.address).call('CLUSTER', 'SETSLOT', String(slot), 'STABLE')
    }
  })

  it('check --watch 1 redraws at least twice, and Ctrl-C exits with the last state\'s code (0 healthy, 3 with an open slot)', async function () {
    this.timeout(90_000)
    // healthy: exit 0 after the second drawing
    const healthy = spawnCli(['check', cluster.seed, '--watch', '1'])
    await waitForOutput(healthy, '[OK] all 16384 slots covered', 2, 30_000)
    healthy.kill('SIGINT')
    const healthyEnd = await healthy
    expect(healthyEnd.exitCode, String(healthyEnd.stderr)).to.equal(0)
    expect(String(healthyEnd.stdout).split(`Every 1s: slotctl check ${cluster.seed}`).length - 1).to.be.at.least(2)

    // an open slot: the last state is a problem, exit 3
    const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
    const [source, target] = nodes.filter((node) => node.role === 'master')
    const slot = source.slots[0][0]
    await cluster.client(target.address).call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id)
    try {
      const troubled = spawnCli(['check', cluster.seed, '--watch'])
      await waitForOutput(troubled, 'problem(s) found', 2, 30_000)
      troubled.kill('SIGINT')
      const troubledEnd = await troubled
      expect(troubledEnd.exitCode, String(troubledEnd.stderr)).to.equal(3)
      expect(String(troubledEnd.stdout)).to.include(`Every 2s: slotctl check ${cluster.seed}`)
    } finally {
      await cluster.client(target.address).call('CLUSTER', 'SETSLOT', String(slot), 'STABLE')
    }
  })

  it('check --watch --json and info --map --watch --json write one JSON document per line', async function () {
    this.timeout(60_000)
    const child = spawnCli(['check', cluster.seed, '--json', '--watch', '500ms'])
    const out = await waitForOutput(child, '"schemaVersion"', 2, 30_000)
    child.kill('SIGINT')
    expect((await child).exitCode).to.equal(0)
    const documents = out
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as CheckResult)
    expect(documents.length).to.be.at.least(2)
    for (const document of documents) expect(document).to.include({healthy: true})

    // info --watch --map: each line an info document with its map
    const info = spawnCli(['info', cluster.seed, '--map', '--json', '--watch', '500ms'])
    const infoOut = await waitForOutput(info, '"schemaVersion"', 2, 30_000)
    info.kill('SIGINT')
    expect((await info).exitCode).to.equal(0)
    const infos = infoOut
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as InfoResult)
    for (const document of infos) expect(document.map?.owners.reduce((sum, owner) => sum + owner.slotCount, 0)).to.equal(16_384)
  })

  it('a bad --watch interval is one line and exit 2', async () => {
    const result = await runCli(['check', cluster.seed, '--watch', '10ms'])
    expect(result.exitCode).to.equal(2)
    expect(result.stderr.trim().split('\n')[0]).to.match(/^slotctl: error: /)
    expect(result.stderr).to.match(/--watch 10ms is too short/)
  })

  it('--progress map on an 80x40 terminal: the map fills in above the bar, redrawn in place, within 80 columns', async function () {
    this.timeout(120_000)
    const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-map-progress-'))
    try {
      await writeDataset(cluster.clusterClient(), {keys: 3000})
      const before = await clusterDigest(cluster)
      const nodes = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
      const [source, target] = nodes.filter((node) => node.role === 'master')
      // about 55 of the 3000 keys sit in those 300 slots: at 40 keys/s the run lasts over a
      // second, several times the map's 250 ms redraw interval, however fast the machine is
      const args = ['reshard', cluster.seed, '--from', source.id, '--to', target.id, '--slots', '300', '--max-keys-per-sec', '40', '--progress', 'map', '--yes', '--journal', path.join(dir, 'map.jsonl')]
      const command = `stty cols 80 rows 40; ${[process.execPath, bin, ...args].join(' ')}`
      const run = await execa('script', ['-qfec', command, '/dev/null'], {env: {CI: '', NO_COLOR: '1', TERM: 'xterm', XDG_CONFIG_HOME: configHome, XDG_STATE_HOME: stateHome}, reject: false, timeout: 100_000})
      const screen = String(run.stdout)
      expect(run.exitCode, screen).to.equal(0)
      // redrawn: several drawings, each going back up over the last one
      expect(screen.split('each cell: 16 slots').length - 1, screen).to.be.at.least(2)
      // eslint-disable-next-line no-control-regex -- ANSI colour codes
      expect(screen).to.match(/\u001B\[\d+A\r\u001B\[J/)
      // the drawing (map rows, legend, bar) fits; slotctl's notes around it are not its concern
      const drawn = screen
        // eslint-disable-next-line no-control-regex -- ANSI colour codes
        .replaceAll(/\u001B\[[0-9]*[AJK]/g, '')
        .split(/\r?\n/)
        .map((line) => line.split('\r').pop() ?? '')
        .filter((line) => /^ {0,4}\d+ [A-Za-z*.+! ]+$/.test(line) || line.includes('each cell') || line.includes(' slots   ') || /\bETA /.test(line))
      expect(drawn.length).to.be.at.least(2 * 16)
      for (const line of drawn) expect(line.length, line).to.be.at.most(80)
      expect(await clusterDigest(cluster)).to.deep.equal(before)
      const after = parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES')))
      expect(after.find((node) => node.id === target.id)?.slots).to.not.deep.equal(target.slots)
    } finally {
      await rm(dir, {force: true, recursive: true})
    }
  })
})
