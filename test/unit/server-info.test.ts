import {expect} from 'chai'

import {PROBED_COMMANDS, describeServer, detectServerFeatures, handsBackTakenSlots, versionAtLeast} from '../../src/lib/cluster/server-info.js'
import {parseServerVersion} from '../../src/lib/local/servers.js'

/** INFO server as the servers print it (trimmed to the lines that matter, CRLF as on the wire). */
const infoText = (lines: string[]) => ['# Server', ...lines, 'process_id:4242', 'tcp_port:7000', ''].join('\r\n')

const REDIS_7 = infoText(['redis_version:7.0.15', 'redis_mode:cluster'])
const REDIS_84 = infoText(['redis_version:8.4.0', 'redis_mode:cluster'])
const VALKEY_8 = infoText(['redis_version:7.2.4', 'server_name:valkey', 'valkey_version:8.0.1', 'server_mode:cluster', 'availability_zone:'])
const VALKEY_9 = infoText(['redis_version:7.2.4', 'server_name:valkey', 'valkey_version:9.1.2', 'server_mode:cluster', 'availability_zone:eu-west-1b'])

const all = new Set(PROBED_COMMANDS)

describe('server-info: what a node runs and offers', () => {
  it('tells Redis from Valkey and takes Valkey\'s own version, not its compatibility redis_version', () => {
    expect(detectServerFeatures(REDIS_7)).to.include({name: 'redis', version: '7.0.15'})
    expect(detectServerFeatures(VALKEY_8)).to.include({name: 'valkey', version: '8.0.1'})
    expect(describeServer(detectServerFeatures(VALKEY_9))).to.equal('valkey 9.1.2')
  })

  it('expects features by version when COMMAND INFO could not be asked', () => {
    expect(detectServerFeatures(REDIS_7)).to.deep.equal({atomicSlotMigration: null, name: 'redis', replicatedSetslot: false, slotStats: false, version: '7.0.15'})
    expect(detectServerFeatures(VALKEY_8)).to.deep.equal({atomicSlotMigration: null, name: 'valkey', replicatedSetslot: true, slotStats: true, version: '8.0.1'})
    expect(detectServerFeatures(VALKEY_9)).to.deep.include({atomicSlotMigration: 'valkey-migrateslots', replicatedSetslot: true, slotStats: true})
    expect(detectServerFeatures(REDIS_84)).to.deep.include({atomicSlotMigration: 'redis-migration', replicatedSetslot: false, slotStats: false})
  })

  it('trusts COMMAND INFO over the version for commands (renamed, disabled or missing)', () => {
    expect(detectServerFeatures(VALKEY_9, new Set())).to.deep.include({atomicSlotMigration: null, slotStats: false})
    expect(detectServerFeatures(VALKEY_8, new Set(['cluster|slot-stats'] as const))).to.deep.include({atomicSlotMigration: null, slotStats: true})
    // a Redis that lists Valkey's MIGRATESLOTS is still not driven the Valkey way, and vice versa
    expect(detectServerFeatures(REDIS_7, all).atomicSlotMigration).to.equal(null)
    expect(detectServerFeatures(VALKEY_9, new Set(['cluster|migration'] as const)).atomicSlotMigration).to.equal(null)
  })

  it('reads availability_zone only when one is set', () => {
    expect(detectServerFeatures(VALKEY_9).availabilityZone).to.equal('eu-west-1b')
    expect(detectServerFeatures(VALKEY_8)).to.not.have.property('availabilityZone')
    expect(detectServerFeatures(REDIS_7)).to.not.have.property('availabilityZone')
  })

  it('compares versions by major and minor', () => {
    expect(versionAtLeast('8.0.1', 8)).to.equal(true)
    expect(versionAtLeast('7.2.4', 8)).to.equal(false)
    expect(versionAtLeast('8.4.0', 8, 4)).to.equal(true)
    expect(versionAtLeast('8.3.9', 8, 4)).to.equal(false)
    expect(versionAtLeast('10.0.0', 9, 1)).to.equal(true)
  })

  it('parses the --version line of both servers, and nothing else', () => {
    expect(parseServerVersion('Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0\n')).to.deep.equal({name: 'redis-server', product: 'redis', version: '7.0.15'})
    expect(parseServerVersion('Valkey server v=9.1.2 sha=00000000:0 malloc=jemalloc-5.3.1 bits=64')).to.deep.equal({name: 'valkey-server', product: 'valkey', version: '9.1.2'})
    expect(parseServerVersion('bash, version 5.2.15(1)-release')).to.equal(undefined)
  })

  it('knows the Redis versions with the stale owner-not-claiming mark (redis#12564): 7.0.13-7.0.15 and 7.2.0-7.2.3', () => {
    const affected = (name: 'redis' | 'valkey', version: string) => handsBackTakenSlots({name, version})
    for (const version of ['7.0.13', '7.0.14', '7.0.15', '7.2.0', '7.2.3']) expect(affected('redis', version), version).to.equal(true)
    for (const version of ['6.2.14', '7.0.0', '7.0.12', '7.2.4', '7.2.10', '7.4.0', '8.0.6', '8.4.0']) expect(affected('redis', version), version).to.equal(false)
    // Valkey forked from 7.2.4, with the fix; its compatibility redis_version is 7.2.4 too
    for (const version of ['7.2.3', '8.0.1', '9.1.2']) expect(affected('valkey', version), `valkey ${version}`).to.equal(false)
    expect(handsBackTakenSlots(detectServerFeatures(REDIS_7, all))).to.equal(true)
    expect(handsBackTakenSlots(detectServerFeatures(REDIS_84, all))).to.equal(false)
  })
})
