/**
 * Signed receipts and GET /v1/heads on a real worker (Postgres, libp2p on loopback) with the
 * peer SDK: receipts for what the worker holds verify and say exactly what it holds; a head
 * whose ancestry has a gap, an unknown author, a DAG not yet pinned get none; the pin status
 * carries one once pinned; /v1/heads answers as the sync protocol does, cursor paging and
 * refusals included.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import {
  decodeCanonical,
  decodeSyncResponse,
  encodeCbor,
  encodeSyncRequest,
  MAX_SYNC_FRAME_BYTES,
  signEntry,
  syncProtocolId
} from '@pharos/protocol/log/index.ts'
import type { EntryBlock, HeadInfo, SyncRequest, SyncResponse } from '@pharos/protocol/log/index.ts'
import { NotHeldError, ReceiptVerificationError } from '@pharos/peer/errors.ts'
import { signerFor } from '@pharos/peer/keys.ts'
import { createPharosPeer } from '@pharos/peer/pharos-peer.ts'
import type { PharosPeer, PublishedEntry } from '@pharos/peer/pharos-peer.ts'
import { verifyLogReceipt, verifyPinReceipt } from '@pharos/peer/receipts.ts'
import { request } from '@pharos/net/request-response.ts'
import { SyncClient } from '@pharos/net/clients/sync-client.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'
import { waitFor } from '@pharos/testing/wait.ts'

const NETWORK = 'pharos-receipts'
const TOKEN = 'receipts-test-admin-token-0123456789'
const WAIT_MS = 30_000

interface HeadJson { author: string, cid: string, seq: number, forks: number, entries: number }
const asJson = (head: HeadInfo): HeadJson => ({ author: head.author, cid: head.cid.toString(), seq: head.seq, forks: head.forks, entries: head.entries })

async function buildLog (signer: ReturnType<typeof signerFor>, length: number): Promise<EntryBlock[]> {
  const log: EntryBlock[] = []
  for (let seq = 0; seq < length; seq++) {
    log.push(await signEntry({ seq, prev: log.at(-1)?.cid ?? null, action: 'set-profile', timestamp: 1_700_000_000_000 + seq, params: { name: `v${seq}` } }, signer))
  }
  return log
}

const orphanKey = await generateKeyPair('Ed25519')

describe('receipts and GET /v1/heads', () => {
  let worker: Worker
  let addr: Multiaddr
  let peer: PharosPeer
  let sync: SyncClient
  let workerId: string
  const published: PublishedEntry[] = []
  /** A second author whose log reaches the worker out of order. */
  const orphanSigner = signerFor(orphanKey)
  const orphanAuthor = orphanSigner.peerId
  let orphanLog: EntryBlock[] = []

  const http = async <T>(url: string, auth = false): Promise<{ status: number, json: T }> => {
    const response = await worker.app.inject({ method: 'GET', url, headers: auth ? { authorization: `Bearer ${TOKEN}` } : {} })
    return { status: response.statusCode, json: response.json<T>() }
  }
  /** One raw sync request to the worker, answered as the wire carries it. */
  const syncRequest = async (message: SyncRequest): Promise<SyncResponse> => {
    const bytes = await request(peer.libp2p, peerIdFromString(workerId), syncProtocolId(NETWORK), encodeSyncRequest(message), { timeoutMs: 10_000, maxResponseBytes: MAX_SYNC_FRAME_BYTES, what: `sync ${message.t}` })
    const decoded = decodeSyncResponse(bytes)
    assert.ok(decoded.ok, 'the worker answers with a well-formed frame')
    return decoded.value
  }
  const ingest = async (blocks: EntryBlock[]): Promise<void> => {
    // Handed over by a peer that is not online: the worker cannot fetch what is missing.
    for (const block of blocks) await worker.logService.ingest.ingestEntry(block.bytes, { from: orphanAuthor })
  }

  before(async () => {
    const database = await createTestDatabase('receipts')
    worker = await startWorker(loadConfig(await inProcessEnv({ DATABASE_URL: database, PHAROS_NETWORK: NETWORK, PHAROS_ADMIN_TOKENS: TOKEN, PHAROS_PIN_POLL_INTERVAL_MS: '100' })), createLogger('silent'))
    workerId = worker.node.peerId.toString()
    addr = worker.node.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/') && !a.toString().includes('/ws')) ?? assert.fail('no TCP address')
    const key = await generateKeyPair('Ed25519')
    peer = await createPharosPeer({ privateKey: key, bootstrap: [addr.toString()], network: NETWORK, timeouts: { requestMs: 10_000 } })
    await worker.accounts.add(peer.peerId.toString(), 'publisher')
    await worker.accounts.add(orphanAuthor, 'orphan author')
    await peer.start()
    sync = new SyncClient(peer.libp2p, NETWORK, 10_000)
    orphanLog = await buildLog(orphanSigner, 4)
  })

  after(async () => {
    await peer?.stop()
    await worker?.stop()
  })

  it('gives the publisher pin receipts for its entries once pinned, and a log receipt for its head, all verified', async () => {
    published.push(await peer.publishPost({ text: 'first' }))
    published.push(await peer.publishPost({ text: 'second' }))
    const receipts = await peer.waitUntilHeld(published.map((entry) => entry.cid), { receipts: true, timeoutMs: WAIT_MS })
    assert.equal(receipts.length, 2)
    for (const [i, receipt] of receipts.entries()) {
      const entry = published[i] ?? assert.fail()
      assert.equal(receipt.signer, workerId)
      assert.equal(receipt.cid.toString(), entry.cid.toString())
      // An entry's pin holds the entry block and its post body (no attachments here), never
      // `prev`: the receipt says so, and is not one for the whole DAG under the entry.
      assert.equal(receipt.scope, 'entry')
      const bodySize = (await worker.storage.blockstore.getBytes(entry.content)).length
      assert.deepEqual([receipt.blocks, receipt.bytes], [2, entry.block.bytes.length + bodySize])
      await assert.rejects(verifyPinReceipt(receipt.statement, { signer: workerId, cid: entry.cid, scope: 'dag' }), (err: unknown) => err instanceof ReceiptVerificationError && err.code === 'wrong-scope')
    }
    const second = published[1] ?? assert.fail()
    await assert.rejects(peer.receipt(second.cid, { scope: 'dag' }), (err: unknown) => err instanceof ReceiptVerificationError && err.code === 'wrong-scope')

    const self = peer.peerId.toString()
    const head = await peer.receipt(self)
    assert.deepEqual([head.kind, head.signer, head.author, head.head.toString(), head.seq], ['log-receipt', workerId, self, published[1]?.cid.toString(), 1])
    const lower = await peer.receipt(self, { head: published[0]?.cid })
    assert.deepEqual([lower.head.toString(), lower.seq], [published[0]?.cid.toString(), 0])
    // What the SDK returned is the signed statement itself: anyone can check it again.
    assert.equal((await verifyLogReceipt(head.statement, { signer: workerId, author: self })).seq, 1)
  })

  it('a tampered receipt fails verification', async () => {
    const receipt = await peer.receipt(peer.peerId.toString())
    const decoded = decodeCanonical(receipt.statement)
    assert.ok(decoded.ok)
    const statement = decoded.value as { body: Record<string, unknown> }
    // Claims one entry more than the worker signed for.
    const tampered = encodeCbor({ ...statement, body: { ...statement.body, seq: receipt.seq + 1 } })
    await assert.rejects(verifyLogReceipt(tampered, { signer: workerId }), (err: unknown) => err instanceof ReceiptVerificationError && err.code === 'bad-statement-signature')
    await assert.rejects(verifyLogReceipt(receipt.statement, { signer: orphanAuthor }), (err: unknown) => err instanceof ReceiptVerificationError && err.code === 'bad-signer')
  })

  it('never issues a receipt for a head it does not hold in full: an orphan, an unknown author, a missing block', async () => {
    const notHeld = (reason: string) => (err: unknown): boolean => err instanceof NotHeldError && err.reason === reason
    const [genesis, second, third, fourth] = orphanLog
    assert.ok(genesis !== undefined && second !== undefined && third !== undefined && fourth !== undefined)
    await ingest([third, fourth])
    assert.deepEqual(await sync.status(peerIdFromString(workerId), [third.cid, fourth.cid]).then((statuses) => statuses.every((status) => status !== 'unknown')), true, 'the orphans are stored')
    await assert.rejects(peer.receipt(orphanAuthor), notHeld('unknown'), 'no connected head, so no best head to vouch for')
    await assert.rejects(peer.receipt(orphanAuthor, { head: fourth.cid }), notHeld('incomplete'), 'the stored head has a gap below it')
    await assert.rejects(peer.receipt(orphanAuthor, { head: published[0]?.cid }), notHeld('unknown'), 'another author\'s entry')
    const stranger = signerFor(await generateKeyPair('Ed25519')).peerId
    await assert.rejects(peer.receipt(stranger), notHeld('unknown'))

    await ingest([genesis, second])
    const whole = await peer.receipt(orphanAuthor)
    assert.deepEqual([whole.head.toString(), whole.seq, whole.signer], [fourth.cid.toString(), 3, workerId])

    // An entry row whose block is gone (its pin lost, GC took it) is not held either.
    await waitFor('the orphan author\'s entries pinned', async () => (await sync.status(peerIdFromString(workerId), orphanLog.map((block) => block.cid))).every((status) => status === 'pinned'), WAIT_MS)
    const multihash = second.cid.multihash.bytes
    await worker.db.query('DELETE FROM pin_blocks WHERE multihash = $1', [multihash])
    await worker.db.query('DELETE FROM blocks WHERE multihash = $1', [multihash])
    await assert.rejects(peer.receipt(orphanAuthor), notHeld('incomplete'))
    await assert.rejects(peer.receipt(orphanAuthor, { head: second.cid }), notHeld('incomplete'))
    assert.equal((await peer.receipt(orphanAuthor, { head: genesis.cid })).seq, 0, 'the genesis entry alone is still held')
  })

  it('puts a pin receipt in GET /pins/{requestid} once pinned, and none before', async () => {
    const bytes = new TextEncoder().encode(`a block only the test has, ${Date.now()}`)
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    const created = await worker.app.inject({ method: 'POST', url: '/pins', headers: { authorization: `Bearer ${TOKEN}` }, payload: { cid: cid.toString() } })
    assert.equal(created.statusCode, 202)
    const id = created.json<{ requestid: string }>().requestid
    type Status = { status: string, delegates: string[], info?: Record<string, string> }
    const before = await http<Status>(`/pins/${id}`, true)
    assert.notEqual(before.json.status, 'pinned', 'nobody can provide the block yet')
    assert.equal(before.json.info?.receipt, undefined)
    await assert.rejects(peer.receipt(cid), (err: unknown) => err instanceof NotHeldError && err.reason === 'not-pinned')

    await worker.storage.blockstore.put(cid, bytes)
    let pinned: Status | undefined
    await waitFor('the pin to settle', async () => {
      pinned = (await http<Status>(`/pins/${id}`, true)).json
      return pinned.status === 'pinned'
    }, WAIT_MS)
    const receiptText = pinned?.info?.receipt ?? assert.fail('a pinned status carries a receipt')
    // The signer to expect is the worker named in the delegates.
    const delegate = pinned?.delegates[0]?.split('/p2p/').at(-1)
    assert.equal(delegate, workerId)
    const receipt = await verifyPinReceipt(receiptText, { signer: delegate, cid, scope: 'dag' })
    assert.deepEqual([receipt.cid.toString(), receipt.scope, receipt.blocks, receipt.bytes], [cid.toString(), 'dag', 1, bytes.length])
    await assert.rejects(verifyPinReceipt(receiptText, { signer: delegate, cid: published[0]?.cid ?? assert.fail() }), (err: unknown) => err instanceof ReceiptVerificationError && err.code === 'wrong-subject')
    // Over sync, the same DAG gets the same claim.
    const overSync = await peer.receipt(cid)
    assert.deepEqual([overSync.scope, overSync.blocks, overSync.bytes], ['dag', 1, bytes.length])
    // Lists stay cheap: no receipts there.
    const list = await http<{ results: Status[] }>('/pins?status=pinned', true)
    assert.ok(list.json.results.length > 0 && list.json.results.every((status) => status.info?.receipt === undefined))
  })

  it('vouches for the whole DAG under an entry only when a whole-DAG pin of it is pinned', async () => {
    const entry = published[1] ?? assert.fail('the first test published two entries')
    assert.equal((await peer.receipt(entry.cid)).scope, 'entry')
    // A client pins the entry's whole DAG (its content and, through prev, its ancestors).
    const created = await worker.app.inject({ method: 'POST', url: '/pins', headers: { authorization: `Bearer ${TOKEN}` }, payload: { cid: entry.cid.toString() } })
    assert.equal(created.statusCode, 202, created.body)
    const id = created.json<{ requestid: string }>().requestid
    await waitFor('the whole-DAG pin to settle', async () => (await http<{ status: string }>(`/pins/${id}`, true)).json.status === 'pinned', WAIT_MS)
    const whole = await peer.receipt(entry.cid, { scope: 'dag' })
    // Two entries and two post bodies: prev included.
    assert.deepEqual([whole.scope, whole.blocks], ['dag', 4])
  })

  it('GET /v1/heads?authors= answers as the sync protocol\'s heads request, without a token', async () => {
    const stranger = signerFor(await generateKeyPair('Ed25519')).peerId
    const authors = [peer.peerId.toString(), orphanAuthor, stranger]
    const overHttp = await http<{ heads: HeadJson[] }>(`/v1/heads?authors=${authors.join(',')}`)
    assert.equal(overHttp.status, 200)
    const overSync = await syncRequest({ t: 'heads', authors, known: [] })
    assert.ok(overSync.t === 'heads')
    assert.deepEqual(overHttp.json, { heads: overSync.heads.map(asJson) })
    assert.deepEqual(overHttp.json.heads.map((head) => head.author).sort(), [peer.peerId.toString(), orphanAuthor].sort(), 'the unknown author is left out')
    // The exploded form lists the same authors.
    assert.deepEqual((await http(`/v1/heads?${authors.map((author) => `authors=${author}`).join('&')}`)).json, overHttp.json)
  })

  it('GET /v1/heads?since= pages through the changes feed as the sync protocol does', async () => {
    // The feed hands a change out once every older transaction on the server has ended.
    await waitFor('both authors in the changes feed', async () => (await http<{ heads: HeadJson[] }>('/v1/heads?since=0')).json.heads.length >= 2, WAIT_MS)
    let cursor = '0'
    const pages: HeadJson[][] = []
    for (;;) {
      const overHttp = await http<{ heads: HeadJson[], cursor: string }>(`/v1/heads?since=${cursor}&limit=1`)
      assert.equal(overHttp.status, 200)
      const overSync = await syncRequest({ t: 'changes', cursor, limit: 1 })
      assert.ok(overSync.t === 'changes')
      assert.deepEqual(overHttp.json, { heads: overSync.heads.map(asJson), cursor: overSync.cursor })
      if (overHttp.json.heads.length === 0) {
        assert.equal(overHttp.json.cursor, cursor, 'an empty page keeps the cursor')
        break
      }
      assert.notEqual(overHttp.json.cursor, cursor)
      pages.push(overHttp.json.heads)
      cursor = overHttp.json.cursor
    }
    assert.deepEqual(pages.flat().map((head) => head.author).sort(), [peer.peerId.toString(), orphanAuthor].sort())
  })

  it('refuses bad parameters with 400 and the reason, as the sync protocol refuses them', async () => {
    const badRequest = async (url: string): Promise<string> => {
      const response = await http<{ error: { reason: string, details?: string } }>(url)
      assert.equal(response.status, 400, url)
      assert.equal(response.json.error.reason, 'BAD_REQUEST', url)
      return response.json.error.details ?? ''
    }
    // A cursor of the wire's shape that this store never handed out: the responder's own error.
    const foreignCursor = '1.12345678901234567890'
    const details = await badRequest(`/v1/heads?since=${foreignCursor}`)
    const overSync = await syncRequest({ t: 'changes', cursor: foreignCursor, limit: 1 })
    assert.deepEqual(overSync, { t: 'error', code: 'bad-request', message: details })

    const tooMany = Array.from({ length: 1025 }, () => orphanAuthor).join(',')
    for (const url of [
      '/v1/heads',
      `/v1/heads?authors=${orphanAuthor}&since=0`,
      `/v1/heads?authors=${orphanAuthor}&limit=5`,
      '/v1/heads?authors=not-a-peer-id',
      `/v1/heads?authors=${tooMany}`,
      '/v1/heads?since=abc',
      '/v1/heads?since=-1',
      '/v1/heads?since=0&limit=0',
      '/v1/heads?since=0&limit=1025',
      '/v1/heads?since=0&limit=two'
    ]) assert.ok((await badRequest(url)).length > 0, `${url.slice(0, 80)} says why`)
  })
})
