/**
 * Contexts: named clusters (a seed, a user, TLS files, and where the password comes from) in
 * $XDG_CONFIG_HOME/slotctl/contexts.json, so a runbook line need not repeat seed, auth and
 * TLS flags. The file never holds a password: only its source (an environment variable's
 * name, a file's path, or "ask on the terminal"); it is written whole (temp file, rename),
 * owner-only, in a 0700 directory, never through a symlink.
 */
import {statSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'

import {parseAddress} from '../cluster/address.js'
import {SlotctlError, usageError} from '../core/errors.js'
import {ensurePrivateDirSync, readErrorText, readRegularFileSync, writeOutputFile} from '../files.js'
import {hasUrlPassword} from '../secrets.js'
import {compareText} from '../core/compare.js'

export type PasswordSource = {askpass: true} | {env: string} | {file: string}

export interface ClusterContext {
  /** any node of the cluster: HOST:PORT, or a redis:// / rediss:// URL without a password */
  seed: string
  user?: string
  tls?: boolean
  cacert?: string
  cert?: string
  key?: string
  sni?: string
  insecure?: boolean
  password?: PasswordSource
}

export interface ContextsFile {
  current?: string
  contexts: Record<string, ClusterContext>
}

export const CONTEXTS_FILE_HELP = '$XDG_CONFIG_HOME/slotctl/contexts.json'

/** A config file is small; anything larger is not one of slotctl's. */
const MAX_CONTEXTS_FILE_BYTES = 1_048_576
/** A password file holds one line. */
const MAX_PASSWORD_FILE_BYTES = 4096

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/

export function contextsFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const configHome = env.XDG_CONFIG_HOME || path.join(homedir(), '.config')
  return path.join(configHome, 'slotctl', 'contexts.json')
}

export function checkContextName(name: string): string {
  if (!NAME_RE.test(name)) throw usageError(`invalid context name '${name}': use letters, digits, '.', '_' and '-' (at most 63)`)
  return name
}

export function checkEnvName(name: string): string {
  if (!ENV_NAME_RE.test(name)) throw usageError(`invalid environment variable name '${name}'`, ['e.g. --password-env PROD_REDIS_PASSWORD'])
  return name
}

/** A seed as a context stores it: an address slotctl parses, never one with a password in it. */
export function checkSeed(seed: string): string {
  if (hasUrlPassword(seed)) throw usageError('a context never stores a password: give the seed without one', ['take the password from --password-env, --password-file or --askpass'])
  parseAddress(seed)
  return seed
}

function invalidFile(file: string, reason: string): SlotctlError {
  return usageError(`'${file}' is not a valid contexts file: ${reason}`, [`fix or remove it (slotctl writes it with slotctl context add)`])
}

const OPTIONAL_STRINGS = ['user', 'cacert', 'cert', 'key', 'sni'] as const
const OPTIONAL_BOOLEANS = ['tls', 'insecure'] as const

function parsePasswordSource(value: unknown, where: string, file: string): PasswordSource | undefined {
  if (value === undefined) return undefined
  // a password in plain text is refused, not used: the file may have been copied or shared
  if (typeof value === 'string') throw invalidFile(file, `${where}.password holds a password in plain text; store its source instead (env, file or askpass)`)
  if (typeof value !== 'object' || value === null) throw invalidFile(file, `${where}.password must be an object`)
  const source = value as Record<string, unknown>
  const keys = Object.keys(source)
  if (keys.length !== 1) throw invalidFile(file, `${where}.password must have exactly one of env, file, askpass`)
  if (typeof source.env === 'string' && ENV_NAME_RE.test(source.env)) return {env: source.env}
  if (typeof source.file === 'string' && source.file !== '') return {file: source.file}
  if (source.askpass === true) return {askpass: true}
  throw invalidFile(file, `${where}.password must be {"env": NAME}, {"file": PATH} or {"askpass": true}`)
}

function parseContext(value: unknown, name: string, file: string): ClusterContext {
  const where = `contexts.${name}`
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidFile(file, `${where} must be an object`)
  const entry = value as Record<string, unknown>
  if (typeof entry.seed !== 'string') throw invalidFile(file, `${where}.seed must be a string`)
  const context: ClusterContext = {seed: entry.seed}
  for (const key of OPTIONAL_STRINGS) {
    if (entry[key] === undefined) continue
    if (typeof entry[key] !== 'string') throw invalidFile(file, `${where}.${key} must be a string`)
    context[key] = entry[key] as string
  }
  for (const key of OPTIONAL_BOOLEANS) {
    if (entry[key] === undefined) continue
    if (typeof entry[key] !== 'boolean') throw invalidFile(file, `${where}.${key} must be true or false`)
    context[key] = entry[key] as boolean
  }
  const password = parsePasswordSource(entry.password, where, file)
  if (password) context.password = password
  return context
}

