/**
 * The SDK against a real worker (its own process, embedded mode), for the beacon behaviour
 * the SDK relies on beyond the CLI round trip: the worker fetches an orphan's missing
 * ancestors from the peer that sent it (over the peer's sync responder), and key exchange
 * hands a deposited key to an allowed reader and denies everyone else with a reason.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { OVERLAY_TOPICS } from '@pharos/net/overlay/topics.ts'
import { KeyDeniedError } from '../src/errors.ts'
import { generateKey } from '../src/keys.ts'
import { createPharosPeer } from '../src/pharos-peer.ts'
import type { PharosPeer } from '../src/pharos-peer.ts'
import { SyncClient } from '@pharos/net/clients/sync-client.ts'
import { utf8 } from './helpers/peers.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { registerAccount, startWorker } from './helpers/worker.ts'
import type { WorkerProcess } from './helpers/worker.ts'

describe('the SDK against a worker', () => {
  let worker: WorkerProcess
  const peers: PharosPeer[] = []

  const registeredPeer = async (bootstrap: boolean): Promise<PharosPeer> => {
    const peer = await createPharosPeer({ privateKey: await generateKey(), bootstrap: bootstrap ? [worker.tcpAddr] : [] })
    peers.push(peer)
    await registerAccount(worker, peer.peerId.toString())
    return peer
  }

  before(async () => { worker = await startWorker() })
  after(async () => {
    await Promise.all(peers.map(async (peer) => { await peer.stop() }))
    await worker.stop()
  })

  it('lets the worker fetch the ancestors of an orphan from the peer that sent it', async () => {
    // Two entries published with no beacon around: the worker has never seen them.
    const author = await registeredPeer(false)
    await author.start()
    const offline = [await author.publishPost({ text: 'written offline', attachments: [{ name: 'a.txt', bytes: utf8('offline bytes') }] }), await author.publishPost({ text: 'also offline' })]
    // Then it joins the worker's overlay by hand and publishes a third: an orphan to the worker.
    const workerId = peerIdFromString(worker.peerId)
    await author.libp2p.dial(multiaddr(worker.tcpAddr))
    for (const topic of OVERLAY_TOPICS) author.libp2p.services.overlay.join(topic, workerId)
    await waitFor('an active neighbour', () => (author.libp2p.services.overlay.snapshot().content?.active.length ?? 0) > 0)
    const online = await author.publishPost({ text: 'online at last' })
    assert.equal(online.seq, 2)

    const client = new SyncClient(author.libp2p, 'pharos', 5000)
    const cids = [...offline, online].map((entry) => entry.cid)
    let statuses: string[] = []
    await waitFor('the worker to pin all three entries', async () => {
      statuses = await client.status(workerId, cids)
      return statuses.every((status) => status === 'pinned')
    }, 60_000)
    const [head] = await client.heads(workerId, [author.peerId.toString()], [])
    assert.ok(head !== undefined && head.cid.equals(online.cid))
    assert.equal(head.seq, 2)
    assert.equal(head.entries, 3)
  })

  it('hands a deposited key to an allowed reader only, and says why it refuses the others', async () => {
    const author = await registeredPeer(true)
    const reader = await registeredPeer(true)
    const stranger = await registeredPeer(true)
    await Promise.all([author.start(), reader.start(), stranger.start()])
    const key = new Uint8Array(32).map((_, i) => i + 1)
    const { keyHash } = await author.depositKey({ key, allow: [reader.peerId.toString()], version: 1 })
    assert.deepEqual(await reader.getKey(keyHash), key)
    await assert.rejects(stranger.getKey(keyHash), (err: unknown) => err instanceof KeyDeniedError && err.reason.length > 0)
  })
})
