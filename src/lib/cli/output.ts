/**
 * The one module that writes to stdout and stderr (an eslint rule keeps it so). Callers pass
 * text that is already redacted and escaped: a command's note/tell/errorLine/log (shownText)
 * or JSON through redactSecrets. A raw write elsewhere would skip both, and --quiet.
 */

/** One line (or a block of lines) to stdout: the result. */
export function writeStdout(text: string): void {
  process.stdout.write(`${text}\n`)
}

/** One line (or a block of lines) to stderr: progress, notes, warnings, errors. */
export function writeStderr(text: string): void {
  process.stderr.write(`${text}\n`)
}
