/**
 * Text that came from outside (key names, node addresses, server replies, what the operator
 * typed) is shown escaped: a newline would forge a line of output, and a terminal escape
 * sequence could clear the screen, retitle the window or hide the text after it. Control
 * characters (C0, DEL, C1) and the bidirectional overrides become visible escapes.
 */

// C0 controls, DEL, C1 controls, and the bidi embedding/override/isolate characters
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g

const NAMED: Record<string, string> = {'\n': '\\n', '\r': '\\r', '\t': '\\t'}

function escapeOne(char: string): string {
  if (NAMED[char]) return NAMED[char]
  const code = char.codePointAt(0) as number
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
}

/** One value on one line: every control character escaped (`\n`, `\x1b`, ...). */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, escapeOne)
}

// eslint-disable-next-line no-control-regex
const UNSAFE_BUT_NEWLINE = /[\u0000-\u0009\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/

// the colour sequences chalk writes (SGR): the only escapes slotctl itself prints
// eslint-disable-next-line no-control-regex
const SGR = /\u001B\[[0-9;]*m/y

/**
 * Lines about to reach a terminal: newlines stay (tables, lists), and so do colour
 * sequences when slotctl colours its output; every other control character is escaped.
 * Values from outside are escaped with escapeControl where they are put into a line, so
 * that a key cannot colour or split it either.
 */
export function escapeTerminal(text: string, keepColour: boolean): string {
  if (!UNSAFE_BUT_NEWLINE.test(text)) return text
  let out = ''
  for (let index = 0; index < text.length; ) {
    const char = text[index]
    if (char === '\n') {
      out += char
      index++
      continue
    }
    if (keepColour && char === '\u001B') {
      SGR.lastIndex = index
      const match = SGR.exec(text)
      if (match) {
        out += match[0]
        index += match[0].length
        continue
      }
    }
    out += escapeControl(char)
    index++
  }
  return out
}
