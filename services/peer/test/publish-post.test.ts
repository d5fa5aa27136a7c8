/**
 * Post and entry construction on a peer with no beacon: attachments become UnixFS files
 * (CIDv1, raw leaves) in the peer's blockstore, the body a dag-cbor block linking them, and
 * each post the next signed entry of the peer's log — in order, even when published at once.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { decodeEntry, encodeCbor, FEED_POST_ACTION, verifyEntry } from '@pharos/protocol/log/index.ts'
import { PeerNotStartedError, PostFormatError } from '../src/errors.ts'
import { generateKey } from '../src/keys.ts'
import { createPharosPeer } from '../src/pharos-peer.ts'
import type { PharosPeer } from '../src/pharos-peer.ts'
import { decodePostBody, encodePostBody } from '../src/post.ts'
import { startPeer, utf8 } from './helpers/peers.ts'

async function blockOf (peer: PharosPeer, cid: CID): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const chunk of peer.helia.blockstore.get(cid, { offline: true })) chunks.push(chunk)
  return new Uint8Array(Buffer.concat(chunks))
}

describe('publishing a post', () => {
  let peer: PharosPeer
  before(async () => { peer = await startPeer() })
  after(async () => { await peer.stop() })

  it('stores attachments as UnixFS files with raw leaves, links them from a dag-cbor body, and signs the entry', async () => {
    const small = utf8('a small file')
    const large = new Uint8Array(2.5 * 1024 * 1024).map((_, i) => (i * 31) % 251)
    const published = await peer.publishPost({ text: 'first post', attachments: [{ name: 'note.txt', bytes: small }, { name: 'big.bin', bytes: large }] })
    assert.equal(published.seq, 0)

    const entry = await decodeEntry(await blockOf(peer, published.cid))
    assert.ok(entry.ok)
    assert.equal(entry.value.entry.author, peer.peerId.toString())
    assert.equal(entry.value.entry.action, FEED_POST_ACTION)
    assert.equal(entry.value.entry.prev, null)
    assert.deepEqual(await verifyEntry(entry.value.entry), { ok: true })
    assert.ok(CID.asCID(entry.value.entry.params.content)?.equals(published.content))

    const body = decodePostBody(await blockOf(peer, published.content), published.content)
    assert.equal(body.text, 'first post')
    assert.deepEqual(body.attachments.map(({ name, size }) => ({ name, size })), [{ name: 'note.txt', size: small.length }, { name: 'big.bin', size: large.length }])
    const [note, big] = body.attachments
    assert.ok(note !== undefined && big !== undefined)
    assert.equal(note.cid.version, 1)
    assert.equal(note.cid.code, raw.code, 'a one-chunk file is a single raw leaf')
    assert.deepEqual(await blockOf(peer, note.cid), small)
    assert.equal(big.cid.version, 1)
    assert.equal(big.cid.code, dagPb.code)
    const links = dagPb.decode(await blockOf(peer, big.cid)).Links
    assert.equal(links.length, 3, '1 MiB chunks')
    for (const link of links) {
      assert.equal(link.Hash.version, 1)
      assert.equal(link.Hash.code, raw.code, 'leaves are raw')
    }

    // Its own post reads back from its own blockstore.
    const post = await peer.fetchPost(published.block)
    assert.equal(post.text, 'first post')
    assert.deepEqual(post.attachments.map((attachment) => attachment.bytes), [small, large])
  })

  it('continues its log: each entry links the previous one, even for posts published at once', async () => {
    const head = peer.head() ?? assert.fail('no head after the first post')
    const published = await Promise.all([1, 2, 3].map(async (n) => await peer.publishPost({ text: `post ${n}` })))
    assert.deepEqual(published.map((entry) => entry.seq), [head.seq + 1, head.seq + 2, head.seq + 3])
    let prev = head.cid
    for (const entry of published) {
      assert.ok(entry.block.entry.prev?.equals(prev), `seq ${entry.seq} links the entry before it`)
      prev = entry.cid
    }
    assert.ok(peer.head()?.cid.equals(prev))
    const log = await peer.fetchLog(peer.peerId.toString())
    assert.deepEqual(log.map((block) => block.entry.seq), [3, 2, 1, 0])
  })

  it('refuses an attachment without a name, before anything is signed', async () => {
    const head = peer.head()
    await assert.rejects(peer.publishPost({ text: 'x', attachments: [{ name: '', bytes: utf8('x') }] }), PostFormatError)
    assert.deepEqual(peer.head(), head)
  })

  it('needs a started peer', async () => {
    const idle = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [] })
    await assert.rejects(idle.publishPost({ text: 'x' }), PeerNotStartedError)
  })
})

describe('post bodies', () => {
  const file = CID.parse('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')

  it('round-trip', async () => {
    const body = { text: 'hi', attachments: [{ name: 'a', size: 3, cid: file }] }
    const { bytes, cid } = await encodePostBody(body)
    assert.deepEqual(decodePostBody(bytes, cid), body)
  })

  it('refuse anything but { text, attachments: [{ name, size, cid }] }', () => {
    const bad: unknown[] = [
      { attachments: [] },
      { text: 1, attachments: [] },
      { text: 'x' },
      { text: 'x', attachments: [{ name: 'a', size: 1 }] },
      { text: 'x', attachments: [{ name: '', size: 1, cid: file }] },
      { text: 'x', attachments: [{ name: 'a', size: -1, cid: file }] },
      { text: 'x', attachments: [{ name: 'a', size: 1.5, cid: file }] },
      ['text']
    ]
    for (const value of bad) assert.throws(() => decodePostBody(encodeCbor(value), 'b'), PostFormatError, JSON.stringify(value))
    assert.throws(() => decodePostBody(utf8('not cbor at all'), 'b'), PostFormatError)
  })
})
