import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, connect } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { after, afterEach, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import type { MultihashHasher } from 'multiformats/hashes/interface'
import { BitswapBlockstoreView } from '../../src/storage/bitswap-view.ts'
import { UnsupportedHashError } from '../../src/storage/hashers.ts'
import { migrate } from '../../src/storage/migrate.ts'
import { BlockHashMismatchError, BlockHeldByPinError, InvalidBlockError, PgBlockstore } from '../../src/storage/pg-blockstore.ts'
import { openPglite } from '../../src/storage/pglite-client.ts'
import { openPostgres } from '../../src/storage/pg-client.ts'
import type { SqlClient } from '../../src/storage/sql.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { loadBlockstoreComplianceSuite } from '../support/compliance-suite.ts'

const { interfaceBlockstoreTests } = await loadBlockstoreComplianceSuite()

const KiB = 1024
const MiB = 1024 * KiB

async function collect (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = []
  for await (const chunk of source) chunks.push(chunk)
  return chunks
}

/** Every read path of the blockstore, each returning the bytes of one block. */
function readPaths (store: PgBlockstore): Record<string, (cid: CID) => Promise<Uint8Array | undefined>> {
  return {
    get: async (cid) => Buffer.concat(await collect(store.get(cid))),
    getMany: async (cid) => {
      for await (const pair of store.getMany([cid])) return Buffer.concat(await collect(pair.bytes))
    },
    getAll: async (cid) => {
      for await (const pair of store.getAll()) if (pair.cid.multihash.bytes.every((byte, i) => byte === cid.multihash.bytes[i])) return Buffer.concat(await collect(pair.bytes))
    },
    getAndTouch: async (cid) => await store.getAndTouch(cid)
  }
}

/**
 * A TCP relay in front of the test Postgres that counts the bytes the server sends, so a
 * test can tell bytea read as bytes (about the block's size) from bytea read as hex (twice).
 */
async function countingRelay (databaseUrl: string): Promise<{ url: string, fromServer: () => number, close: () => Promise<void> }> {
  const target = new URL(databaseUrl)
  let fromServer = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname)
    sockets.add(client).add(upstream)
    upstream.on('data', (chunk: Buffer) => { fromServer += chunk.byteLength })
    client.pipe(upstream).pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = new URL(databaseUrl)
  url.hostname = '127.0.0.1'
  url.port = String((server.address() as AddressInfo).port)
  return {
    url: url.toString(),
    fromServer: () => fromServer,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/**
 * `db` counting the statements the blockstore sends (puts through `query`, gets through
 * `queryByteaRows`), with a gate each statement waits at while it is closed, so a test can
 * act while a batch is in flight.
 */
function watchedDb (db: SqlClient): { db: SqlClient, statements: { put: number, get: number }, close: () => void, open: () => void, sent: () => Promise<void> } {
  const statements = { put: 0, get: 0 }
  let gate: Promise<void> = Promise.resolve()
  let openGate = (): void => {}
  let onSent = (): void => {}
  const pass = async (): Promise<void> => {
    onSent()
    await gate
  }
  return {
    db: {
      ...db,
      query: async (text, params, options) => { statements.put++; await pass(); return await db.query(text, params, options) },
      queryByteaRows: async (query, onRow) => { statements.get++; await pass(); return await db.queryByteaRows(query, onRow) }
    },
    statements,
    close: () => { gate = new Promise((resolve) => { openGate = resolve }) },
    open: () => { openGate() },
    sent: async () => { await new Promise<void>((resolve) => { onSent = resolve }) }
  }
}

async function randomBlock (size: number): Promise<{ cid: CID, bytes: Uint8Array }> {
  const bytes = new Uint8Array(randomBytes(size))
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)

const engines: Array<{ name: string, open: () => Promise<SqlClient> }> = [
  { name: 'Postgres', open: async () => await openPostgres(await createTestDatabase('blockstore')) },
  { name: 'PGlite', open: async () => await openPglite(undefined) }
]

async function rawBlock (text: string, hasher: MultihashHasher<number> = sha256): Promise<{ cid: CID, bytes: Uint8Array }> {
  const bytes = new TextEncoder().encode(text)
  return { cid: CID.createV1(raw.code, await hasher.digest(bytes)), bytes }
}

for (const engine of engines) {
  describe(`PgBlockstore on ${engine.name}`, () => {
    let db: SqlClient
    before(async () => {
      db = await engine.open()
      await migrate(db)
    })
    afterEach(async () => { await db.query('DELETE FROM blocks') })
    after(async () => { await db.close() })

    describe('interface-blockstore compliance', () => {
      interfaceBlockstoreTests({
        setup: () => new PgBlockstore({ db }),
        // The suite counts what getAll returns, so every test starts from an empty table.
        teardown: async () => { await db.query('DELETE FROM blocks') }
      })
    })

    describe('reading block bytes', () => {
      it('round-trips blocks of 0 B, 1 B, 256 KiB and 4 MiB byte-exactly on every read path', async () => {
        const store = new PgBlockstore({ db })
        for (const size of [0, 1, 256 * KiB, 4 * MiB]) {
          const bytes = new Uint8Array(randomBytes(size))
          // Bytes that look like the binary COPY framing (a -1 length, the trailer) inside a block.
          if (size >= 16) bytes.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x50, 0x47, 0x43, 0x4f, 0x50, 0x59], 3)
          const cid = CID.createV1(raw.code, await sha256.digest(bytes))
          await store.put(cid, bytes)
          for (const [path, read] of Object.entries(readPaths(store))) {
            const got = await read(cid)
            assert.ok(got !== undefined, `${path} found the ${size}-byte block`)
            assert.equal(got.byteLength, size, `${path} read ${size} bytes`)
            assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(bytes), `${path} read the ${size}-byte block byte-exactly`)
          }
          // One flipped bit (or one byte more) and every read path refuses it: large blocks
          // are hashed off the event loop (WebCrypto), small ones inline; both verify.
          const tampered = size === 0 ? new Uint8Array([0]) : new Uint8Array(bytes)
          if (size > 0) tampered[size - 1] = (tampered[size - 1] ?? 0) ^ 1
          await db.query('UPDATE blocks SET data = $2 WHERE multihash = $1', [cid.multihash.bytes, tampered])
          for (const [path, read] of Object.entries(readPaths(store))) {
            await assert.rejects(read(cid), BlockHashMismatchError, `${path} refuses the tampered ${size}-byte block`)
          }
          await store.delete(cid)
        }
      })

      it('stores block bytes uncompressed: the data column is EXTERNAL and a compressible block is not pglz-compressed', async () => {
        const { rows } = await db.query<{ attstorage: string }>(
          "SELECT attstorage FROM pg_attribute WHERE attrelid = 'blocks'::regclass AND attname = 'data'"
        )
        assert.deepEqual(rows, [{ attstorage: 'e' }])
        const store = new PgBlockstore({ db })
        const zeros = new Uint8Array(256 * KiB)
        const cid = CID.createV1(raw.code, await sha256.digest(zeros))
        await store.put(cid, zeros)
        // pg_column_size is the stored size: compressed, 256 KiB of zeros would take a few KiB.
        const stored = await db.query<{ stored: number, compression: string | null }>(
          'SELECT pg_column_size(data) AS stored, pg_column_compression(data) AS compression FROM blocks WHERE multihash = $1',
          [cid.multihash.bytes]
        )
        assert.deepEqual(stored.rows, [{ stored: 256 * KiB, compression: null }])
      })
    })

    describe('concurrent operations share statements', () => {
      it('round-trips concurrent puts and gets of 0 B, 1 B, 1 KiB, 256 KiB and 4 MiB blocks byte-exactly, in fewer statements than blocks', async () => {
        const watched = watchedDb(db)
        const store = new PgBlockstore({ db: watched.db })
        const sizes = [0, 1, KiB, KiB, KiB, KiB, 256 * KiB, 4 * MiB, 1, KiB, KiB, KiB]
        const blocks = await Promise.all(sizes.map(randomBlock))
        // The same block twice in one batch becomes one row (an upsert may not touch a row twice).
        const puts = [...blocks, blocks[2], blocks[2]].filter((block) => block !== undefined)
        await Promise.all(puts.map(async ({ cid, bytes }) => await store.put(cid, bytes)))
        assert.ok(watched.statements.put < puts.length, `${puts.length} puts were sent in ${watched.statements.put} statements`)
        const got = await Promise.all([...blocks, ...blocks].map(async ({ cid }) => await store.getBytes(cid)))
        assert.ok(watched.statements.get < got.length, `${got.length} gets were sent in ${watched.statements.get} statements`)
        got.forEach((bytes, i) => {
          const block = blocks[i % blocks.length]
          assert.ok(block !== undefined && sameBytes(bytes, block.bytes), `get ${i} read its ${block?.bytes.byteLength}-byte block byte-exactly`)
        })
        // Two random 1-byte blocks are the same block one time in 256.
        const distinct = new Set(blocks.map(({ cid }) => cid.toString())).size
        const { rows } = await db.query<{ blocks: number }>('SELECT count(*)::int8 AS blocks FROM blocks')
        assert.deepEqual(rows, [{ blocks: distinct }])
      })

      it('refuses a corrupt stored block to its caller while its batch-mates are served', async () => {
        const mismatches: string[] = []
        const watched = watchedDb(db)
        const store = new PgBlockstore({ db: watched.db, onHashMismatch: (cid) => mismatches.push(cid.toString()) })
        const blocks = await Promise.all([KiB, KiB, 256 * KiB, 1, KiB].map(randomBlock))
        for (const { cid, bytes } of blocks) await store.put(cid, bytes)
        const corrupt = blocks[1]
        assert.ok(corrupt !== undefined)
        await db.query('UPDATE blocks SET data = $2 WHERE multihash = $1', [corrupt.cid.multihash.bytes, new Uint8Array(KiB)])
        const before = watched.statements.get
        const outcomes = await Promise.allSettled(blocks.map(async ({ cid }) => await store.getBytes(cid)))
        assert.equal(watched.statements.get - before, 1, 'the five gets were batch-mates: one statement')
        outcomes.forEach((outcome, i) => {
          const block = blocks[i]
          assert.ok(block !== undefined)
          if (block === corrupt) {
            assert.ok(outcome.status === 'rejected' && outcome.reason instanceof BlockHashMismatchError, 'the corrupt block is refused')
          } else {
            assert.ok(outcome.status === 'fulfilled' && sameBytes(outcome.value, block.bytes), `batch-mate ${i} is served byte-exactly`)
          }
        })
        assert.deepEqual(mismatches, [corrupt.cid.toString()])
        assert.equal(store.isKnownCorrupt(corrupt.cid), true)
      })

      it('answers NotFound to the caller of a missing block only', async () => {
        const watched = watchedDb(db)
        const store = new PgBlockstore({ db: watched.db })
        const stored = await Promise.all([KiB, 4 * MiB, 0].map(randomBlock))
        for (const { cid, bytes } of stored) await store.put(cid, bytes)
        const missing = await randomBlock(KiB)
        const asked = [stored[0], missing, stored[1], stored[2]].filter((block) => block !== undefined)
        const before = watched.statements.get
        const outcomes = await Promise.allSettled(asked.map(async ({ cid }) => await store.getBytes(cid)))
        assert.equal(watched.statements.get - before, 1, 'the four gets were batch-mates: one statement')
        outcomes.forEach((outcome, i) => {
          const block = asked[i]
          assert.ok(block !== undefined)
          if (block === missing) assert.ok(outcome.status === 'rejected' && (outcome.reason as Error).name === 'NotFoundError', 'the missing block is NotFound')
          else assert.ok(outcome.status === 'fulfilled' && sameBytes(outcome.value, block.bytes), `batch-mate ${i} is served byte-exactly`)
        })
      })

      it('answers an aborted caller at once and leaves its batch-mates intact, whether the batch was sent or not', async () => {
        const watched = watchedDb(db)
        const store = new PgBlockstore({ db: watched.db })
        const blocks = await Promise.all([KiB, KiB, 256 * KiB].map(randomBlock))
        const [first, aborted, last] = blocks
        assert.ok(first !== undefined && aborted !== undefined && last !== undefined)

        // Aborted while waiting for its batch: it is not written, the others are.
        const beforeSend = new AbortController()
        const puts = blocks.map(async ({ cid, bytes }) => await store.put(cid, bytes, cid === aborted.cid ? { signal: beforeSend.signal } : undefined))
        setImmediate(() => { beforeSend.abort() })
        const putOutcomes = await Promise.allSettled(puts)
        assert.equal(putOutcomes[1]?.status, 'rejected')
        assert.equal((putOutcomes[1] as PromiseRejectedResult).reason.name, 'AbortError')
        assert.deepEqual([putOutcomes[0]?.status, putOutcomes[2]?.status], ['fulfilled', 'fulfilled'])
        assert.equal(await store.has(aborted.cid), false, 'the aborted put wrote nothing')
        await store.put(aborted.cid, aborted.bytes)

        // Aborted while its batch is in flight: it is answered before the statement returns,
        // and the batch still serves the others.
        watched.close()
        const sent = watched.sent()
        const inFlight = new AbortController()
        const gets = blocks.map(async ({ cid }) => await store.getBytes(cid, cid === aborted.cid ? { signal: inFlight.signal } : undefined))
        await sent
        inFlight.abort()
        const abortedGet = await Promise.race([gets[1]?.then(() => 'served', (err: Error) => err.name), new Promise((resolve) => setTimeout(resolve, 5_000, 'still waiting'))])
        assert.equal(abortedGet, 'AbortError', 'the aborted get is answered while its batch is still in flight')
        watched.open()
        const served = await Promise.all([gets[0], gets[2]])
        assert.ok(sameBytes(served[0] ?? new Uint8Array(), first.bytes) && sameBytes(served[1] ?? new Uint8Array(), last.bytes), 'its batch-mates are served byte-exactly')
      })

      it('answers each get of a batch as its row arrives, before the rest of the batch is read', async () => {
        const store = new PgBlockstore({ db })
        const blocks = await Promise.all([KiB, 256 * KiB, KiB].map(randomBlock))
        for (const { cid, bytes } of blocks) await store.put(cid, bytes)
        // Rows after the first are held back, as if they were still on the wire.
        let release = (): void => {}
        const rest = new Promise<void>((resolve) => { release = resolve })
        const slowWire: SqlClient = {
          ...db,
          queryByteaRows: async (query, onRow) => {
            const held: Array<() => void> = []
            const rows = await db.queryByteaRows(query, (row, index) => {
              if (index === 0) onRow?.(row, index)
              else held.push(() => onRow?.(row, index))
            })
            await rest
            for (const deliver of held) deliver()
            return rows
          }
        }
        const batched = new PgBlockstore({ db: slowWire })
        const gets = blocks.map(async ({ cid }) => await batched.getBytes(cid))
        const first = await Promise.race([gets[0], new Promise((resolve) => setTimeout(resolve, 5_000, 'still waiting'))])
        assert.ok(first instanceof Uint8Array && blocks[0] !== undefined && sameBytes(first, blocks[0].bytes), 'the first block is served while the others are held back')
        release()
        const all = await Promise.all(gets)
        all.forEach((bytes, i) => { assert.ok(blocks[i] !== undefined && sameBytes(bytes, blocks[i].bytes), `block ${i} is served byte-exactly`) })
      })

      it('sends every block alone with maxBatchBlocks 1', async () => {
        const watched = watchedDb(db)
        const store = new PgBlockstore({ db: watched.db, maxBatchBlocks: 1 })
        const blocks = await Promise.all([KiB, KiB, 1, 0].map(randomBlock))
        await Promise.all(blocks.map(async ({ cid, bytes }) => await store.put(cid, bytes)))
        const got = await Promise.all(blocks.map(async ({ cid }) => await store.getBytes(cid)))
        assert.deepEqual(watched.statements, { put: blocks.length, get: blocks.length })
        got.forEach((bytes, i) => { assert.ok(blocks[i] !== undefined && sameBytes(bytes, blocks[i].bytes)) })
      })

      it('gives a statement failure of one block to that block\'s caller only', async () => {
        const store = new PgBlockstore({ db })
        const blocks = await Promise.all([KiB, 7, KiB, 1].map(randomBlock))
        // A constraint no block of this test but one can meet stands in for a row the server refuses.
        await db.query('ALTER TABLE blocks ADD CONSTRAINT test_refuses_seven_bytes CHECK (size <> 7)')
        try {
          const outcomes = await Promise.allSettled(blocks.map(async ({ cid, bytes }) => await store.put(cid, bytes)))
          assert.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
          assert.equal((outcomes[1] as PromiseRejectedResult).reason.code, '23514', 'the refused block gets its own check_violation')
          for (const [i, { cid }] of blocks.entries()) assert.equal(await store.has(cid), i !== 1)
        } finally {
          await db.query('ALTER TABLE blocks DROP CONSTRAINT test_refuses_seven_bytes')
        }
      })
    })

    describe('hash verification', () => {
      it('refuses a corrupt block on every read path, counts it and names it', async () => {
        const mismatches: string[] = []
        const store = new PgBlockstore({ db, onHashMismatch: (cid) => mismatches.push(cid.toString()) })
        const { cid, bytes } = await rawBlock('the original bytes')
        await store.put(cid, bytes)
        await db.query('UPDATE blocks SET data = $2 WHERE multihash = $1', [cid.multihash.bytes, new TextEncoder().encode('tampered bytes')])

        await assert.rejects(store.getBytes(cid), BlockHashMismatchError)
        await assert.rejects(async () => { for await (const pair of store.getMany([cid])) for await (const _ of pair.bytes) { /* drain */ } }, BlockHashMismatchError)
        await assert.rejects(async () => { for await (const _ of store.getAll()) { /* drain */ } }, BlockHashMismatchError)
        await assert.rejects(store.getAndTouch(cid), BlockHashMismatchError)
        await assert.rejects(async () => { for await (const _ of store.get(cid)) { /* drain */ } }, BlockHashMismatchError)
        assert.deepEqual(mismatches, [cid.toString(), cid.toString(), cid.toString(), cid.toString(), cid.toString()])

        // Bitswap's view: a corrupt block is simply not there, so Helia would fetch it again.
        assert.equal(store.isKnownCorrupt(cid), true)
        const view = new BitswapBlockstoreView(store)
        assert.equal(await view.has(cid), false)
        await assert.rejects(async () => { for await (const _ of view.get(cid)) { /* drain */ } }, { name: 'NotFoundError' })
        assert.equal(mismatches.length, 6)

        // Writing the verified bytes again repairs the row.
        await store.put(cid, bytes)
        assert.deepEqual(await store.getBytes(cid), bytes)
        assert.equal(store.isKnownCorrupt(cid), false)
        assert.equal(await view.has(cid), true)
      })

      it('verifies sha2-512 and identity multihashes too', async () => {
        const store = new PgBlockstore({ db })
        const long = await rawBlock('hashed with sha2-512', sha512)
        await store.put(long.cid, long.bytes)
        assert.deepEqual(await store.getBytes(long.cid), long.bytes)
        await db.query('UPDATE blocks SET data = $2 WHERE multihash = $1', [long.cid.multihash.bytes, new Uint8Array([1, 2, 3])])
        await assert.rejects(store.getBytes(long.cid), BlockHashMismatchError)

        const inline = await rawBlock('inline', identity)
        await store.put(inline.cid, inline.bytes)
        assert.deepEqual(await store.getBytes(inline.cid), inline.bytes)
      })

      it('refuses to store bytes that do not match the CID, or a hash it cannot verify', async () => {
        const store = new PgBlockstore({ db })
        const { cid } = await rawBlock('one thing')
        await assert.rejects(store.put(cid, new TextEncoder().encode('another thing')), InvalidBlockError)
        assert.equal(await store.has(cid), false)

        const unknown = CID.createV1(raw.code, { code: 0xb220, size: 32, digest: new Uint8Array(32), bytes: new Uint8Array([0xa0, 0xe4, 0x02, 32, ...new Uint8Array(32)]) })
        await assert.rejects(store.put(unknown, new Uint8Array(1)), UnsupportedHashError)
      })

      it('refuses to delete a block a pin holds', async () => {
        const store = new PgBlockstore({ db })
        const { cid, bytes } = await rawBlock('held by a pin')
        await store.put(cid, bytes)
        await db.query(`INSERT INTO pins (id, owner, cid, root_cid, status, created) VALUES ('00000000-0000-4000-8000-0000000000aa', 'o', $1, $1, 'pinned', now())`, [cid.toString()])
        await db.query(`INSERT INTO pin_blocks (pin_id, multihash) VALUES ('00000000-0000-4000-8000-0000000000aa', $1)`, [cid.multihash.bytes])
        await assert.rejects(store.delete(cid), BlockHeldByPinError)
        assert.equal(await store.has(cid), true)
        await db.query('DELETE FROM pins')
        await store.delete(cid)
        assert.equal(await store.has(cid), false)
      })

      it('stores each block with its size', async () => {
        const store = new PgBlockstore({ db })
        const { cid, bytes } = await rawBlock('x'.repeat(1234))
        await store.put(cid, [bytes.subarray(0, 1000), bytes.subarray(1000)])
        const { rows } = await db.query<{ size: number }>('SELECT size FROM blocks WHERE multihash = $1', [cid.multihash.bytes])
        assert.deepEqual(rows, [{ size: 1234 }])
        assert.deepEqual(await store.totals(), { blocks: 1, bytes: 1234 })
      })
    })
  })
}

describe('PgBlockstore on Postgres: bytea on the wire', () => {
  let relay: Awaited<ReturnType<typeof countingRelay>>
  let db: SqlClient
  before(async () => {
    relay = await countingRelay(await createTestDatabase('blockstore_wire'))
    db = await openPostgres(relay.url, { maxConnections: 2 })
    await migrate(db)
  })
  after(async () => {
    await db.close()
    await relay.close()
  })

  it('reads a 4 MiB block as bytes, not as hex text: about 4 MiB crosses the wire, not 8', async () => {
    const store = new PgBlockstore({ db })
    const bytes = new Uint8Array(randomBytes(4 * MiB))
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await store.put(cid, bytes)
    for (const [path, read] of Object.entries(readPaths(store))) {
      const before = relay.fromServer()
      const got = await read(cid)
      const sent = relay.fromServer() - before
      assert.equal(got?.byteLength, bytes.byteLength, path)
      assert.ok(sent >= 4 * MiB && sent < 4 * MiB + 64 * KiB, `${path}: the server sent ${sent} bytes for a ${4 * MiB}-byte block (hex would be twice that)`)
    }
  })
})
