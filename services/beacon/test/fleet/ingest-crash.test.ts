/**
 * Batched ingest survives a worker killed mid-batch (issue 21): a real worker process takes
 * a burst of gossiped entries from a real libp2p peer, is killed with SIGKILL while batches
 * are being stored, and is started again on the same database. Every entry the worker had
 * acknowledged (shown as stored by its API) is there after the restart, with its block, and
 * no batch is half applied (every author's counts equal a recount of its entries).
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { CID } from 'multiformats/cid'
import pg from 'pg'
import { sealEnvelope, signEntry } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer, EntryBlock } from '@pharos/protocol/log/index.ts'
import { createTestDatabase, testFleet } from '@pharos/testing/databases.ts'
import { adminGet, tcpAddress } from '../helpers/fleet-processes.ts'
import { createOverlayPeer } from '../helpers/overlay-peer.ts'
import type { OverlayPeer } from '../helpers/overlay-peer.ts'
import { sleep, waitFor } from '@pharos/testing/wait.ts'
import { spawnWorker, stopWorker, workerEnv } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'

const ADMIN = 'ingest-crash-admin-token-0123456789'
const NETWORK = 'pharos-ingest-crash'
const AUTHORS = 8
const ENTRIES_PER_AUTHOR = 300
/** Broadcasts ahead of what the worker has stored: under the overlay's per-peer send queue of 1,024 frames (overflow disconnects). */
const WINDOW = 512

const signerOf = (key: PrivateKey): Ed25519Signer => ({ peerId: peerIdFromPrivateKey(key).toString(), sign: async (message) => await key.sign(message) })

interface EntryPage { entries: Array<{ cid: string, seq: number }>, next?: string }

/** Every entry of `author` the worker's API shows as stored, by CID. */
async function storedEntries (worker: WorkerProcess, author: string): Promise<Set<string>> {
  const cids = new Set<string>()
  let cursor: string | undefined
  for (;;) {
    const { status, body } = await adminGet<EntryPage>(worker, `/v1/authors/${author}/entries?limit=100${cursor === undefined ? '' : `&cursor=${cursor}`}`, ADMIN)
    if (status === 404) return cids
    assert.equal(status, 200)
    for (const entry of body.entries) cids.add(entry.cid)
    if (body.next === undefined) return cids
    cursor = body.next
  }
}

