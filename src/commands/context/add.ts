import {existsSync} from 'node:fs'
import path from 'node:path'

import {Args, Flags} from '@oclif/core'

import {type ContextResult, ContextCommand} from '../../lib/cli/context-command.js'
import {type ClusterContext, type PasswordSource, CONTEXTS_FILE_HELP, checkContextName, checkEnvName, checkSeed, readContexts, writeContexts} from '../../lib/context/contexts.js'
import {usageError} from '../../lib/core/errors.js'

export default class ContextAdd extends ContextCommand<typeof ContextAdd> {
  static override args = {
    name: Args.string({description: 'a name for the cluster (letters, digits, . _ -)', required: true}),
    seed: Args.string({description: 'any node of the cluster (HOST:PORT, or a redis:// / rediss:// URL without a password)', required: true}),
  }

  static override summary = 'Name a cluster: seed, user, TLS files and password source'

  static override description = ContextCommand.withExitCodes(
    `Add a named cluster to ${CONTEXTS_FILE_HELP}: its seed, and the --user and TLS flags (--tls, --cacert, --cert, --key, --sni, --insecure) given here. ` +
      'The password is never stored: only where it comes from, --password-env NAME, --password-file PATH, or --askpass (asked on each run). ' +
      'The first context added becomes the current one (the seed of verbs run without an address); --use makes this one current.',
    {2: 'bad input (name, seed, a password given, name taken, no such file)'},
  )

  static override examples = [
    '<%= config.bin %> context add prod 10.0.0.1:7000 --user ops --cacert /etc/redis/ca.pem --password-env PROD_REDIS_PASSWORD',
    '<%= config.bin %> context add sandbox 127.0.0.1:30001 --use',
    '<%= config.bin %> context add staging rediss://10.1.0.1:6380 --askpass',
  ]

  static override flags = {
    overwrite: Flags.boolean({description: 'replace a context of that name'}),
    'password-env': Flags.string({description: 'take the password from this environment variable on each run', exclusive: ['password-file'], helpValue: 'NAME'}),
    'password-file': Flags.string({description: 'take the password from this file (its first line) on each run; keep it mode 600', exclusive: ['password-env'], helpValue: 'PATH'}),
    use: Flags.boolean({description: 'make it the current context'}),
  }

  async run(): Promise<ContextResult> {
    const name = checkContextName(this.args.name)
    if (this.rawTokens.some((token) => token.type === 'flag' && token.flag === 'password')) {
      throw usageError('a context never stores a password', ['give where it comes from instead: --password-env NAME, --password-file PATH or --askpass'])
    }
    const context: ClusterContext = {seed: checkSeed(this.args.seed), ...this.tlsSettings()}
    if (this.flags.user) context.user = this.flags.user
    const password = this.passwordSource()
    if (password) context.password = password
    const contexts = readContexts(this.contextsFile)
    if (Object.hasOwn(contexts.contexts, name) && !this.flags.overwrite) {
      throw usageError(`a context named '${name}' exists`, ['pass --overwrite to replace it, or choose another name'])
    }
    contexts.contexts[name] = context
    const makeCurrent = this.flags.use || contexts.current === undefined
    if (makeCurrent) contexts.current = name
    await writeContexts(contexts, this.contextsFile)
    this.log(`added context ${name} (${context.seed})${makeCurrent ? ', now the current one' : `; make it current with: ${this.config.bin} context use ${name}`}`)
    return this.contextResult(contexts, name)
  }

  /** TLS files are stored as absolute paths (the context works from any directory), and must exist now. */
  private tlsSettings(): Partial<ClusterContext> {
    const f = this.flags
    const settings: Partial<ClusterContext> = {}
    for (const key of ['cacert', 'cert', 'key'] as const) if (f[key]) settings[key] = existingFile(f[key] as string, `--${key}`)
    if (f.sni) settings.sni = f.sni
    if (f.insecure) settings.insecure = true
    if (f.tls || Object.keys(settings).length > 0 || /^rediss:/i.test(this.args.seed)) settings.tls = true
    return settings
  }

  private passwordSource(): PasswordSource | undefined {
    const f = this.flags
    const given = [f['password-env'] && '--password-env', f['password-file'] && '--password-file', f.askpass && '--askpass'].filter(Boolean)
    if (given.length > 1) throw usageError(`${given.join(' and ')} both say where the password comes from: give one`)
    if (f['password-env']) return {env: checkEnvName(f['password-env'])}
    if (f['password-file']) return {file: existingFile(f['password-file'], '--password-file')}
    if (f.askpass) return {askpass: true}
    return undefined
  }
}

function existingFile(file: string, flag: string): string {
  const absolute = path.resolve(file)
  if (!existsSync(absolute)) throw usageError(`${flag} '${file}': no such file`)
  return absolute
}
