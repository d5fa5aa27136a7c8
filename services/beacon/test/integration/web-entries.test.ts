/**
 * The web mirror's write path (issue 24, item 1): `POST /v1/entries` takes an entry signed by
 * its author with the blocks of its content in one CAR, and the worker ingests it as gossip:
 * the signature, a registered author, the limits, fork choice and the entry's pin, then a
 * broadcast on the overlay that a joined peer receives. Bad input gets a 4xx naming why and is
 * stored nowhere and broadcast nowhere; clients and authors over their rate get 429 with
 * Retry-After. A real worker on Postgres, a real libp2p overlay peer, and CARs written with
 * @ipld/car.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CarWriter } from '@ipld/car'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { openEnvelope, openPinReceipt, signEntry } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer, EntryBlock } from '@pharos/protocol/log/index.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createOverlayPeer } from '../helpers/overlay-peer.ts'
import type { OverlayPeer } from '../helpers/overlay-peer.ts'

const NETWORK = 'pharos-web-entries'
const TOKEN = 'web-entries-admin-token-0123456789'
const WAIT_MS = 20_000
const CAR = 'application/vnd.ipld.car'
const MAX_BODY = 96 * 1024
const MAX_BLOCKS = 8

interface Block { cid: CID, bytes: Uint8Array }

function signerOf (key: PrivateKey): Ed25519Signer {
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (message) => await key.sign(message) }
}

async function rawBlock (bytes: Uint8Array): Promise<Block> {
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

async function cborBlock (value: unknown): Promise<Block> {
  const bytes = dagCbor.encode(value)
  return { cid: CID.createV1(dagCbor.code, await sha256.digest(bytes)), bytes }
}

/** A post: a body block linking `attachments` raw blocks, and the entry linking the body. */
async function post (signer: Ed25519Signer, seq: number, prev: CID | null, attachmentSizes: number[]): Promise<{ entry: EntryBlock, content: Block[], marker: string }> {
  const marker = `web-entry-${randomBytes(6).toString('hex')}`
  const attachments = await Promise.all(attachmentSizes.map(async (size) => await rawBlock(new Uint8Array(randomBytes(size)))))
  const body = await cborBlock({ text: marker, attachments: attachments.map((block) => block.cid) })
  const entry = await signEntry({ seq, prev, action: 'append-feed-post', timestamp: 1_700_000_000_000 + seq, params: { content: body.cid } }, signer)
  return { entry, content: [body, ...attachments], marker }
}

async function carOf (roots: CID[], blocks: Block[]): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create(roots)
  const chunks: Uint8Array[] = []
  const collected = (async () => { for await (const chunk of out) chunks.push(chunk) })()
  for (const block of blocks) await writer.put(block)
  await writer.close()
  await collected
  return Buffer.concat(chunks)
}

