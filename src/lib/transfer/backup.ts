/**
 * backup: one point-in-time RDB per master (or per master, from one of its healthy replicas),
 * taken over the replication protocol with a bounded number at once; then, one at a time to
 * bound memory, each file is loaded by a local throw-away server to count and digest its keys;
 * then nodes.json and, last, the manifest.
 */
import path from 'node:path'

import type {ClusterSnapshot} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, mapLimit, settleLimit} from '../cluster/connection.js'
import {parseAddress} from '../cluster/address.js'
import {countSlots} from '../core/slots.js'
import {type ClusterNode, mastersOf, parseInfo, replicasOf} from '../cluster/topology.js'
import {SlotctlError, errorMessage} from '../core/errors.js'
import {replaceWithin} from '../files.js'
import {DIGEST_ALGORITHM, digestServer} from '../keys/digest.js'
import type {Issue} from '../core/result.js'
import {MANIFEST_FILE, type Manifest, type ManifestFile, NODES_FILE, type NodesFile, removeQuietly, writeJson} from './manifest.js'
import {fetchRdb} from './rdb-fetch.js'
import {withRdbServer} from './rdb-server.js'
import {keyspaceOf, serverVersionOf} from './source.js'
import {compareNatural} from '../core/compare.js'

export interface BackupSource {
  master: ClusterNode
  /** the master itself, or the replica the file is taken from */
  from: ClusterNode
}

export interface BackupOptions {
  dir: string
  parallel: number
  fromReplicas: boolean
  /** local server binary that loads each file to count and digest it; null: not verified (--no-verify) */
  serverBinary: string | null
  /** a file larger than this is refused; undefined: RDB_LIMIT_FACTOR x the node's used_memory + RDB_LIMIT_SLACK */
  maxRdbBytes?: number
  /** the whole transfer of one file */
  syncTimeoutMs?: number
  slotctlVersion: string
  signal?: AbortSignal
  /** temp files in the making, so an interrupt can remove them */
  partialFiles: Set<string>
  onFetched?: (file: BackupFileResult) => void
}

export interface BackupFileResult extends ManifestFile {
  /** keys without a TTL the node held right before its file was taken */
  nodeKeysWithoutExpiry: number
  elapsedMs: number
  verifyElapsedMs: number | null
}

export interface BackupOutcome {
  files: BackupFileResult[]
  failures: Array<{node: {id: string; address: string}; code: string; message: string}>
  warnings: Issue[]
  manifest?: Manifest
}

const ref = (node: ClusterNode) => ({address: node.address, id: node.id})

async function linkUp(pool: NodePool, replica: ClusterNode): Promise<boolean> {
  try {
    const info = parseInfo(String(await (await pool.client(replica.address)).info('replication')))
    return info.master_link_status === 'up'
  } catch {
    return false
  }
}

/**
 * Per master: itself, or with fromReplicas the first healthy replica (reachable, not flagged,
 * link to the master up). A master without one is backed up from itself, with a warning.
 */
export async function chooseSources(pool: NodePool, snapshot: ClusterSnapshot, fromReplicas: boolean): Promise<{sources: BackupSource[]; warnings: Issue[]}> {
  const masters = mastersOf(snapshot.nodes).filter((node) => node.slots.length > 0).sort((a, b) => a.slots[0][0] - b.slots[0][0])
  const warnings: Issue[] = []
  const sources = await mapLimit(masters, NODE_PARALLELISM, async (master) => {
    if (!fromReplicas) return {from: master, master}
    const candidates = replicasOf(snapshot.nodes, master.id)
      .filter((replica) => replica.address && !replica.failed && !replica.suspectedFailed && snapshot.views[replica.id]?.reachable)
      .sort((a, b) => compareNatural(a.address, b.address))
    for (const replica of candidates) if (await linkUp(pool, replica)) return {from: replica, master}
    warnings.push({code: 'NO_HEALTHY_REPLICA', message: `master ${master.address} has no healthy replica: its file is taken from the master itself`, nodes: [ref(master)]})
    return {from: master, master}
  })
  return {sources, warnings}
}

