/**
 * Hostile input on the signed-log paths (issue 17), on real workers (Postgres) and real
 * js-libp2p peers on loopback:
 * - a sync `heads` request from an unregistered peer starts no ancestor fetch and no dial
 *   back; a registered peer's flood of `known` heads is held at the per-peer and global caps;
 * - a peer serving a chain longer than PHAROS_ORPHAN_FETCH_MAX_ENTRIES gets no more than
 *   that many entries taken, however the fetches would cascade, and another author's chain
 *   fetched meanwhile is ingested before that backlog is done;
 * - sync `receipt` requests: none for an unregistered peer (no query, no signature), and a
 *   registered peer's repeated requests are held to PHAROS_SYNC_RECEIPTS_PER_MINUTE;
 * - per author: a rate limit on pushed entries and caps on stored entries, orphans and
 *   pending pins, each refused with its reason and nothing stored.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { CID } from 'multiformats/cid'
import {
  cborCid,
  decodeSyncResponse,
  encodeCbor,
  encodeSyncRequest,
  MAX_SYNC_FRAME_BYTES,
  sealEnvelope,
  signEntry,
  syncProtocolId
} from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer, EntryBlock, SyncRequest, SyncResponse } from '@pharos/protocol/log/index.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { authorOwner } from '../../src/pinning/log-entry-pins.ts'
import { request } from '@pharos/net/request-response.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { serveLog } from '../helpers/log-server.ts'
import { metricValue } from '../helpers/storage.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'
import { waitFor } from '@pharos/testing/wait.ts'

const NETWORK = 'pharos-hostile'
const TOKEN = 'hostile-test-admin-token-0123456789'
const WAIT_MS = 30_000

function signerOf (key: PrivateKey): Ed25519Signer {
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (message) => await key.sign(message) }
}

async function newSigner (): Promise<Ed25519Signer> {
  return signerOf(await generateKeyPair('Ed25519'))
}

/** A linear log of `length` entries from `start.seq`, linked to `start.prev`; `branch` tells a fork's entries apart. */
async function buildLog (signer: Ed25519Signer, length: number, start: { seq: number, prev: CID | null, branch?: string } = { seq: 0, prev: null }): Promise<EntryBlock[]> {
  const log: EntryBlock[] = []
  let prev = start.prev
  for (let seq = start.seq; seq < start.seq + length; seq++) {
    const block = await signEntry({ seq, prev, action: 'set-profile', timestamp: 1_700_000_000_000 + seq, params: { name: `v${seq}`, branch: start.branch ?? 'main' } }, signer)
    log.push(block)
    prev = block.cid
  }
  return log
}

async function randomCid (): Promise<CID> {
  return await cborCid(encodeCbor({ nonce: crypto.getRandomValues(new Uint8Array(16)) }))
}

async function startTestWorker (extra: Record<string, string>): Promise<{ worker: Worker, addr: Multiaddr }> {
  const database = await createTestDatabase('hostile')
  const worker = await startWorker(loadConfig(await inProcessEnv({ DATABASE_URL: database, PHAROS_NETWORK: NETWORK, PHAROS_ADMIN_TOKENS: TOKEN, PHAROS_PIN_POLL_INTERVAL_MS: '100', ...extra })), createLogger('silent'))
  const addr = worker.node.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/') && !a.toString().includes('/ws')) ?? assert.fail('no TCP address')
  return { worker, addr }
}

