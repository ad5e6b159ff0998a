/**
 * Files slotctl writes about a cluster (plans, journals) describe its nodes and its runs:
 * they are created readable by their owner only (0600), in directories slotctl creates as
 * 0700. Async versions for commands, sync ones for the journal (appended synchronously).
 */
import {randomBytes} from 'node:crypto'
import {type Stats, closeSync, fchmodSync, fstatSync, constants as fsConstants, lstatSync, mkdirSync, openSync, readFileSync, realpathSync, statSync, statfsSync, truncateSync, writeFileSync} from 'node:fs'
import {type FileHandle, link, lstat, open, rename, rm} from 'node:fs/promises'
import path from 'node:path'

import {errorMessage, usageError} from './core/errors.js'

export const PRIVATE_FILE_MODE = 0o600
export const PRIVATE_DIR_MODE = 0o700

/** Kernel filesystems by path: nothing slotctl writes belongs there (/dev/shm is an ordinary tmpfs). */
const KERNEL_ROOTS = ['/proc', '/sys', '/dev']
const KERNEL_ROOT_EXCEPTIONS = ['/dev/shm']

/** statfs magic numbers of kernel filesystems mounted elsewhere (a bind mount, a symlink into one). */
const KERNEL_FS_TYPES = new Map<number, string>([
  [0x9f_a0, 'proc'],
  [0x62_65_65_72, 'sysfs'],
  [0x1c_d1, 'devpts'],
  [0x64_62_67_20, 'debugfs'],
  [0x74_72_61_63, 'tracefs'],
  [0x73_63_66_73, 'securityfs'],
  [0x27_e0_eb, 'cgroup'],
  [0x63_67_72_70, 'cgroup2'],
  [0x42_49_4e_4d, 'binfmt_misc'],
  [0xca_fe_4a_11, 'bpf'],
])

const isUnder = (file: string, root: string) => file === root || file.startsWith(`${root}/`)

/** The deepest part of `target` that exists, with symlinks resolved, and what is left to create. */
function existingAncestor(target: string): {real: string; missing: string[]} {
  const missing: string[] = []
  let current = target
  // bounded: one step per path component
  for (;;) {
    try {
      return {missing, real: realpathSync(current)}
    } catch {
      const parent = path.dirname(current)
      if (parent === current) return {missing, real: current}
      missing.unshift(path.basename(current))
      current = parent
    }
  }
}

/**
 * Refuses a path under a kernel filesystem (/proc, /sys, /dev, or one of their types mounted
 * elsewhere): Node 20's recursive mkdir spins forever under /proc, and files written there
 * are not files at all. Checked on the resolved path, so a symlink into /proc is refused too.
 */
export function refuseKernelPath(target: string): void {
  const {missing, real} = existingAncestor(path.resolve(target))
  const resolved = path.join(real, ...missing)
  const root = KERNEL_ROOTS.find((candidate) => isUnder(resolved, candidate) && !KERNEL_ROOT_EXCEPTIONS.some((exception) => isUnder(resolved, exception)))
  let fsType: string | undefined
  try {
    fsType = KERNEL_FS_TYPES.get(statfsSync(real).type)
  } catch {
    // statfs unsupported (not Linux): the path check above stands alone
  }
  if (!root && !fsType) return
  throw usageError(`'${target}' is on a kernel filesystem (${root ?? fsType}), not a place for slotctl's files`, ['give a path on an ordinary disk'])
}

/**
 * Creates `dir` and its missing parents as 0700, one level at a time (never Node's recursive
 * mkdir, which loops forever under /proc). A directory that already exists keeps its mode:
 * it may be the operator's own (a home or project directory).
 */
export function ensurePrivateDirSync(dir: string): void {
  refuseKernelPath(dir)
  const absolute = path.resolve(dir)
  const parts = absolute.split(path.sep).filter(Boolean)
  let current = path.parse(absolute).root
  for (const part of parts) {
    current = path.join(current, part)
    createOneLevel(current)
  }
}

function createOneLevel(dir: string): void {
  try {
    mkdirSync(dir, {mode: PRIVATE_DIR_MODE})
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    if (!statSync(dir).isDirectory()) throw new Error(`'${dir}' exists and is not a directory`)
  }
}

/** The async commands use the same bounded creation: a handful of mkdir calls, no waiting on the network. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  ensurePrivateDirSync(dir)
}

export interface PrivateFileOptions {
  /** Create missing directories (as 0700); off for paths an operator typed, where a typo must fail. */
  createDir?: boolean
}

/** `flag`: 'w' replaces, 'a' appends (a journal line), 'wx' refuses an existing file. */
export function writePrivateFileSync(file: string, content: string, options: PrivateFileOptions & {flag?: 'a' | 'w' | 'wx'} = {}): void {
  if (options.createDir) ensurePrivateDirSync(path.dirname(file))
  const flag = options.flag ?? 'w'
  const fd = openSync(file, flag, PRIVATE_FILE_MODE)
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE)
    writeFileSync(fd, content)
  } finally {
    closeSync(fd)
  }
}

/**
 * Creates a journal with its first line, before anything moves: a new file private to the
 * user, in a private directory. An existing file is refused: appending to it would merge two
 * runs. `what` names the run in that message ("continue that <what> with --resume").
 */
export function createJournalFile(file: string, firstLine: unknown, what: string): void {
  const cannot = (error: unknown) => usageError(`cannot create journal '${file}': ${errorMessage(error)}`)
  refuseKernelPath(file)
  try {
    ensurePrivateDirSync(path.dirname(file))
  } catch (error) {
    // EEXIST here is a file where a directory should be, not the journal itself
    throw cannot(error)
  }
  try {
    writePrivateFileSync(file, `${JSON.stringify(firstLine)}\n`, {flag: 'wx'})
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw usageError(`journal '${file}' already exists: give a new path, or continue that ${what} with --resume ${file}`)
    throw cannot(error)
  }
}

