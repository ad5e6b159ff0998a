import {Args, Flags} from '@oclif/core'

import {MIGRATION_SOURCE, MIGRATION_TARGET, type Need, PERMISSIONS, READ_CLUSTER, RUN_LOCK, describeMissing, findMissingPermissions, need, refuseMissingPermissions} from '../lib/acl/preflight.js'
import {BaseCommand, ignoreLockFlag} from '../lib/cli/base-command.js'
import type {NodeAddress} from '../lib/cluster/address.js'
import {shorten} from '../lib/cluster/changes.js'
import type {ClusterSnapshot} from '../lib/cluster/loader.js'
import type {JournalState} from '../lib/migrate/journal.js'
import {groupSummary, runChecks, splitFindings} from '../lib/check/checks.js'
import {ExitCode, SlotctlError} from '../lib/core/errors.js'
import {findStrayKeys, gatherFixEvidence} from '../lib/fix/evidence.js'
import {type FixFailure, type ForgottenNode, applyFixes, forgetStrangers, isStranger, onlySettling, refuseUnreachableOwners, settledSnapshot} from '../lib/fix/apply.js'
import {findJournalFor, readJournal} from '../lib/migrate/journal.js'
import {MigrationCommand, adminTimeoutMs} from '../lib/cli/migration-command.js'
import {type FixGroup, type SlotFix, groupFixes, planFix} from '../lib/plan/fix.js'
import {paint, renderIssues, table} from '../lib/cli/render.js'
import {type Issue, type NodeRef, type VerbResult, issue, slotSet} from '../lib/core/result.js'
import {durationFlag} from '../lib/cli/duration.js'
import {type SlotRange, expandRanges, formatRanges, formatSlots} from '../lib/core/slots.js'
import {type ClusterNode, openSlotsOf} from '../lib/cluster/topology.js'

export interface FixGroupView {
  slots: SlotRange[]
  slotCount: number
  problem: FixGroup['problem']
  action: FixGroup['action']
  /** The master that keeps the slots (empty when skipped). */
  targetId: string
  targetAddress: string
  /** Masters whose keys for these slots move into the target. */
  sources: NodeRef[]
  reason: string
}

export interface FixResult extends VerbResult {
  /**
   * clean: nothing to fix; planned: --dry-run (exit 3 when something would change); fixed: fixed and
   * the check afterwards is clean; partial: problems remain (exit 3) or slots failed (exit 1);
   * interrupted: Ctrl-C (exit 130).
   */
  status: 'clean' | 'fixed' | 'interrupted' | 'partial' | 'planned'
  seed: NodeRef
  /** What the check found before fixing. */
  findings: {errors: Issue[]; warnings: Issue[]}
  fixes: FixGroupView[]
  forgotten: Array<{id: string; reason: ForgottenNode['reason']; onAddress: string}>
  /** the journal whose intended targets were used: given with --journal, or found */
  journal?: string
  keysMoved: number
  /** the check after fixing */
  after?: {healthy: boolean; errors: Issue[]; warnings: Issue[]}
  elapsedMs: number
}

