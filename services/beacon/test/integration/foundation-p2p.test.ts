/**
 * The foundation's libp2p surface, against one worker started in-process on loopback with
 * real js-libp2p peers: TCP and WebSocket dials, relay reservations and circuits, the
 * ed25519-only rule, the WebSocket payload cap, and what /metrics and /v1 report.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { byteStream, echo } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { requestReservation, STATUS_OK, STATUS_PERMISSION_DENIED } from '../helpers/relay-hop.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const ADMIN_TOKEN = 'test-admin-token-0123456789'
const ECHO = '/pharos-test/echo/1.0.0'

describe('beacon worker on libp2p', () => {
  let worker: Worker
  const peers: ClientPeer[] = []
  let tcpAddr: string
  let wsAddr: string

  const peer = async (options?: Parameters<typeof createClientPeer>[0]): Promise<ClientPeer> => {
    const created = await createClientPeer(options)
    peers.push(created)
    return created
  }

  const metricsText = async (): Promise<string> => (await worker.app.inject({ method: 'GET', url: '/metrics' })).body

  before(async () => {
    const config = loadConfig(await inProcessEnv({ PHAROS_ADMIN_TOKENS: ADMIN_TOKEN, PHAROS_RELAY_MAX_RESERVATIONS_PER_PEER: '2' }))
    worker = await startWorker(config, createLogger('silent'))
    const addrs = worker.node.getMultiaddrs().map((addr) => addr.toString()).filter((addr) => addr.startsWith('/ip4/127.0.0.1/'))
    tcpAddr = addrs.find((addr) => !addr.includes('/ws/')) ?? assert.fail('no TCP address')
    wsAddr = addrs.find((addr) => addr.includes('/ws/')) ?? assert.fail('no WS address')
  })

  after(async () => {
    await Promise.all(peers.map(async (p) => { await p.stop() }))
    await worker.stop()
  })

  it('answers a ping from a peer dialling over TCP and one dialling over WebSockets', async () => {
    const tcpPeer = await peer()
    const wsPeer = await peer()
    const tcpRtt = await tcpPeer.services.ping.ping(multiaddr(tcpAddr))
    const wsRtt = await wsPeer.services.ping.ping(multiaddr(wsAddr))
    assert.ok(tcpRtt >= 0 && wsRtt >= 0)
    assert.equal(tcpPeer.getConnections()[0]?.remoteAddr.toString().includes('/ws'), false)
    assert.equal(wsPeer.getConnections()[0]?.remoteAddr.toString().includes('/ws'), true)

    const metrics = await metricsText()
    const gauge = (transport: string): number => Number(new RegExp(`^pharos_connections\\{transport="${transport}",direction="inbound"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 'NaN')
    assert.ok(gauge('tcp') >= 1, `tcp inbound gauge in:\n${metrics}`)
    assert.ok(gauge('ws') >= 1, 'ws inbound gauge')
    assert.match(metrics, /^libp2p_/m, 'libp2p\'s own metrics are served')
    assert.match(metrics, /^process_resident_memory_bytes /m, 'prom-client default metrics are served')
    assert.match(metrics, /^process_open_fds /m, 'file descriptors, the limit a worker full of connections meets first')
    assert.doesNotMatch(metrics, /^nodejs_active_(handles|resources)/m, 'no metric that lists every socket on each scrape')
  })

  it('connects two peers that cannot dial each other through a reservation on the worker', async () => {
    // Neither peer listens on any address it could be dialled on: only the relay joins them.
    const listener = await peer({ listen: ['/p2p-circuit'] })
    const dialer = await peer()
    await worker.accounts.add(listener.peerId.toString()) // only registered accounts get a reservation
    await listener.handle(ECHO, async (stream) => { await echo(stream) }, { runOnLimitedConnection: true })
    await listener.dial(multiaddr(tcpAddr))

    const deadline = Date.now() + 10_000
    while (!listener.getMultiaddrs().some((addr) => addr.toString().includes('/p2p-circuit'))) {
      if (Date.now() > deadline) assert.fail('listener got no relay reservation within 10 s')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    assert.equal(worker.node.services.relay.reservations.has(listener.peerId), true)

    const circuitAddr = multiaddr(`${tcpAddr}/p2p-circuit/p2p/${listener.peerId.toString()}`)
    const stream = await dialer.dialProtocol(circuitAddr, ECHO, { runOnLimitedConnection: true })
    const bytes = byteStream(stream)
    const message = new TextEncoder().encode('hello through the beacon')
    await bytes.write(message)
    const answer = await bytes.read({ bytes: message.length })
    assert.deepEqual(new Uint8Array(answer.subarray()), message)
    const relayed = dialer.getConnections(listener.peerId)[0]
    assert.ok(relayed?.remoteAddr.toString().includes('/p2p-circuit'), 'the connection is relayed')
  })

  it('refuses a reservation request over the per-peer limit, and any from an unregistered peer', async () => {
    const client = await peer()
    const stranger = await peer()
    await worker.accounts.add(client.peerId.toString())
    const reserveAs = async (asker: ClientPeer): Promise<number | undefined> => await requestReservation(asker, multiaddr(tcpAddr))
    const reserve = async (): Promise<number | undefined> => await reserveAs(client)
    assert.equal(await reserve(), STATUS_OK)
    assert.equal(await reserve(), STATUS_OK, 'a renewal within the limit is accepted')
    assert.equal(await reserve(), STATUS_PERMISSION_DENIED, 'the third request in one TTL is over PHAROS_RELAY_MAX_RESERVATIONS_PER_PEER=2')
    assert.match(await metricsText(), /^pharos_relay_reservation_requests_total\{outcome="per-peer"\} 1$/m)
    assert.match(await metricsText(), /^pharos_relay_reservation_requests_total\{outcome="renewed"\} 1$/m, 'the renewal took no second slot')
    assert.equal(await reserveAs(stranger), STATUS_PERMISSION_DENIED, 'a peer that is not a registered account gets no reservation')
    assert.match(await metricsText(), /^pharos_relay_reservation_requests_total\{outcome="not-registered"\} 1$/m)
  })

  it('refuses peers whose identity is not ed25519', async () => {
    const secp = await peer({ privateKey: await generateKeyPair('secp256k1') })
    // The dialler may finish its side of the upgrade before the worker's gater refuses it,
    // so what must hold is that no connection survives and no ping gets through.
    await assert.rejects(secp.services.ping.ping(multiaddr(tcpAddr)))
    assert.equal(worker.node.getConnections(secp.peerId).length, 0)
    assert.match(await metricsText(), /^pharos_connections_refused_total\{reason="not-ed25519"\} [1-9]/m)
  })

  it('closes a WebSocket that sends a message over the payload cap', async () => {
    const port = multiaddr(wsAddr).getComponents().find((component) => component.name === 'tcp')?.value
    const socket = new WebSocket(`ws://127.0.0.1:${port}`)
    const closed = new Promise<number>((resolve) => { socket.addEventListener('close', (event) => { resolve(event.code) }) })
    await new Promise((resolve, reject) => {
      socket.addEventListener('open', resolve)
      socket.addEventListener('error', reject)
    })
    socket.send(new Uint8Array(2 * 1024 * 1024))
    assert.equal(await closed, 1009, 'closed with "message too big"')
    const pong = await (await peer()).services.ping.ping(multiaddr(wsAddr))
    assert.ok(pong >= 0, 'the worker still serves WebSocket peers')
  })

  it('answers /v1 only with a valid bearer token', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: ADMIN_TOKEN }]) {
      for (const url of ['/v1/node', '/v1/peers']) {
        const response = await worker.app.inject({ method: 'GET', url, headers })
        assert.equal(response.statusCode, 401, `${url} with ${JSON.stringify(headers)}`)
        assert.equal(response.json().error.reason, 'UNAUTHORIZED')
      }
    }
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }
    const node = (await worker.app.inject({ method: 'GET', url: '/v1/node', headers: auth })).json()
    assert.equal(node.peerId, worker.node.peerId.toString())
    assert.ok(node.multiaddrs.every((addr: string) => addr.endsWith(`/p2p/${node.peerId as string}`)))
    assert.equal(node.limits.maxConnections, 10_000)
    const listed = (await worker.app.inject({ method: 'GET', url: '/v1/peers?limit=5', headers: auth })).json()
    assert.ok(listed.total >= 1 && listed.peers.length <= 5)
    assert.equal((await worker.app.inject({ method: 'GET', url: '/v1/peers?limit=0', headers: auth })).statusCode, 400)
  })

  it('serves its OpenAPI document', async () => {
    const doc = (await worker.app.inject({ method: 'GET', url: '/docs/json' })).json()
    assert.equal(doc.openapi.startsWith('3.'), true)
    assert.ok(doc.paths['/v1/node'] !== undefined && doc.paths['/readyz'] !== undefined)
  })
})

describe('account registry over /v1/accounts', () => {
  let worker: Worker
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({ PHAROS_ADMIN_TOKENS: ADMIN_TOKEN })), createLogger('silent'))
  })
  after(async () => { await worker.stop() })

  it('adds, lists and removes accounts, and refuses what is not an ed25519 peer ID', async () => {
    const ids = await Promise.all([1, 2, 3].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    for (const peerId of ids) {
      const added = await worker.app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: { peerId, label: 'test' } })
      assert.equal(added.statusCode, 201)
      assert.equal(added.json().peerId, peerId)
    }
    assert.equal((await worker.app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: { peerId: ids[0] } })).statusCode, 200, 'adding again is idempotent')
    assert.equal(worker.accounts.count, 3)
    assert.equal(worker.accounts.isRegistered(ids[1] ?? ''), true)

    const listed = (await worker.app.inject({ method: 'GET', url: '/v1/accounts?limit=2', headers: auth })).json()
    assert.equal(listed.count, 3)
    assert.deepEqual(listed.accounts.map((account: { peerId: string }) => account.peerId), [...ids].sort().slice(0, 2))

    assert.equal((await worker.app.inject({ method: 'DELETE', url: `/v1/accounts/${ids[0] ?? ''}`, headers: auth })).statusCode, 204)
    assert.equal((await worker.app.inject({ method: 'DELETE', url: '/v1/accounts', headers: auth, payload: { peerId: ids[1] } })).statusCode, 204)
    assert.equal((await worker.app.inject({ method: 'DELETE', url: `/v1/accounts/${ids[0] ?? ''}`, headers: auth })).statusCode, 404)
    assert.equal(worker.accounts.count, 1)

    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
    for (const peerId of ['not-a-peer-id', secp]) {
      const refused = await worker.app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: { peerId } })
      assert.equal(refused.statusCode, 400)
      assert.equal(refused.json().error.reason, 'BAD_REQUEST')
    }
    assert.equal((await worker.app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: { peer: 'x' } })).statusCode, 400)
    assert.equal((await worker.app.inject({ method: 'GET', url: '/v1/accounts' })).statusCode, 401)
  })
})