describe('POST /v1/entries: the web mirror\'s write path', () => {
  let worker: Worker
  let addr: Multiaddr
  let listener: OverlayPeer
  /** What the listening peer received on the content topic: message ID → envelope. */
  const delivered = new Map<string, Uint8Array>()
  let author: Ed25519Signer
  /** The author's first entry (seq 0), which later entries of the log follow. */
  let firstEntry: CID | null = null
  let client = 0
  /** A fresh registered author. */
  const newAuthor = async (name: string): Promise<Ed25519Signer> => {
    const signer = signerOf(await generateKeyPair('Ed25519'))
    await worker.accounts.add(signer.peerId, name)
    return signer
  }

  /** Each call comes from its own client address, so the per-client limit is only met where a test means to. */
  const postCar = async (body: Uint8Array | string, options: { contentType?: string, from?: string } = {}) => {
    const response = await worker.app.inject({
      method: 'POST',
      url: '/v1/entries',
      headers: { 'content-type': options.contentType ?? CAR },
      payload: typeof body === 'string' ? body : Buffer.from(body),
      remoteAddress: options.from ?? `127.1.${Math.floor(++client / 250)}.${client % 250}`
    })
    return { status: response.statusCode, headers: response.headers, json: response.json<{ cid?: string, status?: string, receipt?: string, error?: { reason: string, details: string } }>() }
  }

  const stored = async (cid: CID): Promise<boolean> => (await worker.logs.has([cid.bytes])).size > 0

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({
      DATABASE_URL: await createTestDatabase('web_entries'),
      PHAROS_NETWORK: NETWORK,
      PHAROS_ADMIN_TOKENS: TOKEN,
      PHAROS_PIN_POLL_INTERVAL_MS: '100',
      PHAROS_ENTRIES_MAX_BODY_BYTES: String(MAX_BODY),
      PHAROS_ENTRIES_MAX_BLOCKS: String(MAX_BLOCKS),
      PHAROS_ENTRIES_PER_MINUTE_PER_IP: '12',
      PHAROS_ENTRIES_PER_MINUTE_PER_AUTHOR: '600'
    })), createLogger('silent'))
    addr = worker.node.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/') && !a.toString().includes('/ws')) ?? assert.fail('no TCP address')
    const listenerKey = await generateKeyPair('Ed25519')
    listener = await createOverlayPeer({ network: NETWORK, networkSize: 8 }, listenerKey)
    await listener.start()
    await worker.accounts.add(listener.peerId.toString(), 'listener')
    listener.services.overlay.onDeliver((delivery) => { if (delivery.topic === 'content') delivered.set(delivery.messageId, delivery.payload) })
    await listener.dial(addr)
    listener.services.overlay.join('content', worker.node.peerId)
    await waitFor('the listener and the worker neighbours on content', () =>
      (worker.node.services.overlay.snapshot().content?.active.includes(listener.peerId.toString()) ?? false) &&
      (listener.services.overlay.snapshot().content?.active.includes(worker.node.peerId.toString()) ?? false), WAIT_MS)
    author = signerOf(await generateKeyPair('Ed25519'))
    await worker.accounts.add(author.peerId, 'web-author')
  })

  after(async () => {
    await listener?.stop()
    await worker?.stop()
  })

  it('stores and pins a posted entry with its content, broadcasts it under the worker\'s envelope, and answers its receipt', async () => {
    const { entry, content } = await post(author, 0, null, [20_000, 30_000])
    firstEntry = entry.cid
    const posted = await postCar(await carOf([entry.cid], [entry, ...content]))
    assert.equal(posted.status, 202, JSON.stringify(posted.json))
    assert.deepEqual({ cid: posted.json.cid, status: posted.json.status }, { cid: entry.cid.toString(), status: 'accepted' })
    assert.equal(posted.headers.location, posted.json.receipt)

    // A peer on the overlay receives it by gossip, in an envelope the worker signed.
    await waitFor('the listener received the entry by gossip', () => delivered.has(entry.cid.toString()), WAIT_MS)
    const envelope = await openEnvelope(delivered.get(entry.cid.toString()) as Uint8Array)
    assert.ok(envelope.ok)
    assert.equal(envelope.value.publisher, worker.node.peerId.toString())
    assert.deepEqual(new Uint8Array(envelope.value.entry), new Uint8Array(entry.bytes))

    // The receipt once the entry and its content are pinned.
    let receipt: { cid: string, signer: string, receipt: string } | undefined
    await waitFor('the entry pinned and its receipt given', async () => {
      const answer = await worker.app.inject({ method: 'GET', url: posted.json.receipt ?? '' })
      if (answer.statusCode === 200) receipt = answer.json()
      else assert.equal(answer.statusCode, 202, answer.body)
      return receipt !== undefined
    }, WAIT_MS)
    assert.equal(receipt?.signer, worker.node.peerId.toString())
    const opened = await openPinReceipt(Buffer.from(receipt?.receipt ?? '', 'base64'), { signer: worker.node.peerId.toString() })
    assert.ok(opened.ok, JSON.stringify(opened))
    assert.equal(opened.value.scope, 'entry')
    assert.equal(opened.value.cid.toString(), entry.cid.toString())
    assert.equal(opened.value.blocks, 1 + content.length, 'the receipt counts the entry and its content blocks')

    // The gateway serves the content byte for byte.
    for (const block of content) {
      const served = await worker.app.inject({ method: 'GET', url: `/ipfs/${block.cid.toString()}?format=raw` })
      assert.equal(served.statusCode, 200)
      assert.deepEqual(new Uint8Array(served.rawPayload), block.bytes)
    }
  })

  it('is idempotent: the same entry again is one entry', async () => {
    const { entry, content } = await post(author, 1, firstEntry, [1000])
    const car = await carOf([entry.cid], [entry, ...content])
    const first = await postCar(car)
    assert.equal(first.json.status, 'accepted', JSON.stringify(first.json))
    const again = await postCar(car)
    assert.equal(again.status, 202)
    assert.deepEqual({ cid: again.json.cid, status: again.json.status }, { cid: entry.cid.toString(), status: 'duplicate' })
    const summary = await worker.app.inject({ method: 'GET', url: `/v1/authors/${author.peerId}`, headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(summary.json<{ entries: number }>().entries, 2, 'the author holds the two entries posted, each once')
  })

  it('refuses what is not a valid, self-contained entry of a registered author, stores none of it and broadcasts nothing', async () => {
    const forgerKey = await generateKeyPair('Ed25519')
    const stranger = signerOf(await generateKeyPair('Ed25519'))
    const victim = await newAuthor('victim')
    const forged = await post({ peerId: victim.peerId, sign: signerOf(forgerKey).sign }, 0, null, [2000])
    const unregistered = await post(stranger, 0, null, [2000])
    const good = await post(await newAuthor('careful'), 0, null, [2000, 3000])
    const other = await rawBlock(new Uint8Array(randomBytes(500)))
    const [body, attachment] = good.content as [Block, Block]
    const tampered = { cid: attachment.cid, bytes: new Uint8Array(attachment.bytes).fill(0, 0, 10) }
    const cases: Array<{ what: string, body: Uint8Array | string, contentType?: string, status: number, reason: string, content: Block[] }> = [
      { what: 'a forged author signature', body: await carOf([forged.entry.cid], [forged.entry, ...forged.content]), status: 400, reason: 'BAD_SIGNATURE', content: forged.content },
      { what: 'an unregistered author', body: await carOf([unregistered.entry.cid], [unregistered.entry, ...unregistered.content]), status: 403, reason: 'UNREGISTERED_AUTHOR', content: unregistered.content },
      { what: 'a linked block left out', body: await carOf([good.entry.cid], [good.entry, body]), status: 400, reason: 'BLOCK_MISSING', content: [body] },
      { what: 'a block the entry does not reach', body: await carOf([good.entry.cid], [good.entry, ...good.content, other]), status: 400, reason: 'UNREFERENCED_BLOCK', content: [...good.content, other] },
      { what: 'a block that does not hash to its CID', body: await carOf([good.entry.cid], [good.entry, body, tampered]), status: 400, reason: 'BLOCK_HASH_MISMATCH', content: [body] },
      { what: 'a root that is not the entry', body: await carOf([body.cid], [good.entry, ...good.content]), status: 400, reason: 'BAD_ENTRY', content: good.content },
      { what: 'two roots', body: await carOf([good.entry.cid, body.cid], [good.entry, ...good.content]), status: 400, reason: 'BAD_CAR', content: good.content },
      { what: 'bytes that are not a CAR', body: 'not a car at all', status: 400, reason: 'BAD_CAR', content: [] },
      { what: 'JSON instead of a CAR', body: '{"entry":"x"}', contentType: 'application/json', status: 415, reason: 'UNSUPPORTED_MEDIA_TYPE', content: [] }
    ]
    for (const refused of cases) {
      const answer = await postCar(refused.body, { contentType: refused.contentType ?? CAR })
      assert.equal(answer.status, refused.status, `${refused.what}: ${JSON.stringify(answer.json)}`)
      assert.equal(answer.json.error?.reason, refused.reason, `${refused.what}: ${JSON.stringify(answer.json)}`)
      assert.ok((answer.json.error?.details ?? '').length > 0, `${refused.what}: the answer says why`)
      for (const block of refused.content) assert.equal(await worker.storage.blockstore.has(block.cid), false, `${refused.what}: block ${block.cid.toString()} was stored`)
    }
    for (const entry of [forged.entry, unregistered.entry, good.entry]) assert.equal(await stored(entry.cid), false, `entry ${entry.cid.toString()} was stored`)
    const bans = await worker.app.inject({ method: 'GET', url: '/v1/bans', headers: { authorization: `Bearer ${TOKEN}` } })
    assert.deepEqual(bans.json<{ bans: unknown[] }>().bans, [], 'a forgery posted over HTTP bans nobody (the worker would be its envelope\'s signer)')

    // Then the good entry, whole: the listener receives it, and none of the refused ones before it.
    const accepted = await postCar(await carOf([good.entry.cid], [good.entry, ...good.content]))
    assert.equal(accepted.status, 202, JSON.stringify(accepted.json))
    await waitFor('the listener received the good entry', () => delivered.has(good.entry.cid.toString()), WAIT_MS)
    for (const entry of [forged.entry, unregistered.entry]) assert.equal(delivered.has(entry.cid.toString()), false, `${entry.cid.toString()} was broadcast`)
  })

  it('caps the body and the blocks a CAR may carry (413)', async () => {
    const big = await post(await newAuthor('big'), 0, null, [MAX_BODY])
    const tooBig = await postCar(await carOf([big.entry.cid], [big.entry, ...big.content]))
    assert.equal(tooBig.status, 413, JSON.stringify(tooBig.json))
    const many = await post(await newAuthor('many'), 0, null, Array.from({ length: MAX_BLOCKS }, () => 100))
    const tooMany = await postCar(await carOf([many.entry.cid], [many.entry, ...many.content]))
    assert.equal(tooMany.status, 413, JSON.stringify(tooMany.json))
    assert.equal(tooMany.json.error?.reason, 'TOO_MANY_BLOCKS')
    assert.match(tooMany.json.error?.details ?? '', /PHAROS_ENTRIES_MAX_BLOCKS/)
    for (const entry of [big.entry, many.entry]) assert.equal(await stored(entry.cid), false)
  })

  it('answers 429 with Retry-After to a client past PHAROS_ENTRIES_PER_MINUTE_PER_IP, before reading its body', async () => {
    const from = '127.9.9.9'
    // 12 a minute: a burst of 2.
    const statuses: number[] = []
    let retryAfter: string | undefined
    for (let i = 0; i < 3; i++) {
      const answer = await postCar('not a car', { from })
      statuses.push(answer.status)
      if (answer.status === 429) {
        retryAfter = String(answer.headers['retry-after'])
        assert.equal(answer.json.error?.reason, 'CLIENT_RATE_LIMITED')
      }
    }
    assert.deepEqual(statuses, [400, 400, 429], 'two bad requests are read and refused; the third is not read')
    assert.ok(Number(retryAfter) >= 1, `Retry-After: ${String(retryAfter)}`)
    assert.equal((await postCar('not a car', { from: '127.9.9.10' })).status, 400, 'another client is not held back')
  })
})

