import {Args, Flags} from '@oclif/core'

import {type Need, PERMISSIONS, READ_CLUSTER, RUN_LOCK, need, refuseMissingPermissions} from '../lib/acl/preflight.js'
import {type ClusterSnapshot, findNode} from '../lib/cluster/loader.js'
import {ExitCode} from '../lib/core/errors.js'
import {MigrationCommand, type MigrationResult} from '../lib/cli/migration-command.js'
import {type RemoveNodeResult, refuseIfOwnsSlots, removeNode} from '../lib/nodes/membership.js'
import {type JournalState, readJournal} from '../lib/migrate/journal.js'
import {planDrain} from '../lib/plan/rebalance.js'
import {type ClusterNode, mastersOf, slotCount} from '../lib/cluster/topology.js'
import {paint} from '../lib/cli/render.js'
import {type VerbResult, issue, nodeRef, rangeSet} from '../lib/core/result.js'
import {countSlots, formatRanges, toRanges} from '../lib/core/slots.js'
import {currentSeed, deadOwnerHint, keysMayBeElsewhere, slotsServedByNoOther} from '../lib/check/checks.js'
import {durationFlag} from '../lib/cli/duration.js'

export interface DelNodeResult extends VerbResult, Partial<Omit<RemoveNodeResult, 'warnings'>> {
  /** planned: --dry-run; aborted: the confirmation was answered no; drain-incomplete: --drain did not finish. */
  status: 'aborted' | 'drain-incomplete' | 'planned' | 'removed'
  drain?: MigrationResult
  elapsedMs: number
}

/** Every other node forgets it, its replicas replicate another master, and it is reset. */
function delNodeNeeds(snapshot: ClusterSnapshot, id: string): Need[] {
  const reachable = (node: ClusterNode) => Boolean(snapshot.views[node.id]?.reachable && node.address)
  const others = snapshot.nodes.filter((node) => node.id !== id && reachable(node))
  const {clusterForget, clusterReplicate, clusterReset} = PERMISSIONS
  return [
    need(others.map((node) => node.address), READ_CLUSTER, clusterForget),
    need(others.filter((node) => node.role === 'master').map((node) => node.address), RUN_LOCK),
    need(others.filter((node) => node.masterId === id).map((node) => node.address), clusterReplicate),
    need(snapshot.nodes.filter((node) => node.id === id && reachable(node)).map((node) => node.address), clusterReset),
  ]
}

export default class DelNode extends MigrationCommand<typeof DelNode> {
  static override args = {
    address: Args.string({description: 'any live node of the cluster (HOST:PORT)', required: true}),
    nodeId: Args.string({description: 'id (or unique prefix of at least 4 characters) of the node to remove; it may be dead', required: true}),
  }

  static override changesCluster = true

  static override summary = 'Remove a node, even a dead one (--drain moves its slots)'

  static override description = MigrationCommand.withExitCodes(
    'Remove a node that owns no slots (with --drain, first move its slots evenly to the other masters): its replicas are re-pointed to other masters, every other node forgets it at once, and the node itself is reset (when reachable) so it can be reused. Works for dead nodes too.\n' +
      'A dead master that still owns slots (no replica took over) goes only with --accept-data-loss: its keys are lost, and `slotctl fix` then gives its slots, empty, to the other masters. --dry-run shows what would happen and asks nothing.',
    {
      0: 'removed (or --dry-run)',
      1: 'refused (owns slots: --drain; dead: --accept-data-loss), or no',
      4: 'a confirmation was needed, but there is no terminal and no --yes',
      130: 'interrupted (a --drain finishes the slots in flight first)',
    },
  )

  static override examples = [
    '<%= config.bin %> del-node 10.0.0.1:7000 3c3a0c74aae0b56170ccb03a76b60cfe7dc1912e --yes',
    '<%= config.bin %> del-node 10.0.0.1:7000 3c3a0c74 --drain --max-keys-per-sec 50000 --yes',
  ]

  static override flags = {
    'wait-timeout': durationFlag({defaultMs: 30_000, description: 'how long to wait for re-pointed replicas to follow their new masters', minMs: 1, plainUnit: 's'}),
    drain: Flags.boolean({description: 'first move the node\'s slots (and keys) evenly to the other masters'}),
    resume: Flags.string({description: 'continue an interrupted --drain from its journal', dependsOn: ['drain']}),
    'accept-data-loss': Flags.boolean({description: 'remove an unreachable master that still owns slots: its keys are lost; its slots stay uncovered until slotctl fix gives them to the other masters', exclusive: ['drain']}),
    ...MigrationCommand.migrationFlags,
  }

  private readonly started = Date.now()

