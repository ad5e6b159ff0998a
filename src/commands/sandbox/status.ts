import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/base-command.js'
import {table} from '../../lib/render.js'
import {type SandboxNode, defaultSandboxDir, nodeAlive, readSandboxState} from '../../lib/sandbox.js'

export interface SandboxStatusResult {
  dir: string
  running: boolean
  seed?: string
  nodes: Array<SandboxNode & {alive: boolean}>
}

export default class SandboxStatus extends BaseCommand<typeof SandboxStatus> {
  static description = BaseCommand.withExitCodes('Show the sandbox processes and whether each is alive. Exits 1 when no sandbox is recorded.')

  static flags = {
    dir: Flags.string({description: 'the sandbox directory', defaultHelp: async () => defaultSandboxDir()}),
  }

  async run(): Promise<SandboxStatusResult> {
    const dir = this.flags.dir ?? defaultSandboxDir()
    const state = readSandboxState(dir)
    if (!state) {
      this.log(`no sandbox recorded in ${dir}; start one with: ${this.config.bin} sandbox start`)
      this.resultExitCode = 1
      return {dir, nodes: [], running: false}
    }
    const nodes = state.nodes.map((node) => ({...node, alive: nodeAlive(node)}))
    this.log(table(['address', 'pid', 'alive'], nodes.map((node) => [node.address, node.pid, node.alive ? 'yes' : 'no'])))
    this.log(`seed: ${state.seed}`)
    return {dir, nodes, running: nodes.some((node) => node.alive), seed: state.seed}
  }
}
