import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'
import {execa} from 'execa'

import {mastersOf, parseClusterNodes, slotCount} from '../../src/lib/cluster/topology.js'
import {TestCluster} from '../helpers/cluster-harness.js'
import {clusterDigest, writeDataset} from '../helpers/dataset.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const bin = path.join(root, 'bin', process.env.SLOTCTL_TEST_DEV === '1' ? 'dev.js' : 'run.js')

/**
 * Runs slotctl on a real pseudo-terminal (util-linux `script`), answering each prompt as it
 * appears, the way an operator types.
 */
async function onTerminal(args: string[], answers: Array<[RegExp, string]>): Promise<{exitCode: number; screen: string}> {
  const child = execa('script', ['-qfec', [process.execPath, bin, ...args].join(' '), '/dev/null'], {
    env: {CI: '', NO_COLOR: '1', TERM: 'dumb'},
    reject: false,
    stdin: 'pipe',
    timeout: 60_000,
  })
  let screen = ''
  let next = 0
  child.stdout?.on('data', (chunk: Buffer) => {
    screen += chunk.toString()
    while (next < answers.length && answers[next][0].test(screen)) {
      child.stdin?.write(`${answers[next][1]}\r`)
      next++
    }
  })
  const result = await child
  return {exitCode: result.exitCode ?? -1, screen}
}

describe('prompts on a terminal (reshard)', () => {
  let cluster: TestCluster
  let dir: string

  const masters = async () => mastersOf(parseClusterNodes(String(await cluster.client().call('CLUSTER', 'NODES'))))

  before(async function () {
    this.timeout(120_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-tty-'))
    cluster = await TestCluster.start({masters: 3, replicas: 0})
    await writeDataset(cluster.clusterClient(), {keys: 5000})
  })

  after(async () => {
    await cluster?.stop()
    await rm(dir, {force: true, recursive: true})
  })

  it('asks for the target, the slot count and the sources, shows the plan, and moves after "y"', async () => {
    const before = await clusterDigest(cluster)
    const [target] = await masters()
    const {exitCode, screen} = await onTerminal(['reshard', cluster.seed, '--journal', path.join(dir, 'yes.jsonl')], [
      [/Which master receives the slots/, target.id],
      [/How many slots to move/, '100'],
      [/Source master ids/, 'all'],
      [/Move 100 slot\(s\) holding \d+ key\(s\) now\?/, 'y'],
    ])
    expect(exitCode, screen).to.equal(0)
    expect(screen).to.match(/from\s.*to\s.*slots/s)
    expect(slotCount((await masters()).find((m) => m.id === target.id)!)).to.equal(slotCount(target) + 100)
    expect(await clusterDigest(cluster)).to.deep.equal(before)
  })

  it('a "no" at the confirmation cancels: exit 1, nothing moved', async () => {
    const [target] = await masters()
    const {exitCode, screen} = await onTerminal(['reshard', cluster.seed, '--to', target.id, '--from', 'all', '--slots', '50', '--journal', path.join(dir, 'no.jsonl')], [
      [/Move 50 slot\(s\) holding \d+ key\(s\) now\?/, 'n'],
    ])
    expect(exitCode, screen).to.equal(1)
    expect(screen).to.match(/cancelled: nothing was changed/)
    expect(slotCount((await masters()).find((m) => m.id === target.id)!)).to.equal(slotCount(target))
  })
})
