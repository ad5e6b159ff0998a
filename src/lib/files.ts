/**
 * Files slotctl writes about a cluster (plans, journals) describe its nodes and its runs:
 * they are created readable by their owner only (0600), in directories slotctl creates as
 * 0700. Async versions for commands, sync ones for the journal (appended synchronously).
 */
import {chmodSync, closeSync, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync} from 'node:fs'
import {mkdir, open} from 'node:fs/promises'
import path from 'node:path'

import {errorMessage, usageError} from './errors.js'

export const PRIVATE_FILE_MODE = 0o600
export const PRIVATE_DIR_MODE = 0o700

/**
 * Creates `dir` and its missing parents as 0700. A directory that already exists keeps its
 * mode: it may be the operator's own (a home or project directory).
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, {mode: PRIVATE_DIR_MODE, recursive: true})
}

export function ensurePrivateDirSync(dir: string): void {
  mkdirSync(dir, {mode: PRIVATE_DIR_MODE, recursive: true})
}

export interface PrivateFileOptions {
  /** Create missing directories (as 0700); off for paths an operator typed, where a typo must fail. */
  createDir?: boolean
}

/**
 * Writes (replaces) a file readable by its owner only. The mode is set on the open file
 * before the content goes in, so a file that existed with a wider mode is narrowed before
 * it holds anything new.
 */
export async function writePrivateFile(file: string, content: string, options: PrivateFileOptions = {}): Promise<void> {
  if (options.createDir) await ensurePrivateDir(path.dirname(file))
  const handle = await open(file, 'w', PRIVATE_FILE_MODE)
  try {
    await handle.chmod(PRIVATE_FILE_MODE)
    await handle.writeFile(content)
  } finally {
    await handle.close()
  }
}

/** `flag`: 'w' replaces, 'a' appends (a journal line), 'wx' refuses an existing file. */
export function writePrivateFileSync(file: string, content: string, options: PrivateFileOptions & {flag?: 'a' | 'w' | 'wx'} = {}): void {
  if (options.createDir) ensurePrivateDirSync(path.dirname(file))
  const flag = options.flag ?? 'w'
  const fd = openSync(file, flag, PRIVATE_FILE_MODE)
  try {
    chmodSync(file, PRIVATE_FILE_MODE)
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
  const text = readFileSync(file, 'utf8')
  if (text.length > 0 && !text.endsWith('\n')) truncateSync(file, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)))
}
