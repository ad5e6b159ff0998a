/**
 * Runs the real CLI as an operator would: a child process through bin/run.js (the built
 * dist/, as CI uses after `npm run build`), or bin/dev.js (TypeScript sources through tsx)
 * when SLOTCTL_TEST_DEV=1, which avoids rebuilding while developing.
 */
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'
import {execa} from 'execa'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

/** Journals and sandbox state of test runs stay out of the user's ~/.local/state. */
export const stateHome = mkdtempSync(path.join(tmpdir(), 'slotctl-test-state-'))
process.on('exit', () => rmSync(stateHome, {force: true, recursive: true}))

/** No test reads the user's contexts (~/.config/slotctl): an empty config home unless a test gives its own. */
export const configHome = mkdtempSync(path.join(tmpdir(), 'slotctl-test-config-'))
process.on('exit', () => rmSync(configHome, {force: true, recursive: true}))

export interface CliResult {
  exitCode: number
  stdout: string
  stderr: string
}

export interface CliOptions {
  env?: Record<string, string>
  input?: string
  timeoutMs?: number
}

/**
 * The lane's server binary (SLOTCTL_TEST_SERVER) for whatever the CLI starts itself: a backup
 * verified by a local server must be read by a server as new as the cluster's (Redis 7 cannot
 * load Redis 8's or Valkey's RDB files).
 */
const laneServer: Record<string, string> = process.env.SLOTCTL_TEST_SERVER ? {SLOTCTL_SERVER_BINARY: process.env.SLOTCTL_TEST_SERVER} : {}

function binPath(): string {
  return path.join(root, 'bin', process.env.SLOTCTL_TEST_DEV === '1' ? 'dev.js' : 'run.js')
}

/** Starts the CLI without waiting, for tests that signal or kill it mid-run. */
export function spawnCli(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [binPath(), ...args], {env: {NO_COLOR: '1', XDG_CONFIG_HOME: configHome, XDG_STATE_HOME: stateHome, ...laneServer, ...env}, reject: false})
}

export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const result = await execa(process.execPath, [binPath(), ...args], {
    env: {NO_COLOR: '1', XDG_CONFIG_HOME: configHome, XDG_STATE_HOME: stateHome, ...laneServer, ...options.env},
    input: options.input ?? '',
    reject: false,
    timeout: options.timeoutMs ?? 120_000,
  })
  return {exitCode: result.exitCode ?? -1, stderr: String(result.stderr), stdout: String(result.stdout)}
}

/** Runs the CLI with --json and parses stdout. */
export async function runCliJson<T = unknown>(args: string[], options: CliOptions = {}): Promise<CliResult & {json: T}> {
  const result = await runCli([...args, '--json'], options)
  let json: T
  try {
    json = JSON.parse(result.stdout) as T
  } catch {
    throw new Error(`stdout is not JSON (exit ${result.exitCode}): ${result.stdout.slice(0, 500)} / stderr: ${result.stderr.slice(0, 500)}`)
  }
  return {...result, json}
}

/** The one warning a run may print before its error: a password typed on the command line. */
export const AUTH_WARNING = /^slotctl: warning: a password on the command line shows in ps/

/** The warning when a password is sent to nodes that need none. */
export const SPARE_PASSWORD_WARNING = /^slotctl: warning: a password was given, but .* needs? none/

/**
 * The error contract every verb keeps: the documented exit code, one `slotctl: error:` line
 * (plus optional `hint:` lines), no stack trace, and none of `secrets` anywhere. A password
 * given with -a or in a URL may add the auth warning before it, and one the nodes do not need
 * the spare-password warning.
 */
export function expectOneCleanLine(result: CliResult, exitCode: number, pattern: RegExp, secrets: string[] = []): void {
  expect(result.exitCode, `stderr: ${result.stderr}`).to.equal(exitCode)
  const lines = result.stderr.trim().split('\n')
  const warnings = lines.findIndex((line) => !AUTH_WARNING.test(line) && !SPARE_PASSWORD_WARNING.test(line))
  const [first, ...rest] = warnings === -1 ? [] : lines.slice(warnings)
  expect(first).to.match(/^slotctl: error: /)
  expect(first).to.match(pattern)
  expect(rest.every((line) => line.startsWith('  hint: ')), result.stderr).to.equal(true)
  expect(result.stderr).to.not.match(/\n\s+at /)
  for (const secret of secrets) expect(result.stdout + result.stderr).to.not.include(secret)
}

/** Waits until a migration journal records `lines` closed slots (a run is well under way). */
export async function waitForJournalLines(file: string, lines: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      if (readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('slot-done')).length >= lines) return
    } catch {
      // not created yet
    }
    await new Promise((resolve) => {
      setTimeout(resolve, 20)
    })
  }
  throw new Error(`journal ${file} did not reach ${lines} done slots`)
}
