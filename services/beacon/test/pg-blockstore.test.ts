import assert from 'node:assert/strict'
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
import { createTestDatabase } from './helpers/databases.ts'
import { loadBlockstoreComplianceSuite } from './support/compliance-suite.ts'

const { interfaceBlockstoreTests } = await loadBlockstoreComplianceSuite()

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
        assert.deepEqual(mismatches, [cid.toString(), cid.toString(), cid.toString(), cid.toString()])

        // Bitswap's view: a corrupt block is simply not there, so Helia would fetch it again.
        assert.equal(store.isKnownCorrupt(cid), true)
        const view = new BitswapBlockstoreView(store)
        assert.equal(await view.has(cid), false)
        await assert.rejects(async () => { for await (const _ of view.get(cid)) { /* drain */ } }, { name: 'NotFoundError' })
        assert.equal(mismatches.length, 5)

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
