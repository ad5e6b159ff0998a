/**
 * The CLI's one entry point, for oclif's "explicit" command discovery (package.json
 * oclif.commands): every command and hook, and oclif's execute. `npm run build` bundles this
 * file with everything it imports (oclif, ioredis, chalk) into dist/slotctl.js (see
 * scripts/bundle.mjs), so a start reads one file instead of some 250 modules; bin/run.js
 * takes execute from here, so that the commands and the oclif running them are one copy.
 * In development (bin/dev.js) oclif reads this file through tsx.
 */
import AddNode from './commands/add-node.js'
import Apply from './commands/apply.js'
import Backup from './commands/backup.js'
import Call from './commands/call.js'
import Check from './commands/check.js'
import ContextAdd from './commands/context/add.js'
import ContextList from './commands/context/list.js'
import ContextRemove from './commands/context/remove.js'
import ContextUse from './commands/context/use.js'
import Create from './commands/create.js'
import DelNode from './commands/del-node.js'
import Failover from './commands/failover.js'
import Fix from './commands/fix.js'
import Import from './commands/import.js'
import History from './commands/history.js'
import HistoryPrune from './commands/history/prune.js'
import Info from './commands/info.js'
import PlanInvert from './commands/plan/invert.js'
import PlanShow from './commands/plan/show.js'
import Rebalance from './commands/rebalance.js'
import Reshard from './commands/reshard.js'
import Restore from './commands/restore.js'
import SandboxStart from './commands/sandbox/start.js'
import SandboxStatus from './commands/sandbox/status.js'
import SandboxStop from './commands/sandbox/stop.js'
import SetTimeout from './commands/set-timeout.js'
import Version from './commands/version.js'

import {execute as oclifExecute} from '@oclif/core'

import {redisCliHabit} from './lib/cli/redis-cli-habits.js'
import {escapeControl} from './lib/core/escape.js'
import {errorDocument} from './lib/core/result.js'
import {writeStderr, writeStdout} from './lib/cli/output.js'

export {default as commandNotFound} from './hooks/command-not-found.js'

export const COMMANDS = {
  'add-node': AddNode,
  apply: Apply,
  backup: Backup,
  call: Call,
  check: Check,
  'context:add': ContextAdd,
  'context:list': ContextList,
  'context:remove': ContextRemove,
  'context:use': ContextUse,
  create: Create,
  'del-node': DelNode,
  failover: Failover,
  fix: Fix,
  import: Import,
  history: History,
  'history:prune': HistoryPrune,
  info: Info,
  'plan:invert': PlanInvert,
  'plan:show': PlanShow,
  rebalance: Rebalance,
  reshard: Reshard,
  restore: Restore,
  'sandbox:start': SandboxStart,
  'sandbox:status': SandboxStatus,
  'sandbox:stop': SandboxStop,
  'set-timeout': SetTimeout,
  version: Version,
}

/**
 * oclif's execute, after one look at the command line: redis-cli's -h/-p/-u and --cluster-*
 * flags are refused with the slotctl form (redis-cli-habits.ts), before oclif would take
 * `-h HOST` for a request for help and exit 0.
 */
export async function execute(options: Parameters<typeof oclifExecute>[0]): Promise<unknown> {
  const argv = options.args ?? process.argv.slice(2)
  const habit = redisCliHabit(argv, Object.keys(COMMANDS), 'slotctl', (id, flag) => flag in ((COMMANDS as Record<string, {flags?: Record<string, unknown>}>)[id]?.flags ?? {}))
  if (!habit) return oclifExecute(options)
  // the words typed are shown back: one line each, no terminal control
  const refusal = {...habit, message: escapeControl(habit.message), suggestions: habit.suggestions?.map((hint) => escapeControl(hint))}
  const end = argv.indexOf('--')
  if ((end === -1 ? argv : argv.slice(0, end)).includes('--json')) {
    writeStdout(JSON.stringify(errorDocument(refusal), null, 2))
  } else {
    writeStderr(`slotctl: error: ${refusal.message}`)
    for (const hint of refusal.suggestions ?? []) writeStderr(`  hint: ${hint}`)
  }
  process.exitCode = refusal.exitCode
  return undefined
}
