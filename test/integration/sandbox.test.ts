import {expect} from 'chai'
import {existsSync, readFileSync} from 'node:fs'
import {mkdtemp, readFile, rm, symlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {readNodeState} from '../../src/lib/cluster/loader.js'
import {NodePool} from '../../src/lib/cluster/connection.js'
import {isAlive, stopServer} from '../../src/lib/local/servers.js'
import type {SandboxState} from '../../src/lib/local/sandbox.js'
import {parseInfo} from '../../src/lib/cluster/topology.js'
import {TestCluster, serverUnderTest} from '../helpers/cluster-harness.js'
import {expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'

interface StatusJson {
  running: boolean
  ready: boolean
  seed: string
  nodes: Array<{address: string; pid: number; alive: boolean; role: string}>
}

const KEYS = 1000

describe('sandbox start / status / stop (real servers)', () => {
  let dir: string
  let state: (SandboxState & {status?: string}) | undefined

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-sandbox-test-'))
    const started = await runCliJson<SandboxState & {status: string}>(['sandbox', 'start', '--masters', '3', '--replicas', '1', '--keys', String(KEYS), '--dir', dir, '--server', serverUnderTest().path])
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

describe('sandbox --server: any redis-server or valkey-server, named in messages, stopped whatever its file is called', () => {
  let dir: string
  let state: (SandboxState & {status?: string}) | undefined

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-sandbox-server-'))
  })

  after(async () => {
    await Promise.all((state?.nodes ?? []).map((node) => stopServer({...node, binary: state?.server?.path})))
    await rm(dir, {force: true, recursive: true})
  })

  it('starts and stops the given binary under an unusual name, naming the server found', async () => {
    const server = serverUnderTest()
    // a name that is neither redis-server nor valkey-server: stop must still recognise it
    const renamed = path.join(dir, 'kv-sandbox-binary')
    await symlink(server.path, renamed)
    const sandboxDir = path.join(dir, 'sandbox')
    const started = await runCli(['sandbox', 'start', '--masters', '3', '--replicas', '0', '--dir', sandboxDir, '--server', renamed])
    expect(started.exitCode, started.stderr).to.equal(0)
    expect(started.stderr).to.include(`starting 3 ${server.name} ${server.version} processes`)
    expect(started.stdout).to.include(`on ${server.name} ${server.version}`)
    state = JSON.parse(readFileSync(path.join(sandboxDir, 'sandbox.json'), 'utf8')) as SandboxState
    expect(state.server).to.include({name: server.name, path: renamed, version: server.version})
    for (const node of state.nodes) expect(isAlive(node.pid), node.address).to.equal(true)

    const status = await runCli(['sandbox', 'status', '--dir', sandboxDir])
    expect(status.stdout).to.include(`server: ${server.name} ${server.version}`)

    const stopped = await runCli(['sandbox', 'stop', '--dir', sandboxDir])
    expect(stopped.exitCode, stopped.stderr).to.equal(0)
    expect(stopped.stdout).to.include(`stopped 3 ${server.name} process(es)`)
    for (const node of state.nodes) expect(isAlive(node.pid), `pid ${node.pid}`).to.equal(false)
  })

  it('refuses a --server that is not a server, with exit 2 and one line', async () => {
    expectOneCleanLine(await runCli(['sandbox', 'start', '--dir', path.join(dir, 'x'), '--server', '/bin/true']), 2, /is not a redis-server or valkey-server/)
    expectOneCleanLine(await runCli(['sandbox', 'start', '--dir', path.join(dir, 'x'), '--server', path.join(dir, 'missing')]), 2, /does not exist/)
    expect(existsSync(path.join(dir, 'x', 'sandbox.json'))).to.equal(false)
  })
})

describe('sandbox: a state file naming what slotctl did not create is refused, and nothing outside is touched', () => {
  let dir: string
  let state: SandboxState
  let original: string
  let foreign: TestCluster
  let foreignDir: string
  const stateFile = () => path.join(dir, 'sandbox.json')
  const tamper = async (change: (copy: SandboxState) => void) => {
    const copy = JSON.parse(original) as SandboxState
    change(copy)
    await writeFile(stateFile(), JSON.stringify(copy))
  }

  before(async function () {
    this.timeout(120_000)
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-sandbox-tamper-'))
    const started = await runCliJson<SandboxState & {status: string}>(['sandbox', 'start', '--masters', '3', '--replicas', '0', '--dir', dir, '--server', serverUnderTest().path])
    expect(started.exitCode, started.stderr).to.equal(0)
    state = started.json
    original = await readFile(stateFile(), 'utf8')
    // a server slotctl's sandbox did not start, and a directory it did not create
    foreign = await TestCluster.start({form: false, nodes: 1})
    foreignDir = await mkdtemp(path.join(tmpdir(), 'slotctl-not-a-sandbox-'))
    await writeFile(path.join(foreignDir, 'precious.txt'), 'keep me')
  })

  after(async () => {
    await Promise.all((state?.nodes ?? []).map((node) => stopServer(node)))
    await foreign?.stop()
    await rm(dir, {force: true, recursive: true})
    await rm(foreignDir, {force: true, recursive: true})
  })

  const sandboxUntouched = () => {
    for (const node of state.nodes) {
      expect(isAlive(node.pid), `sandbox pid ${node.pid}`).to.equal(true)
      expect(existsSync(node.dir), node.dir).to.equal(true)
    }
  }

  it('a foreign directory: stop and start refuse, the directory and every server stay', async () => {
    await tamper((copy) => {
      copy.nodes[1].dir = foreignDir
    })
    expectOneCleanLine(await runCli(['sandbox', 'stop', '--dir', dir]), 1, /refusing to use the sandbox state file .*not a directory slotctl creates/)
    expectOneCleanLine(await runCli(['sandbox', 'start', '--masters', '3', '--replicas', '0', '--dir', dir]), 1, /refusing to use the sandbox state file/)
    expect(readFileSync(path.join(foreignDir, 'precious.txt'), 'utf8')).to.equal('keep me')
    sandboxUntouched()
  })

  it('a directory of the right name without slotctl\'s marker is refused too', async () => {
    await rm(path.join(state.nodes[2].dir, '.slotctl-sandbox-node'))
    await writeFile(stateFile(), original)
    try {
      expectOneCleanLine(await runCli(['sandbox', 'stop', '--dir', dir]), 1, /lacks the marker/)
      sandboxUntouched()
    } finally {
      await writeFile(path.join(state.nodes[2].dir, '.slotctl-sandbox-node'), JSON.stringify({port: state.nodes[2].port}))
    }
  })

  it('a foreign server\'s pid and port: refused, the foreign server keeps running', async () => {
    const stranger = foreign.servers[0]
    await tamper((copy) => {
      copy.nodes[0].pid = stranger.pid
      copy.nodes[0].port = stranger.port
      copy.nodes[0].dir = path.join(dir, `node-${stranger.port}`)
    })
    expectOneCleanLine(await runCli(['sandbox', 'stop', '--dir', dir]), 1, new RegExp(`pid ${stranger.pid} is a server on port ${stranger.port} that does not run in`))
    expect(isAlive(stranger.pid)).to.equal(true)
    expect(Number(parseInfo(String(await foreign.client().info('server'))).process_id)).to.equal(stranger.pid)
    sandboxUntouched()
  })

  it('malformed state is one clear line, never a crash', async () => {
    await writeFile(stateFile(), JSON.stringify({nodes: 'all of them'}))
    expectOneCleanLine(await runCli(['sandbox', 'stop', '--dir', dir]), 1, /has no list of nodes/)
    await writeFile(stateFile(), JSON.stringify({nodes: [{pid: 'x'}]}))
    expectOneCleanLine(await runCli(['sandbox', 'stop', '--dir', dir]), 1, /node 1 is malformed/)
    sandboxUntouched()
  })

  it('a pid reused by an unrelated process (the server died, e.g. at a reboot) is left alone; the rest stops', async () => {
    await stopServer(state.nodes[0])
    await tamper((copy) => {
      copy.nodes[0].pid = process.pid
    })
    const stopped = await runCliJson<{stopped: number}>(['sandbox', 'stop', '--dir', dir])
    expect(stopped.exitCode, stopped.stderr).to.equal(0)
    expect(stopped.json.stopped).to.equal(2)
    expect(isAlive(process.pid)).to.equal(true)
    for (const node of state.nodes) {
      expect(isAlive(node.pid), `pid ${node.pid}`).to.equal(false)
      expect(existsSync(node.dir), node.dir).to.equal(false)
    }
    expect(existsSync(stateFile())).to.equal(false)
  })
})
