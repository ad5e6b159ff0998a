import {type ContextResult, ContextCommand} from '../../lib/cli/context-command.js'
import {CONTEXTS_FILE_HELP, readContexts} from '../../lib/context/contexts.js'

export default class ContextList extends ContextCommand<typeof ContextList> {
  static override summary = 'List the named clusters; * marks the current one'

  static override description = ContextCommand.withExitCodes(`List the contexts of ${CONTEXTS_FILE_HELP}: seed, user, TLS files, and where each password comes from (never a password).`)

  static override examples = ['<%= config.bin %> context list', '<%= config.bin %> context list --json']

  async run(): Promise<ContextResult> {
    const result = this.contextResult(readContexts(this.contextsFile))
    this.renderContexts(result)
    return result
  }
}
