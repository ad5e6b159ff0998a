/**
 * redis-cli's way of naming a node (-h HOST -p PORT, -u URL) and its --cluster-* flags,
 * typed out of habit. oclif would read `check -h 127.0.0.1` as a request for help and exit 0,
 * so a CI gate written that way would pass without checking anything: such a command line is
 * refused before oclif sees it, with the slotctl form of what was meant.
 */
import type {ErrorEnvelope} from '../core/result.js'
import {ExitCode} from '../core/errors.js'
import {redactUrl} from '../cluster/address.js'

/** redis-cli flags with no same-named slotctl flag, and what slotctl takes instead. */
export const REDIS_CLI_FLAG_MAP: Readonly<Record<string, string>> = {
  '--cluster-copy': '--copy',
  '--cluster-fix-with-unreachable-masters': '--force',
  '--cluster-from': '--from',
  '--cluster-from-askpass': '--askpass',
  '--cluster-from-pass': '--from-password',
  '--cluster-from-user': '--from-user',
  '--cluster-master-id': '--master-id',
  '--cluster-only-masters': '--masters',
  '--cluster-only-replicas': '--replicas',
  '--cluster-pipeline': '--pipeline',
  '--cluster-replace': '--replace',
  '--cluster-replica': '--replica',
  '--cluster-replicas': '--replicas',
  '--cluster-search-multiple-owners': '--search-multiple-owners',
  '--cluster-simulate': '--dry-run',
  '--cluster-slave': '--replica',
  '--cluster-slots': '--slots',
  '--cluster-threshold': '--threshold',
  '--cluster-timeout': '--timeout',
  '--cluster-to': '--to',
  '--cluster-use-empty-masters': '--use-empty-masters',
  '--cluster-weight': '--weight',
  '--cluster-yes': '--yes',
  '--pass': '--password (or REDISCLI_AUTH)',
}

/** Flags whose value is a password: never echoed in a suggestion (REDISCLI_AUTH carries it). */
const PASSWORD_FLAGS = new Set(['-a', '--pass', '--password'])

/** redis-cli's flags that name the node; slotctl takes the node as an argument. */
const NODE_FLAGS = new Set(['-h', '-p', '-u'])

interface NodeWords {
  host?: string
  port?: string
  url?: string
}

/** The command id the words start with (the longest match, for topics: `sandbox start`). */
function verbOf(words: readonly string[], commandIds: readonly string[]): {id: string; length: number} | undefined {
  for (let length = Math.min(2, words.length); length > 0; length--) {
    const id = words.slice(0, length).join(':')
    if (!commandIds.includes(id)) continue
    // flags come after the verb; a word starting with '-' is no part of it
    if (words.slice(0, length).some((word) => word.startsWith('-'))) return undefined
    return {id, length}
  }
  return undefined
}

/** The flag's own name, without an inline `=value`. */
function flagName(word: string): string {
  const equals = word.indexOf('=')
  return word.startsWith('--') && equals > 0 ? word.slice(0, equals) : word
}

