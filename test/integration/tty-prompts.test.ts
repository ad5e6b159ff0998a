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

const DOWN = '\u001B[B'

/**
 * Runs slotctl on a real pseudo-terminal (util-linux `script`), answering each prompt as it
 * appears, the way an operator types (each answer is followed by Enter).
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
      // keys one at a time, as typed: readline sees each key press on its own
      // eslint-disable-next-line no-control-regex -- key presses are escape sequences
      const keys = [...answers[next][1].split(/(?=\u001B)|(?<=\u001B\[[A-D])/), '\r'].flatMap((part) => (part.startsWith('\u001B') ? [part] : [...part]))
      keys.reduce((previous, key) => previous.then(() => new Promise((resolve) => setTimeout(() => child.stdin?.write(key, () => resolve()), 20))), Promise.resolve())
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

  it('offers the masters to choose from, re-asks a bad slot count, takes all sources by default, shows the key count, moves after "y"', async () => {
    const before = await clusterDigest(cluster)
    const listed = (await masters()).sort((a, b) => a.slots[0][0] - b.slots[0][0])
    const target = listed[1]
    const {exitCode, screen} = await onTerminal(['reshard', cluster.seed, '--journal', path.join(dir, 'yes.jsonl')], [
      // the second master in the list (by first slot): one arrow down
      [/Which master receives the slots\?/, DOWN],
      [/How many slots to move \(1-16384\)\?/, 'abc'],
      // the rejected answer is cleared and the question asked again
      [/enter a whole number from 1 to 16384/, '100'],
      // every other master comes checked: Enter takes them all
      [/Which masters give the slots\?/, ''],
      [/Move 100 slot\(s\) holding \d+ key\(s\) now\?/, 'y'],
    ])
    expect(exitCode, screen).to.equal(0)
    for (const master of listed) expect(screen).to.match(new RegExp(`${master.address}  ${master.id.slice(0, 8)}  ${slotCount(master)} slots \\(`))
    expect(screen).to.match(/from\s.*to\s.*slots/s)
    const keysAsked = Number(/Move 100 slot\(s\) holding (\d+) key\(s\) now\?/.exec(screen)![1])
    expect(screen).to.match(new RegExp(`100 slot\\(s\\) and ${keysAsked} key\\(s\\)`))
    const after = await masters()
    expect(slotCount(after.find((m) => m.id === target.id)!)).to.equal(slotCount(target) + 100)
    // all sources: both other masters gave slots
    for (const source of listed.filter((m) => m.id !== target.id)) expect(slotCount(after.find((m) => m.id === source.id)!)).to.be.lessThan(slotCount(source))
    expect(await clusterDigest(cluster)).to.deep.equal(before)
  })

  it('a "no" at the confirmation cancels: exit 1, nothing moved; with a throttle the question gives the expected time', async () => {
    const [target, source] = await masters()
    const range = `${source.slots[0][0]}-${source.slots[0][0] + 49}`
    const client = cluster.client(source.address)
    let keys = 0
    for (let slot = source.slots[0][0]; slot < source.slots[0][0] + 50; slot++) keys += Number(await client.call('CLUSTER', 'COUNTKEYSINSLOT', slot))
    const seconds = keys / 10
    const {exitCode, screen} = await onTerminal(['reshard', cluster.seed, '--to', target.id, '--slot-range', range, '--max-keys-per-sec', '10', '--journal', path.join(dir, 'no.jsonl')], [
      [/Move 50 slot\(s\) holding \d+ key\(s\) now, about .* at 10 keys\/s\?/, 'n'],
    ])
    expect(exitCode, screen).to.equal(1)
    expect(screen).to.include(`Move 50 slot(s) holding ${keys} key(s) now, about ${seconds < 60 ? '' : `${Math.floor(seconds / 60)}m`}`)
    expect(screen).to.match(/cancelled: nothing was changed/)
    expect(slotCount((await masters()).find((m) => m.id === target.id)!)).to.equal(slotCount(target))
  })
})
