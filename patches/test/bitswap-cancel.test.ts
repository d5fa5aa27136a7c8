/**
 * The patch to @helia/bitswap's want list (patches/@helia+bitswap+4.0.19.patch, docs/upstream.md
 * item 5): a want given up before the peer answered is cancelled at that peer. Stock sent no
 * cancel ever: the peer kept the want, answered it late into the void, counted the block as
 * sent and ignored every new want of it for its 5 s doNotResendBlockWindow, so asking again
 * got nothing. And a want is withdrawn only when nobody here still waits for it. Two real
 * nodes on loopback; the holder's read of the block is held so it answers exactly when the
 * test says.
 */
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import type { CID } from 'multiformats/cid'
import { collectBytes } from '@pharos/beacon/storage/pg-blockstore.ts'
import { createContentPeer, randomContent } from '../../services/beacon/test/helpers/storage.ts'
import type { ContentPeer } from '../../services/beacon/test/helpers/storage.ts'
import { waitFor } from '@pharos/testing/wait.ts'

/** Longer than the holder's 5 s do-not-resend window: stock answers a want made inside it never. */
const ANSWER_WITHIN_MS = 20_000

interface Pair {
  holder: ContentPeer
  fetcher: ContentPeer
  cid: CID
  bytes: Uint8Array
  /** Times the holder started reading the block to send it. */
  reads: () => number
  /** Lets the holder's reads through. */
  release: () => void
  /** Blocks the holder sent. */
  served: () => Promise<number>
}

describe('@helia/bitswap cancel patch', () => {
  const peers: ContentPeer[] = []
  const releases: Array<() => void> = []
  afterEach(async () => {
    for (const release of releases.splice(0)) release()
    for (const peer of peers.splice(0)) await peer.stop().catch(() => {})
  })

  async function pair (): Promise<Pair> {
    let reads = 0
    let release = (): void => {}
    const released = new Promise<void>((resolve) => { release = resolve })
    releases.push(release)
    const holder = await createContentPeer({ beforeRead: async () => { reads++; await released } })
    peers.push(holder)
    const fetcher = await createContentPeer()
    peers.push(fetcher)
    const bytes = randomContent(16 * 1024)
    const cid = await holder.addFile(bytes)
    await fetcher.node.dial(holder.node.getMultiaddrs())
    return {
      holder,
      fetcher,
      cid,
      bytes,
      reads: () => reads,
      release,
      served: async () => (await holder.metrics.bitswapBlocksServed.get()).values[0]?.value ?? 0
    }
  }

  /** A session that asks only the holder, as a pin asks its origins (storage-service.ts). */
  async function fromSession (peers: Pair, signal: AbortSignal): Promise<Uint8Array> {
    const session = peers.fetcher.helia.blockstore.createSession(peers.cid, { providers: [peers.holder.node.peerId.toCID()], signal })
    return await collectBytes(session.get(peers.cid, { signal }))
  }

  /** A want broadcast to every connected peer. */
  async function fromAnyone (peers: Pair, signal: AbortSignal): Promise<Uint8Array> {
    return await collectBytes(peers.fetcher.helia.blockstore.get(peers.cid, { signal }))
  }

  for (const [name, fetch] of [['a session want', fromSession], ['a broadcast want', fromAnyone]] as const) {
    it(`${name} given up before the holder answered is cancelled, so asking again at once is answered`, async () => {
      const peers = await pair()
      const abandon = new AbortController()
      const first = fetch(peers, abandon.signal)
      first.catch(() => {})
      await waitFor('the holder to start reading the block', () => peers.reads() === 1)
      abandon.abort()
      await assert.rejects(first)
      // The holder answers the abandoned want now; nothing on the fetcher waits for it.
      peers.release()
      await waitFor('the holder to send the block nobody waits for', async () => await peers.served() === 1)
      // Inside the holder's do-not-resend window.
      const again = await fetch(peers, AbortSignal.timeout(ANSWER_WITHIN_MS))
      assert.ok(Buffer.from(again).equals(peers.bytes), 'the block the holder stores')
    })

    it(`${name} one caller gives up is not withdrawn from another caller still waiting for it`, async () => {
      const peers = await pair()
      const abandon = new AbortController()
      const leaving = fetch(peers, abandon.signal)
      leaving.catch(() => {})
      const staying = fetch(peers, AbortSignal.timeout(ANSWER_WITHIN_MS))
      await waitFor('the holder to start reading the block', () => peers.reads() >= 1)
      abandon.abort()
      await assert.rejects(leaving)
      peers.release()
      assert.ok(Buffer.from(await staying).equals(peers.bytes), 'the block the holder stores')
    })
  }
})