  async run(): Promise<DelNodeResult> {
    const seed = this.parseSeed([this.args.address])
    const resumed = this.flags.resume ? {path: this.flags.resume, state: readJournal(this.flags.resume)} : undefined
    this.pool(seed, this.migrationCommandTimeoutMs(resumed?.state.settings))
    let snapshot = await this.loadCluster(seed)
    let node = findNode(snapshot, this.args.nodeId)
    let drain: MigrationResult | undefined
    const dryRun = this.flags['dry-run']
    if (this.flags.drain && slotCount(node) > 0) {
      drain = await this.drain(snapshot, node.id, resumed)
      if (drain.status === 'planned') return this.planned(snapshot, node, drain)
      if (drain.status !== 'done') return this.outcome({drain, status: 'drain-incomplete'})
      snapshot = await this.loadCluster(seed)
      node = findNode(snapshot, node.id)
    }
    const reachable = Boolean(snapshot.views[node.id]?.reachable)
    // a dead owner's next step is judged from every live view (its replica may serve its slots)
    refuseIfOwnsSlots(node, {allowed: this.flags['accept-data-loss'], deadHint: !reachable && keysMayBeElsewhere(snapshot, node) ? deadOwnerHint(snapshot, node) : undefined, reachable})
    if (dryRun) return this.planned(snapshot, node, drain)
    const what = this.describe(snapshot, node)
    if (!(await this.confirm(`Remove ${what} from the cluster?`))) {
      this.resultExitCode = ExitCode.failed
      this.log('aborted: nothing changed')
      return this.outcome({drain, status: 'aborted'})
    }
    await refuseMissingPermissions(this.pool(), delNodeNeeds(snapshot, node.id))
    // its checks (owns no slots, who replicates it) were made before the lock
    snapshot = await this.lockUnchanged(snapshot)
    const {warnings, ...result} = await removeNode(this.pool(), snapshot, node.id, {
      forceDeadWithSlots: this.flags['accept-data-loss'],
      onEvent: (message) => this.note(`>>> ${message}`),
      waitTimeoutMs: this.flags['wait-timeout'],
    })
    // only what no live view gives another master: a promoted replica may serve them already
    const uncovered = node.slots.length > 0 ? toRanges(slotsServedByNoOther(snapshot, node)) : []
    if (uncovered.length > 0) {
      warnings.push(issue('SLOTS_UNCOVERED', `its ${countSlots(uncovered)} slot(s) (${formatRanges(uncovered)}) are uncovered now`, {hint: `slotctl fix ${currentSeed(snapshot, node)} --yes gives them to the other masters`, ...rangeSet(uncovered)}))
    }
    this.reportIssues({warnings})
    const reset = result.reset ? 'and reset it' : result.reachable ? 'but could not reset it' : 'it was unreachable, so it was not reset'
    this.log(paint.good(`[OK] removed ${what}: forgotten by ${result.forgottenBy.length} node(s), ${reset}`))
    return this.outcome({...result, drain, status: 'removed', warnings})
  }

  private describe(snapshot: ClusterSnapshot, node: ClusterNode): string {
    const reachable = Boolean(snapshot.views[node.id]?.reachable)
    return `${node.role} ${node.address || '(no address)'} (${node.id.slice(0, 8)})${reachable ? '' : ', unreachable'}`
  }

  /** --dry-run: what would be removed (after the drain it shows), and nothing asked or changed. */
  private planned(snapshot: ClusterSnapshot, node: ClusterNode, drain?: MigrationResult): DelNodeResult {
    const others = snapshot.nodes.filter((other) => other.id !== node.id && snapshot.views[other.id]?.reachable)
    const replicas = snapshot.nodes.filter((other) => other.masterId === node.id && other.role === 'replica')
    this.log(`dry run: would ${drain ? 'drain, then ' : ''}remove ${this.describe(snapshot, node)}: re-point ${replicas.length} replica(s), forget it on ${others.length} node(s); nothing changed`)
    return this.outcome({...nodeRef(node), drain, reachable: Boolean(snapshot.views[node.id]?.reachable), role: node.role, status: 'planned'})
  }

  private outcome(result: Omit<DelNodeResult, 'elapsedMs' | 'errors' | 'warnings'> & Partial<Pick<DelNodeResult, 'errors' | 'warnings'>>): DelNodeResult {
    return {errors: result.drain?.errors ?? [], warnings: [], ...result, elapsedMs: Date.now() - this.started}
  }

  private async drain(snapshot: ClusterSnapshot, nodeId: string, resume?: {path: string; state: JournalState}): Promise<MigrationResult> {
    const masters = mastersOf(snapshot.nodes).filter((master) => !master.failed && master.address)
    const plan = resume?.state.plan ?? planDrain(masters, nodeId)
    return this.runPlan(snapshot, plan, {resume, resumeArgs: (journal) => `del-node ${snapshot.seedAddress} ${nodeId} --drain --resume ${journal} --yes`})
  }
}
