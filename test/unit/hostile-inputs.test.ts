/**
 * The pure parts of hostile-input handling: URL credentials masked whatever the scheme,
 * control characters escaped, durations and weights bounded, repeated sources counted once,
 * lock markers judged by behaviour, redis.conf strings quoted.
 */
import {expect} from 'chai'

import {toEnvelope} from '../../src/lib/cli/base-command.js'
import {MAX_DURATION_MS, durationFlag, parseDuration} from '../../src/lib/cli/duration.js'
import {escapeControl, escapeTerminal} from '../../src/lib/core/escape.js'
import {parseAddress} from '../../src/lib/cluster/address.js'
import {refuseStreamingCommand} from '../../src/lib/cluster/command-info.js'
import {LIVE_IDLE_SECONDS, notLiveBecause, otherRunsIn} from '../../src/lib/cluster/run-lock.js'
import {type ClusterNode, parseClusterNodes} from '../../src/lib/cluster/topology.js'
import {SlotctlError} from '../../src/lib/core/errors.js'
import {configString} from '../../src/lib/local/servers.js'
import {planReshard} from '../../src/lib/plan/reshard.js'
import {MAX_WEIGHT, parseWeights} from '../../src/lib/plan/weights.js'
import {hasUrlPassword, redactSecrets, redactUrls, registerUrlSecrets} from '../../src/lib/secrets.js'

function thrown(fn: () => unknown): SlotctlError {
  try {
    fn()
  } catch (error) {
    return error as SlotctlError
  }
  throw new Error('nothing was thrown')
}

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)
const NODES: ClusterNode[] = parseClusterNodes([
  `${A} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460`,
  `${B} 10.0.0.2:7000@17000 master - 0 0 2 connected 5461-10922`,
  `${C} 10.0.0.3:7000@17000 master - 0 0 3 connected 10923-16383`,
].join('\n'))

