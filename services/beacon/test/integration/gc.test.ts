import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import pg from 'pg'
import { Registry } from 'prom-client'
import { createStorageMetrics } from '../../src/pinning/storage-metrics.ts'
import { GarbageCollector, GcAlreadyRunningError } from '../../src/pinning/garbage-collector.ts'
import { migrate } from '../../src/storage/migrate.ts'
import { PgBlockstore } from '../../src/storage/pg-blockstore.ts'
import { openPglite } from '../../src/storage/pglite-client.ts'
import type { SqlClient } from '../../src/storage/sql.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase, testFleet } from '@pharos/testing/databases.ts'
import { createContentPeer, fileFromBlocks, httpClient, MiB, randomContent, sha256Hex, testConfig, testLogger, verifyCar, waitForPin } from '../helpers/storage.ts'
import type { ContentPeer } from '../helpers/storage.ts'

const TOKEN = 'gc-owner-token-0123456789ab'
const ADMIN = 'gc-admin-token-0123456789ab'
const GRACE_MS = 1500
const GC_LOCK_KEY = 0x50484743

async function orphanBlocks (store: PgBlockstore, count: number, size: number): Promise<CID[]> {
  const cids: CID[] = []
  for (let i = 0; i < count; i++) {
    const bytes = randomContent(size)
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await store.put(cid, bytes)
    cids.push(cid)
  }
  return cids
}

/** Every block a pin holds is stored and verifies. */
async function assertPinIntact (worker: Worker, pinId: string): Promise<number> {
  const { rows } = await worker.db.query<{ multihash: Uint8Array }>('SELECT multihash FROM pin_blocks WHERE pin_id = $1', [pinId])
  assert.ok(rows.length > 0, `pin ${pinId} holds no blocks`)
  const { rows: present } = await worker.db.query<{ n: number }>(
    'SELECT count(*)::int8 AS n FROM pin_blocks pb JOIN blocks b ON b.multihash = pb.multihash WHERE pb.pin_id = $1', [pinId])
  assert.equal(present[0]?.n, rows.length, 'a block of the pin is missing')
  return rows.length
}

