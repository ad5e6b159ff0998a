import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'
import type {NodeAddress} from '../lib/cluster/address.js'
import type {ClusterSnapshot} from '../lib/cluster/loader.js'
import {type Finding, runChecks} from '../lib/check/checks.js'
import {ExitCode, SlotctlError} from '../lib/errors.js'
import {gatherFixEvidence} from '../lib/fix/evidence.js'
import {type FixFailure, type ForgottenNode, applyFixes, forgetStrangers, isStranger, refuseUnreachableOwners, settledSnapshot} from '../lib/fix/apply.js'
import {findJournalFor, readJournal} from '../lib/migrate/journal.js'
import {MigrationCommand, adminTimeoutMs} from '../lib/cli/migration-command.js'
import {type FixGroup, groupFixes, planFix} from '../lib/plan/fix.js'
import {paint, table} from '../lib/cli/render.js'
import {scanStrayKeys} from '../lib/check/scan.js'
import {formatSlots} from '../lib/cluster/slots.js'
import {openSlotsOf} from '../lib/cluster/topology.js'

export interface FixGroupView extends Omit<FixGroup, 'slots'> {
  slots: string
  slotCount: number
  destinationAddress: string
  sourceAddresses: string[]
}

export interface FixResult {
  seed: string
  status: 'clean' | 'fixed' | 'interrupted' | 'partial' | 'planned'
  findings: Finding[]
  fixes: FixGroupView[]
  forgotten: ForgottenNode[]
  /** the journal whose intended targets were used: given with --journal, or found */
  journal?: string
  keysMoved: number
  failures: FixFailure[]
  /** the check after fixing */
  after?: {healthy: boolean; errors: number; findings: Finding[]}
}

/** Slots an atomic migration is moving are the servers' business until the job ends. */
function refuseRunningSlotMigrations(snapshot: ClusterSnapshot): void {
  const running = runChecks(snapshot).filter((finding) => finding.code === 'SLOT_MIGRATION_RUNNING')
  if (running.length === 0) return
  throw new SlotctlError(`refusing to fix while ${running[0].message.replace(/^an/, 'an')}`, {
    code: 'E_SLOT_MIGRATION_RUNNING',
    suggestions: ['wait for it to end (slotctl check shows it), or cancel it with CLUSTER CANCELSLOTMIGRATIONS on its source'],
  })
}