function quoteWord(word: string): string {
  return /^[\w@%+=:,./[\]-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`
}

/** The command line as slotctl takes it: the node as HOST:PORT (or its URL) in -h/-p/-u's place. */
function slotctlForm(bin: string, verbWords: readonly string[], rest: readonly string[], node: NodeWords): string {
  const named = node.url !== undefined || node.host !== undefined || node.port !== undefined
  const address = node.url === undefined ? `${node.host ?? '127.0.0.1'}:${node.port ?? '6379'}` : redactUrl(node.url)
  const words: string[] = []
  let password = false
  let placed = !named
  for (let index = 0; index < rest.length; index++) {
    const word = rest[index]
    if (NODE_FLAGS.has(word)) {
      if (!placed) words.push(address)
      placed = true
      if (rest[index + 1] !== undefined && !rest[index + 1].startsWith('-')) index++ // its value
      continue
    }
    if (PASSWORD_FLAGS.has(flagName(word))) {
      password = true
      if (!word.includes('=')) index++ // its value
      continue
    }
    const mapped = REDIS_CLI_FLAG_MAP[flagName(word)]
    words.push(mapped && !mapped.includes(' ') ? mapped + word.slice(flagName(word).length) : word)
  }
  return [...(password ? ['REDISCLI_AUTH=<password>'] : []), bin, ...verbWords, ...words.map((word) => quoteWord(word))].join(' ')
}

function usage(message: string, suggestions: string[]): ErrorEnvelope {
  return {code: 'E_USAGE', exitCode: ExitCode.usage, message, suggestions}
}

/**
 * Why this command line is refused as a redis-cli habit, or undefined to let oclif run it.
 * `-h` stays help when it is the only word after the verb (`slotctl check -h`). `ownsFlag`
 * says whether a verb defines a flag of that name itself (history --cluster): then it is the
 * verb's, not redis-cli's.
 */
export function redisCliHabit(argv: readonly string[], commandIds: readonly string[], bin = 'slotctl', ownsFlag: (verbId: string, flag: string) => boolean = () => false): ErrorEnvelope | undefined {
  const end = argv.indexOf('--')
  const words = end === -1 ? argv : argv.slice(0, end)
  const verb = verbOf(words, commandIds)
  const rest = verb ? words.slice(verb.length) : words
  const verbWords = verb ? words.slice(0, verb.length) : []
  const node: NodeWords = {}
  const nodeFlags: string[] = []
  const mapped: string[] = []
  for (let index = 0; index < rest.length; index++) {
    const word = rest[index]
    // `call`'s command words may be anything after its address: -h there is not slotctl's
    if (verb?.id === 'call' && !word.startsWith('-') && !NODE_FLAGS.has(rest[index - 1] ?? '')) break
    const name = flagName(word)
    if (NODE_FLAGS.has(word) && rest[index + 1] !== undefined && !rest[index + 1].startsWith('-')) {
      nodeFlags.push(word)
      const value = rest[index + 1]
      if (word === '-h') node.host = value
      else if (word === '-p') node.port = value
      else node.url = value
      index++
    } else if (NODE_FLAGS.has(word) && (word !== '-h' || rest.length > 1)) {
      // -h is help only alone after the verb: `check ADDR --json -h` must not pass a CI gate
      nodeFlags.push(word)
    } else if (REDIS_CLI_FLAG_MAP[name]) {
      mapped.push(name)
    } else if (word === '--cluster' && !(verb && ownsFlag(verb.id, 'cluster'))) {
      return usage(`--cluster is redis-cli's: slotctl's verbs are commands of their own`, [`e.g. redis-cli --cluster check HOST:PORT is ${bin} check HOST:PORT; ${bin} --help lists them`])
    }
  }
  if (nodeFlags.length === 0 && mapped.length === 0) return undefined
  if (!verb && nodeFlags.length > 0) {
    // `-h` alone (or `slotctl -h help`) is help as ever
    if (rest.every((word) => word === '-h' || !word.startsWith('-')) && node.host === undefined) return undefined
    return usage(`${[...new Set(nodeFlags)].join(' ')}: redis-cli's way of naming a node; slotctl takes HOST:PORT after its verb`, [`e.g. ${bin} check 127.0.0.1:7000; ${bin} --help lists the verbs`])
  }
  const suggestions = [`run: ${slotctlForm(bin, verbWords, rest, node)}`]
  if (nodeFlags.length > 0 && node.host === undefined && node.port === undefined && node.url === undefined) {
    return usage(`-h is help only alone after the verb (here it is one of ${rest.length} arguments)`, [`for help: ${bin} ${verbWords.join(' ')} --help`, `without -h: ${slotctlForm(bin, verbWords, rest, node)}`])
  }
  if (nodeFlags.length > 0) {
    return usage(`${[...new Set(nodeFlags)].join(' ')}: redis-cli's way of naming a node, not slotctl's; give the node as HOST:PORT (or a redis:// URL) after the verb`, suggestions)
  }
  const pairs = [...new Set(mapped)].map((name) => `${name} is ${REDIS_CLI_FLAG_MAP[name]}`)
  return usage(`redis-cli flag${mapped.length === 1 ? '' : 's'}: ${pairs.join(', ')} in slotctl`, suggestions)
}
