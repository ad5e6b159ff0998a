/**
 * The base every slotctl verb extends: global flags, connection settings, colour, the
 * --json contract, exit codes, secret-free errors, and closing every client on exit.
 */
import {Command, Errors, Flags, type Interfaces} from '@oclif/core'

import {type NodeAddress, isBareHost, parseAddress, parseAddressList} from '../cluster/address.js'
import {clusterChange} from '../cluster/changes.js'
import {type ClusterSnapshot, type LoadOptions, loadCluster} from '../cluster/loader.js'
import {type ConnectionSettings, NodePool} from '../cluster/connection.js'
import {type RunLock, acquireRunLock, refuseIfOtherRun} from '../cluster/run-lock.js'
import {mastersOf} from '../cluster/topology.js'
import {ExitCode, SlotctlError, errorMessage, usageError} from '../core/errors.js'
import {PhaseClock} from '../phases.js'
import {writeStderr, writeStdout} from './output.js'
import {hasUrlPassword, redactSecrets, registerSecret, registerUrlSecrets} from '../secrets.js'
import {type ClusterContext, findContext, passwordFileWarning, passwordFromSource, readContexts} from '../context/contexts.js'
import {askSecretOrFail, confirmOrFail} from './prompt.js'
import type {ProgressReporter} from './progress.js'
import {type IssueView, applyColour, paint, colourEnabled, colourOn, renderIssues, wrapLine} from './render.js'
import {escapeControl, escapeTerminal} from '../core/escape.js'
import {type ErrorEnvelope, type Issue, errorDocument, successDocument} from '../core/result.js'
import {durationFlag, parseDuration} from './duration.js'
import {type ClusterRef, type HistoryRecord, type Outcome, appendHistory, clusterIdOf, currentHost, currentUser, redactArgs} from '../history/audit-log.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/** Codes every verb can end with; verbs add or reword theirs (withExitCodes). */
const COMMON_EXIT_CODES: Record<number, string> = {
  0: 'success',
  1: 'failed (unreachable node, refused change, server error)',
  2: 'bad input (malformed address, unknown node id, bad flag value)',
  130: 'interrupted (Ctrl-C / SIGTERM)',
}

function truthyEnv(value: string | undefined): boolean {
  return value !== undefined && !['', '0', 'false', 'no'].includes(value.toLowerCase())
}

/** oclif wraps a flag's parse error as "Parsing --flag \n\t<message>\nSee more help with --help". */
function unwrapFlagParseMessage(message: string): string {
  const inner = /^Parsing (--\S+) *\n\t(.*?)(\nSee more help with --help)?$/s.exec(message)
  if (!inner) return message
  const [, flag, text] = inner
  return text.includes(flag) ? text : `${flag}: ${text.charAt(0).toLowerCase()}${text.slice(1)}`
}

/** "Missing 1 required arg:\naddress  any node ..." keeps the argument names on the one line. */
function missingArgsMessage(err: {args: Array<{name: string; description?: string}>}): string {
  const names = err.args.map((arg) => (arg.description ? `${arg.name} (${arg.description})` : arg.name))
  return `missing required argument${names.length === 1 ? '' : 's'}: ${names.join(', ')}`
}

/**
 * oclif spreads one reason over several lines ("Parsing --slots", a tab-indented reason,
 * "See more help with --help"); errors here are one line, so the parts are joined.
 */
export function flattenOclifMessage(message: string): string {
  const lines = message
    .split('\n')
    .map((line) => line.trim().replace(/^Error:\s*/, ''))
    .filter((line) => line !== '' && !/^See more help with --help$/.test(line))
    // "name  description" (an argument listing): keep the name, the description in brackets
    .map((line, index) => (index > 0 ? line.replace(/^(\S+)\s{2,}(.+)$/, '$1 ($2)') : line))
  const [head = '', ...reasons] = lines
  if (reasons.length === 0) return head
  return `${head}${head.endsWith(':') ? ' ' : ': '}${reasons.join('; ')}`
}

/** Whatever a message holds (a file's content quoted by JSON.parse, a server's reply), it is shown as one line. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim()
}

/** A message as shown: secret-free, one line, control characters (a key's, a node's) escaped. */
function shownLine(text: string): string {
  return escapeControl(oneLine(redactSecrets(text)))
}

/** Lines for the terminal: secret-free, and no control character but newlines and slotctl's own colours. */
export function shownText(text: string): string {
  return escapeTerminal(redactSecrets(text), colourOn())
}