describe('a worker killed mid-batch', { timeout: 240_000 }, () => {
  const workers: WorkerProcess[] = []
  let peer: OverlayPeer | undefined
  let db: pg.Pool | undefined

  after(async () => {
    await peer?.stop()
    await Promise.allSettled(workers.map(async (worker) => { await stopWorker(worker) }))
    await db?.end()
  })

  it('loses no entry it had acknowledged, and leaves no batch half applied', async () => {
    const databaseUrl = await createTestDatabase('ingest_crash')
    const env = await workerEnv(testFleet()({
      DATABASE_URL: databaseUrl,
      PHAROS_NETWORK: NETWORK,
      PHAROS_ADMIN_TOKENS: ADMIN,
      PHAROS_ACCOUNTS_REFRESH_MS: '1000',
      // One publisher pushes whole logs at once: far past a deployment's per-author and
      // per-neighbour rates, which are not what this test is about.
      PHAROS_AUTHOR_ENTRY_BURST: '1000000',
      PHAROS_AUTHOR_ENTRIES_PER_MINUTE: '6000000',
      PHAROS_AUTHOR_MAX_PENDING_PINS: '1000000',
      PHAROS_OVERLAY_DATA_FRAMES_PER_SECOND: '1000000',
      PHAROS_OVERLAY_DATA_FRAMES_BURST: '1000000',
      PHAROS_OVERLAY_VALIDATIONS_IN_FLIGHT: '4096'
    }))
    const first = await spawnWorker(env)
    workers.push(first)

    const publisherKey = await generateKeyPair('Ed25519')
    const publisher = signerOf(publisherKey)
    const authors = await Promise.all(Array.from({ length: AUTHORS }, async () => signerOf(await generateKeyPair('Ed25519'))))
    db = new pg.Pool({ connectionString: databaseUrl, max: 2 })
    db.on('error', () => {})
    await db.query('INSERT INTO accounts (peer_id, label) SELECT unnest($1::text[]), \'crash-test\'', [[publisher.peerId, ...authors.map((author) => author.peerId)]])
    await sleep(2000) // the worker reloads the accounts (PHAROS_ACCOUNTS_REFRESH_MS)

    // The logs, interleaved by seq as a busy network delivers them.
    const logs: EntryBlock[][] = []
    for (const author of authors) {
      const log: EntryBlock[] = []
      let prev: CID | null = null
      for (let seq = 0; seq < ENTRIES_PER_AUTHOR; seq++) {
        const block: EntryBlock = await signEntry({ seq, prev, action: 'set-status', timestamp: 1_700_000_000_000 + seq, params: { status: `entry ${seq}` } }, author)
        log.push(block)
        prev = block.cid
      }
      logs.push(log)
    }
    const envelopes: Array<{ block: EntryBlock, envelope: Uint8Array }> = []
    for (let seq = 0; seq < ENTRIES_PER_AUTHOR; seq++) {
      for (const log of logs) {
        const block = log[seq] as EntryBlock
        envelopes.push({ block, envelope: await sealEnvelope(block.bytes, publisher) })
      }
    }
    const total = envelopes.length

    peer = await createOverlayPeer({ network: NETWORK, networkSize: 4 }, publisherKey)
    await peer.start()
    await peer.dial(multiaddr(tcpAddress(first)))
    peer.services.overlay.join('content', peerIdFromString(first.peerId))
    await waitFor('the publisher to hold the worker in its active view', () => peer?.services.overlay.snapshot().content?.active.includes(first.peerId) ?? false, 30_000)
    await sleep(500) // and the worker the publisher

    // A steady stream, WINDOW ahead of what is stored, so batches are being stored when the
    // worker is killed. Kill it once part of the stream is acknowledged.
    const countStored = async (): Promise<number> => Number((await db?.query<{ n: string }>('SELECT count(*) AS n FROM log_entries'))?.rows[0]?.n ?? 0)
    let killed = false
    const stream = (async () => {
      let sent = 0
      while (!killed && sent < total) {
        const stored = await countStored()
        while (sent < total && sent - stored < WINDOW) {
          const { block, envelope } = envelopes[sent++] as (typeof envelopes)[number]
          peer?.services.overlay.broadcast('content', block.cid.toString(), envelope)
        }
        await sleep(10)
      }
    })()
    await waitFor('part of the stream stored', async () => await countStored() >= total / 10, 60_000)
    const acknowledged = new Map(await Promise.all(authors.map(async (author) => [author.peerId, await storedEntries(first, author.peerId)] as const)))
    first.child.kill('SIGKILL')
    killed = true
    await stream
    await first.exited
    const ackCount = [...acknowledged.values()].reduce((sum, cids) => sum + cids.size, 0)
    const atKill = await countStored()
    assert.ok(ackCount > 0, 'some entries were acknowledged before the kill')
    assert.ok(atKill < total, `the worker was killed mid-burst (${atKill} of ${total} stored)`)

    const second = await spawnWorker(env)
    workers.push(second)
    for (const author of authors) {
      const after = await storedEntries(second, author.peerId)
      for (const cid of acknowledged.get(author.peerId) ?? []) assert.ok(after.has(cid), `acknowledged entry ${cid} of ${author.peerId} is there after the restart`)
    }
    // Nothing half applied: every stored entry has its block, and every author's counts
    // equal a recount of its entries.
    const { rows: missing } = await db.query('SELECT cid FROM log_entries e WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.multihash = substring(e.cid FROM 3))')
    assert.equal(missing.length, 0, 'every stored entry has its block')
    const { rows: counts } = await db.query<{ author: string, kept: number, counted: number }>(
      `SELECT a.author, a.entries::int AS kept, (SELECT count(*) FROM log_entries e WHERE e.author = a.author)::int AS counted FROM log_authors a`)
    for (const row of counts) assert.equal(row.kept, row.counted, `the counts of ${row.author} equal its entries`)
    console.log(`# killed with ${atKill} of ${total} entries stored, ${ackCount} acknowledged; all ${ackCount} there after the restart`)
  })
})
