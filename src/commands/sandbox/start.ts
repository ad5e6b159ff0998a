import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {usageError} from '../../lib/core/errors.js'
import {paint} from '../../lib/cli/render.js'
import {type VerbResult} from '../../lib/core/result.js'
import {durationFlag} from '../../lib/cli/duration.js'
import {commandName} from '../../lib/cli/invocation.js'
import {type SandboxNode, SANDBOX_DIR_HELP, SANDBOX_DIR_NOTE, dirFlag, resolveSandboxDir, sandboxServer, startSandbox, stopSandbox, verifiedSandboxState} from '../../lib/local/sandbox.js'

export interface SandboxStartResult extends VerbResult {
  status: 'started'
  dir: string
  seed: string
  masterCount: number
  replicasPerMaster: number
  keyCount: number
  passwordProtected: boolean
  nodes: SandboxNode[]
}

/** Connection flags that make no sense for servers the sandbox starts itself. */
const UNSUPPORTED = ['user', 'tls', 'cacert', 'cert', 'key', 'sni', 'insecure'] as const

export default class SandboxStart extends BaseCommand<typeof SandboxStart> {
  /** it reaches no cluster of the operator's: no context applies */
  static override usesContexts = false

  static override summary = 'Start a local cluster of real servers to try slotctl on'

  static override description = BaseCommand.withExitCodes(
    'Start a local cluster of real redis-server or valkey-server processes (--server, else the first found on PATH) to try slotctl on. The servers keep running after this command; stop them with `slotctl sandbox stop`.\n' +
      'With -a/--password (or REDISCLI_AUTH) every server requires that password; the sandbox never stores it, so pass it again to the other verbs. TLS and ACL users are not supported (refused).',
    {1: 'a sandbox runs already, no server, or the cluster did not form', 2: 'bad input (too few masters, ports in use, unsupported flags)'},
  )

  static override examples = ['<%= config.bin %> sandbox start', '<%= config.bin %> sandbox start --masters 4 --replicas 1 --keys 100000 --port 17000', 'REDISCLI_AUTH=s3cret <%= config.bin %> sandbox start', '<%= config.bin %> sandbox start --server /usr/bin/valkey-server']

  static override flags = {
    masters: Flags.integer({default: 3, description: 'number of masters (at least 3)', min: 1}),
    replicas: Flags.integer({default: 1, description: 'replicas per master', min: 0}),
    port: Flags.integer({description: 'first port; the nodes use PORT, PORT+1, ... (default: free ports found at run time)', min: 1}),
    host: Flags.string({default: '127.0.0.1', description: 'local address to bind and announce'}),
    dir: Flags.string({description: `where the servers keep their files and the sandbox its state ${SANDBOX_DIR_NOTE}`, defaultHelp: async () => SANDBOX_DIR_HELP}),
    keys: Flags.integer({default: 0, description: 'demo keys to load (demo:0 ... demo:N-1), spread over the slots', min: 0}),
    'wait-timeout': durationFlag({defaultMs: 60_000, description: 'how long to wait for the cluster to form', minMs: 1, plainUnit: 's'}),
    server: Flags.string({description: 'the redis-server or valkey-server binary to run (default: redis-server, else valkey-server, from PATH)'}),
  }

  async run(): Promise<SandboxStartResult> {
    if (this.flags.masters < 3) throw usageError('a cluster needs at least 3 masters', ['use --masters 3 or more'])
    const given = UNSUPPORTED.filter((name) => this.flags[name] !== undefined && this.flags[name] !== false)
    if (given.length > 0) throw usageError(`sandbox start does not support --${given.join(', --')}: the sandbox servers run locally without TLS or ACL users`, ['-a/--password (or REDISCLI_AUTH) is supported: every server then requires it'])
    const server = sandboxServer(this.flags.server)
    verifiedSandboxState(this.sandboxDir())
    const state = await startSandbox({
      onStarting: (count) => this.note(`starting ${count} ${server.name} ${server.version} processes (${server.path})...`),
      basePort: this.flags.port,
      dir: this.sandboxDir(),
      host: this.flags.host,
      keys: this.flags.keys,
      masters: this.flags.masters,
      password: this.flags.password,
      replicas: this.flags.replicas,
      server,
      waitTimeoutMs: this.flags['wait-timeout'],
    })
    const slotctl = commandName(this.config.bin)
    const protectedNote = state.passwordProtected ? ' (password required: pass -a or set REDISCLI_AUTH)' : ''
    this.log(paint.good(`sandbox cluster ready: ${state.masters} masters, ${state.replicas} replica(s) each, ${state.keys} demo keys, on ${server.name} ${server.version}${protectedNote}`))
    this.log(`seed: ${state.seed}`)
    this.log(`try:  ${slotctl} check ${state.seed}`)
    this.log(`stop: ${slotctl} sandbox stop${dirFlag(state.dir)}`)
    return {
      dir: state.dir,
      errors: [],
      keyCount: state.keys,
      masterCount: state.masters,
      nodes: state.nodes,
      passwordProtected: Boolean(state.passwordProtected),
      replicasPerMaster: state.replicas,
      seed: state.seed,
      status: 'started',
      warnings: [],
    }
  }

  /** The servers are detached, so Ctrl-C during start must stop the ones already running. */
  protected override async onInterrupt(signal: NodeJS.Signals): Promise<void> {
    if (this.flags) {
      const {stopped} = await stopSandbox(this.sandboxDir()).catch(() => ({stopped: 0}))
      if (stopped > 0) this.note(`stopped the ${stopped} sandbox server(s) started so far`)
    }
    await super.onInterrupt(signal)
  }

  private sandboxDir(): string {
    return resolveSandboxDir(this.flags.dir)
  }
}
