import {type ErrorCode, ExitCode, exitCodeOf} from './error-codes.js'

export {type ErrorCode, ERROR_CODES, ExitCode, type ExitCodeValue, isErrorCode} from './error-codes.js'

export interface SlotctlErrorOptions {
  code?: ErrorCode
  /** default: the code's exit code in the registry (error-codes.ts) */
  exitCode?: number
  suggestions?: string[]
  cause?: unknown
}

/**
 * The one error type commands let escape: a single human line, a stable code for --json,
 * the exit code, and optional hints. Its message must never contain a secret.
 */
export class SlotctlError extends Error {
  readonly code: ErrorCode
  readonly exitCode: number
  readonly suggestions: string[]

  constructor(message: string, options: SlotctlErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'SlotctlError'
    this.code = options.code ?? 'E_FAILED'
    this.exitCode = options.exitCode ?? exitCodeOf(this.code)
    this.suggestions = options.suggestions ?? []
  }
}

export function usageError(message: string, suggestions: string[] = []): SlotctlError {
  return new SlotctlError(message, {code: 'E_USAGE', exitCode: ExitCode.usage, suggestions})
}

export function failure(message: string, code: ErrorCode = 'E_FAILED', suggestions: string[] = []): SlotctlError {
  return new SlotctlError(message, {code, exitCode: ExitCode.failed, suggestions})
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}

/** A server that will not run slotctl's script for this user (ACL, scripting refused): the same work then goes through slotctl. */
export function isScriptRefused(error: unknown): boolean {
  return /NOPERM|unknown command|NOSCRIPT|not allowed from script|This Redis command is not allowed/i.test(errorMessage(error))
}

/** ioredis and socket errors that mean the connection to the node is gone, not a refusal. */
export function isConnectionLost(err: unknown): boolean {
  // "Command aborted due to connection close": ioredis' answer to commands in flight when the socket closes
  return /Connection is closed|Command aborted due to connection close|Stream isn't writeable|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|connect ETIMEDOUT|socket hang up/i.test(errorMessage(err))
}

/**
 * What a node did with a command, in one line: "X refused WHAT: reason", or, when the
 * connection itself failed, "X is unreachable" without the command (so that a dead node
 * reads as one cause, whatever was being sent to it).
 */
export function nodeFailure(address: string, what: string, err: unknown): string {
  if (isConnectionLost(err)) return `${address} is unreachable (the connection was lost)`
  return `${address} refused ${what}: ${errorMessage(err)}`
}
