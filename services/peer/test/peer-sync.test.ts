/**
 * Two (and three) SDK peers on loopback TCP, no beacon: one joins the overlay through the
 * other, syncs and verifies its log, fetches a post over Bitswap byte for byte, hears new
 * entries on the content topic, and the other's sync responder answers every request kind
 * the way a beacon relies on (entries walking back along prev, heads, status, errors).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { decodeSyncResponse, encodeCbor, MAX_SYNC_FRAME_BYTES, syncProtocolId } from '@pharos/protocol/log/index.ts'
import type { EntryBlock } from '@pharos/protocol/log/index.ts'
import { RemoteError } from '../src/errors.ts'
import type { PharosPeer, PublishedEntry } from '../src/pharos-peer.ts'
import { request } from '@pharos/net/request-response.ts'
import { SyncClient } from '@pharos/net/clients/sync-client.ts'
import { addressOf, startPeer, utf8 } from './helpers/peers.ts'
import { waitFor } from '@pharos/testing/wait.ts'

const NETWORK = 'pharos'
const UNKNOWN = CID.parse('bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')

describe('peer to peer sync', () => {
  let alice: PharosPeer
  let bob: PharosPeer
  const extra: PharosPeer[] = []
  const published: PublishedEntry[] = []
  const photo = new Uint8Array(2.5 * 1024 * 1024).map((_, i) => (i * 7 + 3) % 256)
  const note = utf8('plain text attachment')

  before(async () => {
    alice = await startPeer()
    published.push(await alice.publishPost({ text: 'hello', attachments: [{ name: 'note.txt', bytes: note }] }))
    published.push(await alice.publishPost({ text: 'a photo', attachments: [{ name: 'photo.bin', bytes: photo }, { name: 'note.txt', bytes: note }] }))
    published.push(await alice.publishPost({ text: 'no attachments' }))
    bob = await startPeer({ bootstrap: [addressOf(alice)] })
  })

  after(async () => {
    await Promise.all([bob, alice, ...extra].map(async (peer) => { await peer.stop() }))
  })

  it('joins the overlay through its bootstrap peer', () => {
    assert.deepEqual(bob.libp2p.services.overlay.snapshot().content?.active, [alice.peerId.toString()])
  })

  it('syncs a followed author: fetches the missing entries and verifies the whole log', async () => {
    const author = alice.peerId.toString()
    bob.follow([author])
    const report = await bob.sync()
    assert.deepEqual(report, { fetched: 3, updated: [author], failed: [] })
    assert.deepEqual(await bob.sync(), { fetched: 0, updated: [], failed: [] }, 'a second sync finds nothing new')
    const log = await bob.fetchLog(author)
    assert.deepEqual(log.map((block) => block.cid.toString()), published.map((entry) => entry.cid.toString()).reverse())
  })

  it('fetches a post body and its attachments over Bitswap, byte for byte', async () => {
    const [, second] = published
    assert.ok(second)
    const post = await bob.fetchPost(second.block)
    assert.equal(post.text, 'a photo')
    assert.deepEqual(post.attachments.map(({ name }) => name), ['photo.bin', 'note.txt'])
    assert.deepEqual(post.attachments[0]?.bytes, photo)
    assert.deepEqual(post.attachments[1]?.bytes, note)
  })

  it('hears a new entry of a followed author on the content topic', async () => {
    const heard: EntryBlock[] = []
    const off = bob.onEntry((block) => { heard.push(block) })
    const next = await alice.publishPost({ text: 'gossip' })
    published.push(next)
    await waitFor('bob to hear the entry', () => heard.some((block) => block.cid.equals(next.cid)))
    off()
    assert.ok(bob.head(alice.peerId.toString())?.cid.equals(next.cid))
  })

  it("answers entries requests from its blockstore, walking back along prev", async () => {
    const client = new SyncClient(bob.libp2p, NETWORK, 5000)
    const head = published.at(-1) ?? assert.fail()
    // Compared as plain Uint8Arrays: dag-cbor hands out Buffers for some blocks in Node.
    const plain = (blocks: Array<Uint8Array | undefined>): Uint8Array[] => blocks.map((bytes) => new Uint8Array(bytes ?? []))
    const two = await client.entries(alice.peerId, head.cid, 2)
    assert.deepEqual(plain(two), plain([head.block.bytes, published.at(-2)?.block.bytes]))
    const all = await client.entries(alice.peerId, head.cid, 256)
    assert.deepEqual(plain(all), plain(published.map((entry) => entry.block.bytes).reverse()), 'down to genesis, and no further')
    assert.deepEqual(await client.entries(alice.peerId, UNKNOWN, 10), [], 'nothing for an entry it does not hold')
  })

  it('answers heads for its own log (and the authors it holds), and status stored/unknown', async () => {
    const client = new SyncClient(bob.libp2p, NETWORK, 5000)
    const self = alice.peerId.toString()
    const heads = await client.heads(alice.peerId, [self, bob.peerId.toString()], [])
    const head = published.at(-1) ?? assert.fail()
    assert.deepEqual(heads.map(({ author, cid, seq, forks, entries }) => ({ author, cid: cid.toString(), seq, forks, entries })),
      [{ author: self, cid: head.cid.toString(), seq: head.seq, forks: 0, entries: published.length }])
    const statuses = await client.status(alice.peerId, [head.cid, published[0]?.content ?? assert.fail(), UNKNOWN])
    assert.deepEqual(statuses, ['stored', 'stored', 'unknown'])
  })

  it('answers changes and malformed requests with an error frame, and stays up', async () => {
    const ask = async (frame: Uint8Array): Promise<unknown> => {
      const bytes = await request(bob.libp2p, alice.peerId, syncProtocolId(NETWORK), frame, { timeoutMs: 5000, maxResponseBytes: MAX_SYNC_FRAME_BYTES, what: 'test' })
      const decoded = decodeSyncResponse(bytes)
      assert.ok(decoded.ok)
      return decoded.value
    }
    assert.deepEqual(await ask(encodeCbor({ t: 'changes', cursor: '0', limit: 10 })), { t: 'error', code: 'bad-request', message: 'a peer does not serve changes; ask a beacon' })
    const malformed = await ask(utf8('\u00ff not cbor'))
    assert.equal((malformed as { t: string, code: string }).t, 'error')
    assert.equal((malformed as { t: string, code: string }).code, 'bad-request')
    assert.equal((await ask(encodeCbor({ t: 'entries', from: UNKNOWN, limit: 0 })) as { code: string }).code, 'bad-request', 'limit 0 is out of bounds')
    // The typed client turns the error frame into a named error.
    await assert.rejects(new SyncClient(bob.libp2p, NETWORK, 5000).heads(alice.peerId, ['not-a-peer-id'], []), (err: unknown) => err instanceof RemoteError && err.code === 'bad-request')
    assert.equal((await new SyncClient(bob.libp2p, NETWORK, 5000).status(alice.peerId, [UNKNOWN]))[0], 'unknown', 'still answering')
  })

  it('asks the sync topic when it follows an author, and a peer that holds the log answers (no beacon)', async () => {
    const dave = await startPeer({ bootstrap: [addressOf(alice)] })
    extra.push(dave)
    const author = alice.peerId.toString()
    const heard: EntryBlock[] = []
    dave.onEntry((block) => { heard.push(block) })
    // No sync(): follow() broadcasts a HEAD request; Alice, the author, holds her log and is
    // linked to Dave, so she announces her head to him and he fetches it.
    dave.follow([author])
    await waitFor('dave to fetch the log alice announced', () => heard.length === published.length, 20_000)
    assert.deepEqual(heard.map((block) => block.cid.toString()), published.map((entry) => entry.cid.toString()), 'oldest first')
  })

  it('fetches what an asker announces as known for a followed author (the sync exchange both ways)', async () => {
    const carol = await startPeer({ bootstrap: [addressOf(alice)] })
    extra.push(carol)
    const author = alice.peerId.toString()
    const heard: EntryBlock[] = []
    carol.onEntry((block) => { heard.push(block) })
    carol.follow([author])
    const head = published.at(-1) ?? assert.fail()
    // Alice tells Carol her head, as a beacon's or peer's heads request would.
    await new SyncClient(alice.libp2p, NETWORK, 5000).heads(peerIdFromString(carol.peerId.toString()), [author], [{ author, cid: head.cid, seq: head.seq }])
    await waitFor('carol to fetch the announced log', () => heard.length === published.length)
    assert.deepEqual(heard.map((block) => block.entry.seq), published.map((entry) => entry.seq), 'oldest first')
  })
})