async function serverVersions(pool: NodePool, nodes: readonly ClusterNode[]): Promise<Map<string, string>> {
  const reachable = nodes.filter((node) => node.address)
  const versions = await settleLimit(reachable, NODE_PARALLELISM, async (node) => serverVersionOf(parseInfo(String(await (await pool.client(node.address)).info('server')))))
  return new Map(reachable.flatMap((node, i) => (versions[i].value ? [[node.id, versions[i].value as string]] : [])))
}

export function nodesFile(snapshot: ClusterSnapshot, versions: ReadonlyMap<string, string>, takenAt: Date): NodesFile {
  const byId = new Map(snapshot.nodes.map((node) => [node.id, node]))
  return {
    nodes: snapshot.nodes.map((node) => {
      const master = node.masterId ? byId.get(node.masterId) : undefined
      return {
        address: node.address,
        configEpoch: node.configEpoch,
        flags: node.flags.filter((flag) => flag !== 'myself'),
        id: node.id,
        master: node.masterId ? {address: master?.address ?? '', id: node.masterId} : null,
        role: node.role,
        serverVersion: versions.get(node.id) ?? null,
        slotCount: countSlots(node.slots),
        slots: node.slots,
      }
    }),
    schemaVersion: 1,
    seed: snapshot.seedAddress,
    takenAt: takenAt.toISOString(),
  }
}

/**
 * An RDB is at most about the size of the data in memory (it is compact, often compressed):
 * a node that sends far more than it holds sends something else, or sends forever.
 */
const RDB_LIMIT_FACTOR = 2
const RDB_LIMIT_SLACK = 64 * 1024 * 1024

/** What the node holds right before its file is taken: the bound on the file's size, and a floor for its key count. */
async function nodeBeforeSync(pool: NodePool, node: ClusterNode, explicitLimit?: number): Promise<{maxBytes: number; keysWithoutExpiry: number}> {
  const info = parseInfo(String(await (await pool.client(node.address)).info()))
  const db0 = keyspaceOf(info).find((entry) => entry.db === 0)
  const keysWithoutExpiry = db0 ? db0.keys - db0.expires : 0
  if (explicitLimit !== undefined) return {keysWithoutExpiry, maxBytes: explicitLimit}
  const used = Number(info.used_memory)
  if (!Number.isFinite(used) || used < 0) throw new SlotctlError(`${node.address} reports no used_memory in INFO: cannot bound its RDB`, {code: 'E_SYNC', suggestions: ['give the limit with --max-rdb-bytes']})
  return {keysWithoutExpiry, maxBytes: used * RDB_LIMIT_FACTOR + RDB_LIMIT_SLACK}
}

export function rdbFileName(master: ClusterNode): string {
  return `${master.id}.rdb`
}

async function fetchOne(pool: NodePool, source: BackupSource, options: BackupOptions, versions: ReadonlyMap<string, string>): Promise<BackupFileResult> {
  const name = rdbFileName(source.master)
  const final = path.join(options.dir, name)
  const partial = `${final}.partial`
  options.partialFiles.add(partial)
  try {
    const {keysWithoutExpiry, maxBytes} = await nodeBeforeSync(pool, source.from, options.maxRdbBytes)
    // a leftover (or planted) partial name is removed, never written through
    await removeQuietly(partial)
    const fetched = await fetchRdb(parseAddress(source.from.address), pool.settings, partial, {maxBytes, signal: options.signal, timeoutMs: options.syncTimeoutMs})
    await replaceWithin(partial, final)
    return {
      bytes: fetched.bytes,
      digest: null,
      elapsedMs: fetched.elapsedMs,
      file: name,
      format: fetched.format,
      keys: null,
      keysWithExpiry: null,
      master: ref(source.master),
      nodeKeysWithoutExpiry: keysWithoutExpiry,
      serverVersion: versions.get(source.from.id) ?? null,
      sha256: fetched.sha256,
      slotCount: countSlots(source.master.slots),
      slots: source.master.slots,
      takenFrom: {...ref(source.from), role: source.from.role},
      verifyElapsedMs: null,
    }
  } finally {
    await removeQuietly(partial)
    options.partialFiles.delete(partial)
  }
}

