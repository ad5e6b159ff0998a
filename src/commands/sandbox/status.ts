import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {paint, table} from '../../lib/cli/render.js'
import {type VerbResult, byAddress} from '../../lib/core/result.js'
import {commandName} from '../../lib/cli/invocation.js'
import {type SandboxNodeStatus, SANDBOX_DIR_HELP, SANDBOX_DIR_NOTE, resolveSandboxDir, readSandboxState, sandboxStatus} from '../../lib/local/sandbox.js'

export interface SandboxStatusResult extends VerbResult {
  /** running: some recorded server is alive; stopped: none is; none: no sandbox recorded (exit 1). */
  status: 'none' | 'running' | 'stopped'
  dir: string
  running: boolean
  ready: boolean
  seed?: string
  nodes: SandboxNodeStatus[]
}

export default class SandboxStatus extends BaseCommand<typeof SandboxStatus> {
  /** it reaches no cluster of the operator's: no context applies */
  static override usesContexts = false

  static override summary = 'Show the sandbox servers: address, pid, alive, role'

  static override description = BaseCommand.withExitCodes('Show the sandbox processes: address, pid, whether each is alive, and its role. Exits 1 when no sandbox is recorded.', {
    0: 'a sandbox is recorded (running or not)',
    1: 'no sandbox is recorded in this dir',
  })

  static override examples = ['<%= config.bin %> sandbox status', '<%= config.bin %> sandbox status --json']

  static override flags = {
    dir: Flags.string({description: `the sandbox directory ${SANDBOX_DIR_NOTE}`, defaultHelp: async () => SANDBOX_DIR_HELP}),
  }

  async run(): Promise<SandboxStatusResult> {
    const dir = resolveSandboxDir(this.flags.dir)
    const state = readSandboxState(dir)
    if (!state) {
      this.log(`no sandbox recorded in ${dir}; start one with: ${commandName(this.config.bin)} sandbox start`)
      this.resultExitCode = 1
      return {dir, errors: [], nodes: [], ready: false, running: false, status: 'none', warnings: []}
    }
    const nodes = (await sandboxStatus(state, this.flags.password)).sort(byAddress)
    this.log(table(['address', 'pid', 'alive', 'role'], nodes.map((node) => [node.address, node.pid, node.alive ? 'yes' : paint.bad('no'), node.role])))
    this.log(`seed: ${state.seed}${state.ready ? '' : paint.warn(' (the cluster never finished forming: stop and start again)')}`)
    if (state.server) this.log(`server: ${state.server.name} ${state.server.version} (${state.server.path})`)
    const running = nodes.some((node) => node.alive)
    return {dir, errors: [], nodes, ready: Boolean(state.ready), running, seed: state.seed, status: running ? 'running' : 'stopped', warnings: []}
  }
}
