import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {type VerbResult} from '../../lib/core/result.js'
import {SANDBOX_DIR_HELP, SANDBOX_DIR_NOTE, resolveSandboxDir, stopSandbox} from '../../lib/local/sandbox.js'

export interface SandboxStopResult extends VerbResult {
  /** stopped: a recorded sandbox was stopped; none: nothing was recorded (not an error). */
  status: 'none' | 'stopped'
  dir: string
  stopped: number
}

export default class SandboxStop extends BaseCommand<typeof SandboxStop> {
  /** it reaches no cluster of the operator's: no context applies */
  static override usesContexts = false

  static override summary = 'Stop exactly the servers sandbox start recorded'

  static override description = BaseCommand.withExitCodes(
    'Stop the sandbox: ends exactly the server processes `sandbox start` recorded and started, and removes the directories it created. A state file naming anything else is refused. Stopping when nothing runs is not an error.',
    {0: 'stopped (or nothing was running)', 1: 'sandbox.json names what the sandbox did not create'},
  )

  static override examples = ['<%= config.bin %> sandbox stop', '<%= config.bin %> sandbox stop --dir ./my-sandbox --json']

  static override flags = {
    dir: Flags.string({description: `the sandbox directory ${SANDBOX_DIR_NOTE}`, defaultHelp: async () => SANDBOX_DIR_HELP}),
  }

  async run(): Promise<SandboxStopResult> {
    const dir = resolveSandboxDir(this.flags.dir)
    const {state, stopped} = await stopSandbox(dir)
    this.log(state ? `stopped ${stopped} ${state.server?.name ?? 'redis-server'} process(es) of the sandbox in ${dir}` : `no sandbox recorded in ${dir}: nothing to stop`)
    return {dir, errors: [], status: state ? 'stopped' : 'none', stopped, warnings: []}
  }
}
