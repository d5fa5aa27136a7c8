/**
 * The peer as a key holder (issue 23, item 3), with real libp2p peers on loopback and no
 * beacon: it takes a pushed key only from the author who signed its rule and only when the
 * rule names it, keeps held keys in its data dir across a restart and still answers GETKEY
 * for them, and a reader refuses a key that does not hash to the post's `params.enckey`.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { KeyExchangeClient } from '@pharos/net/clients/key-exchange-client.ts'
import { RemoteError } from '@pharos/net/errors.ts'
import { serveRequests } from '@pharos/net/request-response.ts'
import { decodeKeyExchange, decodeKeyHashParam, encodeKeyExchange, keyExchangeProtocolId, keyHashOf, MAX_KEY_EXCHANGE_FRAME_BYTES, signAllowList } from '@pharos/protocol/log/index.ts'
import { KeyDeniedError } from '../src/errors.ts'
import { generateKey, signerFor } from '../src/keys.ts'
import type { PharosPeer } from '../src/pharos-peer.ts'
import { startPeer } from './helpers/peers.ts'
import { tempDir } from './helpers/worker.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('a peer holding content keys', () => {
  const peers: PharosPeer[] = []
  const start = async (init: Parameters<typeof startPeer>[0] = {}): Promise<PharosPeer> => {
    const peer = await startPeer(init)
    peers.push(peer)
    return peer
  }
  after(async () => { await Promise.all(peers.map(async (peer) => { await peer.stop() })) })

  it('takes a pushed key only from the author who signed its rule, and only if the rule names it', async () => {
    const authorKey = await generateKey()
    const [author, holder, forger] = await Promise.all([start({ privateKey: authorKey }), start(), start()])
    const key = new Uint8Array(32).fill(3)
    const keyHash = await keyHashOf(key)
    const rule = await signAllowList({ keyHash, version: 1, peers: [holder.peerId.toString()] }, signerFor(authorKey))
    await Promise.all([author, forger].map(async (peer) => await peer.libp2p.dial(holder.libp2p.getMultiaddrs())))
    // The author's rule, pushed by someone else: refused.
    const fromForger = new KeyExchangeClient(forger.libp2p, 'pharos', 10_000)
    await assert.rejects(fromForger.deposit(holder.peerId, key, rule), (err: unknown) => err instanceof RemoteError && err.code === 'bad-request' && /only from the author/.test(err.message))
    // A rule by the author that does not name the holder: refused, even from the author.
    const fromAuthor = new KeyExchangeClient(author.libp2p, 'pharos', 10_000)
    const notNamed = await signAllowList({ keyHash, version: 1, peers: [forger.peerId.toString()] }, signerFor(authorKey))
    await assert.rejects(fromAuthor.deposit(holder.peerId, key, notNamed), (err: unknown) => err instanceof RemoteError && /not on the rule's allow-list/.test(err.message))
    // The author's own push of a rule naming the holder: taken, and the holder answers GETKEY for it.
    await fromAuthor.deposit(holder.peerId, key, rule)
    assert.deepEqual(await fromAuthor.getKey(holder.peerId, keyHash), key)
    await assert.rejects(fromForger.getKey(holder.peerId, keyHash), (err: unknown) => err instanceof KeyDeniedError && err.code === 'not-entitled')
    // And publishPost pushes a private post's key to an allowed reader that is online.
    const published = await author.publishPost({ text: 'x', private: { allow: [holder.peerId.toString()], beacons: false } })
    assert.deepEqual(published.private?.pushedTo, [holder.peerId.toString()])
    assert.equal(published.private?.deposited, false)
  })

  it('keeps held keys in its data dir across a restart, and still hands them to allowed readers only', async () => {
    const dataDir = await tempDir()
    const holderKey = await generateKey()
    const [author, reader, stranger] = await Promise.all([start(), start(), start()])
    const holder = await start({ privateKey: holderKey, dataDir })
    await author.libp2p.dial(holder.libp2p.getMultiaddrs())
    const published = await author.publishPost({ text: 'kept', private: { allow: [holder.peerId.toString(), reader.peerId.toString()], beacons: false } })
    assert.ok(published.private?.pushedTo.includes(holder.peerId.toString()))
    const keyHash = decodeKeyHashParam(published.block.entry.params.enckey) ?? assert.fail('enckey')
    await holder.stop()
    const restarted = await start({ privateKey: holderKey, dataDir })
    const asReader = new KeyExchangeClient(reader.libp2p, 'pharos', 10_000)
    await reader.libp2p.dial(restarted.libp2p.getMultiaddrs())
    const key = await asReader.getKey(restarted.peerId, keyHash)
    assert.equal(key.length, 32)
    const asStranger = new KeyExchangeClient(stranger.libp2p, 'pharos', 10_000)
    await stranger.libp2p.dial(restarted.libp2p.getMultiaddrs())
    await assert.rejects(asStranger.getKey(restarted.peerId, keyHash), (err: unknown) => err instanceof KeyDeniedError && err.code === 'not-entitled')
  })

  it('refuses a key that does not hash to params.enckey: KeyDeniedError key-hash-mismatch', async () => {
    const [author, reader] = await Promise.all([start(), start()])
    const published = await author.publishPost({ text: 'secret', attachments: [{ name: 'a', bytes: utf8('bytes') }], private: { allow: [reader.peerId.toString()], beacons: false } })
    // The author's node now lies: it answers GETKEY with another key under the right hash.
    const protocol = keyExchangeProtocolId('pharos')
    await author.libp2p.unhandle(protocol)
    await serveRequests(author.libp2p, protocol, async (frame) => {
      const decoded = decodeKeyExchange(frame)
      if (!decoded.ok || decoded.value.t !== 'getkey') return undefined
      return encodeKeyExchange({ t: 'key', keyHash: decoded.value.keyHash, key: new Uint8Array(32).fill(1) })
    }, { maxRequestBytes: MAX_KEY_EXCHANGE_FRAME_BYTES, timeoutMs: 10_000, maxInboundStreams: 4 })
    await reader.libp2p.dial(author.libp2p.getMultiaddrs())
    await assert.rejects(reader.fetchPost(published.block), (err: unknown) => err instanceof KeyDeniedError && err.code === 'key-hash-mismatch')
  })
})
