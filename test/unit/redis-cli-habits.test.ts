import {expect} from 'chai'

import {redisCliHabit} from '../../src/lib/cli/redis-cli-habits.js'

const ids = ['call', 'check', 'create', 'fix', 'reshard', 'sandbox:start']
const habit = (line: string) => redisCliHabit(line.split(' '), ids)

describe('redis-cli habits on the command line', () => {
  it('-h HOST -p PORT: refused, with the HOST:PORT form in its place', () => {
    const refused = habit('check -h 10.0.0.1 -p 7001 --json')
    expect(refused).to.include({code: 'E_USAGE', exitCode: 2})
    expect(refused?.suggestions).to.deep.equal(['run: slotctl check 10.0.0.1:7001 --json'])
    expect(habit('check -p 7001')?.suggestions).to.deep.equal(['run: slotctl check 127.0.0.1:7001'])
    expect(habit('call -h 10.0.0.1 -p 7 INFO')?.suggestions).to.deep.equal(['run: slotctl call 10.0.0.1:7 INFO'])
  })

  it('-h is help alone after the verb (or with no verb), and nowhere else', () => {
    for (const line of ['check -h', '-h', 'sandbox -h', 'sandbox start -h', 'help check -h', 'check 10.0.0.1:7000 -- -h']) expect(habit(line), line).to.equal(undefined)
    expect(habit('check 10.0.0.1:7000 --json -h')?.message).to.match(/-h is help only alone after the verb/)
    // a command word of `call` is not slotctl's
    expect(habit('call 10.0.0.1:7000 CONFIG SET x -h')).to.equal(undefined)
  })

  it('--cluster-* flags name their slotctl flag; --pass never shows the password', () => {
    expect(habit('create a:1 b:2 c:3 --cluster-replicas 1 --cluster-yes')).to.deep.include({
      message: 'redis-cli flags: --cluster-replicas is --replicas, --cluster-yes is --yes in slotctl',
      suggestions: ['run: slotctl create a:1 b:2 c:3 --replicas 1 --yes'],
    })
    expect(habit('reshard a:1 --cluster-from=x --cluster-to y')?.suggestions).to.deep.equal(['run: slotctl reshard a:1 --from=x --to y'])
    const pass = habit('check a:1 --pass s3cret')
    expect(JSON.stringify(pass)).to.not.include('s3cret')
    expect(pass?.suggestions).to.deep.equal(['run: REDISCLI_AUTH=<password> slotctl check a:1'])
    expect(JSON.stringify(habit('check -u redis://u:s3cret@h:1'))).to.not.include('s3cret')
    expect(habit('--cluster check a:1')?.message).to.match(/--cluster is redis-cli's/)
  })

  it('--cluster of a verb that has such a flag itself (history --cluster) is the verb\'s', () => {
    const owns = (id: string, flag: string) => id === 'history' && flag === 'cluster'
    expect(redisCliHabit(['history', '--cluster', 'a:1'], [...ids, 'history'], 'slotctl', owns)).to.equal(undefined)
    expect(redisCliHabit(['check', '--cluster', 'a:1'], [...ids, 'history'], 'slotctl', owns)?.message).to.match(/--cluster is redis-cli's/)
  })

  it('ordinary command lines pass through', () => {
    for (const line of ['check a:1 --json', 'create a:1 b:2 c:3 --replicas 1 --yes', 'fix a:1 -y', 'check a:1 -a pw']) expect(habit(line), line).to.equal(undefined)
  })
})