export default class Fix extends BaseCommand<typeof Fix> {
  static args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
  }

  static description = BaseCommand.withExitCodes(
    [
      'Repair broken slot states without losing a key: open migrations (rolled forward when they got going, closed back otherwise), slots nobody owns, slots several masters claim, masters that disagree, and keys stored on a master that does not own their slot (--search-multiple-owners).',
      'Keys only ever move into the node that keeps the slot; a key present on two nodes with different values is listed and left alone unless --replace (then the moved copy wins).',
      'With a journal from an interrupted reshard/rebalance (--journal), open slots roll forward to the intended target. After fixing, runs the check: exit 0 only when it is clean.',
    ].join('\n'),
  )

  static examples = [
    '<%= config.bin %> fix 127.0.0.1:7000 --dry-run',
    '<%= config.bin %> fix 127.0.0.1:7000 --yes --search-multiple-owners',
    '<%= config.bin %> fix 127.0.0.1:7000 --yes --journal ~/.local/state/slotctl/journals/reshard-2026-11-22T10-00-00-000Z.jsonl',
  ]

  static flags = {
    'dry-run': Flags.boolean({description: 'list each finding and the action that would fix it; change nothing'}),
    journal: Flags.string({description: 'journal of an interrupted slotctl run: its intended targets decide where open slots go (default: the newest recent one in ~/.local/state/slotctl/journals with those slots in flight)'}),
    'search-multiple-owners': Flags.boolean({description: 'also find keys on masters that do not own their slot (one COUNTKEYSINSLOT per slot per master)'}),
    replace: Flags.boolean({description: 'when a key exists on two nodes with different values, overwrite the copy on the node keeping the slot'}),
    force: Flags.boolean({description: 'act even while masters that own slots are unreachable (their slots are left alone), or while another slotctl run seems to be changing the cluster'}),
    'forget-failed': Flags.boolean({description: 'also CLUSTER FORGET nodes stuck in handshake or without address (noaddr)'}),
    pipeline: MigrationCommand.migrationFlags.pipeline,
    timeout: MigrationCommand.migrationFlags.timeout,
    parallel: Flags.integer({default: 4, description: 'slots whose keys move at once', helpGroup: 'MIGRATION', min: 1}),
    'wait-timeout': Flags.integer({default: 20_000, description: 'how long to wait, in ms, for every node to agree after fixing', min: 0}),
  }

  /** First Ctrl-C: finish the slots whose keys are moving, close them, start no more. */
  protected finishInFlightOnInterrupt = true

  async run(): Promise<FixResult> {
    const seed = this.parseSeed([this.args.address])
    const pool = this.pool(seed, adminTimeoutMs(this.flags.timeout))
    const given = this.flags.journal ? readJournal(this.flags.journal) : undefined
    const snapshot = await this.loadCluster(seed)
    // a live run's open slots are its own business: fix must not "repair" them under it
    await this.refuseIfOtherRun(snapshot, this.flags.force)
    refuseRunningSlotMigrations(snapshot)
    const found = given ? undefined : this.discoverJournal(snapshot)
    const journal = given ?? found?.state
    const evidence = await gatherFixEvidence(pool, snapshot, {journal, searchMultipleOwners: this.flags['search-multiple-owners']})
    const fixes = planFix(evidence.masters, evidence.slots)
    const address = (id: string) => evidence.masters.find((master) => master.id === id)?.address || id.slice(0, 8)
    const result: FixResult = {
      failures: [],
      findings: runChecks(snapshot, {strayKeys: evidence.strayKeys}),
      fixes: groupFixes(fixes).map((group) => ({...group, destinationAddress: group.destination ? address(group.destination) : '', slotCount: group.slots.length, slots: formatSlots(group.slots), sourceAddresses: group.sources.map(address)})),
      forgotten: [],
      journal: this.flags.journal ?? found?.path,
      keysMoved: 0,
      seed: snapshot.seedAddress,
      status: 'planned',
    }
    this.renderPlan(result)
    const strangers = this.flags['forget-failed'] && Object.values(snapshot.views).some((view) => view.nodes?.some((node) => isStranger(node)))
    const actionable = fixes.filter((fix) => fix.action !== 'skip')
    if (actionable.length === 0 && !strangers) return this.finishClean(result)
    if (this.flags['dry-run']) {
      if (evidence.unreachableOwners.length > 0 && !this.flags.force) this.note(paint.warn('fix would refuse: masters owning slots are unreachable (see the errors above); --force acts without them'))
      return result
    }
    if (!this.flags.force) refuseUnreachableOwners(evidence.unreachableOwners)
    if (!(await this.confirm(`Apply ${actionable.length} slot fix(es)${strangers ? ' and forget stuck nodes' : ''}?`))) throw new SlotctlError('cancelled: nothing was changed', {code: 'E_CANCELLED'})

    await this.lockCluster(snapshot, this.flags.force)
    if (this.flags['forget-failed']) result.forgotten = await forgetStrangers(pool, snapshot)
    const outcome = await applyFixes(pool, evidence.masters, evidence.slots, fixes, {
      onSlotMoved: (fix, keys) => this.note(`slot ${fix.slot}: ${keys} key(s) moved into ${address(fix.destination)}`),
      parallel: this.flags.parallel,
      pipeline: this.flags.pipeline,
      replace: this.flags.replace,
      settleTimeoutMs: this.flags['wait-timeout'],
      signal: this.stopRequest.signal,
      timeoutMs: this.flags.timeout,
    })
    Object.assign(result, {failures: outcome.failures, keysMoved: outcome.keysMoved})
    this.reportFailures(outcome.failures)
    this.log(`fixed ${outcome.fixedSlots.length} slot(s), moved ${outcome.keysMoved} key(s)${result.forgotten.length > 0 ? `, forgot ${result.forgotten.length} stuck node entr(ies)` : ''}`)
    if (outcome.skippedSlots.length > 0) {
      this.note(paint.warn(`interrupted: slot(s) ${formatSlots(outcome.skippedSlots)} left as they were; run fix again to finish`))
      result.status = 'interrupted'
      this.resultExitCode = ExitCode.interrupted
      return result
    }
    await this.checkAfter(seed, result)
    return result
  }

  private async checkAfter(seed: NodeAddress, result: FixResult): Promise<void> {
    const after = await settledSnapshot(this.pool(), seed, this.flags['wait-timeout'])
    const strayKeys = this.flags['search-multiple-owners'] ? await scanStrayKeys(this.pool(), after) : undefined
    const findings = runChecks(after, {strayKeys})
    const errors = findings.filter((finding) => finding.severity === 'error')
    result.after = {errors: errors.length, findings, healthy: errors.length === 0}
    result.status = errors.length === 0 && result.failures.length === 0 ? 'fixed' : 'partial'
    if (errors.length === 0) this.log(paint.good('[OK] check after fixing: all 16384 slots covered, no open slots, all nodes agree'))
    else for (const finding of errors) this.log(paint.bad(`  [ERR] ${finding.message}`))
    for (const finding of errors.filter((f) => f.code === 'MASTER_UNREACHABLE')) {
      this.note(`hint: bring ${finding.nodes?.[0].slice(0, 8)} back, or remove it for good with: slotctl del-node ${result.seed} ${finding.nodes?.[0]}`)
    }
    if (result.failures.length > 0) this.resultExitCode = ExitCode.failed
    else if (errors.length > 0) this.resultExitCode = ExitCode.checkProblems
  }

  /** Without --journal, the newest recent journal of an interrupted run on these open slots. */
  private discoverJournal(snapshot: ClusterSnapshot) {
    const open = new Set(snapshot.nodes.flatMap((node) => openSlotsOf(node)))
    if (open.size === 0) return undefined
    const found = findJournalFor(open, new Set(snapshot.nodes.map((node) => node.id)))
    if (found) this.note(`using the journal of the interrupted run: ${found.path} (pass --journal to choose another)`)
    return found
  }

  /** One line per distinct error, naming its slots: a down node must not print 500 lines. */
  private reportFailures(failures: readonly FixFailure[]): void {
    const byError = new Map<string, number[]>()
    for (const failure of failures) {
      const error = failure.error.replace(/^slot \d+: /, '')
      byError.set(error, [...(byError.get(error) ?? []), failure.slot])
    }
    for (const [error, slots] of byError) process.stderr.write(`slotctl: slot(s) ${formatSlots(slots)} not fixed: ${error}\n`)
  }

  private finishClean(result: FixResult): FixResult {
    const errors = result.findings.filter((finding) => finding.severity === 'error')
    if (errors.length === 0) {
      this.log(paint.good('nothing to fix: the cluster is clean'))
      result.status = 'clean'
      return result
    }
    this.log(paint.warn('nothing fix can do about the errors above (see their hints)'))
    result.status = 'partial'
    this.resultExitCode = ExitCode.checkProblems
    return result
  }

  private renderPlan(result: FixResult): void {
    const errors = result.findings.filter((finding) => finding.severity === 'error')
    if (errors.length > 0) {
      this.log(paint.bad(`Findings (${errors.length}):`))
      for (const finding of errors) this.log(`  ${paint.bad('[ERR]')} ${finding.message}`)
    }
    if (result.fixes.length === 0) return
    const rows = result.fixes.map((group) => [
      group.slots.length > 40 ? `${group.slots.slice(0, 37)}...` : group.slots,
      group.slotCount,
      group.problem,
      group.action,
      group.destinationAddress || '-',
      group.sourceAddresses.join(' ') || '-',
      group.reason,
    ])
    this.log(table(['slots', 'n', 'problem', 'action', 'keeps slot', 'keys from', 'why'], rows))
  }
}
