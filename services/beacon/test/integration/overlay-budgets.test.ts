/**
 * Budgets and scores of overlay neighbours on real libp2p (issue 18, item 3): a registered
 * neighbour that speaks the wire by hand floods the worker with unsolicited GRAFTs, then
 * IHAVEs, then control frames past its bucket. Each flood drops it and keeps it out for a
 * back-off twice as long as the last; /v1/overlay shows its score, offences and back-off; an
 * honest neighbour keeps receiving the worker's broadcasts throughout. And a SHUFFLE from one
 * neighbour fills at most its share of the worker's passive view, with registered keys only.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { messageIdOf } from '@pharos/protocol/log/index.ts'
import { encodeHyParView, encodePlumtree, overlayProtocolId, SHARED_TREE } from '@pharos/protocol/overlay/index.ts'
import type { HyParViewMessage, PlumtreeMessage } from '@pharos/protocol/overlay/index.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { decodePreamble, encodePreamble } from '@pharos/net/overlay/driver-frames.ts'
import type { Preamble } from '@pharos/net/overlay/driver-frames.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { createOverlayPeer } from '../helpers/overlay-peer.ts'
import type { OverlayPeer } from '../helpers/overlay-peer.ts'
import { sleep, waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const NETWORK = 'pharos-budgets'
const TOPIC = `/${NETWORK}/sync`
const TOKEN = 'overlay-budgets-token-0123456789'
const BACK_OFF_MS = 1000
const CONTROL_BURST = 300
/** Not the default 25, to show the key reaches the topics. */
const PASSIVE_SHARE_PERCENT = 20

interface NeighbourView {
  peer: string
  score: number
  dataTokens: number
  controlTokens: number
  offences: Record<string, number>
  drops: number
  backOffUntil: string | null
  lastBackOffMs: number | null
}

