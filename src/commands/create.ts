import {Args, Flags} from '@oclif/core'

import {type NodeAddress, formatAddress, parseAddressList, splitAddress} from '../lib/cluster/address.js'
import {type Need, PERMISSIONS, READ_CLUSTER, need, refuseMissingPermissions} from '../lib/acl/preflight.js'
import {BaseCommand} from '../lib/cli/base-command.js'
import {groupSummary, hasErrors, runChecks, splitFindings} from '../lib/check/checks.js'
import {applyCreatePlan} from '../lib/nodes/create.js'
import {ExitCode, SlotctlError, usageError} from '../lib/core/errors.js'
import {type CandidateState, classifyForCreate, inspectNodes} from '../lib/nodes/membership.js'
import {type CreateCandidate, type CreatePlan, MIN_MASTERS, MIN_MASTERS_FOR_FAILOVER, masterCountFor, planCreate} from '../lib/plan/create.js'
import {type IssueView, formatDuration, paint, table} from '../lib/cli/render.js'
import {type Issue, type VerbResult, byAddress, issue, rangeSet} from '../lib/core/result.js'
import {durationFlag} from '../lib/cli/duration.js'
import type {SlotRange} from '../lib/core/slots.js'
import {formatRanges} from '../lib/core/slots.js'
import {readZones, reportedZones, unusedZoneKeys, zoneLookupWithReported} from '../lib/nodes/zones.js'

export interface CreatePlanView {
  masters: Array<{address: string; host: string; zone?: string; slots: SlotRange[]; slotCount: number}>
  replicas: Array<{address: string; host: string; zone?: string; masterAddress: string}>
}

export interface CreateResult extends VerbResult {
  status: 'aborted' | 'created' | 'exists' | 'planned'
  message: string
  plan?: CreatePlanView
  /** The nodes with their ids, once created. */
  nodes?: Array<{id: string; address: string; role: 'master' | 'replica'}>
  elapsedMs?: number
}

function planView(plan: CreatePlan): CreatePlanView {
  return {masters: plan.masters.map(({slots, ...master}) => ({...master, ...rangeSet(slots)})), replicas: plan.replicas.map((replica) => ({...replica}))}
}

/** Fewer than 3 masters: the cluster works, but can never elect a replica in a master's place. */
function failoverWarnings(plan: CreatePlan): Issue[] {
  if (plan.masters.length >= MIN_MASTERS_FOR_FAILOVER) return []
  return [issue('NO_FAILOVER', `${plan.masters.length} master(s) cannot fail over on their own: a replica needs the votes of a majority of the masters, and a failed master cannot vote (use at least ${MIN_MASTERS_FOR_FAILOVER} outside tests)`)]
}

/** Anti-affinity rules the nodes given could not meet. */
function violationWarnings(plan: CreatePlan): Issue[] {
  return plan.violations.map((violation) => issue('ANTI_AFFINITY', `unavoidable with these nodes: ${violation}`))
}

/** Findings of a new cluster that are about where its nodes are: said in one line of advice unless --verbose. */
const PLACEMENT_CODES = new Set(['NO_REPLICA', 'REPLICA_SAME_HOST'])

/** The plan's unavoidable placements, grouped by the replica they name (display only: --json keeps them as they are). */
const PLAN_GROUPS: Record<string, string> = {ANTI_AFFINITY: 'replicas unavoidably beside their master'}

function planIssueView(warning: Issue): IssueView {
  const replica = warning.code === 'ANTI_AFFINITY' ? /replica (\S+)/.exec(warning.message)?.[1] : undefined
  return replica ? {...warning, nodes: [{address: replica, id: ''}]} : warning
}

/** "3 replicas share a host with their master; 1 master has no replica: …": the placement findings in one line. */
export function placementAdvice(findings: ReadonlyArray<{code: string}>): string | undefined {
  const parts: string[] = []
  for (const code of PLACEMENT_CODES) {
    const count = findings.filter((finding) => finding.code === code).length
    if (count === 0) continue
    parts.push(code === 'NO_REPLICA' ? `${count} master${count === 1 ? ' has' : 's have'} no replica` : `${count} replica${count === 1 ? ' shares' : 's share'} a host with ${count === 1 ? 'its' : 'their'} master`)
  }
  return parts.length === 0 ? undefined : `advice: ${parts.join('; ')} (--verbose says what to do)`
}

const PHASES: Record<string, string> = {
  'assign-slots': 'assigning slots and config epochs',
  meet: 'sending CLUSTER MEET',
  replicate: 'attaching replicas',
  'wait-join': 'waiting until every node knows every other and all agree on the slot map',
  'wait-replication': 'waiting until every replica link is up',
  'wait-state': 'waiting for cluster_state:ok on every node',
}

