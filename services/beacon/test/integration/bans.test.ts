/**
 * Bans, end to end on a worker started in-process on Postgres with real js-libp2p peers:
 * the /v1/bans API, the gater refusing a banned peer both ways, hanging up on a peer when it
 * is banned, a ban made elsewhere in the fleet taking effect on refresh, and a forgery's ban
 * carrying the signed envelope that lets anyone check it again.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { decodeEntry, openEnvelope, sealEnvelope, signEntry, verifyEntry } from '@pharos/protocol/log/index.ts'
import { BanList, InvalidBanPeerError } from '../../src/bans/ban-list.ts'
import type { BanEvent } from '../../src/bans/ban-list.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { migrate } from '../../src/storage/migrate.ts'
import { openPostgres } from '../../src/storage/pg-client.ts'
import type { SqlClient } from '../../src/storage/sql.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { metricValue } from '../helpers/storage.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'
import { waitFor } from '@pharos/testing/wait.ts'

const ADMIN_TOKEN = 'test-admin-token-0123456789'
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }

async function ed25519Peer (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

describe('bans', () => {
  let url: string
  let worker: Worker
  /** Another worker's view of the same database: its own pool and its own ban set. */
  let elsewhereDb: SqlClient
  let elsewhere: BanList
  const peers: ClientPeer[] = []
  let tcpAddr: string

  const peer = async (listen?: string[]): Promise<ClientPeer> => {
    const created = await createClientPeer({ listen })
    peers.push(created)
    return created
  }
  const metrics = async (): Promise<string> => (await worker.app.inject({ method: 'GET', url: '/metrics' })).body

  before(async () => {
    url = await createTestDatabase('bans')
    worker = await startWorker(loadConfig(await inProcessEnv({ PHAROS_ADMIN_TOKENS: ADMIN_TOKEN, DATABASE_URL: url })), createLogger('silent'))
    tcpAddr = worker.node.getMultiaddrs().map((addr) => addr.toString()).find((addr) => addr.startsWith('/ip4/127.0.0.1/') && !addr.includes('/ws')) ?? assert.fail('no TCP address')
    elsewhereDb = await openPostgres(url, { maxConnections: 2 })
    await migrate(elsewhereDb)
    elsewhere = new BanList(elsewhereDb)
    await elsewhere.refresh()
  })

  after(async () => {
    await Promise.all(peers.map(async (p) => { await p.stop() }))
    await worker.stop()
    await elsewhereDb.close()
  })

  it('bans, lists, shows and lifts over /v1/bans, and refuses what is not an ed25519 peer ID', async () => {
    const ids = [await ed25519Peer(), await ed25519Peer(), await ed25519Peer()]
    for (const id of ids) {
      const added = await worker.app.inject({ method: 'POST', url: '/v1/bans', headers: auth, payload: { peer: id, detail: 'spam' } })
      assert.equal(added.statusCode, 201, added.body)
      assert.deepEqual({ ...added.json<Record<string, unknown>>(), createdAt: '' }, { peer: id, reason: 'admin', detail: 'spam', bannedBy: 'admin', createdAt: '', evidenceBytes: null, envelopeBytes: null })
      assert.equal(worker.bans.isBanned(id), true, 'in effect on this worker at once')
    }
    const again = await worker.app.inject({ method: 'POST', url: '/v1/bans', headers: auth, payload: { peer: ids[0] } })
    assert.equal(again.statusCode, 200, 'banning again changes nothing')
    assert.equal(again.json().detail, 'spam', 'the first ban stands')

    const sorted = [...ids].sort()
    const first = (await worker.app.inject({ method: 'GET', url: '/v1/bans?limit=2', headers: auth })).json()
    assert.equal(first.count, 3)
    assert.deepEqual(first.bans.map((ban: { peer: string }) => ban.peer), sorted.slice(0, 2))
    const rest = (await worker.app.inject({ method: 'GET', url: `/v1/bans?limit=2&after=${first.next as string}`, headers: auth })).json()
    assert.deepEqual(rest.bans.map((ban: { peer: string }) => ban.peer), sorted.slice(2))
    assert.equal(rest.next, undefined)
    const one = await worker.app.inject({ method: 'GET', url: `/v1/bans/${ids[1] ?? ''}`, headers: auth })
    assert.equal(one.statusCode, 200)
    assert.equal(one.json().evidence, null)
    assert.equal(one.json().envelope, null, 'an admin ban has no envelope')

    for (const id of ids) assert.equal((await worker.app.inject({ method: 'DELETE', url: `/v1/bans/${id}`, headers: auth })).statusCode, 204)
    assert.equal((await worker.app.inject({ method: 'DELETE', url: `/v1/bans/${ids[0] ?? ''}`, headers: auth })).statusCode, 404, 'not banned any more')
    assert.equal((await worker.app.inject({ method: 'GET', url: `/v1/bans/${ids[0] ?? ''}`, headers: auth })).statusCode, 404)
    assert.equal(worker.bans.isBanned(ids[0] ?? ''), false)

    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
    for (const [bad, why] of [['not-a-peer-id', /is not a peer ID/], [secp, /secp256k1/]] as const) {
      const refused = await worker.app.inject({ method: 'POST', url: '/v1/bans', headers: auth, payload: { peer: bad } })
      assert.equal(refused.statusCode, 400)
      assert.equal(refused.json().error.reason, 'BAD_REQUEST')
      assert.match(refused.json().error.details, why)
    }
    assert.equal((await worker.app.inject({ method: 'POST', url: '/v1/bans', headers: auth, payload: { peerId: ids[0] } })).statusCode, 400, 'unknown field')
    assert.equal((await worker.app.inject({ method: 'GET', url: '/v1/bans' })).statusCode, 401)
    assert.equal((await worker.app.inject({ method: 'POST', url: '/v1/bans', payload: { peer: ids[0] } })).statusCode, 401)
    await assert.rejects(worker.bans.ban({ peer: 'nope', reason: 'admin', detail: '', bannedBy: 'test' }), InvalidBanPeerError)
  })

  it('hangs up on a connected peer when it is banned, refuses it after, and lets it back when the ban is lifted', async () => {
    const client = await peer()
    assert.ok(await client.services.ping.ping(multiaddr(tcpAddr)) >= 0)
    assert.ok(worker.node.getConnections(client.peerId).length > 0)
    const bansBefore = metricValue(await metrics(), 'pharos_bans_total{reason="admin"}')

    const banned = await worker.app.inject({ method: 'POST', url: '/v1/bans', headers: auth, payload: { peer: client.peerId.toString(), detail: 'test' } })
    assert.equal(banned.statusCode, 201)
    await waitFor('the worker hangs up on the banned peer', () => worker.node.getConnections(client.peerId).length === 0)
    await waitFor('the peer sees the connection closed', () => client.getConnections(worker.node.peerId).length === 0)

    // The dialler may finish its side of the upgrade before the worker's gater refuses it,
    // so what must hold is that no ping gets through and no connection survives.
    await assert.rejects(client.services.ping.ping(multiaddr(tcpAddr)))
    assert.equal(worker.node.getConnections(client.peerId).length, 0)
    const exposition = await metrics()
    assert.ok(metricValue(exposition, 'pharos_connections_refused_total{reason="banned"}') >= 1, 'the refusal is counted')
    assert.equal(metricValue(exposition, 'pharos_bans_total{reason="admin"}'), bansBefore + 1, 'the ban is counted once')

    assert.equal((await worker.app.inject({ method: 'DELETE', url: `/v1/bans/${client.peerId.toString()}`, headers: auth })).statusCode, 204)
    assert.ok(await client.services.ping.ping(multiaddr(tcpAddr)) >= 0, 'welcome again once the ban is lifted')
  })

  it('never dials a banned peer', async () => {
    const listener = await peer(['/ip4/127.0.0.1/tcp/0'])
    const addr = listener.getMultiaddrs()[0] ?? assert.fail('the listener has no address')
    await worker.bans.ban({ peer: listener.peerId.toString(), reason: 'admin', detail: 'test', bannedBy: 'test' })
    await assert.rejects(worker.node.dial(addr, { signal: AbortSignal.timeout(10_000) }))
    assert.equal(worker.node.getConnections(listener.peerId).length, 0)
    assert.ok(metricValue(await metrics(), 'pharos_connections_refused_total{reason="banned"}') >= 1)
  })

  it('a ban made by another worker takes effect here on refresh: this worker hangs up and refuses the peer', async () => {
    const client = await peer()
    assert.ok(await client.services.ping.ping(multiaddr(tcpAddr)) >= 0)
    const learnt: Array<[string, BanEvent]> = []
    const stopListening = worker.bans.onBan((id, event) => { learnt.push([id, event]) })
    try {
      const evidence = new TextEncoder().encode('an entry whose signature failed')
      assert.equal(await elsewhere.ban({ peer: client.peerId.toString(), reason: 'bad-signature', detail: 'entry bafy…', evidence, bannedBy: 'another-worker' }), true)
      assert.equal(worker.bans.isBanned(client.peerId.toString()), false, 'not before this worker refreshes')

      await worker.bans.refresh()
      assert.equal(worker.bans.isBanned(client.peerId.toString()), true)
      assert.deepEqual(learnt, [[client.peerId.toString(), { reason: 'bad-signature', origin: 'learnt' }]])
      await waitFor('the worker hangs up on the peer banned elsewhere', () => worker.node.getConnections(client.peerId).length === 0)
      await assert.rejects(client.services.ping.ping(multiaddr(tcpAddr)))
      assert.equal(metricValue(await metrics(), 'pharos_bans_total{reason="bad-signature"}'), 0, 'counted by the worker that made it, not here')

      const shown = (await worker.app.inject({ method: 'GET', url: `/v1/bans/${client.peerId.toString()}`, headers: auth })).json()
      assert.equal(Buffer.from(shown.evidence, 'base64').toString(), 'an entry whose signature failed')
      assert.equal(shown.bannedBy, 'another-worker')

      // Lifted elsewhere: gone here after the next refresh.
      assert.equal(await elsewhere.unban(client.peerId.toString()), true)
      await worker.bans.refresh()
      assert.equal(worker.bans.isBanned(client.peerId.toString()), false)
    } finally {
      stopListening()
    }
  })

  it('a forged entry\'s ban carries the publisher\'s signed envelope, and it verifies to the banned peer', async () => {
    const forgerKey = await generateKeyPair('Ed25519')
    const forger = { peerId: peerIdFromPrivateKey(forgerKey).toString(), sign: async (message: Uint8Array) => await forgerKey.sign(message) }
    const victim = await ed25519Peer()
    const neighbour = await ed25519Peer()
    // An entry claiming the victim as author but signed with the forger's key, in an
    // envelope the forger signed; an honest neighbour hands it over unchanged.
    const forged = await signEntry({ seq: 0, prev: null, action: 'set-profile', timestamp: 1, params: { name: 'not me' } }, { peerId: victim, sign: forger.sign })
    const envelope = await sealEnvelope(forged.bytes, forger)
    const result = await worker.logService.ingest.ingestEnvelope(envelope, neighbour)
    assert.equal(result.result === 'rejected' && result.reason, 'bad-signature')
    assert.equal(worker.bans.isBanned(neighbour), false, 'the forwarder is not blamed')

    const listed = (await worker.app.inject({ method: 'GET', url: '/v1/bans?limit=1000', headers: auth })).json()
    const entry = listed.bans.find((ban: { peer: string }) => ban.peer === forger.peerId)
    assert.deepEqual([entry?.reason, entry?.evidenceBytes, entry?.envelopeBytes], ['bad-signature', forged.bytes.length, envelope.length])
    const shown = await worker.app.inject({ method: 'GET', url: `/v1/bans/${forger.peerId}`, headers: auth })
    assert.equal(shown.statusCode, 200)
    const ban = shown.json<{ evidence: string, envelope: string, bannedBy: string }>()
    assert.equal(ban.bannedBy, worker.node.peerId.toString())

    // What anyone holding the ban can check, with nothing but its two fields:
    const opened = await openEnvelope(Buffer.from(ban.envelope, 'base64'))
    assert.ok(opened.ok, 'the envelope\'s signature holds')
    assert.equal(opened.value.publisher, forger.peerId, 'and it is the banned peer\'s')
    const evidence = Buffer.from(ban.evidence, 'base64')
    assert.ok(Buffer.from(opened.value.entry).equals(evidence), 'it wraps exactly the evidence')
    const decoded = await decodeEntry(evidence)
    assert.ok(decoded.ok)
    assert.equal(decoded.value.entry.author, victim)
    assert.equal((await verifyEntry(decoded.value.entry)).ok, false, 'whose author signature fails')
  })

  it('two ban lists on one database agree after a refresh', async () => {
    const id = await ed25519Peer()
    const here = new BanList(worker.db)
    await here.refresh()
    const events: BanEvent[] = []
    const stopListening = elsewhere.onBan((banned, event) => { if (banned === id) events.push(event) })

    assert.equal(await here.ban({ peer: id, reason: 'admin', detail: '', bannedBy: 'test' }), true)
    assert.equal(here.isBanned(id), true)
    assert.equal(elsewhere.isBanned(id), false)
    await elsewhere.refresh()
    assert.equal(elsewhere.isBanned(id), true)
    assert.deepEqual(events, [{ reason: 'admin', origin: 'learnt' }])
    assert.equal(await elsewhere.ban({ peer: id, reason: 'bad-signature', detail: '', bannedBy: 'test' }), false, 'already banned')
    assert.equal((await elsewhere.get(id))?.reason, 'admin')

    assert.equal(await elsewhere.unban(id), true)
    assert.equal(await here.unban(id), false)
    await here.refresh()
    assert.equal(here.isBanned(id), false)
    stopListening()
  })
})
