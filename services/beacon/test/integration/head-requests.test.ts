/**
 * HEAD requests on the `sync` topic, on a real worker (Postgres, libp2p on loopback) with SDK
 * peers: a peer that follows an author learns a newer head through the topic and fetches it;
 * an unregistered asker gets nothing; answers are bounded (per-asker rate, authors per
 * request). docs/logs.md "HEAD requests".
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import { decodeSyncRequest, encodeCbor, encodeSyncResponse, messageIdOf, signHeadRequest, syncProtocolId } from '@pharos/protocol/log/index.ts'
import type { EntryBlock, HeadWant, KnownHead } from '@pharos/protocol/log/index.ts'
import { signerFor } from '@pharos/peer/keys.ts'
import { createPharosPeer } from '@pharos/peer/pharos-peer.ts'
import type { PharosPeer, PublishedEntry } from '@pharos/peer/pharos-peer.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { createOverlayPeer } from '../helpers/overlay-peer.ts'
import type { OverlayPeer } from '../helpers/overlay-peer.ts'
import { sleep, waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const NETWORK = 'pharos-head-requests'
const WAIT_MS = 30_000
/** PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE in this test: small, so the bound is reached in a few requests. */
const PER_MINUTE = 3
const askerKey = await generateKeyPair('Ed25519')

