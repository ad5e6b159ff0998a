import {Args, Flags} from '@oclif/core'

import {formatAddress, parseAddress} from '../lib/cluster/address.js'
import {type Need, PERMISSIONS, READ_CLUSTER, RUN_LOCK, need, refuseMissingPermissions} from '../lib/acl/preflight.js'
import {BaseCommand, ignoreLockFlag} from '../lib/cli/base-command.js'
import type {ClusterSnapshot} from '../lib/cluster/loader.js'
import {hasErrors, runChecks} from '../lib/check/checks.js'
import {SlotctlError, usageError} from '../lib/core/errors.js'
import {type AddNodeResult, addNode} from '../lib/nodes/membership.js'
import {paint} from '../lib/cli/render.js'
import {type VerbResult} from '../lib/core/result.js'
import {durationFlag} from '../lib/cli/duration.js'
import {readZones, reportedZones, zoneLookupWithReported} from '../lib/nodes/zones.js'
import {mastersOf} from '../lib/cluster/topology.js'

export interface AddNodeCommandResult extends VerbResult, Omit<AddNodeResult, 'alreadyMember' | 'warnings'> {
  /** already-member: the node was in the cluster already, nothing was changed; planned: --dry-run, nothing was changed. */
  status: 'added' | 'already-member' | 'planned'
  /** --dry-run: the commands that would be sent, per node */
  wouldRun?: Array<{address: string; command: string}>
  elapsedMs: number
}

export default class AddNode extends BaseCommand<typeof AddNode> {
  static override args = {
    new: Args.string({description: 'the empty, cluster-enabled node to add (HOST:PORT)', required: true}),
    existing: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
  }

  static override changesCluster = true

  static override summary = 'Join an empty node as master or replica, wait for agreement'

  static override description = BaseCommand.withExitCodes(
    'Add an empty node to a cluster, as a master without slots or as a replica.\n' +
      'Returns only when every node lists the new node, the new node knows the full slot map and reports cluster_state:ok, so a reshard can start at once.',
    {0: 'added (or it was already a member)', 1: 'the node is not empty, the cluster has problems, or a wait timed out'},
  )

  static override examples = [
    '<%= config.bin %> add-node 10.0.0.4:7000 10.0.0.1:7000',
    '<%= config.bin %> add-node 10.0.0.4:7001 10.0.0.1:7000 --replica',
    '<%= config.bin %> add-node 10.0.0.4:7001 10.0.0.1:7000 --replica --master-id 3c3a0c',
  ]

  static override flags = {
    replica: Flags.boolean({description: 'add as a replica (of --master-id, or of the master with the fewest replicas on another host/zone)'}),
    'master-id': Flags.string({description: 'master to replicate (id or unique prefix); needs --replica'}),
    zone: Flags.string({description: 'zone of a host or node: HOST_OR_ADDR=ZONE (repeatable), to choose a master in another zone', multiple: true, multipleNonGreedy: true}),
    'zones-file': Flags.string({description: 'file with one HOST_OR_ADDR=ZONE per line'}),
    'ignore-lock': ignoreLockFlag,
    'dry-run': Flags.boolean({description: 'change nothing: check the node and the cluster, and say what would be sent to which node'}),
    'wait-timeout': durationFlag({defaultMs: 60_000, description: 'how long to wait for the join and for the replica link', minMs: 1, plainUnit: 's'}),
  }

