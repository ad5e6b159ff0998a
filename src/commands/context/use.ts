import {Args} from '@oclif/core'

import {type ContextResult, ContextCommand} from '../../lib/cli/context-command.js'
import {checkContextName, findContext, readContexts, writeContexts} from '../../lib/context/contexts.js'

export default class ContextUse extends ContextCommand<typeof ContextUse> {
  static override args = {
    name: Args.string({description: 'the context to make current', required: true}),
  }

  static override summary = 'Make a context the current one (the default seed)'

  static override description = ContextCommand.withExitCodes(
    'Make NAME the current context: verbs run without an address use its seed, user, TLS files and password source. --context NAME (or SLOTCTL_CONTEXT) picks another for one run.',
    {2: 'bad input (no such context, bad name, unreadable contexts file)'},
  )

  static override examples = ['<%= config.bin %> context use prod']

  async run(): Promise<ContextResult> {
    const name = checkContextName(this.args.name)
    const contexts = readContexts(this.contextsFile)
    findContext(contexts, name, this.contextsFile)
    contexts.current = name
    await writeContexts(contexts, this.contextsFile)
    this.log(`current context: ${name}`)
    return this.contextResult(contexts, name)
  }
}
