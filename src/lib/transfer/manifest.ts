/**
 * The files of a backup: one RDB per master, nodes.json (the cluster as it was) and
 * manifest.json (each RDB's SHA-256, size, slots, key count and content digest). The manifest
 * is written last, so a directory without one holds no finished backup. Every file is written
 * to a temp name, fsync-ed and renamed: a crash never leaves half a file under a real name.
 */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {open, readFile, rename, rm} from 'node:fs/promises'
import path from 'node:path'

import {SlotctlError, errorMessage, usageError} from '../errors.js'
import type {SlotRange} from '../cluster/slots.js'
import type {NodeRef} from '../cli/result.js'
import {DIGEST_ALGORITHM} from './digest.js'

export const MANIFEST_FILE = 'manifest.json'
export const NODES_FILE = 'nodes.json'

export interface BackupNode {
  id: string
  address: string
  role: string
  master: NodeRef | null
  slots: SlotRange[]
  slotCount: number
  configEpoch: number
  flags: string[]
  /** e.g. "redis 7.0.15", "valkey 9.1.2"; null when the node could not be asked */
  serverVersion: string | null
}

export interface NodesFile {
  schemaVersion: 1
  takenAt: string
  seed: string
  nodes: BackupNode[]
}

export interface ManifestFile {
  file: string
  sha256: string
  bytes: number
  /** the RDB header, e.g. REDIS0011 or VALKEY080 */
  format: string
  master: NodeRef
  takenFrom: NodeRef & {role: string}
  slots: SlotRange[]
  slotCount: number
  /** keys in the file, counted by a local server that loaded it; null when not verified */
  keys: number | null
  keysWithExpiry: number | null
  /** content digest (see digest.ts) of the file's keys; null when not verified */
  digest: string | null
  serverVersion: string | null
}

export interface Manifest {
  schemaVersion: 1
  kind: 'slotctl-backup'
  createdAt: string
  slotctlVersion: string
  seed: string
  fromReplicas: boolean
  digestAlgorithm: string
  files: ManifestFile[]
}

export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const temporary = `${file}.partial`
  const handle = await open(temporary, 'w')
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(temporary, file)
}

export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`)
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

async function readJsonFile<T>(file: string, what: string): Promise<T> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SlotctlError(`${path.dirname(file)} has no ${path.basename(file)}: not a slotctl backup, or the backup did not finish`, {code: 'E_NOT_A_BACKUP', exitCode: 2})
    }
    throw new SlotctlError(`cannot read ${file}: ${errorMessage(error)}`, {code: 'E_NOT_A_BACKUP'})
  }
  try {
    return JSON.parse(text) as T
  } catch {
    throw new SlotctlError(`${file} is not valid JSON: the ${what} is damaged`, {code: 'E_CORRUPT_BACKUP'})
  }
}

export async function readManifest(dir: string): Promise<Manifest> {
  const manifest = await readJsonFile<Manifest>(path.join(dir, MANIFEST_FILE), 'manifest')
  if (manifest.kind !== 'slotctl-backup' || !Array.isArray(manifest.files)) throw usageError(`${path.join(dir, MANIFEST_FILE)} is not a slotctl backup manifest`)
  if (manifest.schemaVersion !== 1) throw usageError(`${path.join(dir, MANIFEST_FILE)} has schemaVersion ${manifest.schemaVersion}; this slotctl reads 1`)
  return withComparableDigests(manifest)
}

/**
 * Digests of another algorithm (an older slotctl's) cannot be compared with this one's: they
 * are dropped, and restore then takes each loaded file itself as the reference.
 */
function withComparableDigests(manifest: Manifest): Manifest {
  if (manifest.digestAlgorithm === DIGEST_ALGORITHM) return manifest
  return {...manifest, files: manifest.files.map((file) => ({...file, digest: null}))}
}

/**
 * Every RDB against its recorded SHA-256, before anything is loaded anywhere: a damaged or
 * missing file stops the restore with the files named.
 */
export async function verifyChecksums(dir: string, manifest: Manifest): Promise<void> {
  const bad: string[] = []
  for (const entry of manifest.files) {
    const file = path.join(dir, entry.file)
    let actual: string
    try {
      actual = await sha256File(file)
    } catch (error) {
      bad.push(`${entry.file} cannot be read (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`)
      continue
    }
    if (actual !== entry.sha256) bad.push(`${entry.file} (sha256 ${actual.slice(0, 12)}..., manifest says ${entry.sha256.slice(0, 12)}...)`)
  }
  if (bad.length === 0) return
  throw new SlotctlError(`checksum mismatch: ${bad.join('; ')}: the backup in ${dir} is damaged, nothing was loaded`, {
    code: 'E_CHECKSUM',
    suggestions: ['restore from another copy of the backup'],
  })
}

export async function removeQuietly(file: string): Promise<void> {
  await rm(file, {force: true})
}
