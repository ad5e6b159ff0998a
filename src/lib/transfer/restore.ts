/**
 * restore: a backup's keys back into a cluster, or a local cluster started from its files.
 *
 * --into: each RDB is loaded by a local throw-away server and its keys move into the cluster
 * with import's machinery (keys land by slot, so the new cluster's layout may differ), one file
 * at a time to bound memory. --start: one local cluster-enabled server per file, each loading
 * its file, given the saved slot map. Both end by comparing the key count and the content
 * digest with the manifest.
 */
import path from 'node:path'

import type {ClusterSnapshot} from '../cluster/loader.js'
import {NODE_PARALLELISM, NodePool, mapLimit} from '../cluster/connection.js'
import {type SlotRange, expandRanges, formatSlots, toRanges} from '../core/slots.js'
import {mastersOf, myselfOf, parseClusterNodes} from '../cluster/topology.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {ensurePrivateDir} from '../files.js'
import type {SandboxState} from '../local/sandbox.js'
import {createNodeDir, writeSandboxState} from '../local/sandbox.js'
import {type RunningServer, describeServerBinary, findFreePorts, startServer, stopServer} from '../local/servers.js'
import {applyCreatePlan} from '../nodes/create.js'
import type {Throttle} from '../migrate/throttle.js'
import {combineDigests, digestServer} from '../keys/digest.js'
import type {Manifest, ManifestFile} from './manifest.js'
import {type Conflict, transferKeys} from './mover.js'
import type {NodeRef} from '../core/result.js'
import {RDB_FILE_NAME, placeRdb, waitLoaded, withRdbServer} from './rdb-server.js'

export interface Expected {
  keys: number
  digest: string
  /** keys with a TTL: some may expire before they are counted again */
  keysWithExpiry: number
}

export interface RestoredFile {
  file: string
  master: NodeRef
  keys: number
  keysRestored: number
  elapsedMs: number
}

export interface RestoreIntoOptions {
  dir: string
  serverBinary?: string
  replace: boolean
  batchKeys: number
  timeoutMs: number
  throttle?: Throttle
  signal?: AbortSignal
  onBatch?: (keys: number) => void
  onFile?: (file: RestoredFile) => void
}

export interface RestoreIntoOutcome {
  files: RestoredFile[]
  conflicts: Conflict[]
  /** per file: what the manifest (or, without one, the loaded file) says it holds */
  expected: Expected[]
  interrupted: boolean
  failure?: SlotctlError
}

function expectedFromManifest(entry: ManifestFile, loaded: {keys: number; keysWithExpiry: number}, digest: string): Expected {
  return {digest, keys: entry.keys ?? loaded.keys, keysWithExpiry: entry.keysWithExpiry ?? loaded.keysWithExpiry}
}

async function restoreFile(pool: NodePool, owners: readonly NodeRef[], entry: ManifestFile, options: RestoreIntoOptions, outcome: RestoreIntoOutcome): Promise<void> {
  const started = Date.now()
  await withRdbServer(path.join(options.dir, entry.file), options.serverBinary, async (server) => {
    if (entry.keys !== null && server.keys !== entry.keys && entry.keysWithExpiry === 0) {
      throw new SlotctlError(`${entry.file} holds ${server.keys} keys once loaded, the manifest says ${entry.keys}`, {code: 'E_BACKUP_MISMATCH'})
    }
    // without a digest in the manifest, the file itself is the reference
    const digest = entry.digest ?? (await digestServer(server.client)).digest
    outcome.expected.push(expectedFromManifest(entry, server, digest))
    const moved = await transferKeys(server.client, pool, owners, {
      batchKeys: options.batchKeys,
      copy: false,
      onBatch: options.onBatch,
      replace: options.replace,
      // the source is the server slotctl started on the RDB file: MIGRATE may authenticate
      sourceOwnedBySlotctl: true,
      signal: options.signal,
      sourceAddress: `the local server loading ${entry.file}`,
      sourceKeys: server.keys,
      throttle: options.throttle,
      timeoutMs: options.timeoutMs,
    })
    outcome.conflicts.push(...moved.conflicts)
    const file = {elapsedMs: Date.now() - started, file: entry.file, keys: server.keys, keysRestored: moved.keys, master: entry.master}
    outcome.files.push(file)
    options.onFile?.(file)
    if (moved.failure) throw moved.failure
    if (moved.interrupted) outcome.interrupted = true
  })
}

export async function restoreInto(pool: NodePool, owners: readonly NodeRef[], manifest: Manifest, options: RestoreIntoOptions): Promise<RestoreIntoOutcome> {
  const outcome: RestoreIntoOutcome = {conflicts: [], expected: [], files: [], interrupted: false}
  for (const entry of manifest.files) {
    if (options.signal?.aborted) {
      outcome.interrupted = true
      break
    }
    try {
      await restoreFile(pool, owners, entry, options, outcome)
    } catch (error) {
      outcome.failure = error instanceof SlotctlError ? error : new SlotctlError(`${entry.file}: ${errorMessage(error)}`, {code: 'E_RESTORE'})
      break
    }
    if (outcome.interrupted) break
  }
  return outcome
}