/** The contexts file's content, checked; `file` names it in errors. */
export function parseContextsFile(text: string, file: string): ContextsFile {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw invalidFile(file, (error as Error).message)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalidFile(file, 'not a JSON object')
  const document = raw as Record<string, unknown>
  const contexts: Record<string, ClusterContext> = {}
  const entries = document.contexts ?? {}
  if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) throw invalidFile(file, 'contexts must be an object')
  for (const [name, value] of Object.entries(entries)) {
    if (!NAME_RE.test(name)) throw invalidFile(file, `invalid context name '${name}'`)
    contexts[name] = parseContext(value, name, file)
  }
  if (document.current !== undefined && (typeof document.current !== 'string' || !Object.hasOwn(contexts, document.current))) {
    throw invalidFile(file, `current names no context ('${String(document.current)}')`)
  }
  return {contexts, ...(document.current === undefined ? {} : {current: document.current as string})}
}

/** The contexts, or none when the file does not exist. */
export function readContexts(file = contextsFilePath()): ContextsFile {
  let text: string
  try {
    text = readRegularFileSync(file, MAX_CONTEXTS_FILE_BYTES).toString('utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {contexts: {}}
    throw usageError(`cannot read '${file}': ${readErrorText(error)}`)
  }
  return parseContextsFile(text, file)
}

/** Writes the contexts whole: a new owner-only file takes the name (a symlink there is replaced, never followed). */
export async function writeContexts(contexts: ContextsFile, file = contextsFilePath()): Promise<void> {
  ensurePrivateDirSync(path.dirname(file))
  const ordered: ContextsFile = {
    ...(contexts.current === undefined ? {} : {current: contexts.current}),
    contexts: Object.fromEntries(Object.entries(contexts.contexts).sort(([a], [b]) => compareText(a, b))),
  }
  await writeOutputFile(file, `${JSON.stringify(ordered, null, 2)}\n`, {overwrite: true})
}

/** The context `name`, or a usage error listing the ones there are. */
export function findContext(contexts: ContextsFile, name: string, file = contextsFilePath()): ClusterContext {
  const context = Object.hasOwn(contexts.contexts, name) ? contexts.contexts[name] : undefined
  if (context) return context
  const names = Object.keys(contexts.contexts)
  throw usageError(`no context named '${name}' in ${file}`, [names.length > 0 ? `contexts: ${names.join(', ')}` : 'add one with: slotctl context add NAME HOST:PORT'])
}

/** How the password source reads in a list ("env PROD_PASS", "file ~/.redis-pass", "askpass"). */
export function describePasswordSource(source: PasswordSource | undefined): string {
  if (!source) return '-'
  if ('env' in source) return `env ${source.env}`
  if ('file' in source) return `file ${source.file}`
  return 'askpass'
}

/**
 * The password a source gives now (askpass is asked by the caller). An unset variable or
 * an unreadable file is a usage error naming the context, never an empty password.
 */
export function passwordFromSource(source: {env: string} | {file: string}, contextName: string, env: NodeJS.ProcessEnv = process.env): string {
  if ('env' in source) {
    const value = env[source.env]
    if (value === undefined || value === '') throw usageError(`context '${contextName}' takes its password from $${source.env}, which is not set`, [`export ${source.env}, or give --password-env NAME again with: slotctl context add ${contextName} ... --overwrite`])
    return value
  }
  let text: string
  try {
    text = readRegularFileSync(source.file, MAX_PASSWORD_FILE_BYTES).toString('utf8')
  } catch (error) {
    throw usageError(`context '${contextName}' takes its password from '${source.file}': cannot read it (${readErrorText(error)})`)
  }
  // one line; the newline an editor or `echo` adds is not part of the password
  const password = text.replace(/\r?\n$/, '')
  if (password === '') throw usageError(`context '${contextName}' takes its password from '${source.file}', which is empty`)
  return password
}

/** A password file others can read is worth a warning (not a refusal: the operator owns it). */
export function passwordFileWarning(file: string): string | undefined {
  try {
    const mode = statSync(file).mode & 0o777
    if (mode & 0o077) return `password file '${file}' is readable by others (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it`
  } catch {
    // unreadable files are reported when read
  }
  return undefined
}

/** A context as listed (list, --json): its settings and where its password comes from, never a password. */
export interface ContextView extends Omit<ClusterContext, 'password'> {
  name: string
  current: boolean
  passwordSource: PasswordSource | null
}

export function contextViews(contexts: ContextsFile): ContextView[] {
  return Object.entries(contexts.contexts)
    .sort(([a], [b]) => compareText(a, b))
    .map(([name, {password, ...settings}]) => ({name, ...settings, current: contexts.current === name, passwordSource: password ?? null}))
}