describe('overlay neighbour budgets on libp2p', () => {
  let worker: Worker
  let workerAddr: Multiaddr
  let honest: OverlayPeer
  let attacker: ClientPeer
  const delivered = new Set<string>()
  let broadcasts = 0

  const overlay = (): Worker['node']['services']['overlay'] => worker.node.services.overlay
  const adminView = async (): Promise<{ neighbours: NeighbourView[], neighbourBudget: { control: { burst: number } }, topics: Record<string, { passive: string[], passiveCapacity: number, active: string[] }> }> => {
    const response = await worker.app.inject({ method: 'GET', url: '/v1/overlay', headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(response.statusCode, 200, response.body)
    return response.json()
  }
  const attackerView = async (): Promise<NeighbourView> =>
    (await adminView()).neighbours.find((state) => state.peer === attacker.peerId.toString()) ?? assert.fail('the attacker is not in /v1/overlay')
  const metrics = async (): Promise<string> => (await worker.app.inject({ method: 'GET', url: '/metrics' })).body

  /** The worker broadcasts `n` new payloads on `sync`, a few ms apart; returns their IDs. */
  const broadcast = async (n: number): Promise<string[]> => {
    const ids: string[] = []
    for (let i = 0; i < n; i++) {
      const payload = new TextEncoder().encode(`broadcast ${broadcasts++}`)
      const id = await messageIdOf('sync', payload) ?? assert.fail()
      overlay().broadcast('sync', id, payload)
      ids.push(id)
      await sleep(10)
    }
    return ids
  }

  /** Opens an overlay stream as the attacker, by hand, and reads the worker's preamble. */
  const open = async (protocol: 'hyparview' | 'plumtree'): Promise<{ preamble: Preamble | undefined, write: (frame: Uint8Array) => Promise<void> }> => {
    const lp = lpStream(await attacker.dialProtocol(workerAddr, overlayProtocolId(NETWORK, protocol)))
    const preamble = decodePreamble((await lp.read()).subarray())
    return { preamble, write: async (frame) => { await lp.write(frame) } }
  }
  const hyparview = (message: HyParViewMessage): Uint8Array => encodeHyParView({ topic: TOPIC, message })
  const plumtree = (message: PlumtreeMessage): Uint8Array => encodePlumtree({ topic: TOPIC, message })

  /** Joins the worker's `sync` topic as the attacker; returns its plumtree writer. */
  const join = async (): Promise<(frame: Uint8Array) => Promise<void>> => {
    const membership = await open('hyparview')
    assert.deepEqual(membership.preamble, { accepted: true })
    await membership.write(hyparview({ type: 'join' }))
    await waitFor('the attacker to be an active neighbour', () => overlay().snapshot().sync?.active.includes(attacker.peerId.toString()) === true, 10_000)
    const dissemination = await open('plumtree')
    assert.deepEqual(dissemination.preamble, { accepted: true })
    return dissemination.write
  }

  /** Writes frames until the worker resets the stream (it dropped the attacker) or all are written. */
  const flood = async (write: (frame: Uint8Array) => Promise<void>, frames: Iterable<Uint8Array>): Promise<void> => {
    try {
      for (const frame of frames) await write(frame)
    } catch {
      // the worker reset the stream once it dropped the attacker
    }
  }

  /** Dropped and kept out: a new overlay stream is refused as misbehaving until the back-off ends. */
  const assertKeptOut = async (drops: number): Promise<void> => {
    await waitFor(`drop ${drops}`, () => overlay().driverCounters().neighbours.scoreDrops === drops, 10_000, () => JSON.stringify(overlay().driverCounters().neighbours))
    const state = await attackerView()
    assert.equal(state.drops, drops)
    assert.equal(state.lastBackOffMs, BACK_OFF_MS * 2 ** (drops - 1), 'each drop doubles the back-off')
    assert.ok(state.backOffUntil !== null, 'it is kept out now')
    assert.ok(state.score < -100, `its score ${state.score} is below the threshold`)
    const view = overlay().snapshot().sync ?? assert.fail()
    for (const set of [view.active, view.passive, view.eager, view.lazy]) assert.ok(!set.includes(attacker.peerId.toString()), 'out of every view')
    assert.deepEqual((await open('hyparview')).preamble, { accepted: false, reason: 'misbehaving' })
    await waitFor('the back-off to end', async () => (await attackerView()).backOffUntil === null, 4 * BACK_OFF_MS * 2 ** (drops - 1))
  }

  /** The honest neighbour got every broadcast so far. */
  const assertHonestReceivedAll = async (ids: readonly string[]): Promise<void> => {
    await waitFor(`the honest neighbour to get all ${ids.length} broadcasts`, () => ids.every((id) => delivered.has(id)), 10_000,
      () => `missing ${ids.filter((id) => !delivered.has(id)).length}`)
    assert.ok(overlay().snapshot().sync?.active.includes(honest.peerId.toString()), 'the honest neighbour kept its place')
  }

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({
      PHAROS_NETWORK: NETWORK,
      PHAROS_ADMIN_TOKENS: TOKEN,
      PHAROS_OVERLAY_NEIGHBOUR_BACKOFF_MS: String(BACK_OFF_MS),
      PHAROS_OVERLAY_CONTROL_FRAMES_BURST: String(CONTROL_BURST),
      PHAROS_OVERLAY_CONTROL_FRAMES_PER_SECOND: '50',
      PHAROS_OVERLAY_PASSIVE_SHARE_PERCENT: String(PASSIVE_SHARE_PERCENT)
    })), createLogger('silent'))
    workerAddr = multiaddr(worker.node.getMultiaddrs().map(String).find((text) => text.startsWith('/ip4/127.0.0.1/') && !text.includes('/ws')) ?? assert.fail('no TCP address'))
    honest = await createOverlayPeer({ network: NETWORK, networkSize: 16, topics: ['sync'] })
    attacker = await createClientPeer()
    await honest.start()
    await worker.accounts.add(honest.peerId.toString(), 'honest')
    await worker.accounts.add(attacker.peerId.toString(), 'attacker')
    honest.services.overlay.onDeliver((delivery) => { delivered.add(delivery.messageId) })
    await honest.dial(workerAddr)
    honest.services.overlay.join('sync', worker.node.peerId)
    await waitFor('the honest peer to be the worker\'s neighbour', () => overlay().snapshot().sync?.active.includes(honest.peerId.toString()) === true, 10_000)
    // The attacker takes the worker's streams to it and reads them: it is not slow, only hostile.
    for (const protocol of ['hyparview', 'plumtree'] as const) {
      await attacker.handle(overlayProtocolId(NETWORK, protocol), async (stream) => {
        const lp = lpStream(stream)
        await lp.write(encodePreamble({ accepted: true }))
        await (async () => { for (;;) await lp.read() })().catch(() => undefined)
      })
    }
  })

  after(async () => {
    await attacker?.stop()
    await honest?.stop()
    await worker?.stop()
  })

  it('a SHUFFLE from one neighbour fills at most its share of the passive view, and with registered keys only', async () => {
    const registered = await Promise.all(Array.from({ length: 24 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    const strangers = await Promise.all(Array.from({ length: 8 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    for (const [i, peer] of registered.entries()) await worker.accounts.add(peer, `offline-${i}`)
    await waitFor('the views to resize for N = 26', () => overlay().snapshot().sync?.networkSize === 26, 10_000)
    await join()
    const membership = await open('hyparview')
    const received = (): number => overlay().topicCounters().sync?.received.shuffle ?? 0
    const before = received()
    // TTL 1: the worker is the walk's last hop and merges the sample (HyParView §4.4).
    await membership.write(hyparview({ type: 'shuffle', origin: attacker.peerId.toString(), ttl: 1, peers: [...registered, ...strangers] }))
    await waitFor('the worker to take the SHUFFLE', () => received() > before, 5000)

    const view = (await adminView()).topics.sync ?? assert.fail()
    const share = Math.ceil(PASSIVE_SHARE_PERCENT * view.passiveCapacity / 100)
    assert.equal(share, 6, 'N = 26: passive capacity 30')
    const kept = view.passive.filter((peer) => registered.includes(peer))
    assert.ok(kept.length <= share, `${kept.length} of the ${view.passiveCapacity} passive slots are the attacker's names; its share is ${share}`)
    assert.deepEqual(view.passive.filter((peer) => strangers.includes(peer)), [], 'no unregistered key')
    // Counted as the merge went, before any of those peers could be dialled and fail.
    const counters = overlay().topicCounters().sync?.membership ?? assert.fail()
    assert.equal(counters.passiveShareReplacements, registered.length - share, 'every name past the share replaced one of its own')
    assert.equal(counters.nonMembers, strangers.length)
    const text = await metrics()
    assert.match(text, new RegExp(`^pharos_overlay_events_total\\{topic="sync",event="passive_share_replacement"\\} ${registered.length - share}$`, 'm'))
    assert.match(text, new RegExp(`^pharos_overlay_events_total\\{topic="sync",event="passive_not_member"\\} ${strangers.length}$`, 'm'))
    assert.match(text, new RegExp(`^pharos_limit_blocked_total\\{limit="PHAROS_OVERLAY_PASSIVE_SHARE_PERCENT"\\} ${registered.length - share}$`, 'm'))
  })

  it('a neighbour flooding GRAFTs, IHAVEs and control frames is dropped each time, kept out longer each time, and the honest one keeps receiving', async () => {
    const sent: string[] = [...await broadcast(3)]
    await assertHonestReceivedAll(sent)
    const attackerKey = attacker.peerId.toString()

    // 1. GRAFTs for an ID the worker pushed to it (never announced to it), again and again:
    //    each costs 10; the 11th takes it below -100. None reaches the topic.
    let write = await join()
    const [pushed] = await broadcast(1)
    sent.push(pushed ?? assert.fail())
    const graftsSeen = overlay().topicCounters().sync?.received.graft ?? 0
    const graft = plumtree({ type: 'graft', id: pushed ?? '', origin: null })
    const flooding = flood(write, Array.from({ length: 100 }, () => graft))
    sent.push(...await broadcast(10))
    await flooding
    await assertKeptOut(1)
    let state = await attackerView()
    assert.equal(state.offences['unsolicited-graft'], 11)
    assert.equal(overlay().topicCounters().sync?.received.graft, graftsSeen, 'no unsolicited GRAFT reached the topic, none was answered')
    await assertHonestReceivedAll(sent)

    // 2. Back after its back-off, on probation: its score has not recovered yet (half-life
    //    60 s), so the first IHAVE past the 8 a topic may send at once drops it again.
    write = await join()
    const ihaves = Array.from({ length: 50 }, (_, i) => plumtree({ type: 'ihave', entries: [{ id: `made-up-${i}`, round: 1 }] }))
    const ihaveFlood = flood(write, ihaves)
    sent.push(...await broadcast(10))
    await ihaveFlood
    await assertKeptOut(2)
    state = await attackerView()
    assert.equal(state.offences['ihave-flood'], 1)
    await assertHonestReceivedAll(sent)

    // 3. Control frames past the bucket (PRUNEs, each harmless alone): the bucket takes its
    //    burst and its rate, and the first frame over it drops it a third time.
    write = await join()
    const prunesBefore = overlay().topicCounters().sync?.received.prune ?? 0
    const started = Date.now()
    const pruneFlood = flood(write, Array.from({ length: CONTROL_BURST * 3 }, () => plumtree({ type: 'prune', origins: [SHARED_TREE] })))
    sent.push(...await broadcast(10))
    await pruneFlood
    await assertKeptOut(3)
    const elapsedS = (Date.now() - started) / 1000
    const prunes = (overlay().topicCounters().sync?.received.prune ?? 0) - prunesBefore
    // The JOIN, and frames the control bucket refilled while the flood ran (50/s), also count.
    assert.ok(prunes >= CONTROL_BURST - 10 && prunes <= CONTROL_BURST + 50 * elapsedS, `${prunes} PRUNEs reached the topic in ${elapsedS} s (burst ${CONTROL_BURST}, 50/s)`)
    state = await attackerView()
    assert.ok((state.offences['control-flood'] ?? 0) >= 1)
    assert.equal(state.drops, 3)
    await assertHonestReceivedAll(sent)

    const honestState = (await adminView()).neighbours.find((neighbour) => neighbour.peer === honest.peerId.toString()) ?? assert.fail('the honest neighbour is not listed')
    assert.equal(honestState.score, 0)
    assert.equal(honestState.drops, 0)
    assert.equal((await adminView()).neighbourBudget.control.burst, CONTROL_BURST, 'the config in force is shown')
    const text = await metrics()
    assert.match(text, /^pharos_overlay_neighbour_offences_total\{offence="unsolicited-graft"\} 11$/m)
    assert.match(text, /^pharos_overlay_neighbour_offences_total\{offence="ihave-flood"\} 1$/m)
    assert.match(text, /^pharos_overlay_neighbour_offences_total\{offence="control-flood"\} [1-9]\d*$/m)
    assert.match(text, /^pharos_limit_blocked_total\{limit="PHAROS_OVERLAY_CONTROL_FRAMES_PER_SECOND"\} [1-9]\d*$/m)
    assert.match(text, /^pharos_overlay_driver_events_total\{event="neighbour_score_drop"\} 3$/m)
    assert.ok(!overlay().snapshot().sync?.active.includes(attackerKey))
  })

  it('a payload the application rejects costs its sender 25, and one offence does not drop an honest neighbour', async () => {
    const honestKey = honest.peerId.toString()
    overlay().penalize(honestKey, 'invalid-payload')
    const state = (await adminView()).neighbours.find((neighbour) => neighbour.peer === honestKey) ?? assert.fail()
    assert.ok(state.score <= -24.9 && state.score > -25.1, `score ${state.score}`)
    assert.equal(state.offences['invalid-payload'], 1)
    assert.equal(state.backOffUntil, null)
    await assertHonestReceivedAll(await broadcast(3))
  })
})
