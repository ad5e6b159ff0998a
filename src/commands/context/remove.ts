import {Args} from '@oclif/core'

import {type ContextResult, ContextCommand} from '../../lib/cli/context-command.js'
import {checkContextName, findContext, readContexts, writeContexts} from '../../lib/context/contexts.js'

export default class ContextRemove extends ContextCommand<typeof ContextRemove> {
  static override args = {
    name: Args.string({description: 'the context to remove', required: true}),
  }

  static override summary = 'Remove a context'

  static override description = ContextCommand.withExitCodes('Remove the context NAME. If it was the current one, no context is current afterwards.', {
    2: 'bad input (no such context, bad name, unreadable contexts file)',
  })

  static override examples = ['<%= config.bin %> context remove staging']

  async run(): Promise<ContextResult> {
    const name = checkContextName(this.args.name)
    const contexts = readContexts(this.contextsFile)
    findContext(contexts, name, this.contextsFile)
    delete contexts.contexts[name]
    const wasCurrent = contexts.current === name
    if (wasCurrent) delete contexts.current
    await writeContexts(contexts, this.contextsFile)
    this.log(`removed context ${name}${wasCurrent ? ' (it was the current one: none is now)' : ''}`)
    return this.contextResult(contexts, name)
  }
}
