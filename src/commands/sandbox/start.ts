import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {usageError} from '../../lib/errors.js'
import {paint} from '../../lib/cli/render.js'
import {type SandboxState, defaultSandboxDir, dirFlag, resolveSandboxDir, startSandbox, stopSandbox} from '../../lib/local/sandbox.js'

export default class SandboxStart extends BaseCommand<typeof SandboxStart> {
  static description = BaseCommand.withExitCodes(
    'Start a local cluster of real redis-server processes to try slotctl on. The servers keep running after this command; stop them with `slotctl sandbox stop`.',
  )

  static examples = ['<%= config.bin %> sandbox start', '<%= config.bin %> sandbox start --masters 4 --replicas 1 --keys 100000 --port 17000']

  static flags = {
    masters: Flags.integer({default: 3, description: 'number of masters (at least 3)', min: 1}),
    replicas: Flags.integer({default: 1, description: 'replicas per master', min: 0}),
    port: Flags.integer({description: 'first port; the nodes use PORT, PORT+1, ... (default: free ports found at run time)', min: 1}),
    host: Flags.string({default: '127.0.0.1', description: 'local address to bind and announce'}),
    dir: Flags.string({description: 'where the servers keep their files and the sandbox its state', defaultHelp: async () => defaultSandboxDir()}),
    keys: Flags.integer({default: 0, description: 'demo keys to load (demo:0 ... demo:N-1), spread over the slots', min: 0}),
    'wait-timeout': Flags.integer({default: 60, description: 'seconds to wait for the cluster to form', min: 1}),
  }

  async run(): Promise<SandboxState> {
    if (this.flags.masters < 3) throw usageError('a cluster needs at least 3 masters', ['use --masters 3 or more'])
    this.note(`starting ${this.flags.masters * (this.flags.replicas + 1)} redis-server processes...`)
    const state = await startSandbox({
      basePort: this.flags.port,
      dir: this.sandboxDir(),
      host: this.flags.host,
      keys: this.flags.keys,
      masters: this.flags.masters,
      replicas: this.flags.replicas,
      waitTimeoutMs: this.flags['wait-timeout'] * 1000,
    })
    this.log(paint.good(`sandbox cluster ready: ${state.masters} masters, ${state.replicas} replica(s) each, ${state.keys} demo keys`))
    this.log(`seed: ${state.seed}`)
    this.log(`try:  ${this.config.bin} check ${state.seed}`)
    this.log(`stop: ${this.config.bin} sandbox stop${dirFlag(state.dir)}`)
    return state
  }

  /** The servers are detached, so Ctrl-C during start must stop the ones already running. */
  protected async onInterrupt(signal: NodeJS.Signals): Promise<void> {
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