/** Reduces anything thrown to a stable, secret-free shape. Never serialises the error object. */
export function toEnvelope(err: unknown): ErrorEnvelope {
  const envelope = rawEnvelope(err)
  return {
    ...envelope,
    message: shownLine(envelope.message),
    ...(envelope.suggestions ? {suggestions: envelope.suggestions.map((hint) => shownLine(hint))} : {}),
  }
}

function rawEnvelope(err: unknown): ErrorEnvelope {
  if (err instanceof SlotctlError) {
    return {code: err.code, exitCode: err.exitCode, message: unwrapFlagParseMessage(err.message), ...(err.suggestions.length > 0 ? {suggestions: err.suggestions} : {})}
  }
  if (err instanceof Errors.CLIError) {
    // UnexpectedArgsError carries `args` too (the unexpected words): only a missing argument is named from them
    const missing = Array.isArray((err as unknown as {args?: unknown}).args) && /^Missing \d+ required arg/.test(err.message)
    const message = missing ? missingArgsMessage(err as unknown as {args: Array<{name: string; description?: string}>}) : flattenOclifMessage(unwrapFlagParseMessage(err.message))
    const exitCode = typeof err.oclif?.exit === 'number' ? err.oclif.exit : ExitCode.usage
    return {code: 'E_USAGE', exitCode: exitCode === 1 ? ExitCode.usage : exitCode, message, suggestions: ['see --help']}
  }
  return {code: 'E_FAILED', exitCode: ExitCode.failed, message: errorMessage(err)}
}

/** Every verb that changes a cluster takes the run lock; this is the only way past it. */
export const ignoreLockFlag = Flags.boolean({
  description: 'go on although another slotctl run (or a stale or forged lock marker) seems to hold the cluster; only when you know no other slotctl run is active',
})

/**
 * --force once also bypassed the run lock; on verbs where that was its only meaning it is
 * kept, hidden, to say so instead of silently doing something else.
 */
export const retiredForceFlag = Flags.boolean({description: 'replaced by --ignore-lock', hidden: true})

/** The value a bare `--watch` takes (watch(1)'s default). */
export const DEFAULT_WATCH_INTERVAL = '2s'

/** `--watch [INTERVAL]`: redraw every INTERVAL until Ctrl-C (a bare --watch: every 2 s). */
export const watchFlag = durationFlag({
  description: `redraw every INTERVAL until Ctrl-C, then exit with the last state's code; a bare --watch redraws every ${DEFAULT_WATCH_INTERVAL}`,
  minMs: 100,
  plainUnit: 's',
})

/**
 * oclif has no flag with an optional value: a bare `--watch` (last, or followed by another
 * flag or an address) gets its default here, before parsing. A following word that is a
 * duration is its value.
 */
export function fillOptionalFlagValues(argv: readonly string[], defaults: Readonly<Record<string, string>>): string[] {
  const out: string[] = []
  for (const [index, token] of argv.entries()) {
    if (token === '--') return [...out, ...argv.slice(index)]
    out.push(token)
    const name = /^--([\w-]+)$/.exec(token)?.[1]
    const next = argv[index + 1]
    if (name && Object.hasOwn(defaults, name) && (next === undefined || parseDuration(next, 's') === undefined)) out.push(defaults[name])
  }
  return out
}

/** Clears a terminal and puts the cursor home, as watch(1) does between rounds. */
const CLEAR_SCREEN = '\u001B[H\u001B[2J'

