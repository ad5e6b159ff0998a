import {Args, Flags} from '@oclif/core'

import {BaseCommand, DEFAULT_WATCH_INTERVAL, watchFlag} from '../lib/cli/base-command.js'
import {groupSummary, hasErrors, runChecks, splitFindings} from '../lib/check/checks.js'
import {ExitCode} from '../lib/core/errors.js'
import {paint, renderIssues} from '../lib/cli/render.js'
import {type NodeRef, type VerbResult} from '../lib/core/result.js'
import {type NodeAddress, formatAddress} from '../lib/cluster/address.js'
import {formatRanges} from '../lib/core/slots.js'
import {findKeysOutsideOwners, scanStrayKeys} from '../lib/check/scan.js'
import {type NodeSummary, orderedNodes, summarizeNode} from '../lib/check/summary.js'

export interface CheckResult extends VerbResult {
  /** ok: nothing found; warnings: only warnings; problems: errors (exit 3). */
  status: 'ok' | 'problems' | 'warnings'
  seed: NodeRef
  healthy: boolean
  nodes: NodeSummary[]
}

function nodeLine(node: NodeSummary): string {
  const state = node.reachable ? '' : paint.bad(' UNREACHABLE')
  const flags = node.flags.filter((flag) => !['master', 'slave'].includes(flag))
  const flagText = flags.length > 0 ? paint.warn(` [${flags.join(',')}]`) : ''
  if (node.role === 'master') {
    return `M ${node.address} ${node.id.slice(0, 8)}  slots ${formatRanges(node.slots) || '-'} (${node.slotCount})  ${node.replicaCount} replica(s)${flagText}${state}`
  }
  return `  S ${node.address} ${node.id.slice(0, 8)}  replicates ${node.masterId?.slice(0, 8) ?? '?'}${flagText}${state}`
}

export default class Check extends BaseCommand<typeof Check> {
  static override seedFromContext = true

  static override args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
    port: Args.string({description: 'port, when the address is given as HOST PORT', required: false}),
  }

  static override summary = 'Is the cluster healthy? Slots, agreement, failures, replicas'

  static override description = BaseCommand.withExitCodes(
    'Check the health of a cluster: slot coverage, open slots, agreement between nodes, failed or unreachable nodes, cluster_state, replicas.\n' +
      'Exits 3 on problems that fix would repair or that block a reshard; warnings alone exit 0 unless --strict. Each finding names the command that deals with it.',
    {0: 'healthy (warnings allowed, unless --strict)', 1: 'the seed node could not be read', 3: 'errors found (or warnings, with --strict)'},
  )

  static override examples = ['<%= config.bin %> check 127.0.0.1:7000', '<%= config.bin %> check 127.0.0.1:7000 --json --strict', '<%= config.bin %> check 127.0.0.1:7000 --watch 5s']

  static override flags = {
    'search-multiple-owners': Flags.boolean({description: 'also look for keys stored on masters that do not own their slot (one COUNTKEYSINSLOT per slot per master)'}),
    strict: Flags.boolean({description: 'exit 3 on warnings too'}),
    watch: watchFlag,
  }

  static override optionalFlagValues = {watch: DEFAULT_WATCH_INTERVAL}

  async run(): Promise<CheckResult> {
    const seed = this.parseSeed([this.args.address, ...(this.args.port ? [this.args.port] : [])])
    if (this.flags.watch !== undefined) return this.watch(this.flags.watch, `check ${formatAddress(seed)}`, async () => this.checkOnce(seed))
    return this.checkOnce(seed)
  }

  /** Reads, checks and draws the cluster once; sets the exit code of what it found. */
  private async checkOnce(seed: NodeAddress): Promise<CheckResult> {
    const snapshot = await this.loadCluster(seed)
    // without the flag, the cheap scan (each master's key total against the counts of its own
    // and imported slots) still finds keys a node neither owns nor imports
    const strayKeys = this.flags['search-multiple-owners'] ? await scanStrayKeys(this.pool(), snapshot) : await findKeysOutsideOwners(this.pool(), snapshot, false)
    const findings = runChecks(snapshot, {strayKeys})
    const {errors, warnings} = splitFindings(findings)
    const spare = this.takePasswordNotNeededIssue()
    if (spare) warnings.push(spare)
    const result: CheckResult = {
      errors,
      healthy: errors.length === 0,
      nodes: orderedNodes(snapshot).map((node) => summarizeNode(snapshot, node)),
      seed: {address: snapshot.seedAddress, id: snapshot.seedId},
      status: errors.length > 0 ? 'problems' : warnings.length > 0 ? 'warnings' : 'ok',
      warnings,
    }
    this.render(result)
    if (hasErrors(findings) || (this.flags.strict && warnings.length > 0)) this.resultExitCode = ExitCode.checkProblems
    return result
  }

  private render(result: CheckResult): void {
    const masters = result.nodes.filter((node) => node.role === 'master').length
    this.log(paint.heading(`Cluster at ${result.seed.address}: ${result.nodes.length} nodes, ${masters} masters`))
    for (const node of result.nodes) this.log(nodeLine(node))
    this.log('')
    const verbose = this.flags.verbose
    for (const line of renderIssues('Errors', 'ERR', result.errors, {groupSummary, verbose})) this.log(line)
    for (const line of renderIssues('Warnings', 'WARN', result.warnings, {groupSummary, verbose})) this.log(line)
    const scanned = this.flags['search-multiple-owners'] ? ', no keys outside their owner' : ''
    if (result.healthy) this.log(paint.good(`[OK] all 16384 slots covered, no open slots, all nodes agree${scanned}${result.warnings.length > 0 ? ` (${result.warnings.length} warning(s))` : ''}`))
    else this.log(paint.bad(`${result.errors.length} problem(s) found: the hints say what deals with each`))
  }
}
