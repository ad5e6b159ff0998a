/**
 * Files slotctl writes about a cluster (plans, journals) describe its nodes and its runs:
 * they are created readable by their owner only (0600), in directories slotctl creates as
 * 0700. Async versions for commands, sync ones for the journal (appended synchronously).
 */
import {chmodSync, closeSync, mkdirSync, openSync, writeFileSync} from 'node:fs'
import {mkdir, open} from 'node:fs/promises'
import path from 'node:path'

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
