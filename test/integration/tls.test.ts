/**
 * TLS against a real TLS server (redis-server built with TLS: --tls-port, client
 * certificates required), with a CA, a server and a client certificate made by openssl here.
 * Flags that can only mean TLS turn it on; every failure is one sentence naming its fix.
 */
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {expect} from 'chai'
import {execa} from 'execa'

import type {CheckResult} from '../../src/commands/check.js'
import {delay} from '../../src/lib/cluster/connection.js'
import {type RunningServer, findFreePorts, startServer, stopServer} from '../../src/lib/local/servers.js'
import {testServerBinary} from '../helpers/cluster-harness.js'
import {type CliResult, expectOneCleanLine, runCli, runCliJson} from '../helpers/cli.js'

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await execa('openssl', args, {cwd: dir})
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
async function makeCertificates(dir: string): Promise<void> {
  await openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=slotctl test CA')
  await writeFile(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  for (const [name, extra] of [['server', ['-extfile', 'server.ext']], ['client', []]] as const) {
    await openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    await openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', ...extra)
  }
}

/** No raw OpenSSL or socket error reaches the operator. */
function expectSentence(result: CliResult, exitCode: number, pattern: RegExp): void {
  expectOneCleanLine(result, exitCode, pattern)
  expect(result.stderr).to.not.match(/SSL routines|error:[0-9A-F]{8}|ECONNRESET|EPROTO/)
}

describe('TLS against a real TLS server', function () {
  this.timeout(120_000)
  let dir: string
  let server: RunningServer
  let tlsAddress: string
  const file = (name: string) => path.join(dir, name)
  const clientCert = () => ['--cacert', file('ca.crt'), '--cert', file('client.crt'), '--key', file('client.key')]

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'slotctl-tls-'))
    await makeCertificates(dir)
    await writeFile(file('not-a-pem.txt'), 'this is not a certificate\n')
    const [port, tlsPort] = await findFreePorts(2)
    tlsAddress = `127.0.0.1:${tlsPort}`
    server = await startServer({
      binary: testServerBinary,
      dir: path.join(dir, 'server'),
      extraArgs: ['--tls-port', String(tlsPort), '--tls-cert-file', file('server.crt'), '--tls-key-file', file('server.key'), '--tls-ca-cert-file', file('ca.crt'), '--tls-auth-clients', 'yes'],
      port,
    })
    // a one-node cluster owning every slot, set up over the plain port
    const {Redis} = await import('ioredis')
    const plain = new Redis({host: '127.0.0.1', port})
    await plain.call('CLUSTER', 'ADDSLOTSRANGE', 0, 16_383)
    while (!String(await plain.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) await delay(50)
    plain.disconnect()
  })

  after(async () => {
    if (server) await stopServer(server)
    await rm(dir, {force: true, recursive: true})
  })

  it('--cacert/--cert/--key without --tls connect with TLS (they imply it)', async () => {
    const result = await runCliJson<CheckResult>(['check', tlsAddress, ...clientCert()])
    expect(result.exitCode, JSON.stringify(result.json.errors)).to.equal(0)
    expect(result.json.nodes[0].slotCount).to.equal(16_384)
  })

  it('a plain connection to the TLS port says it looks like a TLS port and suggests --tls', async () => {
    const result = await runCli(['check', tlsAddress])
    expectSentence(result, 1, new RegExp(`${tlsAddress} looks like a TLS port`))
    expect(result.stderr).to.match(/hint: add --tls/)
  })

  it('TLS to the plain port says it does not speak TLS', async () => {
    expectSentence(await runCli(['check', server.address, ...clientCert(), '--connect-timeout', '1000']), 1, new RegExp(`${server.address} does not speak TLS`))
  })

  it('no client certificate where the server requires one: a sentence, not 0A00045C:SSL routines', async () => {
    const result = await runCli(['check', tlsAddress, '--cacert', file('ca.crt')])
    expectSentence(result, 1, new RegExp(`${tlsAddress} requires a client certificate`))
    expect(result.stderr).to.match(/hint: pass one with --cert FILE --key FILE/)
  })

  it('a server certificate nobody vouches for: says to pass its CA with --cacert', async () => {
    const result = await runCli(['check', tlsAddress, '--cert', file('client.crt'), '--key', file('client.key')])
    expectSentence(result, 1, new RegExp(`cannot verify the certificate of ${tlsAddress}`))
    expect(result.stderr).to.match(/hint: pass the CA that signed it with --cacert/)
  })

  it('a key that does not match the certificate, a file that is not PEM, a missing half: exit 2 before connecting', async () => {
    expectSentence(await runCli(['check', tlsAddress, '--cacert', file('ca.crt'), '--cert', file('client.crt'), '--key', file('server.key')]), 2, /the private key '.*server\.key' does not match the certificate '.*client\.crt'/)
    expectSentence(await runCli(['check', tlsAddress, '--cacert', file('not-a-pem.txt')]), 2, /the --cacert file '.*not-a-pem\.txt' is not a PEM file/)
    expectSentence(await runCli(['check', tlsAddress, '--cert', file('not-a-pem.txt'), '--key', file('client.key')]), 2, /the --cert file '.*' is not a PEM file/)
    expectSentence(await runCli(['check', tlsAddress, '--cert', file('client.crt')]), 2, /--cert needs --key/)
  })

  it('a host name the certificate does not list: says to use --sni or a listed name', async () => {
    const result = await runCli(['check', tlsAddress, ...clientCert(), '--sni', 'elsewhere.example'])
    expectSentence(result, 1, new RegExp(`the certificate of ${tlsAddress} is not issued for the name slotctl connected to`))
  })
})
