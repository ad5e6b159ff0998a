import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {paint, table} from '../../lib/cli/render.js'
import {type SandboxNodeStatus, defaultSandboxDir, resolveSandboxDir, readSandboxState, sandboxStatus} from '../../lib/local/sandbox.js'

export interface SandboxStatusResult {
  dir: string
  running: boolean
  ready: boolean
  seed?: string
  nodes: SandboxNodeStatus[]
}

export default class SandboxStatus extends BaseCommand<typeof SandboxStatus> {
  static description = BaseCommand.withExitCodes('Show the sandbox processes: address, pid, whether each is alive, and its role. Exits 1 when no sandbox is recorded.')

  static examples = ['<%= config.bin %> sandbox status', '<%= config.bin %> sandbox status --json']

  static flags = {
    dir: Flags.string({description: 'the sandbox directory', defaultHelp: async () => defaultSandboxDir()}),
  }

  async run(): Promise<SandboxStatusResult> {
    const dir = resolveSandboxDir(this.flags.dir)
    const state = readSandboxState(dir)
    if (!state) {
      this.log(`no sandbox recorded in ${dir}; start one with: ${this.config.bin} sandbox start`)
      this.resultExitCode = 1
      return {dir, nodes: [], ready: false, running: false}
    }
    const nodes = await sandboxStatus(state)
    this.log(table(['address', 'pid', 'alive', 'role'], nodes.map((node) => [node.address, node.pid, node.alive ? 'yes' : paint.bad('no'), node.role])))
    this.log(`seed: ${state.seed}${state.ready ? '' : paint.warn(' (the cluster never finished forming: stop and start again)')}`)
    return {dir, nodes, ready: Boolean(state.ready), running: nodes.some((node) => node.alive), seed: state.seed}
  }
}