/** Loads the file into a local server: how many keys it holds, and their content digest. */
async function verifyOne(file: BackupFileResult, options: BackupOptions): Promise<void> {
  const started = Date.now()
  await withRdbServer(path.join(options.dir, file.file), options.serverBinary ?? undefined, async (server) => {
    const {digest, keys} = await digestServer(server.client, options.signal)
    // keys with a TTL may expire while they are read: only without any is a difference an anomaly
    if (keys !== server.keys && server.keysWithExpiry === 0) throw new SlotctlError(`${file.file}: the local server reports ${server.keys} keys but ${keys} were read`, {code: 'E_BACKUP_MISMATCH'})
    // far fewer keys than the node held a moment before: not the node's data (a forged or truncated file)
    if (keys * 2 < file.nodeKeysWithoutExpiry) {
      throw new SlotctlError(`${file.file} holds ${keys} keys once loaded, but ${file.takenFrom.address} held ${file.nodeKeysWithoutExpiry} keys without a TTL right before (if they were deleted meanwhile, back up again)`, {code: 'E_BACKUP_MISMATCH'})
    }
    Object.assign(file, {digest, keys, keysWithExpiry: server.keysWithExpiry})
  })
  file.verifyElapsedMs = Date.now() - started
}

export async function runBackup(pool: NodePool, snapshot: ClusterSnapshot, sources: readonly BackupSource[], options: BackupOptions): Promise<BackupOutcome> {
  const takenAt = new Date()
  const outcome: BackupOutcome = {failures: [], files: [], warnings: []}
  const versions = await serverVersions(pool, snapshot.nodes)
  const fetched = await settleLimit(sources, options.parallel, async (source) => {
    const file = await fetchOne(pool, source, options, versions)
    options.onFetched?.(file)
    return file
  })
  for (const [i, result] of fetched.entries()) {
    if (result.value) outcome.files.push(result.value)
    else outcome.failures.push({code: result.error instanceof SlotctlError ? result.error.code : 'E_SYNC', message: errorMessage(result.error), node: ref(sources[i].from)})
  }
  if (outcome.failures.length > 0 || options.signal?.aborted) return outcome
  if (options.serverBinary === null) {
    outcome.warnings.push({code: 'NOT_VERIFIED', message: '--no-verify: the files were not loaded to count and digest their keys (restore will)'})
  } else {
    // a file no server can load is no backup: no manifest vouches for it
    for (const file of outcome.files) {
      try {
        await verifyOne(file, options)
      } catch (error) {
        if (options.signal?.aborted) return outcome
        const message = errorMessage(error)
        outcome.failures.push({
          code: error instanceof SlotctlError ? error.code : 'E_RDB_LOAD',
          message: message.includes(file.file) ? message : `${file.file} could not be verified: ${message}`,
          node: {address: file.takenFrom.address, id: file.takenFrom.id},
        })
      }
    }
    if (outcome.failures.length > 0) return outcome
  }
  await writeJson(path.join(options.dir, NODES_FILE), nodesFile(snapshot, versions, takenAt))
  outcome.manifest = {
    createdAt: takenAt.toISOString(),
    digestAlgorithm: DIGEST_ALGORITHM,
    files: outcome.files.map(({elapsedMs: _fetch, nodeKeysWithoutExpiry: _node, verifyElapsedMs: _verify, ...entry}) => entry),
    fromReplicas: options.fromReplicas,
    kind: 'slotctl-backup',
    schemaVersion: 1,
    seed: snapshot.seedAddress,
    slotctlVersion: options.slotctlVersion,
  }
  await writeJson(path.join(options.dir, MANIFEST_FILE), outcome.manifest)
  return outcome
}
