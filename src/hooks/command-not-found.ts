/**
 * A mistyped verb: one error line that names the closest verb, exit 2, and the JSON error
 * document with --json. (Unlike @oclif/plugin-not-found it never offers to run the guess: on
 * a tool that changes clusters, a typo must not turn into a command nobody typed.)
 */
import type {Hook} from '@oclif/core'

import {ExitCode} from '../lib/core/errors.js'
import {type ErrorEnvelope, errorDocument} from '../lib/core/result.js'
import {escapeControl} from '../lib/core/escape.js'
import {writeStderr, writeStdout} from '../lib/cli/output.js'
import {redactSecrets} from '../lib/secrets.js'

export function editDistance(a: string, b: string): number {
  let previous = Array.from({length: b.length + 1}, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    previous = current
  }
  return previous[b.length]
}

/** The command id closest to what was typed, when it is close enough to be a typo. */
export function closestCommand(typed: string, ids: readonly string[]): string | undefined {
  const words = typed.split(':')
  let best: {distance: number; id: string} | undefined
  for (const id of ids) {
    const candidate = words.slice(0, id.split(':').length).join(':')
    const distance = editDistance(candidate, id)
    if (!best || distance < best.distance) best = {distance, id}
  }
  if (!best) return undefined
  return best.distance <= Math.max(2, Math.floor(best.id.length / 3)) ? best.id : undefined
}

const hook: Hook<'command_not_found'> = async function ({argv, config, id}) {
  const ids = config.commands.filter((command) => !command.hidden).map((command) => command.id)
  const suggestion = closestCommand(id, ids)
  const separator = config.topicSeparator ?? ' '
  // oclif joins words that might form a topic ("sandbox:strat"); name only what the guess covers
  const typed = id.split(':').slice(0, suggestion ? suggestion.split(':').length : 1).join(separator)
  const error: ErrorEnvelope = {
    code: 'E_USAGE',
    exitCode: ExitCode.usage,
    message: `'${escapeControl(redactSecrets(typed))}' is not a ${config.bin} command`,
    suggestions: [...(suggestion ? [`did you mean '${suggestion.replaceAll(':', separator)}'?`] : []), `${config.bin} --help lists the commands`],
  }
  // oclif folds the words after the verb into the id and may pass no argv: look at the real one
  if ([...(argv ?? []), ...process.argv.slice(2)].includes('--json')) {
    writeStdout(JSON.stringify(errorDocument(error), null, 2))
  } else {
    writeStderr(`${config.bin}: error: ${error.message}`)
    for (const hint of error.suggestions ?? []) writeStderr(`  hint: ${hint}`)
  }
  this.exit(ExitCode.usage)
}

export default hook