export interface Verification {
  expected: {keys: number; digest: string}
  actual: {keys: number; digest: string}
  keysMatch: boolean
  digestMatch: boolean
}

/** Key count and content digest of every master that owns slots, against what the files held. */
export async function verifyCluster(pool: NodePool, masters: readonly NodeRef[], expected: readonly Expected[]): Promise<Verification> {
  const digests = await mapLimit(masters, NODE_PARALLELISM, async (master) => digestServer(await pool.client(master.address)))
  const actual = {digest: combineDigests(digests.map((entry) => entry.digest)), keys: digests.reduce((sum, entry) => sum + entry.keys, 0)}
  const wanted = {digest: combineDigests(expected.map((entry) => entry.digest)), keys: expected.reduce((sum, entry) => sum + entry.keys, 0)}
  return {actual, digestMatch: actual.digest === wanted.digest, expected: wanted, keysMatch: actual.keys === wanted.keys}
}

export function mastersWithSlots(snapshot: ClusterSnapshot): NodeRef[] {
  return mastersOf(snapshot.nodes).filter((node) => node.slots.length > 0).map((node) => ({address: node.address, id: node.id}))
}

export interface StartOptions {
  /** the backup */
  dir: string
  /** where the new servers live (empty) */
  target: string
  host: string
  serverBinary?: string
  waitTimeoutMs: number
}

export interface StartedNode {
  id: string
  address: string
  pid: number
  /** the backup's master whose file and slots it took */
  from: NodeRef
  slots: SlotRange[]
}

/** Slots the node claimed on its own while loading (a node takes the unassigned slots it holds keys for). */
async function ownSlots(pool: NodePool, address: string): Promise<number[]> {
  const self = myselfOf(parseClusterNodes(String(await (await pool.client(address)).call('CLUSTER', 'NODES'))))
  return self ? expandRanges(self.slots) : []
}

/**
 * Starts one cluster-enabled server per file (detached: they keep running, recorded in
 * sandbox.json so `slotctl sandbox stop --dir TARGET` stops exactly them), each loading its
 * file, then forms them into a cluster with the saved slot map.
 */
export async function startFromBackup(manifest: Manifest, options: StartOptions): Promise<{state: SandboxState; nodes: StartedNode[]}> {
  await ensurePrivateDir(options.target)
  const ports = await findFreePorts(manifest.files.length, options.host)
  const servers: RunningServer[] = []
  const state: SandboxState = {createdAt: new Date().toISOString(), dir: options.target, keys: 0, masters: manifest.files.length, nodes: [], ready: false, replicas: 0, seed: ''}
  const pool = new NodePool({commandTimeoutMs: 60_000, connectTimeoutMs: 3000})
  try {
    for (const [i, entry] of manifest.files.entries()) {
      // marked as the sandbox marks its node dirs, or sandbox stop would refuse to remove it
      const dir = await createNodeDir(options.target, ports[i])
      await placeRdb(path.join(options.dir, entry.file), dir)
      const server = await startServer({binary: options.serverBinary, detached: true, dir, extraArgs: ['--dbfilename', RDB_FILE_NAME], host: options.host, port: ports[i]}, 60_000)
      servers.push(server)
      state.server ??= describeServerBinary(server.binary)
      state.nodes.push({address: server.address, dir: server.dir, host: server.host, pid: server.pid, port: server.port})
      state.seed ||= server.address
      await writeSandboxState(state)
    }
    await mapLimit(servers, NODE_PARALLELISM, async (server) => waitLoaded(await pool.client(server.address), server.address))
    const masters = await mapLimit(manifest.files, NODE_PARALLELISM, async (entry, i) => {
      const claimed = new Set(await ownSlots(pool, servers[i].address))
      const wanted = expandRanges(entry.slots)
      const wantedSet = new Set(wanted)
      const stray = [...claimed].filter((slot) => !wantedSet.has(slot))
      if (stray.length > 0) throw new SlotctlError(`${entry.file} holds keys of slot(s) ${formatSlots(stray)}, which its master did not own`, {code: 'E_CORRUPT_BACKUP'})
      return {address: servers[i].address, host: servers[i].host, slots: toRanges(wanted.filter((slot) => !claimed.has(slot)))}
    })
    const ids = await applyCreatePlan(pool, {masters, replicas: [], violations: []}, {waitTimeoutMs: options.waitTimeoutMs})
    state.ready = true
    state.keys = manifest.files.reduce((sum, entry) => sum + (entry.keys ?? 0), 0)
    await writeSandboxState(state)
    const nodes = manifest.files.map((entry, i) => ({address: servers[i].address, from: entry.master, id: ids.get(servers[i].address) as string, pid: servers[i].pid, slots: entry.slots}))
    return {nodes, state}
  } catch (error) {
    await Promise.all(servers.map((server) => stopServer(server)))
    throw error
  } finally {
    await pool.closeAll()
  }
}
