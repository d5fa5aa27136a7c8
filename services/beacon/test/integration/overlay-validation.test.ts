/**
 * Validate, then forward (issue 18), on real libp2p: a worker (PGlite) and two registered
 * peers. The sender is the worker's neighbour; the listener is the worker's neighbour too, and
 * refuses any link to the sender, so whatever the sender publishes reaches it through the
 * worker, two hops away. The listener forwards and delivers whatever it gets (it validates
 * nothing), so anything the worker forwarded would show there.
 *
 * The sender publishes framing-valid junk (on `content` and on `keyexchange`), a correctly
 * signed entry whose author is not registered, and a valid envelope around an entry whose
 * author signature is bad; the listener receives none of them, and the worker penalises the
 * sender for each and bans it for the forgery. Valid entries sent in the same run, before and
 * after, arrive (the positive controls).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import { encodeCbor, messageIdOf, sealEnvelope, signEntry } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer, EntryBlock } from '@pharos/protocol/log/index.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import type { Delivery } from '@pharos/net/overlay/overlay-driver.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createOverlayPeer } from '../helpers/overlay-peer.ts'
import type { OverlayPeer } from '../helpers/overlay-peer.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const NETWORK = 'pharos-validate'
const TOPICS = ['content', 'keyexchange'] as const
/** How long a wait in this file may take (joins and gossip between loaded test peers). */
const WAIT_MS = 20_000

function signerOf (key: PrivateKey): Ed25519Signer {
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (message) => await key.sign(message) }
}

async function entry (author: Ed25519Signer, name: string, after?: EntryBlock): Promise<EntryBlock> {
  const seq = after === undefined ? 0 : after.entry.seq + 1
  return await signEntry({ seq, prev: after?.cid ?? null, action: 'set-profile', timestamp: 1_700_000_000_000 + seq, params: { name } }, author)
}

