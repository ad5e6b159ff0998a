import {usageError} from '../core/errors.js'
import {redactUrls, registerSecret} from '../secrets.js'

export interface NodeAddress {
  host: string
  port: number
  /** Credentials and TLS taken from a redis:// or rediss:// URL; they override the global flags. */
  username?: string
  password?: string
  tls?: boolean
}

const PORT_RE = /^\d{1,5}$/

function parsePort(text: string, original: string): number {
  if (!PORT_RE.test(text)) throw usageError(`invalid address '${original}': port '${text}' is not a number`, ['use HOST:PORT, e.g. 127.0.0.1:7000'])
  const port = Number(text)
  if (port < 1 || port > 65_535) throw usageError(`invalid address '${original}': port ${port} is out of range (1-65535)`)
  return port
}

/** Percent-decoding of URL credentials; a `%` that starts no valid escape is taken literally. */
function decodeCredential(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/**
 * Parsed by hand rather than with URL: a password may hold `/`, `:`, `@` or stray `%` (the
 * user info runs to the last `@`), and an invalid port must be named, not reported as
 * "not a valid URL".
 */
function parseUrl(input: string): NodeAddress {
  const scheme = /^(rediss?):\/\//i.exec(input) as RegExpExecArray
  const rest = input.slice(scheme[0].length)
  const at = rest.lastIndexOf('@')
  const userinfo = at >= 0 ? rest.slice(0, at) : ''
  const colon = userinfo.indexOf(':')
  const username = decodeCredential(colon >= 0 ? userinfo.slice(0, colon) : userinfo)
  const password = colon >= 0 ? decodeCredential(userinfo.slice(colon + 1)) : ''
  registerSecret(password)
  const shown = redactUrl(input)
  // a path (a database number) or query after the address means nothing to a cluster
  const hostPort = rest.slice(at + 1).split(/[/?#]/)[0]
  if (!hostPort) throw usageError(`invalid address '${shown}': no host`)
  const {host, port} = /^\[[^\]]*\]$|^[^:]*$/.test(hostPort) ? {host: hostPort, port: undefined} : splitHostPort(hostPort, shown)
  if (!host || host === '[]') throw usageError(`invalid address '${shown}': no host`)
  const address: NodeAddress = {
    host: host.replace(/^\[(.*)\]$/, '$1'),
    port: port === undefined ? 6379 : parsePort(port, shown),
    tls: scheme[1].toLowerCase() === 'rediss',
  }
  if (username) address.username = username
  if (password) address.password = password
  return address
}

function splitHostPort(text: string, shown: string): {host: string; port: string} {
  const bracketed = /^(\[[^\]]+\]):(.*)$/.exec(text)
  if (bracketed) return {host: bracketed[1], port: bracketed[2]}
  if (text.split(':').length > 2) throw usageError(`invalid address '${shown}': write IPv6 addresses in brackets`, ['e.g. redis://[::1]:7000'])
  const [host, port] = text.split(':')
  return {host, port}
}

/** Strips the credentials from a URL so it can be echoed in an error. */
export function redactUrl(input: string): string {
  return redactUrls(input)
}

/**
 * Parses the node address forms operators type: `host:port`, `host port` (two arguments),
 * `[v6]:port`, and `redis://` / `rediss://` URLs with optional user and password.
 */
export function parseAddress(input: string, separatePort?: string): NodeAddress {
  const text = input.trim()
  if (!text) throw usageError('missing node address', ['use HOST:PORT, e.g. 127.0.0.1:7000'])
  if (/^rediss?:\/\//i.test(text)) return parseUrl(text)
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)
  if (scheme) throw usageError(`invalid address '${redactUrl(text)}': ${scheme[1]}:// is not a node address`, ['use HOST:PORT, redis://HOST:PORT or rediss://HOST:PORT'])
  if (separatePort !== undefined) return {host: text.replace(/^\[(.*)\]$/, '$1'), port: parsePort(separatePort, `${text} ${separatePort}`)}
  const bracketed = /^\[([^\]]+)\]:(.*)$/.exec(text)
  if (bracketed) return {host: bracketed[1], port: parsePort(bracketed[2], text)}
  const colons = text.split(':').length - 1
  if (colons === 0) throw usageError(`invalid address '${text}': missing port`, ['use HOST:PORT, e.g. 127.0.0.1:7000'])
  if (colons > 1) throw usageError(`invalid address '${text}': write IPv6 addresses in brackets`, ['e.g. [::1]:7000'])
  const [host, port] = text.split(':')
  if (!host) throw usageError(`invalid address '${text}': missing host`)
  return {host, port: parsePort(port, text)}
}

/**
 * An address slotctl formatted itself or a node reported (`host:port`, `[v6]:port`, or a bare
 * v6 `::1:7000`): split at the last colon, brackets dropped, nothing checked. What an operator
 * typed goes through parseAddress instead.
 */
export function splitAddress(text: string): {host: string; port: number} {
  const colon = text.lastIndexOf(':')
  return {host: text.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(text.slice(colon + 1))}
}

export function formatAddress(address: {host: string; port: number}): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
}

/** A host without a port (`10.0.0.1`, `redis-1`, `[::1]`): the first half of the `host port` form. */
export function isBareHost(word: string): boolean {
  if (/^rediss?:\/\//i.test(word)) return false
  return /^\[[^\]]+\]$/.test(word) || (!word.includes(':') && !word.startsWith('['))
}

/**
 * Turns a command's positional address words into addresses, accepting the `host port`
 * form anywhere a `host:port` is accepted.
 */
export function parseAddressList(words: string[]): NodeAddress[] {
  const addresses: NodeAddress[] = []
  for (let i = 0; i < words.length; i++) {
    const word = words[i]
    const next = words[i + 1]
    if (isBareHost(word) && next !== undefined && PORT_RE.test(next)) {
      addresses.push(parseAddress(word, next))
      i++
    } else {
      addresses.push(parseAddress(word))
    }
  }
  return addresses
}
