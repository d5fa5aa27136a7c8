/**
 * The dial filter (issue 17, item 16): which addresses a worker dials. The rule on its own,
 * then real libp2p dials from a worker started in-process on loopback: a pin origin at a
 * metadata or link-local address, a private address the worker does not listen on, a denied
 * CIDR and a DNS name that resolves into one are refused by the gater with no socket opened;
 * a peer on the worker's own loopback range is dialled.
 */
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import type { Server } from 'node:net'
import type { networkInterfaces } from 'node:os'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { DialPolicy, ownRanges, rangeOf } from '../../src/p2p/dial-policy.ts'
import type { DialRefusal } from '../../src/p2p/dial-policy.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

describe('the dial rule', () => {
  it('names metadata, link-local, loopback, private, CGNAT and reserved ranges, IPv4-mapped ones too', () => {
    const cases: Array<[string, string]> = [
      ['169.254.169.254', 'metadata'], ['fd00:ec2::254', 'metadata'], ['100.100.100.200', 'metadata'], ['::ffff:169.254.169.254', 'metadata'],
      ['169.254.1.1', 'link-local'], ['fe80::1', 'link-local'],
      ['127.0.0.1', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'],
      ['10.1.2.3', 'private'], ['172.31.0.1', 'private'], ['192.168.1.1', 'private'], ['fd12::1', 'private'],
      ['100.64.0.1', 'cgnat'],
      ['0.0.0.0', 'reserved'], ['224.0.0.1', 'reserved'], ['255.255.255.255', 'reserved'], ['::', 'reserved'], ['64:ff9b::a9fe:a9fe', 'reserved'],
      ['8.8.8.8', 'public'], ['2001:4860:4860::8888', 'public'], ['172.32.0.1', 'public']
    ]
    for (const [ip, range] of cases) assert.equal(rangeOf(ip), range, ip)
  })

  it('opens private and loopback ranges only to a worker that announces (or, announcing nothing, listens on) one', () => {
    const interfaces = (): ReturnType<typeof networkInterfaces> => ({
      lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '', internal: true, cidr: '127.0.0.1/8' }],
      eth0: [{ address: '10.4.0.7', netmask: '255.255.0.0', family: 'IPv4', mac: '', internal: false, cidr: '10.4.0.7/16' }]
    })
    assert.deepEqual([...ownRanges('0.0.0.0', [], interfaces)], ['private'], 'a wildcard bind counts the interfaces, loopback left out')
    assert.deepEqual([...ownRanges('127.0.0.1', [], interfaces)], ['loopback'])
    assert.deepEqual([...ownRanges('0.0.0.0', ['/dns4/beacon.example.com/tcp/4001', '/ip4/203.0.113.5/tcp/4001'], interfaces)], [], 'a public announcement opens nothing')
    assert.deepEqual([...ownRanges('0.0.0.0', ['/ip4/192.168.1.20/tcp/4001'], interfaces)], ['private'])
  })

  it('lets fleet workers and allowed CIDRs through, and a denied CIDR beats the worker\'s own range', async () => {
    const refused: DialRefusal[] = []
    const policy = new DialPolicy({
      allow: ['10.9.0.0/16', '169.254.7.7'],
      deny: ['127.0.0.2/32'],
      own: new Set(['loopback']),
      onRefused: (reason) => { refused.push(reason) },
      resolve: async (host) => host === 'db.internal' ? ['10.0.0.5'] : host === 'mixed.example' ? ['8.8.8.8', '169.254.169.254'] : []
    })
    policy.setFleetAddresses(['/ip4/10.0.0.9/tcp/4001/p2p/12D3KooWAAA'])
    const denied = async (text: string): Promise<boolean> => await policy.denyDialMultiaddr(multiaddr(text))
    assert.equal(await denied('/ip4/10.0.0.9/tcp/4001'), false, 'a fleet worker')
    assert.equal(await denied('/ip4/10.0.0.9/tcp/5432'), true, 'but not another port on its host')
    assert.equal(await denied('/ip4/10.9.1.1/tcp/4001'), false, 'an allowed CIDR')
    assert.equal(await denied('/ip4/169.254.7.7/tcp/4001'), false, 'an allowed link-local address')
    assert.equal(await denied('/ip4/127.0.0.1/tcp/4001'), false, 'the worker\'s own loopback range')
    assert.equal(await denied('/ip4/127.0.0.2/tcp/4001'), true, 'a denied CIDR inside it')
    assert.equal(await denied('/dns4/db.internal/tcp/5432'), true, 'a name that resolves into a private range')
    assert.equal(await denied('/dns4/mixed.example/tcp/80'), true, 'a name with one bad address among good ones')
    assert.equal(await denied('/dns4/nowhere.invalid/tcp/80'), true, 'a name that does not resolve')
    assert.equal(await denied('/unix/%2Fvar%2Frun%2Fpostgresql%2F.s.PGSQL.5432'), true, 'a Unix socket')
    assert.equal(await denied('/ip4/169.254.169.254/tcp/80/p2p/12D3KooWAAA/p2p-circuit/p2p/12D3KooWBBB'), true, 'a circuit through a metadata "relay"')
    assert.equal(await denied('/ip4/8.8.8.8/tcp/4001'), false)
    assert.deepEqual(refused, ['private', 'denied-cidr', 'private', 'metadata', 'unresolvable', 'not-ip', 'metadata'])
  })
})