describe('HEAD requests on the sync topic', () => {
  let worker: Worker
  let addr: Multiaddr
  let author: PharosPeer
  let asker: PharosPeer
  const published: PublishedEntry[] = []
  const started: Array<{ stop: () => Promise<void> | void }> = []

  const metric = async (pattern: RegExp): Promise<number> => {
    const text = (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
    return Number(pattern.exec(text)?.[1] ?? 0)
  }
  const outcome = async (name: string): Promise<number> => await metric(new RegExp(`^pharos_sync_head_requests_total\\{outcome="${name}"\\} (\\d+)`, 'm'))
  const peer = async (key = undefined as Parameters<typeof createPharosPeer>[0]['privateKey'] | undefined): Promise<PharosPeer> => {
    const node = await createPharosPeer({ privateKey: key ?? await generateKeyPair('Ed25519'), bootstrap: [addr.toString()], network: NETWORK, timeouts: { requestMs: 10_000 } })
    await worker.accounts.add(node.peerId.toString())
    await node.start()
    started.push(node)
    return node
  }
  /** A head request signed by `key`, put on the topic by `via` (a registered peer's overlay). */
  const broadcastRequest = async (via: PharosPeer, key: Parameters<typeof signerFor>[0], wants: HeadWant[], at = Date.now()): Promise<void> => {
    const payload = await signHeadRequest(wants, at, signerFor(key))
    via.libp2p.services.overlay.broadcast('sync', await messageIdOf('sync', payload) ?? assert.fail(), payload)
  }

  before(async () => {
    const database = await createTestDatabase('head_requests')
    worker = await startWorker(loadConfig(await inProcessEnv({
      DATABASE_URL: database,
      PHAROS_NETWORK: NETWORK,
      PHAROS_ADMIN_TOKENS: 'head-requests-test-token-0123456789',
      PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE: String(PER_MINUTE)
    })), createLogger('silent'))
    addr = worker.node.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/') && !a.toString().includes('/ws')) ?? assert.fail('no TCP address')
    author = await peer()
    for (const text of ['one', 'two', 'three']) published.push(await author.publishPost({ text }))
    await author.waitUntilHeld(published.map((entry) => entry.cid), { state: 'stored', timeoutMs: WAIT_MS })
    asker = await peer(askerKey)
  })

  after(async () => {
    await Promise.all(started.map(async (node) => { await node.stop() }))
    await worker?.stop()
  })

  it('a peer that follows an author learns its head through the topic and fetches the log; a newer head later too', async () => {
    const name = author.peerId.toString()
    const heard: EntryBlock[] = []
    asker.onEntry((block) => { heard.push(block) })
    const answeredBefore = await outcome('answered')
    // follow() asks the topic; no sync() (the direct request to a beacon) is made here.
    asker.follow([name])
    await waitFor('the asker to fetch the log a seeder announced', () => heard.length === published.length, WAIT_MS)
    assert.deepEqual(heard.map((block) => block.cid.toString()), published.map((entry) => entry.cid.toString()), 'the whole log, oldest first')
    assert.equal(await outcome('answered'), answeredBefore + 1, 'the worker answered the request')

    // Missed on the content topic (not followed then), learnt through the topic.
    asker.unfollow([name])
    const newer = await author.publishPost({ text: 'four' })
    await author.waitUntilHeld([newer.cid], { state: 'stored', timeoutMs: WAIT_MS })
    await sleep(500)
    assert.ok(asker.head(name)?.cid.equals(published.at(-1)?.cid ?? assert.fail()), 'the asker holds the older head')
    await sleep(10_000) // the SDK asks the topic at most every 10 s
    asker.follow([name])
    await waitFor('the asker to fetch the newer head', () => asker.head(name)?.cid.equals(newer.cid) === true, WAIT_MS)
    assert.equal(heard.at(-1)?.cid.toString(), newer.cid.toString())
    published.push(newer)
  })

  it('an unregistered asker gets nothing, however its request reaches the worker', async () => {
    // A node with an unregistered key, connected to the worker (the overlay refuses it, libp2p
    // does not), that would notice any push on the sync protocol.
    const strangerKey = await generateKeyPair('Ed25519')
    const stranger: OverlayPeer = await createOverlayPeer({ network: NETWORK, networkSize: 4 }, strangerKey)
    started.push(stranger)
    await stranger.start()
    let pushes = 0
    await stranger.handle(syncProtocolId(NETWORK), async (stream) => {
      pushes++
      const lp = lpStream(stream)
      const request = decodeSyncRequest((await lp.read()).subarray())
      assert.ok(request.ok)
      await lp.write(encodeSyncResponse({ t: 'heads', heads: [] }))
      await stream.close()
    })
    await stranger.dial(addr)
    await waitFor('the worker to see the stranger connected', () => worker.node.getConnections(stranger.peerId).length > 0, WAIT_MS)

    const ignoredBefore = worker.node.services.overlay.driverCounters().validations.ignore
    const answeredBefore = await outcome('answered')
    // Its signed request, carried onto the topic by a registered member. The worker's sync
    // validator drops it (ignored: the member may not know the registry, so it is not blamed),
    // so it is neither answered nor forwarded.
    await broadcastRequest(asker, strangerKey, [{ author: author.peerId.toString() }])
    await waitFor('the worker to refuse the unregistered asker', () => worker.node.services.overlay.driverCounters().validations.ignore === ignoredBefore + 1, WAIT_MS)
    await sleep(1000)
    assert.equal(pushes, 0, 'nothing was pushed to it')
    assert.equal(await outcome('answered'), answeredBefore)

    // The positive control: the same request from a registered asker (the member itself) is answered.
    await broadcastRequest(asker, askerKey, [{ author: author.peerId.toString() }])
    await waitFor('the worker to answer the registered asker', async () => await outcome('answered') === answeredBefore + 1, WAIT_MS)
  })

  it('answers are bounded: at most PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE per asker, 32 authors per request', async () => {
    const name = author.peerId.toString()
    // Each request differs (its own `at`), so Plumtree does not take them for one message.
    const answeredBefore = await outcome('answered')
    const limitedBefore = await outcome('rate-limited')
    const blockedBefore = await metric(/^pharos_limit_blocked_total\{limit="PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE"\} (\d+)/m)
    const sent = PER_MINUTE + 3
    for (let i = 0; i < sent; i++) await broadcastRequest(asker, askerKey, [{ author: name }], Date.now() + i)
    await waitFor('every request to be answered or refused', async () => await outcome('answered') + await outcome('rate-limited') >= answeredBefore + limitedBefore + sent, WAIT_MS)
    const answered = await outcome('answered') - answeredBefore
    // The earlier tests spent some of this asker's tokens; more than PER_MINUTE is never answered.
    assert.ok(answered <= PER_MINUTE, `${answered} answers for ${sent} requests in well under a minute`)
    assert.equal(await outcome('rate-limited') - limitedBefore, sent - answered)
    assert.equal(await metric(/^pharos_limit_blocked_total\{limit="PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE"\} (\d+)/m) - blockedBefore, sent - answered)

    // A request naming more authors than the wire allows is not one: the validator rejects it
    // (and blames the member that put it on the topic) before anything else sees it.
    const rejectedBefore = worker.node.services.overlay.driverCounters().validations.reject
    const many = await Promise.all(Array.from({ length: 33 }, async () => ({ author: signerFor(await generateKeyPair('Ed25519')).peerId })))
    const oversized = encodeCbor({ v: 1, asker: asker.peerId.toString(), at: Date.now(), wants: many, sig: new Uint8Array(64) })
    asker.libp2p.services.overlay.broadcast('sync', await messageIdOf('sync', oversized) ?? assert.fail(), oversized)
    await waitFor('the worker to drop the oversized request', () => worker.node.services.overlay.driverCounters().validations.reject === rejectedBefore + 1, WAIT_MS)
  })

  it('a push carries at most the heads asked about, each better than the asker\'s', async () => {
    // What the worker pushes, seen by a registered node that asks for two authors, one of which
    // it already holds the best head of.
    const listenerKey = await generateKeyPair('Ed25519')
    const listener: OverlayPeer = await createOverlayPeer({ network: NETWORK, networkSize: 4 }, listenerKey)
    started.push(listener)
    await listener.start()
    await worker.accounts.add(listener.peerId.toString())
    const pushed: KnownHead[][] = []
    let pushedByWorker = 0
    await listener.handle(syncProtocolId(NETWORK), async (stream, connection) => {
      const lp = lpStream(stream)
      const request = decodeSyncRequest((await lp.read()).subarray())
      assert.ok(request.ok && request.value.t === 'heads')
      if (request.value.t === 'heads') pushed.push(request.value.known)
      if (connection.remotePeer.equals(worker.node.peerId)) pushedByWorker++
      await lp.write(encodeSyncResponse({ t: 'heads', heads: [] }))
      await stream.close()
    })
    await listener.dial(addr)
    for (const topic of ['content', 'sync', 'keyexchange']) listener.services.overlay.join(topic, worker.node.peerId)
    await waitFor('the listener to join the sync topic', () => (listener.services.overlay.snapshot().sync?.active.length ?? 0) > 0, WAIT_MS)
    const head = published.at(-1) ?? assert.fail()
    const payload = await signHeadRequest([
      { author: author.peerId.toString() },
      { author: asker.peerId.toString() } // registered, but it published nothing
    ], Date.now(), signerFor(listenerKey))
    listener.services.overlay.broadcast('sync', await messageIdOf('sync', payload) ?? assert.fail(), payload)
    // The worker pushes; so may the author's own SDK (a seeder of its log), if the overlay
    // linked it to the listener. Every push is the same: the one head better than nothing.
    await waitFor('the worker\'s push', () => pushedByWorker === 1, WAIT_MS)
    const pushes = pushedByWorker

    // Asking again with the best head already held: nothing better, nothing pushed.
    const upToDateBefore = await outcome('up-to-date')
    const again = await signHeadRequest([{ author: author.peerId.toString(), held: { cid: head.cid, seq: head.seq } }], Date.now(), signerFor(listenerKey))
    listener.services.overlay.broadcast('sync', await messageIdOf('sync', again) ?? assert.fail(), again)
    await waitFor('the worker to find the listener up to date', async () => await outcome('up-to-date') === upToDateBefore + 1, WAIT_MS)
    await sleep(1000)
    assert.equal(pushedByWorker, pushes, 'the worker pushed nothing')
    // The author's SDK may have pushed once, for the first request (its push is not awaited
    // above: nothing tells when it would come); never for the second.
    assert.ok(pushed.length <= pushes + 1, `${pushed.length} pushes`)
    for (const push of pushed) {
      assert.deepEqual(push.map((known) => ({ author: known.author, cid: known.cid.toString(), seq: known.seq })),
        [{ author: author.peerId.toString(), cid: head.cid.toString(), seq: head.seq }])
    }
  })
})
