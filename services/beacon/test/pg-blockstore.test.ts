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
import { BitswapBlockstoreView } from '../src/storage/bitswap-view.ts'
import { UnsupportedHashError } from '../src/storage/hashers.ts'
import { migrate } from '../src/storage/migrate.ts'
import { BlockHashMismatchError, BlockHeldByPinError, InvalidBlockError, PgBlockstore } from '../src/storage/pg-blockstore.ts'
import { openPglite } from '../src/storage/pglite-client.ts'
import { openPostgres } from '../src/storage/pg-client.ts'
import type { SqlClient } from '../src/storage/sql.ts'
import { createTestDatabase } from '../../testing/src/databases.ts'
import { loadBlockstoreComplianceSuite } from './support/compliance-suite.ts'

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
