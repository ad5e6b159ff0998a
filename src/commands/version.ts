import {BaseCommand} from '../lib/cli/base-command.js'
import {type VerbResult} from '../lib/core/result.js'

export interface VersionResult extends VerbResult {
  status: 'ok'
  version: string
  node: string
  platform: string
  arch: string
}

export default class Version extends BaseCommand<typeof Version> {
  /** it reaches no cluster of the operator's: no context applies */
  static override usesContexts = false

  static override summary = 'Print the slotctl version (also --version)'

  static override description = BaseCommand.withExitCodes('Print the slotctl version, with the Node.js version and platform it runs on.')

  static override examples = ['<%= config.bin %> version', '<%= config.bin %> version --json']

  async run(): Promise<VersionResult> {
    const result: VersionResult = {arch: process.arch, errors: [], node: process.version, platform: process.platform, status: 'ok', version: this.config.version, warnings: []}
    this.log(`${this.config.bin} ${result.version} (node ${result.node}, ${result.platform}-${result.arch})`)
    return result
  }
}