/**
 * Before a resumed run appends to a journal: a crash mid-write leaves a torn last line (the
 * readers skip it); cutting it off keeps the new lines whole, so a torn line read later is damage.
 */
export function cutTornLastLine(file: string): void {
  const stats = lstatSync(file)
  if (stats.isSymbolicLink()) throw usageError(`journal '${file}' is a symlink: slotctl never writes through one`, ['give the path of the journal itself'])
  if (!stats.isFile()) throw usageError(`journal '${file}' is not a regular file`)
  const text = readFileSync(file, 'utf8')
  if (text.length > 0 && !text.endsWith('\n')) truncateSync(file, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)))
}

export interface OutputFileOptions {
  /** replace a file that exists (never a symlink, a directory or a device) */
  overwrite?: boolean
  /** the flag that sets `overwrite`, named in the refusal */
  overwriteFlag?: string
}

/** A temp name beside `file` (the same directory, so the rename is atomic), unguessable. */
function temporaryNameFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
}

/**
 * What is at `file` now: nothing, a regular file, or something slotctl must never write
 * through (a symlink, a directory, a FIFO, a device). Refuses the latter, and an existing
 * file unless `overwrite`.
 */
export function refuseExistingOutput(file: string, options: OutputFileOptions): void {
  refuseKernelPath(file)
  let stats: Stats
  try {
    stats = lstatSync(file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw usageError(`cannot write '${file}': ${errorMessage(error)}`)
  }
  if (stats.isSymbolicLink()) throw usageError(`'${file}' is a symlink: slotctl never writes through one`, ['give the path of a new file'])
  if (!stats.isFile()) throw usageError(`'${file}' exists and is not a regular file`, ['give the path of a new file'])
  if (!options.overwrite) throw usageError(`'${file}' already exists`, [`give a new path${options.overwriteFlag ? `, or pass ${options.overwriteFlag} to replace it` : ''}`])
}

/** Opens a new file that cannot be anything but new: O_EXCL (which also refuses a symlink in its place) and O_NOFOLLOW. */
export async function openNewPrivateFile(file: string): Promise<FileHandle> {
  return open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, PRIVATE_FILE_MODE)
}

/**
 * Writes an output file whole or not at all: the content goes to a new temp file beside it
 * (O_EXCL, owner-only), is fsync-ed, then takes the name. Without `overwrite` the name is
 * taken with link(), which fails if anything appeared there meanwhile; with it, rename()
 * replaces the old file (a symlink placed there in the meantime is replaced, never followed).
 */
export async function writeOutputFile(file: string, content: Buffer | string, options: OutputFileOptions = {}): Promise<void> {
  refuseExistingOutput(file, options)
  const temporary = temporaryNameFor(file)
  const handle = await openNewPrivateFile(temporary)
  try {
    try {
      await handle.writeFile(content)
      await handle.sync()
    } finally {
      await handle.close()
    }
    if (options.overwrite) {
      await rename(temporary, file)
    } else {
      await link(temporary, file).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'EEXIST') throw usageError(`'${file}' already exists`, [`give a new path${options.overwriteFlag ? `, or pass ${options.overwriteFlag} to replace it` : ''}`])
        throw error
      })
    }
  } finally {
    await rm(temporary, {force: true})
  }
}

/**
 * Moves a finished temp file into place inside a directory slotctl writes (a backup): a
 * symlink or anything else at the name is replaced, never followed (rename replaces the
 * link itself); a directory there is refused.
 */
export async function replaceWithin(temporary: string, file: string): Promise<void> {
  const existing = await lstat(file).catch(() => undefined)
  if (existing?.isDirectory()) throw usageError(`'${file}' is a directory`)
  await rename(temporary, file)
}

/**
 * Opens a file that must be a regular file for reading, never through a symlink and never
 * a FIFO or a device (whose reads never end): O_NOFOLLOW | O_NONBLOCK (a FIFO then opens at
 * once instead of waiting for a writer), and fstat on what was opened.
 */
export async function openRegularFile(file: string): Promise<FileHandle> {
  const handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ELOOP') throw new Error('it is a symlink')
    throw error
  })
  const stats = await handle.stat()
  if (!stats.isFile()) {
    await handle.close()
    throw new Error('it is not a regular file')
  }
  return handle
}

/** Appends to an existing file, never through a symlink (a journal line: synchronous, so it reaches the kernel before the next step). */
export function appendToFileSync(file: string, text: string): void {
  const fd = openSync(file, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW)
  try {
    writeFileSync(fd, text)
  } finally {
    closeSync(fd)
  }
}

/**
 * Reads an input file (a plan, a journal, a zones or PEM file) that must be a regular file: a
 * FIFO or a device would block this synchronous read forever (and with it every signal
 * handler), so it is opened non-blocking and refused on fstat. Symlinks to a regular file are
 * fine for reading. Larger than `limit` bytes: refused.
 */
export function readRegularFileSync(file: string, limit = Number.POSITIVE_INFINITY): Buffer {
  const fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
  try {
    const stats = fstatSync(fd)
    if (!stats.isFile()) throw new Error('it is not a regular file')
    if (stats.size > limit) throw new Error(`it is larger than ${limit} bytes`)
    return readFileSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** Why a file could not be read, in a few words (no errno noise for the common case). */
export function readErrorText(error: unknown): string {
  return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(error)
}
