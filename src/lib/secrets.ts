/**
 * Secrets never reach output. URL credentials are masked wherever they appear, whatever the
 * scheme's case and whether the URL is valid or not; and the passwords slotctl was given are
 * masked verbatim, since a server, a library or a parser may echo them back in a message.
 */
const secrets = new Set<string>()

/** Passwords this short would mask ordinary words; they protect nothing anyway. */
const MIN_SECRET_LENGTH = 3

/** Remembers a password so that every later message is scrubbed of it. */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return
  secrets.add(value)
  // the forms it may take when echoed: percent-encoded (URLs) and JSON-escaped
  secrets.add(encodeURIComponent(value))
  secrets.add(JSON.stringify(value).slice(1, -1))
}

/**
 * `scheme://userinfo@`, whatever the scheme (an operator may paste an http:// or a
 * typo'd URL; its password is still a password): the user info runs to the last `@` of the
 * word, since a password may hold `/`, `:` or `@`; quotes end a word because messages quote
 * what the user typed.
 */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*):\/\/([^\s'"]*)@/gi

/** Registers the password of every URL in `text` (any scheme), so it is masked in any later form. */
export function registerUrlSecrets(text: string): void {
  for (const [, , userinfo] of text.matchAll(URL_CREDENTIALS)) {
    const colon = userinfo.indexOf(':')
    if (colon < 0) continue
    const password = userinfo.slice(colon + 1)
    registerSecret(password)
    try {
      registerSecret(decodeURIComponent(password))
    } catch {
      // not percent-encoded: registered as it is
    }
  }
}

/** A URL of any scheme with a password in its user info. */
export function hasUrlPassword(text: string): boolean {
  return [...text.matchAll(URL_CREDENTIALS)].some(([, , userinfo]) => userinfo.includes(':'))
}

export function redactUrls(text: string): string {
  return text.replace(URL_CREDENTIALS, (_match, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':')
    return colon >= 0 ? `${scheme}://${userinfo.slice(0, colon)}:***@` : `${scheme}://***@`
  })
}

/** Masks URL credentials and every registered password in text that is about to be shown. */
export function redactSecrets(text: string): string {
  let result = redactUrls(text)
  // longest first, so a password containing another registered one is masked whole
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) result = result.split(secret).join('***')
  return result
}
