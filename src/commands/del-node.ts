import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/base-command.js'
import {findNode} from '../lib/cluster.js'
import {ExitCode} from '../lib/errors.js'
import {type RemoveNodeResult, refuseIfOwnsSlots, removeNode} from '../lib/nodes-admin.js'
import {paint} from '../lib/render.js'

export interface DelNodeResult extends Partial<RemoveNodeResult> {
  status: 'removed' | 'aborted'
}

export default class DelNode extends BaseCommand<typeof DelNode> {
  static args = {
    address: Args.string({description: 'any live node of the cluster (HOST:PORT)', required: true}),
    nodeId: Args.string({description: 'id (or unique prefix) of the node to remove; it may be dead', required: true}),
  }

  static description = BaseCommand.withExitCodes(
    'Remove a node that owns no slots: its replicas are re-pointed to other masters, every other node forgets it at once, and the node itself is reset (when reachable) so it can be reused. Works for dead nodes too.',
  )

  static examples = ['<%= config.bin %> del-node 10.0.0.1:7000 3c3a0c74aae0b56170ccb03a76b60cfe7dc1912e --yes']

  static flags = {
    'wait-timeout': Flags.integer({default: 30, description: 'seconds to wait for re-pointed replicas to follow their new masters', min: 1}),
  }

  async run(): Promise<DelNodeResult> {
    const snapshot = await this.loadCluster(this.parseSeed([this.args.address]))
    const node = findNode(snapshot, this.args.nodeId)
    refuseIfOwnsSlots(node)
    const reachable = Boolean(snapshot.views[node.id]?.reachable)
    const what = `${node.role} ${node.address || '(no address)'} (${node.id.slice(0, 8)})${reachable ? '' : ', unreachable'}`
    if (!(await this.confirm(`Remove ${what} from the cluster?`))) {
      this.resultExitCode = ExitCode.failed
      this.log('aborted: nothing changed')
      return {status: 'aborted'}
    }
    const result = await removeNode(this.pool(), snapshot, node.id, {onEvent: (message) => this.note(`>>> ${message}`), waitTimeoutMs: this.flags['wait-timeout'] * 1000})
    for (const warning of result.warnings) this.note(paint.warn(`[WARNING] ${warning}`))
    const reset = result.reset ? 'and reset it' : result.reachable ? 'but could not reset it' : 'it was unreachable, so it was not reset'
    this.log(paint.good(`[OK] removed ${what}: forgotten by ${result.forgottenBy.length} node(s), ${reset}`))
    return {...result, status: 'removed'}
  }
}