describe('hostile inputs (pure parts)', () => {
  describe('URL credentials, whatever the scheme', () => {
    it('masks the user info of any scheme://, and leaves words that are not URLs alone', () => {
      expect(redactUrls("invalid address 'http://u:PASSWORD@127.0.0.1:3010'")).to.equal("invalid address 'http://u:***@127.0.0.1:3010'")
      expect(redactUrls('HTTPS://u:p@ss@h:1 ftp://tok@h svn+ssh://me:pw@h/x')).to.equal('HTTPS://u:***@h:1 ftp://***@h svn+ssh://me:***@h/x')
      expect(redactUrls('user@example.com and a:b@c')).to.equal('user@example.com and a:b@c')
      expect(hasUrlPassword('http://u:pw@h')).to.equal(true)
      expect(hasUrlPassword('http://token@h')).to.equal(false)
    })

    it('registers a URL password so that its later forms are masked too', () => {
      registerUrlSecrets('gopher://u:Un1que%2Fpw@h:70')
      expect(redactSecrets('a server said Un1que/pw and Un1que%2Fpw')).to.equal('a server said *** and ***')
    })

    it('names an address of another scheme without its password', () => {
      const error = thrown(() => parseAddress('http://u:PASSWORD@127.0.0.1:3010'))
      expect(error.exitCode).to.equal(2)
      expect(redactSecrets(error.message)).to.equal("invalid address 'http://u:***@127.0.0.1:3010': http:// is not a node address")
      expect(error.message).to.not.include('PASSWORD')
    })
  })

  describe('control characters', () => {
    it('escapes C0, DEL, C1 and bidi overrides, keeps printable text (and non-ASCII letters)', () => {
      expect(escapeControl('evil\nFORGED \u001B[2J\u0007\r\t\u007F\u009B\u202Eé')).to.equal('evil\\nFORGED \\x1b[2J\\x07\\r\\t\\x7f\\x9b\\u202eé')
      expect(escapeControl('plain:key{tag}')).to.equal('plain:key{tag}')
    })

    it('for terminal lines keeps newlines, and colour sequences only when slotctl colours', () => {
      const line = '\u001B[31mred\u001B[39m\nnext \u001B]0;title\u0007 \u001B[2J'
      expect(escapeTerminal(line, true)).to.equal('\u001B[31mred\u001B[39m\nnext \\x1b]0;title\\x07 \\x1b[2J')
      expect(escapeTerminal(line, false)).to.equal('\\x1b[31mred\\x1b[39m\nnext \\x1b]0;title\\x07 \\x1b[2J')
    })

    it('an error message is one line with its control characters escaped', () => {
      const envelope = toEnvelope(new SlotctlError('key a\nb\u001B[2J refused', {suggestions: ['x\u0007']}))
      expect(envelope.message).to.equal('key a b\\x1b[2J refused')
      expect(envelope.suggestions).to.deep.equal(['x\\x07'])
    })
  })

  describe('durations', () => {
    const parse = async (input: string) => {
      const flag = durationFlag({description: 'd', plainUnit: 'ms'}) as unknown as {parse: (input: string, context: unknown, flag: {name: string}) => Promise<number>}
      return flag.parse(input, {}, {name: 'connect-timeout'})
    }

    it('accepts up to a day, and refuses more in one line, however it is written', async () => {
      expect(MAX_DURATION_MS).to.be.below(2 ** 31 - 1)
      expect(await parse('24h')).to.equal(MAX_DURATION_MS)
      expect(await parse('1h30m')).to.equal(5_400_000)
      for (const input of ['99999999999h', '24h1ms', '86400001', '9'.repeat(400)]) {
        const error = await parse(input).then(() => undefined, (error_: SlotctlError) => error_)
        expect(error?.message, input).to.equal(`--connect-timeout ${input} is too long: at most 24h`)
        expect(error?.exitCode).to.equal(2)
      }
      expect(parseDuration('9'.repeat(400), 'ms')).to.equal(Number.POSITIVE_INFINITY)
    })
  })

  describe('weights and source lists', () => {
    it('a weight written as 1e308 is out of range, 1e3 is a weight, "abc" is not a number', () => {
      expect(thrown(() => parseWeights([`${A.slice(0, 8)}=1e308`], NODES)).message).to.equal(`--weight '${A.slice(0, 8)}=1e308': 1e308 is out of range (0 to ${MAX_WEIGHT}; weights are relative, e.g. 1 and 2)`)
      expect(thrown(() => parseWeights([`${A.slice(0, 8)}=1000001`], NODES)).message).to.match(/is out of range/)
      expect(parseWeights([`${A.slice(0, 8)}=1e3`], NODES).get(A)).to.equal(1000)
      expect(thrown(() => parseWeights([`${A.slice(0, 8)}=abc`], NODES)).message).to.match(/'abc' is not a number/)
      expect(thrown(() => parseWeights([`${A.slice(0, 8)}=-1e3`], NODES)).message).to.match(/cannot be negative/)
    })

    it('a source listed twice is planned once: N slots are N distinct moves', () => {
      const plan = planReshard(NODES, {from: [A, A], slots: 4, to: B})
      expect(plan.moves.map((move) => move.slot)).to.deep.equal([0, 1, 2, 3])
      const two = planReshard(NODES, {from: [A, C, A], slots: 4, to: B})
      expect(new Set(two.moves.map((move) => move.slot)).size).to.equal(4)
    })
  })

  describe('commands call refuses', () => {
    it('subscribe-, monitor- and sync-like commands, by the words typed, whatever their case', () => {
      for (const command of [['SUBSCRIBE', 'c'], ['psubscribe', 'c*'], ['SSubscribe', 'c'], ['UNSUBSCRIBE'], ['MONITOR'], ['sync'], ['PSYNC', '?', '-1'], ['CLIENT', 'reply', 'OFF']]) {
        expect(() => refuseStreamingCommand(command), command.join(' ')).to.throw(/streams or silences replies/)
      }
      for (const command of [['PUBLISH', 'c', 'x'], ['CLIENT', 'LIST'], ['GET', 'subscribe']]) expect(() => refuseStreamingCommand(command)).to.not.throw()
    })
  })

  describe('lock markers judged by what they do', () => {
    const marker = 'slotctl:reshard:host-a:123:20260101T000000Z:n0nce1'
    const line = (idle: number, cmd: string) => `id=42 addr=10.0.0.9:5555 fd=9 name=${marker} age=100 idle=${idle} flags=N db=0 cmd=${cmd}`
    const elsewhere = {host: 'this-host', isRunning: () => true}
    const runOf = (idle: number, cmd: string) => otherRunsIn(line(idle, cmd), 'own', '10.0.0.1:7000')[0]

    it('a renewing lock connection is live; an idle one, or one that sends anything else, is not', () => {
      expect(notLiveBecause(runOf(0, 'client|setname'), elsewhere)).to.equal(undefined)
      expect(notLiveBecause(runOf(0, 'client'), elsewhere)).to.equal(undefined)
      expect(notLiveBecause(runOf(LIVE_IDLE_SECONDS, 'client|setname'), elsewhere)).to.match(/idle for 10 s/)
      expect(notLiveBecause(runOf(0, 'ping'), elsewhere)).to.equal("last sent 'ping'; a slotctl lock connection only ever renews its name")
    })

    it('a marker naming this machine and a pid that is not running is stale', () => {
      expect(notLiveBecause(runOf(0, 'client|setname'), {host: 'host-a', isRunning: () => false})).to.equal('names pid 123 on this machine, which is not running')
      expect(notLiveBecause(runOf(0, 'client|setname'), {host: 'host-a', isRunning: () => true})).to.equal(undefined)
    })
  })

  it('a password in redis.conf syntax: quoted, with quotes, backslashes and control bytes escaped', () => {
    expect(configString('pa"ss\\w\nord é')).to.equal('"pa\\"ss\\\\w\\x0aord \\xc3\\xa9"')
  })
})