  async run(): Promise<AddNodeCommandResult> {
    const started = Date.now()
    if (this.flags['master-id'] && !this.flags.replica) throw usageError('--master-id needs --replica', ['add --replica, or leave out --master-id to add a master'])
    const newNode = parseAddress(this.args.new)
    const newAddress = formatAddress(newNode)
    const seed = this.parseSeed([this.args.existing])
    if (formatAddress(seed) === newAddress) throw usageError('the new node and the existing node are the same address')
    const snapshot = await this.loadCluster(seed)
    const problems = runChecks(snapshot).filter((finding) => finding.severity === 'error')
    if (hasErrors(problems)) {
      throw new SlotctlError(`the cluster has problems, fix them before adding a node: ${problems[0].message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`, {
        code: 'E_CLUSTER_UNHEALTHY',
        suggestions: [`see them all with: slotctl check ${snapshot.seedAddress}`],
      })
    }
    const zones = readZones(this.flags.zone ?? [], this.flags['zones-file'])
    const members = snapshot.nodes.filter((node) => snapshot.views[node.id]?.reachable).map((node) => node.address)
    const zoneOf = zoneLookupWithReported(zones, await reportedZones(this.pool(), [...members, newAddress]))
    await refuseMissingPermissions(this.pool(), this.permissionsNeeded(snapshot, newAddress))
    // the master a new replica follows was chosen on a read taken before the lock
    const current = this.flags['dry-run'] ? snapshot : await this.lockUnchanged(snapshot)
    const result = await addNode(this.pool(), current, newAddress, newNode.host, {
      dryRun: this.flags['dry-run'],
      masterId: this.flags['master-id'],
      onEvent: (message) => this.note(`>>> ${message}`),
      replica: this.flags.replica,
      waitTimeoutMs: this.flags['wait-timeout'],
      zoneOf,
    })
    this.reportIssues({warnings: result.warnings})
    if (this.flags['dry-run'] && !result.alreadyMember) return this.dryRunResult(result, snapshot.seedAddress, started)
    if (result.alreadyMember) this.log(`${newAddress} (${result.id.slice(0, 8)}) is already a ${result.role} of this cluster: nothing to do`)
    else if (result.role === 'replica') this.log(paint.good(`[OK] ${newAddress} (${result.id.slice(0, 8)}) added as a replica of ${result.masterAddress} (${result.masterId?.slice(0, 8)}); link up`))
    else this.log(paint.good(`[OK] ${newAddress} (${result.id.slice(0, 8)}) added as a master without slots; every node knows it and it knows the slot map`))
    const {alreadyMember, ...rest} = result
    return {...rest, elapsedMs: Date.now() - started, errors: [], status: alreadyMember ? 'already-member' : 'added'}
  }

  /** What a real run would send: the cluster's functions (a master), the meet, the replicate (a replica). */
  private dryRunResult(result: AddNodeResult, seedAddress: string, started: number): AddNodeCommandResult {
    const wouldRun = [
      ...(result.role === 'master' ? [{address: result.address, command: `FUNCTION RESTORE (the functions of ${seedAddress}, if any)`}] : []),
      {address: result.address, command: `CLUSTER MEET (${seedAddress})`},
      ...(result.masterId ? [{address: result.address, command: `CLUSTER REPLICATE ${result.masterId}`}] : []),
    ]
    const as = result.role === 'replica' ? `a replica of ${result.masterAddress} (${result.masterId?.slice(0, 8)})` : 'a master without slots'
    this.log(`--dry-run: nothing was changed. ${result.address} (${result.id.slice(0, 8)}) is empty and would join as ${as}; it would be sent:`)
    for (const step of wouldRun) this.log(`  ${step.address}: ${step.command}`)
    const {alreadyMember: _ignored, ...rest} = result
    return {...rest, elapsedMs: Date.now() - started, errors: [], status: 'planned', wouldRun}
  }

  /** The new node meets the cluster (and replicates, or takes the cluster's functions); the seed gives its functions. */
  private permissionsNeeded(snapshot: ClusterSnapshot, newAddress: string): Need[] {
    const {clusterMeet, clusterReplicate, functionList, info} = PERMISSIONS
    return [
      need([newAddress], READ_CLUSTER, info, clusterMeet, this.flags.replica ? clusterReplicate : functionList),
      need(this.flags.replica ? [] : [snapshot.seedAddress], functionList),
      need(mastersOf(snapshot.nodes).filter((node) => snapshot.views[node.id]?.reachable && node.address).map((node) => node.address), RUN_LOCK),
    ]
  }
}