describe('POST /v1/entries: the per-author limit', () => {
  let worker: Worker

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({ PHAROS_NETWORK: NETWORK, PHAROS_ENTRIES_PER_MINUTE_PER_AUTHOR: '6' })), createLogger('silent'))
  })
  after(async () => { await worker?.stop() })

  it('answers 429 with Retry-After to an author past PHAROS_ENTRIES_PER_MINUTE_PER_AUTHOR, and stores nothing of the refused entry', async () => {
    const author = signerOf(await generateKeyPair('Ed25519'))
    await worker.accounts.add(author.peerId, 'fast-author')
    const answers = []
    const entries: EntryBlock[] = []
    for (let seq = 0; seq < 2; seq++) {
      const { entry, content } = await post(author, seq, entries.at(-1)?.cid ?? null, [100])
      entries.push(entry)
      const response = await worker.app.inject({ method: 'POST', url: '/v1/entries', headers: { 'content-type': CAR }, payload: Buffer.from(await carOf([entry.cid], [entry, ...content])), remoteAddress: `127.2.0.${seq + 1}` })
      answers.push({ status: response.statusCode, retryAfter: response.headers['retry-after'], reason: response.json<{ error?: { reason: string } }>().error?.reason })
    }
    assert.equal(answers[0]?.status, 202)
    assert.equal(answers[1]?.status, 429)
    assert.equal(answers[1]?.reason, 'AUTHOR_RATE_LIMITED')
    assert.ok(Number(answers[1]?.retryAfter) >= 1)
    assert.equal((await worker.logs.has([(entries[1] as EntryBlock).cid.bytes])).size, 0)
  })
})