/** Every node meets the others and gets its epoch; masters take slots, replicas replicate. */
function createNeeds(plan: CreatePlan): Need[] {
  const {clusterAddslotsrange, clusterMeet, clusterReplicate, clusterSetConfigEpoch, info} = PERMISSIONS
  const masters = plan.masters.map((node) => node.address)
  const replicas = plan.replicas.map((node) => node.address)
  return [
    need([...masters, ...replicas], READ_CLUSTER, info, clusterMeet, clusterSetConfigEpoch),
    need(masters, clusterAddslotsrange),
    need(replicas, clusterReplicate),
  ]
}

export default class Create extends BaseCommand<typeof Create> {
  static override args = {
    nodes: Args.string({description: 'the empty, cluster-enabled nodes (HOST:PORT ...): masters × (replicas + 1); fewer than 3 masters cannot fail over', required: true}),
  }

  static override changesCluster = true

  static override summary = 'Form a cluster from empty nodes, spread over hosts and zones'

  static override description = BaseCommand.withExitCodes(
    'Create a cluster from empty nodes: masters spread across hosts and zones, replicas kept off their master\'s host and zone, slots split evenly.\n' +
      'Returns only when every node agrees, every replica link is up and cluster_state is ok everywhere. Re-running it on the cluster it formed is a no-op.',
    {
      0: 'created (or the cluster already exists, or --dry-run)',
      1: 'a node is unfit, a wait timed out, or the answer was no',
      3: 'created, but the check afterwards found problems',
      4: 'a confirmation was needed, but there is no terminal and no --yes',
    },
  )

  static override examples = [
    '<%= config.bin %> create 10.0.0.1:7000 10.0.0.2:7000 10.0.0.3:7000 10.0.0.1:7001 10.0.0.2:7001 10.0.0.3:7001 --replicas 1 --yes',
    '<%= config.bin %> create 10.0.0.{1..6}:7000 --replicas 1 --zone 10.0.0.1=a --zone 10.0.0.2=b --zones-file zones.txt --dry-run',
  ]

  static override flags = {
    replicas: Flags.integer({default: 0, description: 'replicas per master', min: 0}),
    zone: Flags.string({description: 'zone of a host or node: HOST_OR_ADDR=ZONE (repeatable)', multiple: true, multipleNonGreedy: true}),
    'zones-file': Flags.string({description: 'file with one HOST_OR_ADDR=ZONE per line'}),
    'dry-run': Flags.boolean({description: 'print the plan and change nothing'}),
    'wait-timeout': durationFlag({defaultMs: 60_000, description: 'how long to wait for each phase (join, replication, cluster_state)', minMs: 1, plainUnit: 's'}),
  }

  static override strict = false

  private readonly started = Date.now()

  async run(): Promise<CreateResult> {
    const {addresses, credentials} = await this.nodeAddresses()
    const zones = readZones(this.flags.zone ?? [], this.flags['zones-file'])
    const pool = this.pool(credentials, 15_000)
    const states = await inspectNodes(pool, addresses)
    this.refuseDuplicateNodes(states)
    const zoneOf = zoneLookupWithReported(zones, await reportedZones(pool, addresses))

    const readiness = classifyForCreate(states)
    if (readiness.kind === 'exists') {
      this.log(`${readiness.message}: nothing to do`)
      return {errors: [], message: readiness.message, status: 'exists', warnings: []}
    }
    if (readiness.kind === 'refused') throw this.refusal(readiness.problems)
    if (readiness.kind === 'half-formed') throw new SlotctlError(readiness.message, {code: 'E_HALF_FORMED', suggestions: [readiness.nextStep]})

    const candidates: CreateCandidate[] = addresses.map((address) => {
      const {host} = splitAddress(address)
      const zone = zoneOf({address, host})
      return zone === undefined ? {address, host} : {address, host, zone}
    })
    const unused = unusedZoneKeys(zones, candidates)
    const zoneWarnings = unused.length > 0 ? [issue('ZONE_UNUSED', `zone entries that match no node: ${unused.join(', ')}`)] : []
    const plan = planCreate(candidates, this.flags.replicas)
    const warnings = [...zoneWarnings, ...failoverWarnings(plan), ...violationWarnings(plan)]
    this.renderPlan(plan)
    this.reportIssues({warnings: this.flags.verbose ? warnings : warnings.map(planIssueView)}, (code) => PLAN_GROUPS[code])
    if (this.flags['dry-run']) return {errors: [], message: 'dry run: nothing changed', plan: planView(plan), status: 'planned', warnings}
    await refuseMissingPermissions(pool, createNeeds(plan))
    if (!(await this.confirm(`Create this cluster of ${plan.masters.length} masters and ${plan.replicas.length} replicas?`))) {
      this.resultExitCode = ExitCode.failed
      return {errors: [], message: 'aborted: nothing changed', plan: planView(plan), status: 'aborted', warnings}
    }
    return this.apply(plan, warnings)
  }

