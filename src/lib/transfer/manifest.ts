/**
 * The files of a backup: one RDB per master, nodes.json (the cluster as it was) and
 * manifest.json (each RDB's SHA-256, size, slots, key count and content digest). The manifest
 * is written last, so a directory without one holds no finished backup. Every file is written
 * to a temp name, fsync-ed and renamed: a crash never leaves half a file under a real name.
 */
import {createHash} from 'node:crypto'
import {rm} from 'node:fs/promises'
import path from 'node:path'

import {ExitCode, SlotctlError, errorMessage, usageError} from '../core/errors.js'
import {openRegularFile, writeOutputFile} from '../files.js'
import type {SlotRange} from '../core/slots.js'
import type {NodeRef} from '../core/result.js'
import {DIGEST_ALGORITHM} from '../keys/digest.js'

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

export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeOutputFile(file, `${JSON.stringify(value, null, 2)}\n`, {overwrite: true})
}

/** A manifest is a few hundred bytes per master: anything near this is not one. */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024
const READ_CHUNK = 1024 * 1024

/**
 * SHA-256 of a regular file (never a symlink, FIFO or device), reading at most `limit` bytes:
 * a file that grows, or holds more than its manifest says, ends the read all the same.
 */
export async function sha256File(file: string, limit: number): Promise<{sha256: string; bytes: number; longer: boolean}> {
  const hash = createHash('sha256')
  const handle = await openRegularFile(file)
  try {
    const buffer = Buffer.alloc(READ_CHUNK)
    let bytes = 0
    for (;;) {
      const {bytesRead} = await handle.read(buffer, 0, Math.min(READ_CHUNK, limit + 1 - bytes), null)
      if (bytesRead === 0) return {bytes, longer: false, sha256: hash.digest('hex')}
      if (bytes + bytesRead > limit) return {bytes: bytes + bytesRead, longer: true, sha256: ''}
      hash.update(buffer.subarray(0, bytesRead))
      bytes += bytesRead
    }
  } finally {
    await handle.close()
  }
}

/** A small file read whole, refused when it is not a regular file or is larger than `limit`. */
async function readBoundedText(file: string, limit: number): Promise<string> {
  const handle = await openRegularFile(file)
  try {
    const buffer = Buffer.alloc(limit + 1)
    let length = 0
    for (;;) {
      const {bytesRead} = await handle.read(buffer, length, buffer.length - length, null)
      if (bytesRead === 0) break
      length += bytesRead
      if (length > limit) throw new Error(`larger than ${limit} bytes`)
    }
    return buffer.subarray(0, length).toString('utf8')
  } finally {
    await handle.close()
  }
}

async function readJsonFile<T>(file: string, what: string): Promise<T> {
  let text: string
  try {
    text = await readBoundedText(file, MAX_MANIFEST_BYTES)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SlotctlError(`${path.dirname(file)} has no ${path.basename(file)}: not a slotctl backup, or the backup did not finish`, {code: 'E_NOT_A_BACKUP', exitCode: 2})
    }
    throw new SlotctlError(`cannot read ${file}: ${errorMessage(error)}`, {code: 'E_NOT_A_BACKUP', exitCode: ExitCode.failed})
  }
  try {
    return JSON.parse(text) as T
  } catch {
    throw new SlotctlError(`${file} is not valid JSON: the ${what} is damaged`, {code: 'E_CORRUPT_BACKUP'})
  }
}

export async function readManifest(dir: string): Promise<Manifest> {
  const file = path.join(dir, MANIFEST_FILE)
  const manifest = await readJsonFile<unknown>(file, 'manifest')
  if (!isRecord(manifest) || manifest.kind !== 'slotctl-backup' || !Array.isArray(manifest.files)) throw usageError(`${file} is not a slotctl backup manifest`)
  if (manifest.schemaVersion !== 1) throw usageError(`${file} has schemaVersion ${String(manifest.schemaVersion).slice(0, 20)}; this slotctl reads 1`)
  const problem = manifestProblem(manifest as unknown as Manifest)
  if (problem) throw new SlotctlError(`${file}: ${problem}; nothing was loaded`, {code: 'E_CORRUPT_BACKUP'})
  return withComparableDigests(manifest as unknown as Manifest)
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const isCount = (value: unknown) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
const isCountOrNull = (value: unknown) => value === null || isCount(value)
const isSlot = (value: unknown) => Number.isInteger(value) && (value as number) >= 0 && (value as number) < 16_384
const isRange = (value: unknown) => Array.isArray(value) && value.length === 2 && isSlot(value[0]) && isSlot(value[1]) && value[0] <= value[1]
const isNodeRef = (value: unknown) => isRecord(value) && typeof value.id === 'string' && typeof value.address === 'string'

/**
 * A file name of the manifest: a plain name in the backup directory, nothing that resolves
 * elsewhere (a path, `..`, an absolute path); symlinks are refused when the file is opened.
 */
function fileNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'has no file name'
  // eslint-disable-next-line no-control-regex
  if (name === '.' || name === '..' || name.includes('/') || name.includes('\\') || /[\u0000-\u001F]/.test(name)) return `names '${JSON.stringify(name).slice(1, -1).slice(0, 80)}', which is not a file inside the backup directory`
  return undefined
}

/** What is wrong with the manifest's files, in one phrase; undefined when every entry is whole. */
function manifestProblem(manifest: Manifest): string | undefined {
  if (manifest.files.length === 0) return 'lists no files (a backup holds one RDB per master)'
  const seen = new Set<string>()
  for (const [i, entry] of (manifest.files as unknown[]).entries()) {
    const which = `file entry ${i + 1}`
    if (!isRecord(entry)) return `${which} is ${entry === null ? 'null' : typeof entry}, not a file entry`
    const nameProblem = fileNameProblem(entry.file)
    if (nameProblem) return `${which} ${nameProblem}`
    const name = entry.file as string
    if (seen.has(name)) return `${name} is listed twice`
    seen.add(name)
    if (typeof entry.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(entry.sha256)) return `${name} has no valid sha256`
    if (!isCount(entry.bytes)) return `${name} has no valid size (bytes)`
    if (!isNodeRef(entry.master)) return `${name} names no master`
    if (!Array.isArray(entry.slots) || !entry.slots.every((range) => isRange(range))) return `${name} has no valid slot ranges`
    if (!isCountOrNull(entry.keys) || !isCountOrNull(entry.keysWithExpiry ?? null)) return `${name} has an invalid key count`
    if (!(entry.digest === null || entry.digest === undefined || typeof entry.digest === 'string')) return `${name} has an invalid digest`
  }
  return undefined
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
    let actual: Awaited<ReturnType<typeof sha256File>>
    try {
      actual = await sha256File(file, entry.bytes)
    } catch (error) {
      bad.push(`${entry.file} cannot be read (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`)
      continue
    }
    if (actual.longer) bad.push(`${entry.file} (more than the ${entry.bytes} bytes the manifest says)`)
    else if (actual.sha256 !== entry.sha256) bad.push(`${entry.file} (sha256 ${actual.sha256.slice(0, 12)}..., manifest says ${entry.sha256.slice(0, 12)}...)`)
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
