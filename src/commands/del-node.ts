import {Args, Flags} from '@oclif/core'

import {type ClusterSnapshot, findNode} from '../lib/cluster/loader.js'
import {ExitCode} from '../lib/errors.js'
import {MigrationCommand, type MigrationResult} from '../lib/cli/migration-command.js'
import {type RemoveNodeResult, refuseIfOwnsSlots, removeNode} from '../lib/nodes/membership.js'
import {type JournalState, readJournal} from '../lib/migrate/journal.js'
import {planDrain} from '../lib/plan/rebalance.js'
import {mastersOf, slotCount} from '../lib/cluster/topology.js'
import {paint} from '../lib/cli/render.js'

export interface DelNodeResult extends Partial<RemoveNodeResult> {
  status: 'removed' | 'aborted' | 'drain-incomplete'
  drain?: MigrationResult
}

export default class DelNode extends MigrationCommand<typeof DelNode> {
  static args = {
    address: Args.string({description: 'any live node of the cluster (HOST:PORT)', required: true}),
    nodeId: Args.string({description: 'id (or unique prefix) of the node to remove; it may be dead', required: true}),
  }

  static description = MigrationCommand.withExitCodes(
    'Remove a node that owns no slots (with --drain, first move its slots evenly to the other masters): its replicas are re-pointed to other masters, every other node forgets it at once, and the node itself is reset (when reachable) so it can be reused. Works for dead nodes too.',
  )

  static examples = [
    '<%= config.bin %> del-node 10.0.0.1:7000 3c3a0c74aae0b56170ccb03a76b60cfe7dc1912e --yes',
    '<%= config.bin %> del-node 10.0.0.1:7000 3c3a0c74 --drain --max-keys-per-sec 50000 --yes',
  ]

  static flags = {
    'wait-timeout': Flags.integer({default: 30, description: 'seconds to wait for re-pointed replicas to follow their new masters', min: 1}),
    drain: Flags.boolean({description: 'first move the node\'s slots (and keys) evenly to the other masters'}),
    resume: Flags.string({description: 'continue an interrupted --drain from its journal', dependsOn: ['drain']}),
    ...MigrationCommand.migrationFlags,
  }

  async run(): Promise<DelNodeResult> {
    const seed = this.parseSeed([this.args.address])
    const resumed = this.flags.resume ? {path: this.flags.resume, state: readJournal(this.flags.resume)} : undefined
    this.pool(seed, this.migrationCommandTimeoutMs(resumed?.state.settings))
    let snapshot = await this.loadCluster(seed)
    let node = findNode(snapshot, this.args.nodeId)
    let drain: MigrationResult | undefined
    if (this.flags.drain && slotCount(node) > 0) {
      drain = await this.drain(snapshot, node.id, resumed)
      if (drain.status !== 'done') return {drain, status: drain.status === 'planned' ? 'aborted' : 'drain-incomplete'}
      snapshot = await this.loadCluster(seed)
      node = findNode(snapshot, node.id)
    }
    refuseIfOwnsSlots(node)
    const reachable = Boolean(snapshot.views[node.id]?.reachable)
    const what = `${node.role} ${node.address || '(no address)'} (${node.id.slice(0, 8)})${reachable ? '' : ', unreachable'}`
    if (!(await this.confirm(`Remove ${what} from the cluster?`))) {
      this.resultExitCode = ExitCode.failed
      this.log('aborted: nothing changed')
      return {status: 'aborted'}
    }
    await this.lockCluster(snapshot, this.flags.force)
    const result = await removeNode(this.pool(), snapshot, node.id, {onEvent: (message) => this.note(`>>> ${message}`), waitTimeoutMs: this.flags['wait-timeout'] * 1000})
    for (const warning of result.warnings) this.note(paint.warn(`[WARNING] ${warning}`))
    const reset = result.reset ? 'and reset it' : result.reachable ? 'but could not reset it' : 'it was unreachable, so it was not reset'
    this.log(paint.good(`[OK] removed ${what}: forgotten by ${result.forgottenBy.length} node(s), ${reset}`))
    return {...result, drain, status: 'removed'}
  }

  private async drain(snapshot: ClusterSnapshot, nodeId: string, resume?: {path: string; state: JournalState}): Promise<MigrationResult> {
    const masters = mastersOf(snapshot.nodes).filter((master) => !master.failed && master.address)
    const plan = resume?.state.plan ?? planDrain(masters, nodeId)
    return this.runPlan(snapshot, plan, {resume, resumeArgs: (journal) => `del-node ${snapshot.seedAddress} ${nodeId} --drain --resume ${journal} --yes`})
  }
}
