import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'
import {type Finding, hasErrors, runChecks} from '../lib/check/checks.js'
import {ExitCode} from '../lib/errors.js'
import {paint} from '../lib/cli/render.js'
import {scanStrayKeys} from '../lib/check/scan.js'
import {type NodeSummary, orderedNodes, summarizeNode} from '../lib/check/summary.js'

export interface CheckResult {
  seed: string
  healthy: boolean
  errors: number
  warnings: number
  findings: Finding[]
  nodes: NodeSummary[]
}

function nodeLine(node: NodeSummary): string {
  const state = node.reachable ? '' : paint.bad(' UNREACHABLE')
  const flags = node.flags.filter((flag) => !['master', 'slave'].includes(flag))
  const flagText = flags.length > 0 ? paint.warn(` [${flags.join(',')}]`) : ''
  if (node.role === 'master') {
    return `M ${node.address} ${node.id.slice(0, 8)}  slots ${node.slots || '-'} (${node.slotCount})  ${node.replicas} replica(s)${flagText}${state}`
  }
  return `  S ${node.address} ${node.id.slice(0, 8)}  replicates ${node.masterId?.slice(0, 8) ?? '?'}${flagText}${state}`
}

export default class Check extends BaseCommand<typeof Check> {
  static args = {
    address: Args.string({description: 'any node of the cluster (HOST:PORT)', required: true}),
    port: Args.string({description: 'port, when the address is given as HOST PORT', required: false}),
  }

  static description = BaseCommand.withExitCodes(
    'Check the health of a cluster: slot coverage, open slots, agreement between nodes, failed or unreachable nodes, cluster_state, replicas.\n' +
      'Exits 3 on problems that fix would repair or that block a reshard; warnings alone exit 0 unless --strict.',
  )

  static examples = ['<%= config.bin %> check 127.0.0.1:7000', '<%= config.bin %> check 127.0.0.1:7000 --json --strict']

  static flags = {
    'search-multiple-owners': Flags.boolean({description: 'also look for keys stored on masters that do not own their slot (one COUNTKEYSINSLOT per slot per master)'}),
    strict: Flags.boolean({description: 'exit 3 on warnings too'}),
  }

  async run(): Promise<CheckResult> {
    const seed = this.parseSeed([this.args.address, ...(this.args.port ? [this.args.port] : [])])
    const snapshot = await this.loadCluster(seed)
    const strayKeys = this.flags['search-multiple-owners'] ? await scanStrayKeys(this.pool(), snapshot) : undefined
    const findings = runChecks(snapshot, {strayKeys})
    const errors = findings.filter((finding) => finding.severity === 'error').length
    const warnings = findings.length - errors
    const result: CheckResult = {
      errors,
      findings,
      healthy: errors === 0,
      nodes: orderedNodes(snapshot).map((node) => summarizeNode(snapshot, node)),
      seed: snapshot.seedAddress,
      warnings,
    }
    this.render(result)
    if (hasErrors(findings) || (this.flags.strict && warnings > 0)) this.resultExitCode = ExitCode.checkProblems
    return result
  }

  private render(result: CheckResult): void {
    const masters = result.nodes.filter((node) => node.role === 'master').length
    this.log(paint.heading(`Cluster at ${result.seed}: ${result.nodes.length} nodes, ${masters} masters`))
    for (const node of result.nodes) this.log(nodeLine(node))
    this.log('')
    const groups: Array<[string, Finding[], (text: string) => string, string]> = [
      ['Errors', result.findings.filter((f) => f.severity === 'error'), paint.bad, 'ERR'],
      ['Warnings', result.findings.filter((f) => f.severity === 'warning'), paint.warn, 'WARN'],
    ]
    for (const [title, items, colour, tag] of groups) {
      if (items.length === 0) continue
      this.log(colour(`${title} (${items.length}):`))
      for (const item of items) this.log(`  ${colour(`[${tag}]`)} ${item.message}`)
    }
    const scanned = this.flags['search-multiple-owners'] ? ', no keys outside their owner' : ''
    if (result.healthy) this.log(paint.good(`[OK] all 16384 slots covered, no open slots, all nodes agree${scanned}${result.warnings > 0 ? ` (${result.warnings} warning(s))` : ''}`))
    else this.log(paint.bad(`${result.errors} problem(s) found; see what fix would do with: slotctl fix ${result.seed} --dry-run`))
  }
}
