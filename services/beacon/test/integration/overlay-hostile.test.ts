/**
 * Hostile neighbours on real libp2p (issue 17, item 5): a gossip message whose ID is not the
 * content hash of its payload is dropped before any topic sees it, and its sender dropped; a
 * registered neighbour that floods large frames and stops reading fills a bounded payload
 * cache and a bounded send queue at the worker, and is dropped from the views once the queue
 * passes its byte bound.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { cborCid, messageIdOf } from '@pharos/protocol/log/index.ts'
import { encodeHyParView, encodePlumtree, overlayProtocolId } from '@pharos/protocol/overlay/index.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { decodePreamble, encodePreamble } from '@pharos/net/overlay/driver-frames.ts'
import type { Delivery } from '@pharos/net/overlay/overlay-driver.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { createOverlayPeer } from '../helpers/overlay-peer.ts'
import type { OverlayPeer } from '../helpers/overlay-peer.ts'
import { retainedBytes } from '../helpers/memory.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const MiB = 1024 * 1024

describe('a gossip message whose ID is not its payload\'s content hash', () => {
  const NETWORK = 'pharos-bad-id'
  let honest: OverlayPeer
  let liar: OverlayPeer

  before(async () => {
    honest = await createOverlayPeer({ network: NETWORK, networkSize: 16, topics: ['sync'] })
    liar = await createOverlayPeer({ network: NETWORK, networkSize: 16, topics: ['sync'] })
    await Promise.all([honest.start(), liar.start()])
    await liar.dial(honest.getMultiaddrs()[0] ?? assert.fail('no address'))
    liar.services.overlay.join('sync', honest.peerId)
    await waitFor('the two to be neighbours', () => honest.services.overlay.snapshot().sync?.eager.includes(liar.peerId.toString()) === true &&
      liar.services.overlay.snapshot().sync?.eager.includes(honest.peerId.toString()) === true, 10_000)
  })

  after(async () => {
    await Promise.all([honest, liar].map(async (peer) => { await peer?.stop() }))
  })

  it('is dropped before delivery, closes its stream, is counted, and costs its sender its place', async () => {
    const delivered: Delivery[] = []
    honest.services.overlay.onDeliver((delivery) => { delivered.push(delivery) })
    const good = new TextEncoder().encode('an honest payload')
    const goodId = (await cborCid(good)).toString()
    liar.services.overlay.broadcast('sync', goodId, good)
    await waitFor('the honest payload to be delivered', () => delivered.length === 1, 5000)
    assert.equal(delivered[0]?.messageId, goodId)

    // The same bytes again under a made-up ID, then a payload that squats the ID of another.
    const squatted = (await cborCid(new TextEncoder().encode('someone else\'s message'))).toString()
    liar.services.overlay.broadcast('sync', 'any-id-at-all', good)
    liar.services.overlay.broadcast('sync', squatted, new TextEncoder().encode('junk'))
    await waitFor('the bad frame to be rejected', () => honest.services.overlay.driverCounters().framesRejected['bad-message-id'] >= 1, 5000,
      () => JSON.stringify(honest.services.overlay.driverCounters()))
    await waitFor('the liar to be gone from every view', () => {
      const view = honest.services.overlay.snapshot().sync
      return view !== undefined && ![...view.active, ...view.passive, ...view.eager, ...view.lazy].includes(liar.peerId.toString())
    }, 5000)
    assert.deepEqual(delivered.map((delivery) => delivery.messageId), [goodId], 'neither bad message reached the application')
    assert.equal(honest.services.overlay.topicCounters().sync?.dissemination.delivered, 1, 'nor the topic: its state never saw them')
    assert.equal(honest.services.overlay.driverCounters().neighboursShunned, 1)

    // Kept out: the liar's next link is refused as misbehaving.
    const refusals: string[] = []
    liar.services.overlay.onRefused((error) => { refusals.push(error.reason) })
    liar.services.overlay.join('sync', honest.peerId)
    await waitFor('the liar to be refused', () => refusals.length > 0, 5000)
    assert.deepEqual(refusals, ['misbehaving'])
    assert.equal(honest.services.overlay.driverCounters().refusalsSent.misbehaving, 1)
  })
})

describe('a registered neighbour that floods large frames and stops reading', () => {
  const NETWORK = 'pharos-flood'
  const TOPIC = `/${NETWORK}/sync`
  const QUEUE_BYTES = 4 * MiB
  let worker: Worker
  let attacker: ClientPeer

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({
      PHAROS_NETWORK: NETWORK,
      PHAROS_ADMIN_TOKENS: 'overlay-hostile-token-0123456789',
      PHAROS_OVERLAY_SEND_QUEUE_BYTES: String(QUEUE_BYTES)
    })), createLogger('silent'))
    attacker = await createClientPeer()
  })

  after(async () => {
    await attacker?.stop()
    await worker?.stop()
  })

  it('holds its send queue under the byte bound and drops it from the views', async () => {
    await worker.accounts.add(attacker.peerId.toString())
    const addr = multiaddr(worker.node.getMultiaddrs().map(String).find((text) => text.startsWith('/ip4/127.0.0.1/') && !text.includes('/ws')) ?? assert.fail('no TCP address'))
    // The attacker speaks the overlay wire by hand: it takes the worker's streams (the
    // plumtree one it never reads: yamux stops granting window, as a peer that stalls does)
    // and writes a JOIN and 40 large payloads, then a PRUNE (so the worker announces what it
    // has, rather than pushing it), then a GRAFT for each large payload the worker announced.
    // GRAFTs for anything else are dropped unanswered (overlay-budgets.test.ts).
    const taken: Stream[] = []
    // This test is about the bounds of the cache and the send queue, not about what a topic
    // forwards: the worker forwards whatever comes on `sync` here (it forwards nothing there
    // in production: gossip-validators.ts).
    worker.node.services.overlay.setValidator('sync', () => 'accept')
    await attacker.handle(overlayProtocolId(NETWORK, 'hyparview'), async (stream) => {
      const lp = lpStream(stream)
      await lp.write(encodePreamble({ accepted: true }))
      // Read and discard: only the plumtree stream stalls.
      await (async () => { for (;;) await lp.read() })().catch(() => undefined)
    })
    await attacker.handle(overlayProtocolId(NETWORK, 'plumtree'), async (stream) => {
      taken.push(stream)
      await lpStream(stream).write(encodePreamble({ accepted: true }))
      stream.pause()
    })
    const open = async (protocol: 'hyparview' | 'plumtree'): Promise<ReturnType<typeof lpStream>> => {
      const lp = lpStream(await attacker.dialProtocol(addr, overlayProtocolId(NETWORK, protocol)), { maxDataLength: 2 * MiB })
      assert.deepEqual(decodePreamble((await lp.read()).subarray()), { accepted: true })
      return lp
    }
    const hyparview = await open('hyparview')
    await hyparview.write(encodeHyParView({ topic: TOPIC, message: { type: 'join' } }))
    await waitFor('the attacker to be an active neighbour', () => worker.node.services.overlay.snapshot().sync?.active.includes(attacker.peerId.toString()) === true, 5000)

    // Half a MiB: one frame stays under the yamux write buffer (PHAROS_YAMUX_MAX_WRITE_BUFFER_BYTES,
    // 1 MiB), so only the driver's own queue can hold the backlog.
    const plumtree = await open('plumtree')
    const retainedBefore = retainedBytes()
    // 40 distinct payloads of 512 KiB, each valid: the topic's cache keeps 8 MiB of them, not 20.
    for (let i = 0; i < 40; i++) {
      const payload = new Uint8Array(MiB / 2).fill(i)
      const id = await messageIdOf('sync', payload) ?? assert.fail()
      await plumtree.write(encodePlumtree({ topic: TOPIC, message: { type: 'gossip', id, round: 1, origin: attacker.peerId.toString(), payload } }))
    }
    const overlay = worker.node.services.overlay
    await waitFor('the worker to take all 40', () => overlay.topicCounters().sync?.dissemination.delivered === 40, 10_000)
    const cached = overlay.snapshot().sync ?? assert.fail()
    assert.equal(cached.cachedMessages, 16, 'the newest 8 MiB of payloads')
    assert.ok(cached.cachedBytes <= 8 * MiB, `the payload cache holds ${cached.cachedBytes} bytes`)
    // The worker publishes 12 payloads of 512 KiB of its own: the attacker pruned itself from
    // the worker's tree first (a PRUNE naming the worker as origin), so each is announced to it
    // in an IHAVE, over a link that stalls (the IHAVE opens it). (Pruning the shared tree would
    // not do: it is the worker's only neighbour, and a node with no shared link left starts a
    // new origin's tree from all its neighbours rather than from nobody.)
    const prunesBefore = overlay.topicCounters().sync?.received.prune ?? 0
    await plumtree.write(encodePlumtree({ topic: TOPIC, message: { type: 'prune', origins: [worker.node.peerId.toString()] } }))
    await waitFor('the attacker to prune the worker\'s tree', () => overlay.topicCounters().sync?.received.prune === prunesBefore + 1, 5000)
    const announced: string[] = []
    for (let i = 0; i < 12; i++) {
      const payload = new Uint8Array(MiB / 2).fill(100 + i)
      const ownId = await messageIdOf('sync', payload) ?? assert.fail()
      overlay.broadcast('sync', ownId, payload)
      announced.push(ownId)
    }
    await waitFor('the worker to open its plumtree link to the attacker', () => taken.length === 1, 5000)
    await waitFor('the IHAVE to be sent', () => (overlay.topicCounters().sync?.sent.ihave ?? 0) >= 1, 5000)
    // 12 answers of 512 KiB are 6 MiB, past the 4 MiB the queue may hold.
    try {
      for (const wanted of announced) await plumtree.write(encodePlumtree({ topic: TOPIC, message: { type: 'graft', id: wanted, origin: null } }))
    } catch {
      // the worker resets the stream once it has dropped the attacker
    }
    await waitFor('the worker to drop the attacker', () => overlay.driverCounters().queueByteOverflows >= 1, 10_000, () => JSON.stringify(overlay.driverCounters()))

    const counters = overlay.driverCounters()
    assert.ok(counters.sendQueuePeakBytes <= QUEUE_BYTES, `one link never queued more than its bound: peak ${counters.sendQueuePeakBytes}`)
    assert.ok(counters.queueCongestions >= 1, 'past half its bound it was made lazy first')
    assert.equal(counters.neighboursShunned, 1)
    const view = overlay.snapshot().sync ?? assert.fail()
    for (const set of [view.active, view.passive, view.eager, view.lazy]) assert.ok(!set.includes(attacker.peerId.toString()), 'dropped from every view and set')
    await waitFor('its queued frames to be released', () => overlay.queuedBytes() === 0, 5000, () => String(overlay.queuedBytes()))
    // The cache once kept all 40 payloads (20 MiB; up to 1,024 of 1 MiB), and 300 GRAFTs of
    // a 512 KiB payload queued 150 MiB (the frame bound was 1,024): now 8 MiB and 4 MiB (and a
    // GRAFT is answered once per ID announced).
    // What the process still holds after a full collection (RSS would also count what the
    // allocator has not yet given back). Right after the drop, buffers of the streams being
    // reset can still be in flight for a moment (seen: up to 57 MiB, gone within a second);
    // what must hold is what stays. Before the fix it stayed: the cache kept all 40 payloads
    // and the link's queue every answered GRAFT.
    let retainedGrowth = 0
    await waitFor('what the worker retains to settle under 32 MiB (the cache\'s 8 MiB and stream buffers)', () => {
      retainedGrowth = retainedBytes() - retainedBefore
      return retainedGrowth < 32 * MiB
    }, 10_000, () => `${Math.round(retainedGrowth / MiB)} MiB retained`)
    console.log(`# retained after GC grew by ${Math.round(retainedGrowth / MiB)} MiB; queue peak ${counters.sendQueuePeakBytes} bytes`)
    const metrics = (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^pharos_limit_blocked_total\{limit="PHAROS_OVERLAY_SEND_QUEUE_BYTES"\} 1$/m)
    assert.match(metrics, /^pharos_limit_blocked_total\{limit="PHAROS_OVERLAY_MESSAGE_CACHE_BYTES"\} 36$/m, 'the 24 + 12 payloads the cache let go early')
    assert.match(metrics, /^pharos_overlay_driver_events_total\{event="neighbour_shunned"\} 1$/m)
  })
})
