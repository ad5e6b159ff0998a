/**
 * Benchmark on Valkey: reshard 4096 slots of a 3+3 cluster holding 250k keys of 64-byte
 * values (about 62k keys move) between two masters that have replicas. Contenders, each on a
 * fresh cluster with the same data:
 *   - slotctl reshard, default protocol (atomic CLUSTER MIGRATESLOTS on Valkey >= 9);
 *   - slotctl reshard --legacy-migrate (SETSLOT + MIGRATE, SETSLOTs spread over connections);
 *   - valkey-cli --cluster reshard --cluster-pipeline 1000 (SETSLOT + MIGRATE, slot by slot).
 * Prints the ratios and appends a dated line to bench/RESULTS.md.
 *
 * BENCH_SERVER=path/to/valkey-server (required), BENCH_CLI=path/to/valkey-cli (default: the
 * valkey-cli next to the server), BENCH_VALKEY_KEYS overrides the key count.
 * `BENCH_SERVER=... npm run bench -- valkey`, or `node bench/valkey.bench.js` after a build.
 */
import {existsSync} from 'node:fs'
import {appendFile, mkdtemp, rm} from 'node:fs/promises'
import {cpus, loadavg, tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {Redis} from 'ioredis'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const SERVER = process.env.BENCH_SERVER
const CLI = process.env.BENCH_CLI ?? (SERVER ? path.join(path.dirname(SERVER), 'valkey-cli') : '')
const KEYS = Number(process.env.BENCH_VALKEY_KEYS ?? 250_000)
const SLOTS = 4096
const VALUE = 'v'.repeat(64)

const lib = async (name) => import(path.join(root, 'dist', 'lib', `${name}.js`))

async function freshCluster(dir, label) {
  const {findFreePorts, startServer} = await lib('local/servers')
  const {applyCreatePlan} = await lib('nodes/create')
  const {planCreate} = await lib('plan/create')
  const {NodePool} = await lib('cluster/connection')
  const ports = await findFreePorts(6, '127.0.0.1')
  const servers = await Promise.all(ports.map((port) => startServer({binary: SERVER, dir: path.join(dir, `${label}-${port}`), host: '127.0.0.1', nodeTimeoutMs: 15_000, port})))
  const pool = new NodePool()
  try {
    await applyCreatePlan(pool, planCreate(servers.map((s) => ({address: s.address, host: s.host})), 1), {waitTimeoutMs: 60_000})
  } finally {
    await pool.closeAll()
  }
  return {seed: servers[0].address, servers}
}

async function masters(cluster) {
  const {mastersOf, parseClusterNodes, slotCount} = await lib('cluster/topology')
  const client = new Redis({host: '127.0.0.1', port: cluster.servers[0].port})
  try {
    return mastersOf(parseClusterNodes(String(await client.call('CLUSTER', 'NODES')))).sort((a, b) => slotCount(b) - slotCount(a))
  } finally {
    client.disconnect()
  }
}

async function loadKeys(cluster) {
  const {Cluster} = await import('ioredis')
  const client = new Cluster([{host: '127.0.0.1', port: cluster.servers[0].port}])
  try {
    for (let first = 0; first < KEYS; first += 5000) {
      const writes = []
      for (let i = first; i < Math.min(KEYS, first + 5000); i++) writes.push(client.set(`key:${i}`, VALUE))
      await Promise.all(writes)
    }
    // every write on the replicas too, before anything is timed
    for (const server of cluster.servers) {
      const node = new Redis({host: '127.0.0.1', port: server.port})
      if (String(await node.call('ROLE')).startsWith('master')) await node.call('WAIT', 1, 60_000)
      node.disconnect()
    }
  } finally {
    client.disconnect()
  }
}

async function totalKeys(cluster) {
  let total = 0
  for (const server of cluster.servers) {
    const client = new Redis({host: '127.0.0.1', port: server.port})
    try {
      if (String(await client.call('ROLE')).startsWith('master')) total += Number(await client.dbsize())
    } finally {
      client.disconnect()
    }
  }
  return total
}

async function timed(command, args) {
  const started = process.hrtime.bigint()
  const result = await execa(command, args, {env: {NO_COLOR: '1', XDG_STATE_HOME: path.join(tmpdir(), 'slotctl-bench-state')}, input: '', reject: false, timeout: 1_800_000})
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (result.exitCode !== 0) throw new Error(`${path.basename(command)} failed (exit ${result.exitCode}): ${String(result.stderr || result.stdout).slice(-800)}`)
  return ms
}

async function contender(dir, label, run) {
  const {stopServer} = await lib('local/servers')
  let cluster
  try {
    cluster = await freshCluster(dir, label)
    await loadKeys(cluster)
    const [source, target] = await masters(cluster)
    const ms = await run(cluster, source, target)
    const after = await totalKeys(cluster)
    if (after !== KEYS) throw new Error(`${label}: ${after} keys after the run, expected ${KEYS}`)
    return ms
  } finally {
    if (cluster) await Promise.all(cluster.servers.map((server) => stopServer(server)))
  }
}

export default async function main() {
  if (!SERVER || !existsSync(SERVER)) throw new Error('set BENCH_SERVER to a valkey-server binary (skipped)')
  const version = (await execa(SERVER, ['--version'])).stdout.match(/v=(\S+)/)?.[1] ?? '?'
  const dir = await mkdtemp(path.join(tmpdir(), 'slotctl-bench-valkey-'))
  const slotctl = path.join(root, 'bin', 'run.js')
  const load = loadavg()[0].toFixed(1)
  try {
    const results = {}
    results.slotctl = await contender(dir, 'slotctl', (c, s, t) => timed(process.execPath, [slotctl, 'reshard', c.seed, '--from', s.id, '--to', t.id, '--slots', String(SLOTS), '--yes', '--progress', 'none']))
    results.legacy = await contender(dir, 'legacy', (c, s, t) => timed(process.execPath, [slotctl, 'reshard', c.seed, '--from', s.id, '--to', t.id, '--slots', String(SLOTS), '--legacy-migrate', '--yes', '--progress', 'none']))
    results.cli = await contender(dir, 'cli', (c, s, t) => timed(CLI, ['--cluster', 'reshard', c.seed, '--cluster-from', s.id, '--cluster-to', t.id, '--cluster-slots', String(SLOTS), '--cluster-yes', '--cluster-pipeline', '1000']))
    const line = `${new Date().toISOString()} valkey ${version} reshard ${SLOTS} slots of a 3+3 cluster with ${KEYS} keys (load ${load}, ${cpus().length} cpus): slotctl default ${(results.slotctl / 1000).toFixed(2)} s, slotctl --legacy-migrate ${(results.legacy / 1000).toFixed(2)} s, valkey-cli --cluster-pipeline 1000 ${(results.cli / 1000).toFixed(2)} s; default vs valkey-cli ${(results.cli / results.slotctl).toFixed(2)}x, legacy vs valkey-cli ${(results.cli / results.legacy).toFixed(2)}x, default vs legacy ${(results.legacy / results.slotctl).toFixed(2)}x`
    console.log(line)
    await appendFile(path.join(root, 'bench', 'RESULTS.md'), `- ${line}\n`)
  } finally {
    await rm(dir, {force: true, recursive: true})
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