describe('validate, then forward, over real libp2p', () => {
  let worker: Worker
  let addr: Multiaddr
  let sender: OverlayPeer
  let senderSigner: Ed25519Signer
  let listener: OverlayPeer
  const heard: Delivery[] = []

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({ PHAROS_NETWORK: NETWORK, PHAROS_ADMIN_TOKENS: 'validation-test-token-0123456789' })), createLogger('silent'))
    addr = worker.node.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/') && !a.toString().includes('/ws')) ?? assert.fail('no TCP address')
    const senderKey = await generateKeyPair('Ed25519')
    senderSigner = signerOf(senderKey)
    const senderId = peerIdFromPrivateKey(senderKey)
    const listenerKey = await generateKeyPair('Ed25519')
    const listenerId = peerIdFromPrivateKey(listenerKey)
    // Neither links to the other: the listener is two hops from the sender, through the worker.
    sender = await createOverlayPeer({ network: NETWORK, networkSize: 8, topics: TOPICS, admit: (peer) => peer.equals(listenerId) ? { admitted: false, reason: 'not-registered' } : { admitted: true } }, senderKey)
    listener = await createOverlayPeer({ network: NETWORK, networkSize: 8, topics: TOPICS, admit: (peer) => peer.equals(senderId) ? { admitted: false, reason: 'not-registered' } : { admitted: true } }, listenerKey)
    listener.services.overlay.onDeliver((delivery) => { heard.push(delivery) })
    for (const [name, peer] of [['sender', sender], ['listener', listener]] as const) {
      await peer.start()
      await worker.accounts.add(peer.peerId.toString(), name)
      await peer.dial(addr)
      for (const topic of TOPICS) peer.services.overlay.join(topic, worker.node.peerId)
    }
    for (const peer of [sender, listener]) {
      for (const topic of TOPICS) {
        await waitFor(`${peer === sender ? 'sender' : 'listener'} and the worker neighbours on ${topic}`, () =>
          (worker.node.services.overlay.snapshot()[topic]?.active.includes(peer.peerId.toString()) ?? false) &&
          (peer.services.overlay.snapshot()[topic]?.active.includes(worker.node.peerId.toString()) ?? false), WAIT_MS)
      }
    }
    assert.ok(!(listener.services.overlay.snapshot().content?.active.includes(sender.peerId.toString()) ?? true), 'no direct link')
  })

  after(async () => {
    await Promise.all([sender, listener].map(async (peer) => { await peer?.stop() }))
    await worker?.stop()
  })

  /** Publishes on the sender as a member's app would: the overlay's own broadcast, under the payload's message ID. */
  const publish = async (topic: typeof TOPICS[number], payload: Uint8Array): Promise<string> => {
    const id = await messageIdOf(topic, payload) ?? assert.fail('the payload has no message ID: it would not even pass the framing check')
    sender.services.overlay.broadcast(topic, id, payload)
    return id
  }
  const heardIds = (): string[] => heard.map((delivery) => delivery.messageId)
  const rejectedAtWorker = (): number => worker.node.services.overlay.driverCounters().validations.reject
  const ignoredAtWorker = (): number => worker.node.services.overlay.driverCounters().validations.ignore

  it('forwards a valid entry, and none of a registered member\'s junk, unregistered author\'s entry or forgery', async () => {
    // Positive control, first: a valid entry of the sender's own log reaches the listener.
    const first = await entry(senderSigner, 'first')
    assert.equal(await publish('content', await sealEnvelope(first.bytes, senderSigner)), first.cid.toString())
    await waitFor('the listener to hear the first valid entry', () => heardIds().includes(first.cid.toString()), WAIT_MS)

    // Framing-valid junk: frames the wire and the ID check take, with nothing valid inside.
    const junkEnvelope = encodeCbor({ entry: new TextEncoder().encode('not an entry'), publisher: 'nobody', sig: new Uint8Array(64) })
    const junkKeyRequest = encodeCbor({ t: 'getkey', keyHash: new Uint8Array(3) })
    // A correctly signed entry whose author is no account, in the sender's valid envelope.
    const stranger = signerOf(await generateKeyPair('Ed25519'))
    const unregistered = await entry(stranger, 'nobody registered me')
    const bad = [
      await publish('content', junkEnvelope),
      await publish('keyexchange', junkKeyRequest),
      await publish('content', await sealEnvelope(unregistered.bytes, senderSigner))
    ]
    // The junk is rejected (its sender pays for it); the unregistered author's entry is ignored:
    // well formed and signed, it is what a peer that does not know the registry forwards in good faith.
    await waitFor('the worker to judge all three', () => rejectedAtWorker() >= 2 && ignoredAtWorker() >= 1, WAIT_MS, () => JSON.stringify(worker.node.services.overlay.driverCounters()))
    // A valid entry after them: the worker's link to the listener is one ordered stream, so had
    // it forwarded any of the three, the listener would have it before this one.
    const second = await entry(senderSigner, 'second', first)
    await publish('content', await sealEnvelope(second.bytes, senderSigner))
    await waitFor('the listener to hear the second valid entry', () => heardIds().includes(second.cid.toString()), WAIT_MS)

    // A valid envelope (the sender signs it) around an entry whose author signature is bad:
    // it names the listener as author but the sender signed it. The envelope's signer is banned.
    const forged = await signEntry({ seq: 0, prev: null, action: 'set-profile', timestamp: 1, params: { name: 'not me' } }, { peerId: listener.peerId.toString(), sign: senderSigner.sign })
    bad.push(await publish('content', await sealEnvelope(forged.bytes, senderSigner)))
    await waitFor('the worker to reject the forgery', () => rejectedAtWorker() >= 3, WAIT_MS)
    await waitFor('the sender banned for it', () => worker.bans.isBanned(sender.peerId.toString()), WAIT_MS)
    // The worker's own broadcast after it, on the same ordered link to the listener.
    const witness = signerOf(await generateKeyPair('Ed25519'))
    await worker.accounts.add(witness.peerId, 'witness')
    const third = await entry(witness, 'third')
    worker.node.services.overlay.broadcast('content', third.cid.toString(), await sealEnvelope(third.bytes, witness))
    await waitFor('the listener to hear the worker\'s entry', () => heardIds().includes(third.cid.toString()), WAIT_MS)

    assert.deepEqual(heardIds(), [first.cid.toString(), second.cid.toString(), third.cid.toString()], 'the valid ones, and only those')
    for (const id of bad) assert.ok(!heardIds().includes(id))
    const listenerCounters = listener.services.overlay.topicCounters()
    assert.equal(listenerCounters.content?.received.gossip, 3, 'no bad payload even reached the listener\'s content topic')
    assert.equal(listenerCounters.keyexchange?.received.gossip, 0, 'nor its keyexchange topic')
    const counters = worker.node.services.overlay.driverCounters()
    assert.equal(counters.validations.reject, 3, 'the two junk payloads and the forgery')
    assert.equal(counters.validations.ignore, 1, 'the unregistered author\'s entry')
    assert.equal(counters.neighbours.offences['invalid-payload'], 3, 'the sender was penalised for each rejected one')
    const metrics = (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^pharos_overlay_neighbour_offences_total\{offence="invalid-payload"\} 3$/m)
    assert.match(metrics, /^pharos_log_entries_total\{result="rejected",reason="unregistered-author"\} 1$/m)
    assert.match(metrics, /^pharos_log_entries_total\{result="rejected",reason="bad-signature"\} 1$/m)
    assert.match(metrics, /^pharos_log_entries_total\{result="rejected",reason="bad-envelope"\} 1$/m)
  })
})