async function metrics (worker: Worker): Promise<string> {
  return (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
}

/** What a test peer's own sync handler saw: requests, and entry blocks it sent. */
describe('hostile input on sync and ancestor fetches', () => {
  let worker: Worker
  let addr: Multiaddr
  const peers: ClientPeer[] = []

  const peer = async (key?: PrivateKey): Promise<ClientPeer> => {
    const created = await createClientPeer({ listen: ['/ip4/127.0.0.1/tcp/0'], ...(key === undefined ? {} : { privateKey: key }) })
    peers.push(created)
    await created.dial(addr)
    return created
  }
  const ask = async (from: ClientPeer, message: SyncRequest): Promise<SyncResponse> => {
    const frame = await request(from, worker.node.peerId, syncProtocolId(NETWORK), encodeSyncRequest(message), { signal: AbortSignal.timeout(20_000), maxResponseBytes: MAX_SYNC_FRAME_BYTES })
    const decoded = decodeSyncResponse(frame)
    assert.ok(decoded.ok, 'a well-formed answer')
    return decoded.value
  }
  const register = async (id: string): Promise<void> => { await worker.accounts.add(id, 'test') }

  before(async () => {
    ({ worker, addr } = await startTestWorker({
      PHAROS_ORPHAN_FETCH_MAX_ENTRIES: '300',
      PHAROS_ORPHAN_FETCHES_PER_PEER: '2',
      PHAROS_ORPHAN_FETCHES_MAX: '3',
      PHAROS_SYNC_RECEIPTS_PER_MINUTE: '3'
    }))
  })

  after(async () => {
    await Promise.all(peers.map(async (p) => { await p.stop() }))
    await worker?.stop()
  })

  it('a heads request from an unregistered peer starts no fetch and no dial back', async () => {
    const stranger = await peer()
    const served = await serveLog(stranger, NETWORK, [])
    const author = await newSigner()
    await register(author.peerId)
    const known = await Promise.all(Array.from({ length: 50 }, async (_, seq) => ({ author: author.peerId, cid: await randomCid(), seq })))

    const answer = await ask(stranger, { t: 'heads', authors: [author.peerId], known })
    assert.deepEqual(answer, { t: 'heads', heads: [] }, 'the read itself is answered, as GET /v1/heads is')
    await worker.logService.fetcher.settled()
    assert.equal(served.asked.length, 0, 'the worker asked the stranger for nothing')
    assert.equal(worker.logService.fetcher.size, 0, 'no fetch started')
    assert.equal(worker.node.getConnections(stranger.peerId).filter((connection) => connection.direction === 'outbound').length, 0, 'and never dialled it')
    assert.equal(metricValue(await metrics(worker), 'pharos_log_orphan_fetches_refused_total{reason="unregistered-peer"}'), 50)
  })

  it('a registered peer\'s flood of known heads is held at the per-peer and global caps', async () => {
    let release: () => void = () => {}
    const released = new Promise<void>((resolve) => { release = resolve })
    const askers = await Promise.all([0, 1].map(async () => {
      const key = await generateKeyPair('Ed25519')
      await register(peerIdFromPrivateKey(key).toString())
      const asker = await peer(key)
      return { asker, served: await serveLog(asker, NETWORK, [], async () => { await released }) }
    }))
    const [one, two] = askers as [typeof askers[0], typeof askers[0]]
    const headsOf = async (count: number): Promise<Array<{ author: string, cid: CID, seq: number }>> => await Promise.all(Array.from({ length: count }, async () => {
      const author = await newSigner()
      await register(author.peerId)
      return { author: author.peerId, cid: await randomCid(), seq: 7 }
    }))
    const before = await metrics(worker)
    const blocked = (exposition: string, key: string): number => metricValue(exposition, `pharos_limit_blocked_total{limit="${key}"}`)

    const firstHeads = await headsOf(10)
    await ask(one.asker, { t: 'heads', authors: [], known: firstHeads })
    assert.equal(worker.logService.fetcher.size, 2, 'PHAROS_ORPHAN_FETCHES_PER_PEER=2 fetches for the first peer')
    await ask(two.asker, { t: 'heads', authors: [], known: await headsOf(10) })
    assert.equal(worker.logService.fetcher.size, 3, 'PHAROS_ORPHAN_FETCHES_MAX=3 over both')
    // The same authors again: one fetch per author at a time, whoever asks.
    await ask(two.asker, { t: 'heads', authors: [], known: firstHeads.slice(0, 2).map((head) => ({ ...head, seq: 8 })) })
    assert.equal(worker.logService.fetcher.size, 3)
    await waitFor('the fetches reach their peers', () => one.served.asked.length === 2 && two.served.asked.length === 1, WAIT_MS)

    const after = await metrics(worker)
    assert.equal(blocked(after, 'PHAROS_ORPHAN_FETCHES_PER_PEER') - blocked(before, 'PHAROS_ORPHAN_FETCHES_PER_PEER'), 8)
    assert.equal(blocked(after, 'PHAROS_ORPHAN_FETCHES_MAX') - blocked(before, 'PHAROS_ORPHAN_FETCHES_MAX'), 9)
    assert.equal(metricValue(after, 'pharos_log_orphan_fetches_refused_total{reason="author-busy"}'), 2)

    release()
    await worker.logService.fetcher.settled()
    assert.equal(worker.logService.fetcher.size, 0)
    assert.deepEqual([one.served.asked.length, two.served.asked.length], [2, 1], 'nothing more was asked')
  })

  it('takes at most PHAROS_ORPHAN_FETCH_MAX_ENTRIES of a longer chain, and another author\'s chain is ingested meanwhile', async () => {
    const longKey = await generateKeyPair('Ed25519')
    const long = signerOf(longKey)
    const shortKey = await generateKeyPair('Ed25519')
    const short = signerOf(shortKey)
    await register(long.peerId)
    await register(short.peerId)
    const longLog = await buildLog(long, 700)
    const shortLog = await buildLog(short, 3)
    const longPeer = await peer(longKey)
    const shortPeer = await peer(shortKey)
    // Both first answers go out together, so both backlogs are there at once.
    let arrived = 0
    let bothArrived: () => void = () => {}
    const together = new Promise<void>((resolve) => { bothArrived = resolve })
    const barrier = async (): Promise<void> => {
      if (++arrived === 2) bothArrived()
      await together
    }
    let longRequests = 0
    const longServed = await serveLog(longPeer, NETWORK, longLog, async () => { if (++longRequests === 1) await barrier() })
    const shortServed = await serveLog(shortPeer, NETWORK, shortLog, barrier)
    const fetchedBefore = metricValue(await metrics(worker), 'pharos_log_orphans_fetched_total')

    const longHead = longLog.at(-1) ?? assert.fail()
    const shortHead = shortLog.at(-1) ?? assert.fail()
    await ask(longPeer, { t: 'heads', authors: [], known: [{ author: long.peerId, cid: longHead.cid, seq: longHead.entry.seq }] })
    await ask(shortPeer, { t: 'heads', authors: [], known: [{ author: short.peerId, cid: shortHead.cid, seq: shortHead.entry.seq }] })
    await worker.logService.fetcher.settled()

    assert.ok(longServed.blocks <= 300, `the worker took ${longServed.blocks} entries of the 700-entry chain; the cap is 300`)
    const summary = (await worker.app.inject({ method: 'GET', url: `/v1/authors/${long.peerId}`, headers: { authorization: `Bearer ${TOKEN}` } })).json<{ entries: number, orphans: number }>()
    assert.deepEqual([summary.entries, summary.orphans], [300, 300], 'the newest 300 are stored, as orphans')
    assert.equal(metricValue(await metrics(worker), 'pharos_log_orphans_fetched_total') - fetchedBefore, 303)
    assert.equal(shortServed.blocks, 3)

    // Order, not time: the short chain was stored while the long backlog was still going in.
    const { rows } = await worker.db.query<{ author: string, last: Date }>(
      'SELECT author, max(received_at) AS last FROM log_entries WHERE author = ANY($1::text[]) GROUP BY author', [[long.peerId, short.peerId]])
    const last = new Map(rows.map((row) => [row.author, row.last.getTime()]))
    const longDoneAt = last.get(long.peerId) ?? assert.fail()
    const shortDoneAt = last.get(short.peerId) ?? assert.fail()
    assert.ok(shortDoneAt < longDoneAt, 'the short chain did not wait for the long backlog')
    const { rows: [behind] } = await worker.db.query<{ count: number }>('SELECT count(*)::int8 AS count FROM log_entries WHERE author = $1 AND received_at > $2', [long.peerId, new Date(shortDoneAt)])
    assert.ok((behind?.count ?? 0) > 0, 'entries of the long chain were stored after the short one')
  })

  it('issues no receipt to an unregistered peer, and holds a registered peer to its rate', async () => {
    const author = await newSigner()
    await register(author.peerId)
    const log = await buildLog(author, 3)
    for (const block of log) await worker.logService.ingest.ingestEntry(block.bytes, { from: author.peerId, fetched: true })
    const outcome = (exposition: string, name: string): number => metricValue(exposition, `pharos_sync_receipt_requests_total{outcome="${name}"}`)
    const start = await metrics(worker)

    const stranger = await peer()
    const refused = await ask(stranger, { t: 'receipt', author: author.peerId })
    assert.equal(refused.t, 'error')
    assert.equal(refused.t === 'error' && refused.code, 'bad-request')
    const afterStranger = await metrics(worker)
    assert.equal(outcome(afterStranger, 'unregistered') - outcome(start, 'unregistered'), 1)
    assert.equal(outcome(afterStranger, 'checked'), outcome(start, 'checked'), 'no query and no signature for it')

    const key = await generateKeyPair('Ed25519')
    await register(peerIdFromPrivateKey(key).toString())
    const member = await peer(key)
    const answers: string[] = []
    for (let i = 0; i < 5; i++) answers.push((await ask(member, { t: 'receipt', author: author.peerId })).t)
    assert.deepEqual(answers, ['receipt', 'receipt', 'receipt', 'error', 'error'], 'PHAROS_SYNC_RECEIPTS_PER_MINUTE=3')
    const end = await metrics(worker)
    assert.equal(outcome(end, 'checked') - outcome(start, 'checked'), 3)
    assert.equal(outcome(end, 'rate-limited') - outcome(start, 'rate-limited'), 2)
    assert.equal(metricValue(end, 'pharos_limit_blocked_total{limit="PHAROS_SYNC_RECEIPTS_PER_MINUTE"}') - metricValue(start, 'pharos_limit_blocked_total{limit="PHAROS_SYNC_RECEIPTS_PER_MINUTE"}'), 2)
  })
})

describe('per-author limits', () => {
  let worker: Worker
  /** The peer entries come from; never asked for anything. */
  let FROM: string

  before(async () => {
    FROM = (await newSigner()).peerId
    ;({ worker } = await startTestWorker({
      PHAROS_AUTHOR_ENTRIES_PER_MINUTE: '1',
      PHAROS_AUTHOR_ENTRY_BURST: '4',
      PHAROS_AUTHOR_MAX_ENTRIES: '6',
      PHAROS_AUTHOR_MAX_ORPHANS: '3',
      PHAROS_AUTHOR_MAX_PENDING_PINS: '5',
      // No pin job runs, so pins stay pending unless a test settles them.
      PHAROS_PIN_CONCURRENCY: '0'
    }))
  })
  after(async () => { await worker?.stop() })

  const blocked = async (key: string): Promise<number> => metricValue(await metrics(worker), `pharos_limit_blocked_total{limit="${key}"}`)
  const rejected = async (reason: string): Promise<number> => metricValue(await metrics(worker), `pharos_log_entries_total{result="rejected",reason="${reason}"}`)
  const stored = async (author: string): Promise<number> => {
    const { rows } = await worker.db.query<{ count: number }>('SELECT count(*)::int8 AS count FROM log_entries WHERE author = $1', [author])
    return rows[0]?.count ?? 0
  }
  /** Settles the author's pins, so the pending-pins cap stays out of a test about another limit. */
  const settlePins = async (author: string): Promise<void> => {
    await worker.db.query('UPDATE pins SET status = \'pinned\' WHERE owner = $1', [authorOwner(author)])
  }
  /** Nothing of a refused entry is stored: no row, no block. */
  const nothingOf = async (blocks: EntryBlock[]): Promise<void> => {
    for (const block of blocks) {
      assert.equal(await worker.logs.get(block.cid.bytes), undefined, `no row for seq ${block.entry.seq}`)
      assert.equal(await worker.storage.blockstore.has(block.cid), false, `no block for seq ${block.entry.seq}`)
    }
  }

  it('refuses pushed entries over the author\'s rate, and not the ones the worker fetched', async () => {
    const author = await newSigner()
    await worker.accounts.add(author.peerId, 'rate')
    const publisher = await newSigner()
    const log = await buildLog(author, 6)
    const results: string[] = []
    for (const block of log) {
      const result = await worker.logService.ingest.ingestEnvelope(await sealEnvelope(block.bytes, publisher), FROM)
      results.push(result.result === 'rejected' ? result.reason : result.result)
    }
    assert.deepEqual(results, ['accepted', 'accepted', 'accepted', 'accepted', 'rate-limited', 'rate-limited'], 'a burst of 4, then 1 a minute')
    await nothingOf(log.slice(4, 6))
    assert.equal(await blocked('PHAROS_AUTHOR_ENTRIES_PER_MINUTE'), 2)
    assert.equal(await rejected('rate-limited'), 2)
    // A fetched entry is bounded by the fetch limits, not by the rate.
    await settlePins(author.peerId)
    for (const block of log.slice(4, 6)) assert.equal((await worker.logService.ingest.ingestEntry(block.bytes, { from: FROM, fetched: true })).result, 'accepted')
  })

  it('refuses an entry past PHAROS_AUTHOR_MAX_ENTRIES, forks included, and stores nothing of it', async () => {
    const author = await newSigner()
    await worker.accounts.add(author.peerId, 'entries')
    const log = await buildLog(author, 5)
    const fork = await buildLog(author, 3, { seq: 3, prev: log[2]?.cid ?? null, branch: 'fork' })
    const results: string[] = []
    for (const block of [...log, ...fork]) {
      const result = await worker.logService.ingest.ingestEntry(block.bytes, { from: FROM, fetched: true })
      results.push(result.result === 'rejected' ? result.reason : result.result)
      await settlePins(author.peerId)
    }
    assert.deepEqual(results, ['accepted', 'accepted', 'accepted', 'accepted', 'accepted', 'accepted', 'too-many-entries', 'too-many-entries'])
    assert.equal(await stored(author.peerId), 6)
    await nothingOf(fork.slice(1))
    assert.equal(await blocked('PHAROS_AUTHOR_MAX_ENTRIES'), 2)
  })

  it('refuses an orphan past PHAROS_AUTHOR_MAX_ORPHANS, but still takes connected entries', async () => {
    const author = await newSigner()
    await worker.accounts.add(author.peerId, 'orphans')
    const log = await buildLog(author, 8)
    const results: string[] = []
    // Newest first: each is an orphan until genesis arrives.
    for (const block of log.slice(3).reverse()) {
      const result = await worker.logService.ingest.ingestEntry(block.bytes, { from: FROM, fetched: true })
      results.push(result.result === 'rejected' ? result.reason : result.result)
      await settlePins(author.peerId)
    }
    assert.deepEqual(results, ['accepted', 'accepted', 'accepted', 'too-many-orphans', 'too-many-orphans'])
    await nothingOf(log.slice(3, 5))
    assert.equal(await blocked('PHAROS_AUTHOR_MAX_ORPHANS'), 2)
    assert.equal((await worker.logService.ingest.ingestEntry(log[0]?.bytes ?? assert.fail(), { from: FROM, fetched: true })).result, 'accepted', 'genesis is not an orphan')
  })

  it('refuses entries while PHAROS_AUTHOR_MAX_PENDING_PINS of the author\'s pins are pending', async () => {
    const author = await newSigner()
    await worker.accounts.add(author.peerId, 'pending')
    const log = await buildLog(author, 6)
    const results: string[] = []
    for (const block of log) {
      const result = await worker.logService.ingest.ingestEntry(block.bytes, { from: FROM, fetched: true })
      results.push(result.result === 'rejected' ? result.reason : result.result)
    }
    assert.deepEqual(results, ['accepted', 'accepted', 'accepted', 'accepted', 'accepted', 'too-many-pending-pins'])
    await nothingOf(log.slice(5))
    assert.equal(await blocked('PHAROS_AUTHOR_MAX_PENDING_PINS'), 1)
    // Once pins settle, the author is taken again.
    await settlePins(author.peerId)
    assert.equal((await worker.logService.ingest.ingestEntry(log[5]?.bytes ?? assert.fail(), { from: FROM, fetched: true })).result, 'accepted')
  })
})