  private async apply(plan: CreatePlan, planWarnings: Issue[]): Promise<CreateResult> {
    const pool = this.pool()
    const ids = await applyCreatePlan(pool, plan, {
      onEvent: (event) => this.note(`>>> ${PHASES[event.phase] ?? event.phase}`),
      waitTimeoutMs: this.flags['wait-timeout'],
    })
    const snapshot = await this.loadCluster(this.parseSeed([plan.masters[0].address]))
    const findings = runChecks(snapshot)
    const {errors, warnings} = splitFindings(findings)
    const elapsedMs = Date.now() - this.started
    // where the nodes are was the plan's to say (above); here it is one line of advice at the end
    const verbose = Boolean(this.flags.verbose)
    this.reportIssues({errors, warnings: verbose ? warnings : warnings.filter((warning) => !PLACEMENT_CODES.has(warning.code))}, groupSummary)
    const message = `cluster created: ${plan.masters.length} masters, ${plan.replicas.length} replicas, in ${formatDuration(elapsedMs)}`
    if (hasErrors(findings)) {
      this.resultExitCode = ExitCode.checkProblems
      this.log(paint.bad(`${message}, but the check found problems`))
    } else {
      this.log(paint.good(`[OK] ${message}; all nodes agree, cluster_state:ok everywhere`))
    }
    const advice = verbose ? undefined : placementAdvice(warnings)
    if (advice) this.log(paint.warn(advice))
    const role = (address: string) => (plan.masters.some((master) => master.address === address) ? ('master' as const) : ('replica' as const))
    const nodes = [...ids.entries()].map(([address, id]) => ({address, id, role: role(address)})).sort(byAddress)
    return {elapsedMs, errors, message, nodes, plan: planView(plan), status: 'created', warnings: [...planWarnings, ...warnings]}
  }

  /** The node addresses, and the first one given as a URL with credentials or TLS (they apply to all). */
  private async nodeAddresses(): Promise<{addresses: string[]; credentials?: NodeAddress}> {
    const {argv} = await this.parse({args: Create.args, baseFlags: BaseCommand.baseFlags, enableJsonFlag: true, flags: Create.flags, strict: false})
    const parsed = parseAddressList(argv as string[])
    const credentials = parsed.find((address) => address.password || address.username || address.tls)
    const addresses = parsed.map((address) => formatAddress(address))
    // a create that fails before the cluster exists is still about these nodes
    if (addresses.length > 0) this.historyCluster = {masters: [...addresses].sort(), seed: addresses[0]}
    const duplicates = addresses.filter((address, index) => addresses.indexOf(address) !== index)
    if (duplicates.length > 0) throw usageError(`node ${duplicates[0]} is given more than once`)
    const masters = masterCountFor(addresses.length, this.flags.replicas)
    if (masters < MIN_MASTERS) {
      throw usageError(`${addresses.length} node(s) with --replicas ${this.flags.replicas} make no master; a cluster needs at least ${MIN_MASTERS}`, [
        `give at least ${MIN_MASTERS * (this.flags.replicas + 1)} nodes, or fewer --replicas`,
      ])
    }
    return {addresses, credentials}
  }

  /** localhost:7000 and 127.0.0.1:7000 are one node; planning it twice would break create. */
  private refuseDuplicateNodes(states: readonly CandidateState[]): void {
    const seen = new Map<string, string>()
    for (const state of states) {
      if (!state.id) continue
      const first = seen.get(state.id)
      if (first) throw usageError(`${first} and ${state.address} are the same node (id ${state.id.slice(0, 8)})`)
      seen.set(state.id, state.address)
    }
  }

  /** One line per node at fault; in --json all of them go into the one error message. */
  private refusal(problems: string[]): SlotctlError {
    if (problems.length === 1 || this.jsonEnabled()) return new SlotctlError(`cannot create: ${problems.join('; ')}`, {code: 'E_NODES_UNFIT'})
    for (const problem of problems) this.note(`slotctl: ${problem}`)
    return new SlotctlError(`cannot create: ${problems.length} nodes are unfit (listed above)`, {code: 'E_NODES_UNFIT'})
  }

  private renderPlan(plan: CreatePlan): void {
    if (this.jsonEnabled()) return
    const rows = [
      ...plan.masters.map((master) => ['master', master.address, master.zone ?? '-', formatRanges(master.slots), '-']),
      ...plan.replicas.map((replica) => ['replica', replica.address, replica.zone ?? '-', '-', replica.masterAddress]),
    ]
    this.log(table(['role', 'address', 'zone', 'slots', 'replicates'], rows))
    if (plan.violations.length === 0) this.log(paint.good('[OK] anti-affinity: no replica shares a host or zone with its master'))
  }
}