describe('garbage collection across a fleet (Postgres, two workers)', () => {
  let databaseUrl: string
  let gcWorker: Worker
  let pinWorker: Worker
  const peers: ContentPeer[] = []

  before(async () => {
    databaseUrl = await createTestDatabase('gc')
    const fleet = testFleet()
    const shared = { DATABASE_URL: databaseUrl, PHAROS_PIN_TOKENS: `owner:${TOKEN}`, PHAROS_ADMIN_TOKENS: ADMIN, PHAROS_GC_GRACE_MS: String(GRACE_MS) }
    // One worker collects; the other takes the pin jobs (the collector runs none).
    gcWorker = await startWorker(await testConfig(fleet({ ...shared, PHAROS_PIN_CONCURRENCY: '0' })), testLogger())
    pinWorker = await startWorker(await testConfig(fleet({ ...shared, PHAROS_PIN_FETCH_CONCURRENCY: '2' })), testLogger())
  })

  after(async () => {
    await Promise.all(peers.map(async (peer) => { await peer.stop() }))
    await pinWorker?.stop()
    await gcWorker?.stop()
  })

  it('keeps blocks inside the grace period, then removes unpinned ones and reports what it freed', async () => {
    const orphans = await orphanBlocks(gcWorker.storage.blockstore, 5, 1000)
    const admin = httpClient(gcWorker.httpUrl, ADMIN)
    const early = await admin('POST', '/v1/gc')
    assert.equal(early.status, 200)
    for (const cid of orphans) assert.equal(await gcWorker.storage.blockstore.has(cid), true, 'a fresh block was collected')

    await sleep(GRACE_MS + 100)
    const late = await admin('POST', '/v1/gc')
    assert.equal(late.status, 200)
    assert.equal(late.body.blocks, 5)
    assert.equal(late.body.bytes, 5000)
    for (const cid of orphans) assert.equal(await gcWorker.storage.blockstore.has(cid), false)
  })

  it('runs one collection at a time across the fleet', async () => {
    const holder = new pg.Client({ connectionString: databaseUrl })
    await holder.connect()
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [GC_LOCK_KEY])
      const refused = await httpClient(gcWorker.httpUrl, ADMIN)('POST', '/v1/gc')
      assert.equal(refused.status, 409)
      assert.equal(refused.body.error.reason, 'GC_ALREADY_RUNNING')
      await assert.rejects(pinWorker.storage.gc.run(), GcAlreadyRunningError)
      await holder.query('SELECT pg_advisory_unlock($1)', [GC_LOCK_KEY])
      assert.equal((await httpClient(gcWorker.httpUrl, ADMIN)('POST', '/v1/gc')).status, 200)
    } finally {
      await holder.end()
    }
  })

  it('keeps every block of every pin, including while another worker is pinning', async () => {
    const call = httpClient(pinWorker.httpUrl, TOKEN)
    const origin = await createContentPeer({ beforeRead: async () => { await sleep(40) } })
    peers.push(origin)

    // A pinned file, settled before GC starts.
    const settledFile = randomContent(3 * MiB)
    const settledCid = await origin.addFile(settledFile)
    const settled = await waitForPin(call, (await call('POST', '/pins', { cid: settledCid.toString(), origins: origin.multiaddrs() })).body.requestid)
    assert.equal(settled.status, 'pinned')

    // A file whose first blocks are already stored but old and unheld (left by a removed
    // pin), so GC may take them at any moment until the pinning worker touches them. An
    // earlier peer held it then; the pin below fetches what is missing from `origin`, which
    // is disconnected meanwhile: Helia's Bitswap sends no cancels, so a peer that had been
    // asked for these blocks would count them as sent and ignore the next want for 5 s.
    await origin.node.hangUp(pinWorker.node.peerId)
    const file = randomContent(12 * MiB)
    const earlier = await createContentPeer()
    const cid = await earlier.addFile(file)
    assert.equal((await origin.addFile(file)).toString(), cid.toString())
    const leftover = await waitForPin(call, (await call('POST', '/pins', { cid: cid.toString(), origins: earlier.multiaddrs() })).body.requestid)
    await earlier.stop()
    assert.equal((await call('DELETE', `/pins/${leftover.requestid}`)).status, 202)
    await pinWorker.db.query(`UPDATE blocks SET touched_at = now() - interval '1 hour'`)
    await pinWorker.db.query(`DELETE FROM blocks WHERE multihash IN (SELECT multihash FROM blocks b WHERE NOT EXISTS (SELECT 1 FROM pin_blocks pb WHERE pb.multihash = b.multihash) ORDER BY multihash LIMIT 6)`)

    const orphans = await orphanBlocks(gcWorker.storage.blockstore, 20, 4096)
    await pinWorker.db.query(`UPDATE blocks SET touched_at = now() - interval '1 hour' WHERE multihash = ANY($1::bytea[])`, [orphans.map((o) => Buffer.from(o.multihash.bytes))])

    // GC runs back to back on the other worker for the whole pin.
    let collecting = true
    let freed = 0
    let runs = 0
    const loop = (async () => {
      while (collecting) {
        try {
          freed += (await gcWorker.storage.gc.run()).blocks
          runs++
        } catch (err) {
          if (!(err instanceof GcAlreadyRunningError)) throw err
        }
        await sleep(20)
      }
    })()
    const added = await call('POST', '/pins', { cid: cid.toString(), origins: origin.multiaddrs() })
    const pinned = await waitForPin(call, added.body.requestid, ['pinned', 'failed'], 60_000)
    collecting = false
    await loop

    assert.equal(pinned.status, 'pinned', JSON.stringify(pinned))
    assert.ok(runs >= 5, `GC ran ${runs} times during the pin`)
    assert.ok(freed >= orphans.length, `GC freed ${freed} blocks`)
    for (const orphan of orphans) assert.equal(await gcWorker.storage.blockstore.has(orphan), false)
    await assertPinIntact(pinWorker, settled.requestid)
    await assertPinIntact(pinWorker, pinned.requestid)

    // And after the grace period nothing of either pin goes.
    await sleep(GRACE_MS + 100)
    await gcWorker.storage.gc.run()
    await assertPinIntact(pinWorker, settled.requestid)
    await assertPinIntact(pinWorker, pinned.requestid)
    for (const [root, bytes] of [[cid, file], [settledCid, settledFile]] as const) {
      const car = await verifyCar(new Uint8Array(await (await fetch(`${gcWorker.httpUrl}/ipfs/${root.toString()}?format=car`)).arrayBuffer()))
      assert.equal(sha256Hex(await fileFromBlocks(root, car.blocks)), sha256Hex(bytes))
    }
  })
})

describe('garbage collection on PGlite (one session)', () => {
  let db: SqlClient
  before(async () => {
    db = await openPglite(undefined)
    await migrate(db)
  })
  after(async () => { await db.close() })

  it('collects on a schedule, keeps pinned blocks, and runs one collection at a time', async () => {
    const metrics = createStorageMetrics(new Registry())
    const store = new PgBlockstore({ db })
    const [kept, dropped] = await orphanBlocks(store, 2, 100)
    assert.ok(kept !== undefined && dropped !== undefined)
    await db.query(`INSERT INTO pins (id, owner, cid, root_cid, status, created) VALUES ('00000000-0000-4000-8000-000000000001', 'o', $1, $1, 'pinned', now())`, [kept.toString()])
    await db.query(`INSERT INTO pin_blocks (pin_id, multihash) VALUES ('00000000-0000-4000-8000-000000000001', $1)`, [kept.multihash.bytes])

    const gc = new GarbageCollector({ db, graceMs: 0, intervalMs: 100, log: testLogger(), metrics })
    const [first, second] = await Promise.allSettled([gc.run(), gc.run()])
    assert.equal(first.status, 'fulfilled')
    assert.ok(second.status === 'rejected' && second.reason instanceof GcAlreadyRunningError, 'advisory locks are re-entrant in one session; the in-process guard refuses the second run')
    assert.equal(await store.has(kept), true)
    assert.equal(await store.has(dropped), false)

    const [later] = await orphanBlocks(store, 1, 100)
    assert.ok(later !== undefined)
    gc.start()
    try {
      for (let i = 0; i < 50 && await store.has(later); i++) await sleep(50)
    } finally {
      gc.stop()
    }
    assert.equal(await store.has(later), false, 'the scheduled run collected it')
    assert.equal(await store.has(kept), true)
    assert.ok((await metrics.gcRuns.get()).values.some((v) => v.labels.outcome === 'completed' && v.value >= 2))
  })
})
