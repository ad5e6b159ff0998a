import {ExitCode, SlotctlError} from '../core/errors.js'

export function interactive(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY) && !process.env.CI
}

export function needsYesError(what: string): SlotctlError {
  return new SlotctlError(`${what} needs confirmation, and there is no terminal to ask on`, {
    code: 'E_NEEDS_CONFIRMATION',
    exitCode: ExitCode.needsConfirmation,
    suggestions: ['re-run with --yes (or SLOTCTL_YES=1) to proceed without asking'],
  })
}

/** Ctrl-C at a prompt: inquirer's own error would exit 1 with its own words. */
function interruptedAtPrompt(error: unknown): never {
  if ((error as Error)?.name === 'ExitPromptError') {
    throw new SlotctlError('interrupted at the prompt: nothing was changed', {code: 'E_INTERRUPTED', exitCode: ExitCode.interrupted})
  }
  throw error
}

/**
 * Asks before a change. `--yes` answers for the operator; without a TTY it never prompts
 * (a prompt would hang a CI job) and fails with exit 4 instead.
 */
export async function confirmOrFail(message: string, yes: boolean): Promise<boolean> {
  if (yes) return true
  if (!interactive()) throw needsYesError(message.replace(/\?$/, ''))
  // loaded only when a prompt is shown: importing it costs every command ~200 ms of start-up
  const {confirm} = await import('@inquirer/prompts')
  return confirm({default: false, message}, {output: process.stderr}).catch(interruptedAtPrompt)
}

/** Asks for a missing value on a TTY; without one, the missing flag is a usage error. */
export async function askOrFail(message: string, flag: string, validate?: (value: string) => string | true): Promise<string> {
  if (!interactive()) throw missingFlag(flag)
  const {input} = await import('@inquirer/prompts')
  // a rejected answer is cleared, so the question is asked afresh
  return input({message, theme: {validationFailureMode: 'clear'}, validate}, {output: process.stderr}).catch(interruptedAtPrompt)
}

export interface Choice<T> {
  name: string
  value: T
  checked?: boolean
}

function missingFlag(flag: string): SlotctlError {
  return new SlotctlError(`missing ${flag}: it is required when not running on a terminal`, {code: 'E_USAGE', exitCode: ExitCode.usage})
}

/** One choice from a list on a TTY (arrow keys, Enter); without one, the missing flag is a usage error. */
export async function selectOrFail<T>(message: string, flag: string, choices: Array<Choice<T>>): Promise<T> {
  if (!interactive()) throw missingFlag(flag)
  const {select} = await import('@inquirer/prompts')
  return select({choices: choices.map(({name, value}) => ({name, value})), message, pageSize: 12}, {output: process.stderr}).catch(interruptedAtPrompt)
}

/** Several choices (space toggles, Enter accepts; `checked` ones are the default); re-asks when none is chosen. */
export async function checkboxOrFail<T>(message: string, flag: string, choices: Array<Choice<T>>): Promise<T[]> {
  if (!interactive()) throw missingFlag(flag)
  const {checkbox} = await import('@inquirer/prompts')
  return checkbox({choices, message, pageSize: 12, validate: (chosen) => (chosen.length > 0 ? true : 'choose at least one (space toggles)')}, {output: process.stderr}).catch(interruptedAtPrompt)
}

/** Asks for a secret on a TTY without echoing it; without one, asking is a usage error. */
export async function askSecretOrFail(message: string, flag: string): Promise<string> {
  if (!interactive()) {
    throw new SlotctlError(`${flag} needs a terminal to ask on`, {code: 'E_USAGE', exitCode: ExitCode.usage, suggestions: ['pass the password in the REDISCLI_AUTH environment variable instead']})
  }
  const {password} = await import('@inquirer/prompts')
  return password({message}, {output: process.stderr})
}
