import {usageError} from '../errors.js'

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

function parseUrl(input: string): NodeAddress {
  let url: URL
  try {
    url = new URL(input)
  } catch {
    throw usageError(`invalid address '${redactUrl(input)}': not a valid URL`)
  }
  if (!url.hostname) throw usageError(`invalid address '${redactUrl(input)}': no host`)
  const address: NodeAddress = {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? parsePort(url.port, redactUrl(input)) : 6379,
    tls: url.protocol === 'rediss:',
  }
  if (url.username) address.username = decodeURIComponent(url.username)
  if (url.password) address.password = decodeURIComponent(url.password)
  return address
}

/** Strips a password from a URL so it can be echoed in an error. */
export function redactUrl(input: string): string {
  return input.replace(/^(rediss?:\/\/[^:@/]*):[^@/]*@/, '$1:***@')
}

/**
 * Parses the node address forms operators type: `host:port`, `host port` (two arguments),
 * `[v6]:port`, and `redis://` / `rediss://` URLs with optional user and password.
 */
export function parseAddress(input: string, separatePort?: string): NodeAddress {
  const text = input.trim()
  if (!text) throw usageError('missing node address', ['use HOST:PORT, e.g. 127.0.0.1:7000'])
  if (/^rediss?:\/\//i.test(text)) return parseUrl(text)
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
