import {Args, Flags} from '@oclif/core'

import {PERMISSIONS, READ_CLUSTER, RUN_LOCK, need, refuseMissingPermissions} from '../lib/acl/preflight.js'
import {BaseCommand, ignoreLockFlag} from '../lib/cli/base-command.js'
import {findNode} from '../lib/cluster/loader.js'
import {SlotctlError, usageError} from '../lib/core/errors.js'
import {type FailoverMode, type FailoverOutcome, readReplicaHealth, runFailover} from '../lib/nodes/failover.js'
import {chooseReplica, type FailoverStep, type HealthOf, type ReplicaHealth, planFromHost, stepForReplica} from '../lib/plan/failover.js'
import type {ClusterSnapshot} from '../lib/cluster/loader.js'
import {formatDuration, table} from '../lib/cli/render.js'
import {type VerbResult} from '../lib/core/result.js'
import {durationFlag} from '../lib/cli/duration.js'
import {type ClusterNode, resolveNodeId, shortId, slotCount} from '../lib/cluster/topology.js'
import {readZones, zoneLookup} from '../lib/nodes/zones.js'

const delay = (ms: number) =>
  new Promise((resolve) => {
    setTimeout(resolve, ms)
  })

function describeLag(address: string, health: ReplicaHealth | undefined): string {
  return `${address} (link down, ${health?.lag === undefined ? 'lag unknown' : `lag ${health.lag} bytes`})`
}

export interface FailoverResult extends VerbResult {
  /** planned: --dry-run; done: every step promoted and agreed. */
  status: 'done' | 'planned'
  dryRun: boolean
  mode: FailoverMode
  steps: FailoverStep[]
  done: FailoverOutcome[]
  /** --replica named a master of slots: the failover's goal holds already (nothing done). */
  alreadyMaster?: {id: string; address: string; slotCount: number}
  elapsedMs: number
}

export default class Failover extends BaseCommand<typeof Failover> {
  static override seedFromContext = true

