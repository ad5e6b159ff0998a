import {ExitCode, SlotctlError} from '../errors.js'

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
  if (!interactive()) {
    throw new SlotctlError(`missing ${flag}: it is required when not running on a terminal`, {code: 'E_USAGE', exitCode: ExitCode.usage})
  }
  const {input} = await import('@inquirer/prompts')
  return input({message, validate}, {output: process.stderr}).catch(interruptedAtPrompt)
}