function formatWatchInterval(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`
}

/** The verb's args with `address` optional: a context may give it (checked after parsing). */
function withOptionalAddress<A extends Record<string, unknown> | undefined>(args: A): A {
  if (!args || !('address' in args)) return args
  return {...args, address: {...(args.address as object), required: false}}
}

/** What oclif says of a missing address, with the other way to give one. */
function missingSeedError(args: Record<string, {description?: string}> | undefined): SlotctlError {
  const description = args?.address?.description
  return usageError(`missing required argument: address${description ? ` (${description})` : ''}`, ['see --help, or set a current context: slotctl context add NAME HOST:PORT'])
}

function reachableMasters(snapshot: ClusterSnapshot): string[] {
  return mastersOf(snapshot.nodes)
    .filter((node) => node.address && snapshot.views[node.id]?.reachable)
    .map((node) => node.address)
}

export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    password: Flags.string({char: 'a', description: 'password for AUTH (prefer REDISCLI_AUTH or --askpass: a flag is visible in ps)', env: 'REDISCLI_AUTH', helpGroup: 'CONNECTION'}),
    askpass: Flags.boolean({description: 'ask for the password on the terminal, without echo', helpGroup: 'CONNECTION'}),
    'no-auth-warning': Flags.boolean({description: 'no warning when a password is given on the command line', helpGroup: 'CONNECTION'}),
    user: Flags.string({description: 'ACL user name for AUTH', helpGroup: 'CONNECTION'}),
    tls: Flags.boolean({description: 'connect with TLS (implied by every other TLS flag)', helpGroup: 'CONNECTION'}),
    cacert: Flags.string({description: 'CA certificate file (PEM) to verify servers; implies --tls', helpGroup: 'CONNECTION'}),
    cert: Flags.string({description: 'client certificate file (PEM); implies --tls', helpGroup: 'CONNECTION'}),
    key: Flags.string({description: 'client private key file (PEM); implies --tls', helpGroup: 'CONNECTION'}),
    sni: Flags.string({description: 'server name for TLS SNI; implies --tls', helpGroup: 'CONNECTION'}),
    insecure: Flags.boolean({description: 'do not verify the server certificate; implies --tls', helpGroup: 'CONNECTION'}),
    'connect-timeout': durationFlag({defaultMs: 3000, description: 'connect timeout per node', helpGroup: 'CONNECTION', minMs: 1, plainUnit: 'ms'}),
    context: Flags.string({description: 'use the named cluster of `slotctl context list` (seed, user, TLS, password source); also SLOTCTL_CONTEXT. A flag given here wins over it', env: 'SLOTCTL_CONTEXT', helpGroup: 'CONNECTION'}),
    'read-timeout': durationFlag({defaultMs: 5000, description: 'how long a node may take to answer a read before it is reported as hung', helpGroup: 'CONNECTION', minMs: 1, plainUnit: 'ms'}),
    yes: Flags.boolean({char: 'y', description: 'answer yes to confirmations (also SLOTCTL_YES=1 or REDISCLI_CLUSTER_YES=1)', env: 'SLOTCTL_YES', helpGroup: 'GLOBAL'}),
    'no-color': Flags.boolean({description: 'no colour (also NO_COLOR=1)', helpGroup: 'GLOBAL'}),
    quiet: Flags.boolean({char: 'q', description: 'print only results, warnings and errors: no progress or step notes', exclusive: ['verbose'], helpGroup: 'GLOBAL'}),
    verbose: Flags.boolean({description: 'more detail (every item of grouped warnings, per-slot lines), and stack traces on errors', helpGroup: 'GLOBAL'}),
  }

  static override enableJsonFlag = true

  /**
   * A verb that changes a cluster: each run (but a --dry-run) appends one record to the
   * audit log (history.jsonl in the state directory) when it ends, however it ends.
   */
  static changesCluster = false

  protected flags!: BaseFlags<T>
  protected args!: BaseArgs<T>
  /** Flags the operator gave (or set through env), as opposed to defaults. */
  protected flagsGiven = new Set<string>()
  /** Exit code to use after a successful run that still reports problems (check → 3). */
  protected resultExitCode: number = ExitCode.ok
  /** where this run's time goes (--verbose, phasesMs in --json) */
  protected readonly phases = new PhaseClock()
  private poolInstance?: NodePool
  private signalHandler?: (signal: NodeJS.Signals) => void
  private readonly startedAt = new Date()
  /** the last cluster this run read: the audit record names it */
  private lastSnapshot?: ClusterSnapshot
  /** the journal this run wrote or continued, for its audit record */
  protected historyJournal?: string
  /** the cluster a run that reads none names (create: its first node) */
  protected historyCluster?: ClusterRef
  private historyWritten = false

  /** The description with this verb's exit codes: the common ones plus (or reworded by) `own`. */
  static withExitCodes(description: string, own: Record<number, string> = {}): string {
    const codes = {...COMMON_EXIT_CODES, ...own}
    // wrapped here with a hanging indent, so help (at 80 columns) does not re-wrap them
    const lines = Object.keys(codes)
      .map(Number)
      .sort((a, b) => a - b)
      .flatMap((code) => wrapLine(codes[code], 68).map((text, index) => `${index === 0 ? String(code).padEnd(4) : '    '} ${text}`))
    return `${description}\n\nEXIT CODES\n${lines.join('\n')}`
  }

  /** Flags whose value may be left out (`--watch`), with the value they then take. */
  static optionalFlagValues: Record<string, string> = {}

  /**
   * The verb's first argument, `address` (any node of the cluster), may be left out: the
   * seed of --context, SLOTCTL_CONTEXT or the current context is used.
   */
  static seedFromContext = false

  /** A context applies to this verb (not to those that reach no cluster: version, sandbox, context). */
  static usesContexts = true

  /** --askpass names where a context's password comes from (context add): nothing is asked. */
  static askpassIsSource = false

  /** The command line as parsed: which flags were typed (a password must not be), not set through the environment. */
  protected rawTokens: ReadonlyArray<{flag?: string; input: string; type: string}> = []

  /** The context this run uses (its name), if any. */
  protected contextName?: string
  /** The password came from the context's source: a hint naming the context gets it again. */
  private passwordFromContext = false

  public override async init(): Promise<void> {
    await super.init()
    const ctor = this.ctor as unknown as typeof BaseCommand
    this.argv = fillOptionalFlagValues(this.argv, ctor.optionalFlagValues)
    const {args, flags, metadata, raw} = await this.parse({
      args: ctor.seedFromContext ? withOptionalAddress(this.ctor.args) : this.ctor.args,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      flags: this.ctor.flags,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
    this.rawTokens = raw
    this.flagsGiven = new Set(Object.keys(flags).filter((name) => !(metadata.flags as Record<string, {setFromDefault?: boolean}>)[name]?.setFromDefault))
    applyColour(colourEnabled({json: this.jsonEnabled(), noColorFlag: this.flags['no-color']}))
    if ((this.ctor.flags as Record<string, unknown> | undefined)?.force === retiredForceFlag && (this.flags as Record<string, unknown>).force) {
      throw usageError('--force no longer overrides the run lock: use --ignore-lock (only when no other slotctl run is active)')
    }
    if (ctor.usesContexts) this.applyContext()
    this.installSignalHandlers()
    if (ctor.askpassIsSource) this.registerPasswords(raw)
    else await this.settlePassword(raw)
    this.phases.markStartup()
  }

  /**
   * A context gives what the command line leaves out. --context or SLOTCTL_CONTEXT: its
   * seed when the address is left out, and its user, TLS files and password source for
   * whatever flag is not given. The current context (no --context) is used only when the
   * address is left out: an address typed for another cluster never gets its credentials.
   */
  private applyContext(): void {
    const ctor = this.ctor as unknown as typeof BaseCommand
    const f = this.flags as Record<string, unknown>
    const named = f.context as string | undefined
    const seedMissing = ctor.seedFromContext && (this.args as Record<string, unknown>).address === undefined
    if (!named && !seedMissing) return
    const contexts = readContexts()
    const name = named ?? contexts.current
    if (!name) throw missingSeedError(this.ctor.args)
    const context = findContext(contexts, name)
    this.contextName = name
    if (seedMissing) (this.args as Record<string, unknown>).address = context.seed
    for (const key of ['user', 'cacert', 'cert', 'key', 'sni'] as const) if (!this.flagsGiven.has(key) && context[key] !== undefined) f[key] = context[key]
    for (const key of ['tls', 'insecure'] as const) if (!this.flagsGiven.has(key) && context[key]) f[key] = true
    if (f.password === undefined && !f.askpass) this.takeContextPassword(context, name)
  }

  private takeContextPassword(context: ClusterContext, name: string): void {
    const source = context.password
    if (!source) return
    const f = this.flags as {askpass?: boolean; password?: string}
    this.passwordFromContext = true
    if ('askpass' in source) {
      f.askpass = true
      return
    }
    if ('file' in source) {
      const warning = passwordFileWarning(source.file)
      if (warning) writeStderr(`slotctl: warning: ${shownLine(warning)}`)
    }
    f.password = passwordFromSource(source, name)
  }

  /** Every password a flag holds is registered for redaction (without asking for one). */
  private registerPasswords(raw: ReadonlyArray<{flag?: string; input: string; type: string}>): void {
    for (const [name, value] of Object.entries(this.flags)) if (/password$/.test(name) && typeof value === 'string') registerSecret(value)
    for (const token of raw) registerUrlSecrets(token.input)
  }

  /**
   * Registers the password for redaction, warns (once, like redis-cli) when it was typed on
   * the command line, where ps and shell history show it, and asks for it with --askpass.
   */
  private async settlePassword(raw: ReadonlyArray<{flag?: string; input: string; type: string}>): Promise<void> {
    const f = this.flags
    // --password and any other password flag a verb has (import's --from-password); a URL of
    // any scheme: one that is refused is still echoed in its error
    this.registerPasswords(raw)
    const onCommandLine = raw.some((token) => (token.type === 'flag' && /password$/.test(token.flag ?? '')) || hasUrlPassword(token.input))
    if (onCommandLine && !f['no-auth-warning']) {
      writeStderr('slotctl: warning: a password on the command line shows in ps and in shell history; use REDISCLI_AUTH or --askpass instead')
    }
    if (f.askpass) {
      const password = await askSecretOrFail('Password:', '--askpass')
      registerSecret(password)
      ;(f as {password?: string}).password = password
    }
  }

  /** --yes, SLOTCTL_YES, or redis-cli's REDISCLI_CLUSTER_YES. */
  protected get assumeYes(): boolean {
    return Boolean(this.flags.yes) || truthyEnv(process.env.REDISCLI_CLUSTER_YES)
  }

  protected connectionSettings(fromAddress?: NodeAddress, commandTimeoutMs = 15_000): ConnectionSettings {
    const f = this.flags
    // A TLS option without --tls can only mean TLS: ignoring it would send plain text instead.
    const tls = Boolean(f.tls || f.cacert || f.cert || f.key || f.sni || f.insecure || fromAddress?.tls)
    return {
      commandTimeoutMs,
      connectTimeoutMs: f['connect-timeout'],
      password: f.password ?? fromAddress?.password,
      readTimeoutMs: f['read-timeout'],
      tls: {caFile: f.cacert, certFile: f.cert, enabled: tls, insecure: f.insecure, keyFile: f.key, servername: f.sni},
      username: f.user ?? fromAddress?.username,
    }
  }

  /**
   * The connection flags of this run, for commands slotctl prints for the operator to run
   * next (continue, fix): they must work as printed. The password never appears: it goes
   * through REDISCLI_AUTH.
   */
  protected connectionFlagsForHint(): string {
    const f = this.flags
    // with a context, the flags it gives are said by naming it; only those given beside it are repeated
    const given = (name: string) => !this.contextName || this.flagsGiven.has(name)
    const words: string[] = this.contextName ? ['--context', this.contextName] : []
    if (f.user && given('user')) words.push('--user', f.user)
    if (f.tls && given('tls')) words.push('--tls')
    for (const name of ['cacert', 'cert', 'key', 'sni'] as const) if (f[name] && given(name)) words.push(`--${name}`, f[name] as string)
    if (f.insecure && given('insecure')) words.push('--insecure')
    return words.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`)).join(' ')
  }

  /** A slotctl command line for the operator: this run's connection flags, the password through the environment. */
  protected commandHint(args: string): string {
    const flags = this.connectionFlagsForHint()
    // a password from -a or a URL must be given again; one from REDISCLI_AUTH still is
    const env = this.poolInstance?.settings.password && !process.env.REDISCLI_AUTH && !this.passwordFromContext ? 'REDISCLI_AUTH=<password> ' : ''
    return `${env}${this.config.bin} ${args}${flags ? ` ${flags}` : ''}`
  }

  /** The command's connection pool; created on first use with the global flags. */
  protected pool(seed?: NodeAddress, commandTimeoutMs?: number): NodePool {
    this.poolInstance ??= new NodePool(this.connectionSettings(seed, commandTimeoutMs))
    return this.poolInstance
  }

  protected parseSeed(words: string[]): NodeAddress {
    // `HOST PORT`: the second word is the port even when it is not a valid one, so the error names it
    if (words.length === 2 && isBareHost(words[0])) return parseAddress(words[0], words[1])
    const addresses = parseAddressList(words)
    if (addresses.length !== 1) throw usageError(`expected one node address, got ${addresses.length}`)
    return addresses[0]
  }

  protected async loadCluster(seed: NodeAddress, options?: LoadOptions): Promise<ClusterSnapshot> {
    const snapshot = await this.phases.time('load', () => loadCluster(this.pool(seed), seed, options))
    this.lastSnapshot = snapshot
    return snapshot
  }

  private runLock?: RunLock

  private get lockOptions() {
    return {ignoreLock: Boolean((this.flags as Record<string, unknown>)['ignore-lock']), warn: (message: string) => this.note(message)}
  }

  /**
   * Marks this run on every reachable master and refuses if another slotctl run is changing
   * the cluster (run-lock.ts); --ignore-lock goes on with a warning.
   */
  protected async lockCluster(snapshot: ClusterSnapshot): Promise<void> {
    this.runLock?.release()
    this.runLock = await this.phases.time('lock', () => acquireRunLock(this.pool(), reachableMasters(snapshot), this.id ?? 'slotctl', this.lockOptions))
  }

  /**
   * Takes the run lock, then reads the cluster again and refuses if it is not the one
   * `snapshot` showed. Whatever the run decided (its plan, its checks) was decided on that
   * read, before the lock: another run may have changed the cluster since, while this one
   * waited for its confirmation. Returns the read taken under the lock.
   */
  protected async lockUnchanged(snapshot: ClusterSnapshot, options?: LoadOptions): Promise<ClusterSnapshot> {
    await this.lockCluster(snapshot)
    const now = await this.loadCluster(parseAddress(snapshot.seedAddress), options)
    const change = clusterChange(snapshot, now)
    if (!change) return now
    throw new SlotctlError(`the cluster changed since this run read it (another run?): ${change}; nothing was changed`, {
      code: 'E_CLUSTER_CHANGED',
      suggestions: ['run the command again: it decides on the cluster as it is now'],
    })
  }

  /**
   * Read-only, before planning: another slotctl run changing the cluster is the reason to stop,
   * not its open slots. A --dry-run (or a verb that only reads, `readOnly`) is not stopped by a
   * marker no live run holds (it warns).
   */
  protected async refuseIfOtherRun(snapshot: ClusterSnapshot, readOnly = Boolean((this.flags as Record<string, unknown>)['dry-run'])): Promise<void> {
    await this.phases.time('lock', () => refuseIfOtherRun(this.pool(), reachableMasters(snapshot), {...this.lockOptions, readOnly}, this.runLock?.name))
  }

  protected async confirm(message: string): Promise<boolean> {
    return this.phases.time('confirm', () => confirmOrFail(message, this.assumeYes))
  }

  /** Progress and notes go to stderr so stdout stays clean for --json and pipes; --quiet drops them. */
  protected note(message: string): void {
    if (!this.jsonEnabled() && !this.flags?.quiet) writeStderr(shownText(message))
  }

  /** A warning line on stderr, --quiet included (it prints warnings); --json carries them in its document. */
  protected warnLine(message: string): void {
    if (!this.jsonEnabled()) writeStderr(shownText(message))
  }

  /** A line on stderr in every mode (--json and --quiet included): failures must be seen. */
  protected errorLine(message: string): void {
    writeStderr(shownText(message))
  }

  public override log(message = '', ...args: unknown[]): void {
    super.log(shownText(message), ...args)
  }

  /** Errors and warnings on stderr (even with --quiet), same-code ones grouped unless --verbose. */
  protected reportIssues(issues: {errors?: readonly IssueView[]; warnings?: readonly IssueView[]}, groupSummary?: (code: string) => string | undefined): void {
    if (this.jsonEnabled()) return
    const options = {groupSummary, verbose: this.flags?.verbose}
    const lines = [...renderIssues('Errors', 'ERR', issues.errors ?? [], options), ...renderIssues('Warnings', 'WARN', issues.warnings ?? [], options)]
    for (const line of lines) writeStderr(shownText(line))
  }

  private passwordWarningGiven = false

  /**
   * A password sent to nodes that need none: redis-cli calls that a failed AUTH; slotctl goes
   * on (one password for a mixed fleet) but says so, once per run. Undefined when there is
   * nothing to say or it was said already.
   */
  protected takePasswordNotNeededIssue(): Issue | undefined {
    const nodes = [...(this.poolInstance?.passwordNotNeeded ?? [])].sort()
    if (nodes.length === 0 || this.passwordWarningGiven) return undefined
    this.passwordWarningGiven = true
    const shown = nodes.length > 3 ? `${nodes.slice(0, 3).join(', ')} and ${nodes.length - 3} more` : nodes.join(', ')
    return {
      code: 'PASSWORD_NOT_NEEDED',
      hint: 'leave out the password (-a, --password, REDISCLI_AUTH, a URL\'s) for this cluster, or set one on it (requirepass, ACL)',
      message: `a password was given, but ${shown} ${nodes.length === 1 ? 'needs' : 'need'} none (redis-cli would report AUTH failed)`,
    }
  }

  /** Text mode: the spare-password warning on stderr (before an error line, if the run fails). */
  private warnPasswordNotNeeded(): void {
    const spare = this.takePasswordNotNeededIssue()
    if (spare) writeStderr(shownText(`slotctl: warning: ${spare.message}; ${spare.hint}`))
  }

  /** Every result gets schemaVersion (docs/json.md), and the spare-password warning in its warnings. */
  protected override toSuccessJson(result: unknown): unknown {
    const spare = this.takePasswordNotNeededIssue()
    const warnings = (result as {warnings?: unknown}).warnings
    if (spare && Array.isArray(warnings)) return successDocument({...(result as object), warnings: [...warnings, spare]})
    return successDocument(result as object)
  }

  /**
   * Plain JSON: oclif's version tokenizes it for colour (about 70 ms for a 4096-slot plan)
   * and would colour it on a terminal, which no JSON consumer wants.
   */
  public override logJson(json: unknown): void {
    writeStdout(redactSecrets(JSON.stringify(json, null, 2)))
  }

  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    if (err instanceof Errors.ExitError) throw err
    const envelope = toEnvelope(err)
    if (this.jsonEnabled()) {
      this.logJson(errorDocument(envelope))
    } else {
      this.warnPasswordNotNeeded()
      writeStderr(`slotctl: error: ${envelope.message}`)
      for (const hint of envelope.suggestions ?? []) writeStderr(`  hint: ${hint}`)
      if (this.flags?.verbose && err.stack) writeStderr(redactSecrets(err.stack))
    }
    return this.exit(envelope.exitCode)
  }

  /** Whether this run gets an audit record: a verb that changes a cluster, not a --dry-run. A verb may decide per run (call: a writing command). */
  protected recordsHistory(): boolean {
    return (this.ctor as unknown as typeof BaseCommand).changesCluster && !(this.flags as Record<string, unknown> | undefined)?.['dry-run']
  }

  private clusterRef(): ClusterRef | undefined {
    const snapshot = this.lastSnapshot
    if (!snapshot) return this.historyCluster
    const masters = mastersOf(snapshot.nodes).filter((node) => node.address)
    return {id: clusterIdOf(snapshot.nodes), masters: masters.map((node) => node.address).sort(), seed: snapshot.seedAddress}
  }

  /**
   * Appends this run's audit record (once). A log that cannot be written is a warning, never
   * the run's failure; not even that after bad input (exit 2), which changed nothing.
   */
  private writeHistory(exitCode: number, outcome: Outcome, err?: unknown): void {
    if (this.historyWritten || !this.flags || !this.recordsHistory()) return
    this.historyWritten = true
    const record: HistoryRecord = {
      args: redactArgs(this.argv),
      ...(this.clusterRef() ? {cluster: this.clusterRef()} : {}),
      ...(err ? {error: toEnvelope(err).message} : {}),
      exitCode,
      host: currentHost(),
      ...(this.historyJournal ? {journal: this.historyJournal} : {}),
      outcome,
      startedAt: this.startedAt.toISOString(),
      time: new Date().toISOString(),
      user: currentUser(),
      verb: this.id ?? 'slotctl',
    }
    const problem = appendHistory(record)
    if (problem && exitCode !== ExitCode.usage) writeStderr(`slotctl: warning: this run is not in the history log: ${shownLine(problem)}`)
  }

  private recordEnd(err: Error | undefined): void {
    // a run stopped by Ctrl-C may end without an error, with its exit code set to 130
    const exitCode = err instanceof Errors.ExitError ? err.oclif.exit ?? ExitCode.failed : err ? toEnvelope(err).exitCode : this.resultExitCode
    const outcome = exitCode === ExitCode.ok ? 'ok' : exitCode === ExitCode.interrupted ? 'interrupted' : 'failed'
    this.writeHistory(exitCode, outcome, err instanceof Errors.ExitError ? undefined : err)
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    this.recordEnd(err)
    if (!this.jsonEnabled()) this.warnPasswordNotNeeded()
    this.removeSignalHandlers()
    this.runLock?.release()
    await this.poolInstance?.closeAll()
    if (!err && this.resultExitCode !== ExitCode.ok) process.exitCode = this.resultExitCode
    return super.finally(err)
  }

  /** Verbs that move data set this: the first Ctrl-C then only requests a stop (stopRequest) while work is in flight. */
  protected finishInFlightOnInterrupt = false
  /** Set by verbs whose changes run without a progress display (fix), while they run. */
  protected applyingChanges = false
  /** Aborted by the first Ctrl-C of such a verb: start no new work, finish what is in flight. */
  protected readonly stopRequest = new AbortController()

  /** Changes under way that the first Ctrl-C lets finish: data moving (a progress display), or fix applying. */
  private get workInFlight(): boolean {
    return this.progress !== undefined || this.applyingChanges
  }

  /**
   * Ctrl-C: close every client and exit 130, except the first one in a verb that finishes
   * its in-flight work (a second Ctrl-C then exits at once). Before any change has started
   * (loading, planning, asking, locking) there is nothing to finish: the first one exits.
   */
  protected async onInterrupt(signal: NodeJS.Signals): Promise<void> {
    if (this.watchedCode !== undefined) {
      // watching: Ctrl-C is the way out, and the last state drawn decides the exit code
      await this.poolInstance?.closeAll()
      process.exit(this.watchedCode)
    }
    if (this.finishInFlightOnInterrupt && this.workInFlight && !this.stopRequest.signal.aborted) {
      this.stopRequest.abort()
      this.tell(this.firstInterruptMessage(signal))
      return
    }
    this.tell(this.lastInterruptMessage(signal))
    this.writeHistory(ExitCode.interrupted, 'interrupted')
    await this.poolInstance?.closeAll()
    process.exit(ExitCode.interrupted)
  }

  /** While watching (--watch): the exit code of the last state drawn (undefined before the first, or when not watching). */
  private watchedCode?: number

  /**
   * --watch: runs `round` (which reads and draws one state, and sets resultExitCode) every
   * `intervalMs` until Ctrl-C, which exits with the last state's code. On a terminal each
   * round redraws the screen under a header; in a pipe the rounds follow each other. With
   * --json each state is one line of JSON. A round that fails (the seed is down) is a state
   * too: its error is shown and its code kept, and watching goes on.
   */
  protected async watch<R>(intervalMs: number, what: string, round: () => Promise<R>): Promise<never> {
    const json = this.jsonEnabled()
    for (;;) {
      const startedAt = Date.now()
      this.resultExitCode = ExitCode.ok
      if (!json) {
        const clear = process.stdout.isTTY ? CLEAR_SCREEN : ''
        const header = `Every ${formatWatchInterval(intervalMs)}: ${this.config.bin} ${what}   ${new Date().toLocaleTimeString('en-GB')} (Ctrl-C to stop)`
        writeStdout(`${clear}${paint.heading(header)}\n`)
      }
      let code: number
      try {
        const result = await round()
        if (json) writeStdout(redactSecrets(JSON.stringify(this.toSuccessJson(result))))
        code = this.resultExitCode
      } catch (error) {
        const envelope = toEnvelope(error)
        if (json) writeStdout(redactSecrets(JSON.stringify(errorDocument(envelope))))
        else writeStdout(shownText(`slotctl: error: ${envelope.message}`))
        code = envelope.exitCode
        // a node that went away: the next round connects afresh
        await this.poolInstance?.closeAll()
        this.poolInstance = undefined
      }
      this.watchedCode = code
      await new Promise((resolve) => {
        setTimeout(resolve, Math.max(0, intervalMs - (Date.now() - startedAt)))
      })
    }
  }

  /** The progress display while data moves; lines said meanwhile go through it (not over it). */
  protected progress?: ProgressReporter

  /** Writes a line to stderr in every mode (--json included): an interrupt must be explained. */
  protected tell(message: string): void {
    if (this.progress) this.progress.say(shownText(message))
    else writeStderr(shownText(message))
  }

  protected firstInterruptMessage(signal: NodeJS.Signals): string {
    return `slotctl: ${signal}: finishing the work in flight, then stopping (press Ctrl-C again to exit at once)`
  }

  protected lastInterruptMessage(signal: NodeJS.Signals): string {
    return `slotctl: interrupted (${signal})`
  }

  private installSignalHandlers(): void {
    this.signalHandler = (signal) => {
      void this.onInterrupt(signal)
    }
    process.on('SIGINT', this.signalHandler)
    process.on('SIGTERM', this.signalHandler)
  }

  private removeSignalHandlers(): void {
    if (!this.signalHandler) return
    process.off('SIGINT', this.signalHandler)
    process.off('SIGTERM', this.signalHandler)
  }
}