  static override args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
  }

  static override changesCluster = true

  static override summary = 'Promote a replica and wait until every node agrees'

  static override description = BaseCommand.withExitCodes(
    'Promote a replica to master and wait until the whole cluster agrees.\n' +
      'Default is the graceful CLUSTER FAILOVER: the master pauses writes until the replica has caught up, so no acknowledged write is lost.',
    {
      0: 'promoted and agreed everywhere (or already master, or --dry-run)',
      1: 'no replica can be promoted, refused, or not agreed in --timeout',
      4: '--takeover needs confirmation: no terminal and no --yes',
    },
  )

  static override examples = [
    '<%= config.bin %> failover 127.0.0.1:7000 --master 3f2a',
    '<%= config.bin %> failover 127.0.0.1:7000 --replica 9c1e --force',
    '<%= config.bin %> failover 127.0.0.1:7000 --from-host 10.0.0.5 --dry-run',
  ]

  static override flags = {
    'dry-run': Flags.boolean({description: 'show which replica would be promoted and why, change nothing'}),
    force: Flags.boolean({
      description: 'master unreachable: promote without its agreement (writes the replica had not received are lost)',
      exclusive: ['takeover'],
    }),
    'ignore-lock': ignoreLockFlag,
    'from-host': Flags.string({description: 'maintenance: move every master on HOST to a replica on another host, one at a time', exclusive: ['master', 'replica']}),
    master: Flags.string({description: 'promote the best replica of this master (id or prefix)', exclusive: ['replica']}),
    replica: Flags.string({description: 'promote this replica (id or prefix)'}),
    takeover: Flags.boolean({
      description: 'no majority of masters: promote without any vote (risk: two masters for the same slots if the old side comes back; asks for confirmation)',
      exclusive: ['force'],
    }),
    timeout: durationFlag({defaultMs: 30_000, description: 'how long to wait for each promotion to be agreed', minMs: 1, plainUnit: 's'}),
    zone: Flags.string({description: 'zone of a host: HOST=ZONE (repeatable); a replica in another zone is preferred, and --from-host moves masters to another zone', multiple: true, multipleNonGreedy: true}),
    'zones-file': Flags.string({description: 'file with one HOST=ZONE per line'}),
  }

  async run(): Promise<FailoverResult> {
    const started = Date.now()
    const {flags} = this
    if (!flags.master && !flags.replica && !flags['from-host']) throw usageError('say what to fail over: --master ID, --replica ID or --from-host HOST')
    const mode: FailoverMode = flags.takeover ? 'takeover' : flags.force ? 'force' : 'graceful'
    const seed = this.parseSeed([this.args.address])
    const load = mode === 'graceful' ? {} : {skipViews: (nodes: readonly ClusterNode[]) => this.bypassedMasters(nodes)}
    const snapshot = await this.loadCluster(seed, load)
    const pool = this.pool()

    const zones = zoneLookup(readZones(flags.zone ?? [], flags['zones-file']))
    const domainOf = (host: string) => zones({address: host, host}) ?? host
    const already = flags.replica ? this.alreadyMaster(findNode(snapshot, flags.replica)) : undefined
    if (already) {
      // the cluster may have promoted it itself since a hint named it: the goal holds, a success
      this.log(`${already.address} (${shortId(already.id)}) is already master of ${already.slotCount} slots: nothing to fail over`)
      return {alreadyMaster: already, done: [], dryRun: Boolean(flags['dry-run']), elapsedMs: Date.now() - started, errors: [], mode, status: flags['dry-run'] ? 'planned' : 'done', steps: [], warnings: []}
    }
    const gone = flags.master ? findNode(snapshot, flags.master) : undefined
    if (gone && slotCount(gone) === 0 && (gone.failed || !snapshot.views[gone.id]?.reachable)) {
      // a dead master whose slots another master serves now (its replica promoted itself since
      // a hint named it): the goal holds, a success, as for --replica above
      this.log(`${gone.address || shortId(gone.id)} (${shortId(gone.id)}) is down and owns no slots any more: nothing to fail over`)
      return {done: [], dryRun: Boolean(flags['dry-run']), elapsedMs: Date.now() - started, errors: [], mode, status: flags['dry-run'] ? 'planned' : 'done', steps: [], warnings: []}
    }
    const seedAddress = snapshot.seedAddress
    const plan = (healthOf: HealthOf): FailoverStep[] => {
      if (flags['from-host']) return planFromHost(flags['from-host'], snapshot.nodes, healthOf, domainOf, seedAddress)
      if (flags.replica) return [stepForReplica(findNode(snapshot, flags.replica), snapshot.nodes, healthOf)]
      return [chooseReplica(findNode(snapshot, flags.master as string), snapshot.nodes, healthOf, mode !== 'graceful', domainOf, seedAddress)]
    }
    // a --dry-run waits too: it shows what a run would do
    const steps = mode === 'graceful' ? await this.planOnceCaughtUp(snapshot, plan) : plan(await readReplicaHealth(pool, snapshot))

    this.printPlan(steps, mode)
    const result: FailoverResult = {done: [], dryRun: Boolean(flags['dry-run']), elapsedMs: 0, errors: [], mode, status: 'planned', steps, warnings: []}
    if (flags['dry-run']) return result
    const reachableNodes = snapshot.nodes.filter((node) => snapshot.views[node.id]?.reachable && node.address)
    const reachable = reachableNodes.map((node) => node.address)
    const masters = reachableNodes.filter((node) => node.role === 'master').map((node) => node.address)
    await refuseMissingPermissions(pool, [need(reachable, READ_CLUSTER, PERMISSIONS.info), need(masters, RUN_LOCK), need(steps.map((step) => step.replicaAddress), PERMISSIONS.clusterFailover)])
    const risk = `TAKEOVER promotes without any vote; if the old master's side comes back, two masters may serve the same slots. Continue?`
    if (mode === 'takeover' && !(await this.confirm(risk))) throw new SlotctlError('cancelled: nothing was changed', {code: 'E_CANCELLED'})
    // the replicas were chosen on a read taken before the lock
    const locked = await this.lockUnchanged(snapshot, load)

    for (const step of steps) {
      // Each step reloads the cluster, since the previous one changed who is master.
      const current = steps.length > 1 ? await this.loadCluster(seed, load) : locked
      this.note(`failing over ${step.masterAddress} -> ${step.replicaAddress} (${mode}) ...`)
      const outcome = await runFailover(pool, current, step, mode, flags.timeout)
      result.done.push(outcome)
      this.log(`${step.replicaAddress} is now master of ${step.slotCount} slots (was ${step.masterAddress}); agreed after ${formatDuration(outcome.elapsedMs)}`)
    }
    return {...result, elapsedMs: Date.now() - started, status: 'done'}
  }

  /**
   * A graceful failover needs a replica whose link is up: right after bulk writes (or a
   * replica's restart) the link is down while it resyncs. Such a replica is waited for, its lag
   * shown, within --timeout; the plan is refused at once only when no replica is catching up
   * (none, or a master that does not answer: then only --force helps).
   */
  private async planOnceCaughtUp(snapshot: ClusterSnapshot, plan: (healthOf: HealthOf) => FailoverStep[]): Promise<FailoverStep[]> {
    const deadline = Date.now() + this.flags.timeout
    let lastNote = 0
    for (;;) {
      const healthOf = await readReplicaHealth(this.pool(), snapshot)
      let waitingOn: string[]
      try {
        const steps = plan(healthOf)
        // an explicit --replica is not ranked: its own link decides
        waitingOn = steps.flatMap((step) => step.candidates.filter((c) => c.id === step.replicaId && !c.linkUp && this.catchingUp(snapshot, step.replicaId, healthOf)).map((c) => describeLag(c.address, healthOf(c.id))))
        if (waitingOn.length === 0) return steps
      } catch (error) {
        if (!(error instanceof SlotctlError) || error.code !== 'E_NO_REPLICA') throw error
        const masters = this.mastersConcerned(snapshot)
        // --from-host takes only replicas elsewhere: one on that host would be waited for in vain
        const usable = (node: ClusterNode) => masters.has(node.masterId ?? '') && node.host !== this.flags['from-host']
        waitingOn = snapshot.nodes.filter((node) => usable(node) && this.catchingUp(snapshot, node.id, healthOf)).map((node) => describeLag(node.address, healthOf(node.id)))
        if (waitingOn.length === 0) throw error
        if (Date.now() >= deadline) throw new SlotctlError(`${error.message}; waited ${formatDuration(this.flags.timeout)} for a replica to catch up`, {code: error.code, suggestions: [...error.suggestions, 'raise --timeout if the replica is still catching up']})
      }
      if (Date.now() >= deadline) throw new SlotctlError(`the replica did not catch up with its master within ${formatDuration(this.flags.timeout)}: ${waitingOn.join('; ')}`, {code: 'E_NO_REPLICA', suggestions: ['raise --timeout if the replica is still catching up']})
      if (Date.now() - lastNote >= 2000) {
        this.note(`waiting for a replica to catch up with its master: ${waitingOn.join('; ')}`)
        lastNote = Date.now()
      }
      await delay(250)
    }
  }

  /** The masters this run fails over (--master, --replica's master, or those on --from-host). */
  private mastersConcerned(snapshot: ClusterSnapshot): Set<string> {
    const {flags} = this
    if (flags.master) return new Set([findNode(snapshot, flags.master).id])
    if (flags.replica) return new Set([findNode(snapshot, flags.replica).masterId ?? ''])
    return new Set(snapshot.nodes.filter((node) => node.role === 'master' && node.host === flags['from-host']).map((node) => node.id))
  }

  /** A replica whose link is down but will come up: it and its master answer, and it may be promoted. */
  private catchingUp(snapshot: ClusterSnapshot, replicaId: string, healthOf: HealthOf): boolean {
    const replica = snapshot.nodes.find((node) => node.id === replicaId)
    if (!replica || replica.role !== 'replica' || !replica.masterId || replica.failed || replica.noFailover) return false
    if (!snapshot.views[replica.id]?.reachable || !snapshot.views[replica.masterId]?.reachable) return false
    const master = snapshot.nodes.find((node) => node.id === replica.masterId)
    return Boolean(master && !master.failed && healthOf(replica.id)?.linkUp === false)
  }

  /** The node --replica names, when it is a master owning slots already (in the seed's view). */
  private alreadyMaster(node: ClusterNode): FailoverResult['alreadyMaster'] {
    if (node.role !== 'master' || node.failed || slotCount(node) === 0) return undefined
    return {address: node.address, id: node.id, slotCount: slotCount(node)}
  }

  /**
   * --force and --takeover exist for a master that does not answer: its own view is not
   * read (and it is not polled), or every run would first wait out its read deadline.
   */
  private bypassedMasters(nodes: readonly ClusterNode[]): Set<string> {
    const {flags} = this
    try {
      if (flags.replica) return new Set([resolveNodeId(nodes, flags.replica).masterId ?? ''])
      if (flags.master) return new Set([resolveNodeId(nodes, flags.master).id])
    } catch {
      return new Set() // an unknown id is reported once the cluster is loaded
    }
    return new Set(nodes.filter((node) => node.role === 'master' && node.host === flags['from-host']).map((node) => node.id))
  }

  private printPlan(steps: FailoverStep[], mode: FailoverMode): void {
    const rows = steps.flatMap((step) =>
      step.candidates.map((c, index) => [
        step.masterAddress,
        shortId(step.masterId),
        c.address,
        c.id === step.replicaId ? 'promote' : index === 0 ? '' : 'skip',
        c.lag === undefined ? '?' : String(c.lag),
        c.host,
        c.reason,
      ]),
    )
    this.log(`mode: ${mode}`)
    this.log(table(['master', 'id', 'replica', 'choice', 'lag', 'host', 'why'], rows))
  }
}