/** Failed slots grouped by their error: a down node must not make 500 entries. */
function failureIssues(failures: readonly FixFailure[]): Issue[] {
  const byError = new Map<string, number[]>()
  for (const failure of failures) {
    const error = failure.error.replace(/^slot \d+: /, '')
    byError.set(error, [...(byError.get(error) ?? []), failure.slot])
  }
  return [...byError.entries()].map(([error, slots]) => issue('E_FIX_FAILED', `slot(s) ${formatSlots(slots)} not fixed: ${error}`, slotSet(slots)))
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

/** fix may move keys between any live masters, claim slots, and (with --forget-failed) forget nodes anywhere. */
function fixNeeds(liveMasters: string[], forgetters: string[]): Need[] {
  const {clusterAddslots, clusterBumpepoch, clusterCountkeysinslot, clusterForget, dbsize, exec, multi} = PERMISSIONS
  return [
    // DBSIZE in MULTI: each master's keys against those of its own slots (stray keys anywhere)
    need(liveMasters, READ_CLUSTER, RUN_LOCK, MIGRATION_SOURCE, MIGRATION_TARGET, clusterCountkeysinslot, clusterAddslots, clusterBumpepoch, dbsize, multi, exec),
    need(forgetters, clusterForget),
  ]
}

/**
 * Slots whose fix in `after` was not shown in `before` (new, or another action, destination or
 * source). A fix shown that is no longer needed (the problem went away meanwhile) is not one.
 */
function unshownFixes(before: readonly SlotFix[], after: readonly SlotFix[]): number[] {
  // The problem a slot has is what another run changes (markers, owners); how fix repairs it
  // (roll forward or back, which nodes hold keys) also follows the keys clients write
  // meanwhile (a key sent on with ASK makes an import "got going"), which is no reason to refuse.
  const key = (fix: SlotFix) => fix.problem
  const shown = new Map(before.map((fix) => [fix.slot, key(fix)]))
  return after.filter((fix) => shown.get(fix.slot) !== key(fix)).map((fix) => fix.slot)
}

/**
 * What was confirmed is carried out: where a slot's problem is unchanged, the repair shown
 * (e.g. a close-back) stays, even if keys clients wrote meanwhile would now make the planner
 * pick another (a key sent on with ASK makes an import look "got going"); both keep every
 * key. The nodes holding keys are the ones found now, or before.
 */
function keepShownRepairs(shown: readonly SlotFix[], current: readonly SlotFix[]): SlotFix[] {
  const bySlot = new Map(shown.map((fix) => [fix.slot, fix]))
  return current.map((fix) => {
    const before = bySlot.get(fix.slot)
    if (!before || before.problem !== fix.problem || before.action === fix.action) return fix
    return {...before, sources: [...new Set([...before.sources, ...fix.sources])].filter((id) => id !== before.destination)}
  })
}

function reachableAddresses(snapshot: ClusterSnapshot): string[] {
  return snapshot.nodes.filter((node) => snapshot.views[node.id]?.reachable && node.address).map((node) => node.address)
}

export default class Fix extends BaseCommand<typeof Fix> {
  static override seedFromContext = true

  static override args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
  }

  static override changesCluster = true

  static override summary = 'Repair open, uncovered or contested slots, losing no key'

  static override description = BaseCommand.withExitCodes(
    [
      'Repair broken slot states without losing a key: open migrations (rolled forward when they got going, closed back otherwise), slots nobody owns, slots several masters claim, masters that disagree, and keys stored on a master that does not own their slot (--search-multiple-owners).',
      'Keys only ever move into the node that keeps the slot; a key present on two nodes with different values is listed and left alone unless --replace (then the moved copy wins).',
      'With a journal from an interrupted reshard/rebalance (--journal), open slots roll forward to the intended target. After fixing, runs the check: exit 0 only when it is clean.',
      '--dry-run exits 3 when fix would change something and 0 when there is nothing to do (like terraform plan -detailed-exitcode).',
    ].join('\n'),
    {
      0: 'clean, or fixed and clean afterwards (--dry-run: nothing to do)',
      1: 'refused (an owner is down: --force), cancelled, or a slot failed',
      3: 'problems remain (see the hints); --dry-run: fix would change some',
      4: 'a confirmation was needed, but there is no terminal and no --yes',
      130: 'interrupted: slots in flight were finished; run fix again',
    },
  )

  static override examples = [
    '<%= config.bin %> fix 127.0.0.1:7000 --dry-run',
    '<%= config.bin %> fix 127.0.0.1:7000 --yes --search-multiple-owners',
    '<%= config.bin %> fix 127.0.0.1:7000 --yes --journal ~/.local/state/slotctl/journals/reshard-2026-11-22T10-00-00-000Z.jsonl',
  ]

  static override flags = {
    'dry-run': Flags.boolean({description: 'list each finding and the action that would fix it; change nothing'}),
    journal: Flags.string({description: 'journal of an interrupted slotctl run: its intended targets decide where open slots go (default: the newest recent one in ~/.local/state/slotctl/journals with those slots in flight)'}),
    'search-multiple-owners': Flags.boolean({description: 'count the keys of every slot a master does not own, on every master (without it, only on masters whose DBSIZE exceeds the keys of their own slots)'}),
    replace: Flags.boolean({description: 'when a key exists on two nodes with different values, overwrite the copy on the node keeping the slot'}),
    force: Flags.boolean({description: 'act even while masters that own slots are unreachable (their slots are left alone)'}),
    'ignore-lock': ignoreLockFlag,
    'forget-failed': Flags.boolean({description: 'also CLUSTER FORGET nodes stuck in handshake or without address (noaddr)'}),
    pipeline: MigrationCommand.migrationFlags.pipeline,
    timeout: MigrationCommand.migrationFlags.timeout,
    parallel: Flags.integer({default: 4, description: 'slots whose keys move at once', helpGroup: 'MIGRATION', min: 1}),
    'wait-timeout': durationFlag({defaultMs: 20_000, description: 'how long to wait for every node to agree after fixing (or, with nothing to fix, for a cluster settling by itself)', minMs: 0, plainUnit: 'ms'}),
  }

  /** First Ctrl-C: finish the slots whose keys are moving, close them, start no more. */
  protected override finishInFlightOnInterrupt = true

  private readonly started = Date.now()

  async run(): Promise<FixResult> {
    const seed = this.parseSeed([this.args.address])
    const pool = this.pool(seed, adminTimeoutMs(this.flags.timeout))
    const given = this.flags.journal ? readJournal(this.flags.journal) : undefined
    const snapshot = await this.loadCluster(seed)
    // a live run's open slots are its own business: fix must not "repair" them under it
    await this.refuseIfOtherRun(snapshot)
    refuseRunningSlotMigrations(snapshot)
    const found = given ? undefined : this.discoverJournal(snapshot)
    const journal = given ?? found?.state
    const evidence = await gatherFixEvidence(pool, snapshot, {journal, searchMultipleOwners: this.flags['search-multiple-owners']})
    const fixes = planFix(evidence.masters, evidence.slots)
    const address = (id: string) => evidence.masters.find((master) => master.id === id)?.address || id.slice(0, 8)
    const strangers = this.flags['forget-failed'] && Object.values(snapshot.views).some((view) => view.nodes?.some((node) => isStranger(node)))
    const actionable = fixes.filter((fix) => fix.action !== 'skip')
    let findings = splitFindings(runChecks(snapshot, {strayKeys: evidence.strayKeys}))
    // nothing to repair, and only what settles by itself (a master that just restarted): wait
    // for it, bounded, rather than report a passing state as an error nothing can fix
    if (!this.flags['dry-run'] && actionable.length === 0 && !strangers && onlySettling(findings.errors)) {
      findings = splitFindings(runChecks(await settledSnapshot(pool, seed, this.flags['wait-timeout']), {strayKeys: evidence.strayKeys}))
    }
    const result: FixResult = {
      elapsedMs: 0,
      errors: [],
      findings,
      fixes: groupFixes(fixes).map((group) => ({
        action: group.action,
        problem: group.problem,
        reason: group.reason,
        sources: group.sources.map((id) => ({address: address(id), id})),
        targetAddress: group.destination ? address(group.destination) : '',
        targetId: group.destination,
        ...slotSet(group.slots),
      })),
      forgotten: [],
      journal: this.flags.journal ?? found?.path,
      keysMoved: 0,
      seed: {address: snapshot.seedAddress, id: snapshot.seedId},
      status: 'planned',
      warnings: findings.warnings,
    }
    this.renderPlan(result)
    if (actionable.length === 0 && !strangers) return this.finishClean(result)
    const needs = fixNeeds(evidence.masters.filter((master) => master.live).map((master) => master.address), this.flags['forget-failed'] ? reachableAddresses(snapshot) : [])
    if (this.flags['dry-run']) {
      if (evidence.unreachableOwners.length > 0 && !this.flags.force) this.note(paint.warn(`fix would refuse: ${this.whyOwnersUnread(evidence.unreachableOwners, snapshot)}`))
      const missing = await findMissingPermissions(pool, needs)
      if (missing.length > 0) this.note(paint.warn(`fix would refuse: ${describeMissing(pool.settings.username ?? 'default', missing).message}`))
      this.log(`dry run: ${actionable.length} slot fix(es)${strangers ? ' and forgetting stuck nodes' : ''} would be applied; nothing changed`)
      // like terraform's -detailed-exitcode: 3 means "would change something"
      this.resultExitCode = ExitCode.checkProblems
      return this.done(result)
    }
    if (!this.flags.force) refuseUnreachableOwners(evidence.unreachableOwners, snapshot)
    await refuseMissingPermissions(pool, needs)
    if (!(await this.confirm(`Apply ${actionable.length} slot fix(es)${strangers ? ' and forget stuck nodes' : ''}?`))) throw new SlotctlError('cancelled: nothing was changed', {code: 'E_CANCELLED'})

    await this.lockCluster(snapshot)
    const current = await this.evidenceUnderLock(seed, fixes, journal)
    if (this.flags['forget-failed']) result.forgotten = (await forgetStrangers(pool, snapshot)).map((entry) => ({id: entry.id, onAddress: entry.on, reason: entry.reason}))
    this.applyingChanges = true
    const outcome = await applyFixes(pool, current.evidence.masters, current.evidence.slots, current.fixes, {
      ownerWins: journal?.inFlight,
      // one line per slot only on request: a repair of 400 slots must not print 400 lines
      onSlotMoved: (fix, keys) => {
        if (this.flags.verbose) this.note(`slot ${fix.slot}: ${keys} key(s) moved into ${address(fix.destination)}`)
      },
      parallel: this.flags.parallel,
      pipeline: this.flags.pipeline,
      replace: this.flags.replace,
      settleTimeoutMs: this.flags['wait-timeout'],
      signal: this.stopRequest.signal,
      timeoutMs: this.flags.timeout,
    })
    const failed = failureIssues(outcome.failures)
    Object.assign(result, {errors: failed, keysMoved: outcome.keysMoved})
    for (const failure of failed) this.errorLine(`slotctl: ${failure.message}`)
    this.log(`fixed ${outcome.fixedSlots.length} slot(s), moved ${outcome.keysMoved} key(s)${result.forgotten.length > 0 ? `, forgot ${result.forgotten.length} stuck node entr(ies)` : ''}`)
    if (outcome.skippedSlots.length > 0) {
      this.note(paint.warn(`interrupted: slot(s) ${formatSlots(outcome.skippedSlots)} left as they were; run fix again to finish`))
      result.status = 'interrupted'
      this.resultExitCode = ExitCode.interrupted
      return this.done(result)
    }
    await this.checkAfter(seed, result, outcome.failures.map((failure) => failure.slot))
    return this.done(result)
  }

  /**
   * The evidence was gathered before the lock, and another run may have changed the cluster
   * while this one waited for its yes: it is read again under the lock, and fix applies what
   * it plans now only if each of those fixes is one it showed.
   */
  private async evidenceUnderLock(seed: NodeAddress, fixes: readonly SlotFix[], journal?: JournalState) {
    const snapshot = await this.loadCluster(seed)
    refuseRunningSlotMigrations(snapshot)
    const evidence = await gatherFixEvidence(this.pool(), snapshot, {journal, searchMultipleOwners: this.flags['search-multiple-owners']})
    const current = planFix(evidence.masters, evidence.slots)
    const unshown = unshownFixes(fixes, current)
    if (unshown.length > 0) {
      throw new SlotctlError(`the cluster changed since fix read it (another run?): slot(s) ${shorten(formatSlots(unshown))} now need fixes that were not shown; nothing was changed`, {
        code: 'E_CLUSTER_CHANGED',
        suggestions: ['run fix again: it plans on the cluster as it is now'],
      })
    }
    if (!this.flags.force) refuseUnreachableOwners(evidence.unreachableOwners, snapshot)
    return {evidence, fixes: keepShownRepairs(fixes, current), snapshot}
  }

  /** What a dry run says fix would refuse for: owners that refuse the login are not "unreachable". */
  private whyOwnersUnread(owners: readonly ClusterNode[], snapshot: ClusterSnapshot): string {
    if (owners.some((node) => snapshot.views[node.id]?.errorCode === 'E_AUTH')) return 'masters owning slots refuse this login (see the errors above); run again with the password they take'
    return 'masters owning slots are unreachable (see the errors above); --force acts without them'
  }

  private done(result: FixResult): FixResult {
    return {...result, elapsedMs: Date.now() - this.started}
  }

  private async checkAfter(seed: NodeAddress, result: FixResult, failedSlots: readonly number[]): Promise<void> {
    const after = await settledSnapshot(this.pool(), seed, this.flags['wait-timeout'], new Set(failedSlots))
    // not "clean" while keys sit outside their owner, searched for or not
    const strayKeys = await findStrayKeys(this.pool(), after, this.flags['search-multiple-owners'])
    const {errors, warnings} = splitFindings(runChecks(after, {strayKeys}))
    const failed = result.errors.length > 0
    result.after = {errors, healthy: errors.length === 0, warnings}
    result.errors = [...result.errors, ...errors]
    result.warnings = warnings
    result.status = errors.length === 0 && !failed ? 'fixed' : 'partial'
    if (errors.length === 0) this.log(paint.good('[OK] check after fixing: all 16384 slots covered, no open slots, all nodes agree'))
    else for (const line of renderIssues('Still wrong after fixing', 'ERR', errors, {groupSummary, verbose: this.flags.verbose})) this.log(line)
    if (failed) this.resultExitCode = ExitCode.failed
    else if (errors.length > 0) this.resultExitCode = ExitCode.checkProblems
  }

  /** Without --journal, the newest recent journal of an interrupted run on these open slots, or on slots a failed master owns. */
  private discoverJournal(snapshot: ClusterSnapshot) {
    const openSlots = new Set(snapshot.nodes.flatMap((node) => openSlotsOf(node)))
    const deadOwners = new Map(snapshot.nodes.filter((node) => node.failed && node.role === 'master').flatMap((node) => expandRanges(node.slots).map((slot) => [slot, node.id] as const)))
    if (openSlots.size === 0 && deadOwners.size === 0) return undefined
    const found = findJournalFor({deadOwners, nodeIds: new Set(snapshot.nodes.map((node) => node.id)), openSlots})
    if (found) this.note(`using the journal of the interrupted run: ${found.path} (pass --journal to choose another)`)
    return found
  }

  private finishClean(result: FixResult): FixResult {
    const {errors} = result.findings
    if (errors.length === 0) {
      this.log(paint.good('nothing to fix: the cluster is clean'))
      return this.done({...result, status: 'clean'})
    }
    // The problems left are not slot states (a dead master, say): their hints name the command.
    this.log(paint.warn('nothing fix can do about the errors above: their hints say what can'))
    this.resultExitCode = ExitCode.checkProblems
    return this.done({...result, errors, status: 'partial'})
  }

  private renderPlan(result: FixResult): void {
    for (const line of renderIssues('Findings', 'ERR', result.findings.errors, {groupSummary, verbose: this.flags.verbose})) this.log(line)
    if (result.fixes.length === 0) return
    const rows = result.fixes.map((group) => [
      formatRanges(group.slots),
      group.slotCount,
      group.problem,
      group.action,
      group.targetAddress || '-',
      group.sources.map((source) => source.address).join(' ') || '-',
      group.reason,
    ])
    this.log(table(['slots', 'n', 'problem', 'action', 'keeps slot', 'keys from', 'why'], rows, ['left', 'right', 'left', 'left', 'left', 'left', 'left']))
  }
}
