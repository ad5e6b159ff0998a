import {expect} from 'chai'
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {readNodeState} from '../../src/lib/cluster/loader.js'
import {NodePool} from '../../src/lib/cluster/connection.js'
import {isAlive, stopServer} from '../../src/lib/local/servers.js'
import type {SandboxState} from '../../src/lib/local/sandbox.js'
import {parseInfo} from '../../src/lib/cluster/topology.js'
import {runCli, runCliJson} from '../helpers/cli.js'

interface StatusJson {
  running: boolean
  ready: boolean
  seed: string
  nodes: Array<{address: string; pid: number; alive: boolean; role: string}>
}

const KEYS = 1000

describe('sandbox start / status / stop (real redis-server)', () => {
  let dir: string
  let state: SandboxState | undefined

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-sandbox-test-'))
    const started = await runCliJson<SandboxState>(['sandbox', 'start', '--masters', '3', '--replicas', '1', '--keys', String(KEYS), '--dir', dir])
    expect(started.exitCode, started.stderr).to.equal(0)
    state = started.json
  })

  after(async () => {
    // whatever a failed test left behind: only the pids this sandbox recorded
    await Promise.all((state?.nodes ?? []).map((node) => stopServer(node)))
    await rm(dir, {force: true, recursive: true})
  })

  it('starts 6 live servers, forms a cluster that is ok everywhere, and loads the demo keys', async () => {
    expect(state?.nodes).to.have.length(6)
    expect(state?.status).to.equal('started')
    for (const node of state!.nodes) expect(isAlive(node.pid), node.address).to.equal(true)
    const pool = new NodePool()
    try {
      const keysPerMaster: number[] = []
      for (const node of state!.nodes) {
        const client = await pool.client(node.address)
        expect(Number(parseInfo(String(await client.info('server'))).process_id)).to.equal(node.pid)
        const nodeState = await readNodeState(client, node.address)
        expect(nodeState.clusterInfo.cluster_state, node.address).to.equal('ok')
        expect(nodeState.nodes).to.have.length(6)
        if (nodeState.nodes.find((n) => n.myself)?.role === 'master') keysPerMaster.push(Number(await client.dbsize()))
      }
      expect(keysPerMaster).to.have.length(3)
      expect(keysPerMaster.reduce((sum, count) => sum + count, 0)).to.equal(KEYS)
      // spread over the slots: every master holds a fair share, not just one of them
      for (const count of keysPerMaster) expect(count).to.be.greaterThan(KEYS / 6)
    } finally {
      await pool.closeAll()
    }
  })

  it('records its state in the --dir', () => {
    expect(existsSync(path.join(dir, 'sandbox.json'))).to.equal(true)
  })

  it('status lists every node as alive with its role', async () => {
    const status = await runCliJson<StatusJson>(['sandbox', 'status', '--dir', dir])
    expect(status.exitCode, status.stderr).to.equal(0)
    expect(status.json.running).to.equal(true)
    expect(status.json.seed).to.equal(state!.seed)
    expect(status.json.nodes.map((node) => node.pid).sort()).to.deep.equal(state!.nodes.map((node) => node.pid).sort())
    expect(status.json.nodes.every((node) => node.alive)).to.equal(true)
    expect(status.json.nodes.filter((node) => node.role === 'master')).to.have.length(3)
    expect(status.json.nodes.filter((node) => node.role === 'replica')).to.have.length(3)

    const text = await runCli(['sandbox', 'status', '--dir', dir])
    for (const node of state!.nodes) expect(text.stdout).to.include(node.address).and.include(String(node.pid))
  })

  it('refuses a second start in the same dir and leaves the running sandbox alone', async () => {
    const again = await runCli(['sandbox', 'start', '--dir', dir])
    expect(again.exitCode).to.equal(1)
    expect(again.stderr).to.match(/already running/).and.match(/sandbox stop/)
    expect(again.stderr).not.to.match(/\n\s+at /)
    for (const node of state!.nodes) expect(isAlive(node.pid), node.address).to.equal(true)
  })

  it('stop ends exactly the recorded processes and removes the state; a second stop is harmless', async () => {
    const stopped = await runCliJson<{stopped: number}>(['sandbox', 'stop', '--dir', dir])
    expect(stopped.exitCode, stopped.stderr).to.equal(0)
    expect(stopped.json.stopped).to.equal(6)
    for (const node of state!.nodes) expect(isAlive(node.pid), `pid ${node.pid}`).to.equal(false)
    expect(existsSync(path.join(dir, 'sandbox.json'))).to.equal(false)

    const again = await runCliJson<{stopped: number}>(['sandbox', 'stop', '--dir', dir])
    expect(again.exitCode, again.stderr).to.equal(0)
    expect(again.json.stopped).to.equal(0)

    const status = await runCli(['sandbox', 'status', '--dir', dir])
    expect(status.exitCode).to.equal(1)
    expect(status.stdout).to.match(/no sandbox recorded/)
  })
})

describe('sandbox start: bad input', () => {
  it('rejects fewer than 3 masters and a base port whose bus ports would pass 32767, with exit 2', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-sandbox-test-'))
    try {
      const few = await runCli(['sandbox', 'start', '--masters', '2', '--dir', dir])
      expect(few.exitCode).to.equal(2)
      expect(few.stderr).to.match(/at least 3 masters/)
      const high = await runCli(['sandbox', 'start', '--port', '22765', '--dir', dir])
      expect(high.exitCode).to.equal(2)
      expect(high.stderr).to.match(/bus ports/)
      expect(existsSync(path.join(dir, 'sandbox.json'))).to.equal(false)
    } finally {
      await rm(dir, {force: true, recursive: true})
    }
  })
})