describe('a worker dialling on loopback', () => {
  let worker: Worker
  let allowed: ClientPeer
  const servers: Server[] = []
  /** Connections each socket server accepted: a refused dial must open none. */
  const accepted = new Map<Server, number>()

  const listen = async (host: string): Promise<{ server: Server, port: number }> => {
    const server = createServer((socket) => {
      accepted.set(server, (accepted.get(server) ?? 0) + 1)
      socket.destroy()
    })
    servers.push(server)
    accepted.set(server, 0)
    await new Promise<void>((resolve) => server.listen(0, host, resolve))
    const address = server.address()
    return { server, port: typeof address === 'object' && address !== null ? address.port : assert.fail('no port') }
  }
  const someone = async (): Promise<string> => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const metricsText = async (): Promise<string> => (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
  /** The dial's error, which must be the gater's refusal (a timeout or a refused connection would mean a socket was tried). */
  const refusal = async (dial: Promise<unknown>): Promise<string> => {
    try {
      await dial
    } catch (err) {
      return (err as Error).name
    }
    return 'dialled'
  }

  before(async () => {
    // The worker listens on 127.0.0.1, so loopback is its own range; two loopback addresses
    // (its own among them: it never dials itself) are denied by config to show a deny list
    // wins, with socket servers on them that count what reaches them.
    worker = await startWorker(loadConfig(await inProcessEnv({
      PHAROS_ADMIN_TOKENS: 'dial-policy-token-0123456789',
      PHAROS_DIAL_DENY_CIDRS: '127.0.0.1/32,127.0.0.2/32'
    })), createLogger('silent'))
    allowed = await createClientPeer({ listen: ['/ip4/127.0.0.3/tcp/0'] })
  })

  after(async () => {
    await allowed?.stop()
    await worker?.stop()
    for (const server of servers) server.close()
  })

  it('refuses a pin origin at a metadata or link-local address in the gater', async () => {
    const signal = AbortSignal.timeout(3000)
    assert.equal(await refusal(worker.storage.dialOrigin(`/ip4/169.254.169.254/tcp/80/p2p/${await someone()}`, signal)), 'DialDeniedError')
    assert.equal(await refusal(worker.storage.dialOrigin(`/ip4/169.254.10.10/tcp/4001/p2p/${await someone()}`, signal)), 'DialDeniedError')
    const metrics = await metricsText()
    assert.match(metrics, /^pharos_dials_denied_total\{range="metadata"\} 1$/m)
    assert.match(metrics, /^pharos_dials_denied_total\{range="link-local"\} 1$/m)
  })

  it('refuses a private address it does not listen on', async () => {
    assert.equal(await refusal(worker.node.dial(multiaddr(`/ip4/10.255.0.1/tcp/4001/p2p/${await someone()}`), { signal: AbortSignal.timeout(3000) })), 'DialDeniedError')
    assert.match(await metricsText(), /^pharos_dials_denied_total\{range="private"\} 1$/m)
  })

  it('opens no socket to a denied CIDR, nor to a DNS name that resolves into one', async () => {
    const denied = await listen('127.0.0.2')
    assert.equal(await refusal(worker.node.dial(multiaddr(`/ip4/127.0.0.2/tcp/${denied.port}/p2p/${await someone()}`), { signal: AbortSignal.timeout(3000) })), 'DialDeniedError')
    const viaName = await listen('127.0.0.1')
    assert.equal(await refusal(worker.node.dial(multiaddr(`/dns4/localhost/tcp/${viaName.port}/p2p/${await someone()}`), { signal: AbortSignal.timeout(3000) })), 'DialDeniedError')
    assert.equal(accepted.get(denied.server), 0, 'no connection reached the denied address')
    assert.equal(accepted.get(viaName.server), 0, 'nor the address the name resolves to')
    assert.match(await metricsText(), /^pharos_dials_denied_total\{range="denied-cidr"\} 2$/m)
  })

  it('dials a peer on its own loopback range', async () => {
    const connection = await worker.node.dial(allowed.getMultiaddrs()[0] ?? assert.fail('no address'), { signal: AbortSignal.timeout(5000) })
    assert.equal(connection.remotePeer.toString(), allowed.peerId.toString())
  })
})
