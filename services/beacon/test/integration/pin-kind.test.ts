/**
 * What kind of pin a job is comes from the worker, never from a client (issue 17, item 9): a
 * `pharos:` meta key is refused, a pin whose meta claims `pharos:kind: log-entry` is still an
 * ordinary pin (ordinary attempts, every link walked), only the log ingest's pins are entry
 * pins, and migration 008 tells existing pins apart by whether a log entry points at them.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { LOG_ENTRY_KIND, PIN_KIND_KEY } from '../../src/pinning/log-entry-pins.ts'
import { PinStore, ReservedMetaKeyError } from '../../src/pinning/pin-store.ts'
import { loadMigrations, migrate } from '../../src/storage/migrate.ts'
import { openPostgres } from '../../src/storage/pg-client.ts'
import type { SqlClient } from '../../src/storage/sql.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'

const LEASE_MS = 60_000

async function rawCid (text: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(text)))
}

describe('pin kinds (Postgres)', () => {
  let db: SqlClient
  let store: PinStore

  before(async () => {
    db = await openPostgres(await createTestDatabase('pin_kind'))
    await migrate(db)
    store = new PinStore(db)
  })

  after(async () => { await db?.close() })

  it('refuses a client pin with a pharos: meta key, on create and on replace', async () => {
    const cid = await rawCid('client pin')
    const meta = { [PIN_KIND_KEY]: LOG_ENTRY_KIND, app: 'x' }
    await assert.rejects(store.create({ owner: 'alice', cid, cidText: cid.toString(), meta }), (err: unknown) => err instanceof ReservedMetaKeyError && err.keys.join() === PIN_KIND_KEY)
    const pin = await store.create({ owner: 'alice', cid, cidText: cid.toString(), meta: { app: 'x' } })
    await assert.rejects(store.replace('alice', pin.id, { owner: 'alice', cid, cidText: cid.toString(), meta: { 'pharos:anything': '1' } }), ReservedMetaKeyError)
  })

  it('takes the kind from the column the ingest writes, never from meta', async () => {
    await db.query('DELETE FROM pins')
    const userCid = await rawCid('a user pin that claims to be an entry pin')
    const user = await store.create({ owner: 'alice', cid: userCid, cidText: userCid.toString() })
    // As a worker before this fix stored it: the client's meta holds the marker.
    await db.query('UPDATE pins SET meta = $2::jsonb WHERE id = $1', [user.id, JSON.stringify({ [PIN_KIND_KEY]: LOG_ENTRY_KIND })])
    const entryCid = await rawCid('an entry')
    const entry = await db.transaction(async (tx) => await store.createIn(tx, { owner: 'author:someone', cid: entryCid, cidText: entryCid.toString(), meta: { [PIN_KIND_KEY]: LOG_ENTRY_KIND } }))
    const explicitCid = await rawCid('another entry')
    const explicit = await db.transaction(async (tx) => await store.createIn(tx, { owner: 'author:someone', cid: explicitCid, cidText: explicitCid.toString(), kind: LOG_ENTRY_KIND }))

    const kinds = new Map<string, string | null>()
    for (let i = 0; i < 3; i++) {
      const job = await store.claim('worker', LEASE_MS)
      assert.ok(job !== undefined)
      kinds.set(job.id, job.kind)
    }
    assert.deepEqual(Object.fromEntries(kinds), { [user.id]: null, [entry.id]: LOG_ENTRY_KIND, [explicit.id]: LOG_ENTRY_KIND })
  })

  it('migration 008 marks as entry pins exactly the pins a log entry points at', async () => {
    const legacy = await openPostgres(await createTestDatabase('pin_kind_legacy'))
    try {
      const migrations = await loadMigrations()
      await migrate(legacy, migrations.filter((migration) => migration.version < 8))
      const insertPin = async (id: string, owner: string, meta: Record<string, string>): Promise<void> => {
        await legacy.query(
          `INSERT INTO pins (id, owner, cid, root_cid, meta, created) VALUES ($1, $2, 'bafk', 'bafk', $3::jsonb, clock_timestamp())`,
          [id, owner, JSON.stringify(meta)])
      }
      const entryPin = '00000000-0000-4000-8000-000000000001'
      const forged = '00000000-0000-4000-8000-000000000002'
      await insertPin(entryPin, 'author:someone', { [PIN_KIND_KEY]: LOG_ENTRY_KIND })
      await insertPin(forged, 'alice', { [PIN_KIND_KEY]: LOG_ENTRY_KIND })
      await legacy.query(
        `INSERT INTO log_entries (cid, author, seq, prev, action, entry_timestamp, size, connected, pin_id)
         VALUES ('\\x01', 'someone', 0, NULL, 'set-profile', 0, 1, true, $1)`, [entryPin])
      assert.deepEqual(await migrate(legacy, migrations), migrations.filter((migration) => migration.version >= 8).map((migration) => migration.version))
      const { rows } = await legacy.query<{ id: string, kind: string | null }>('SELECT id::text AS id, kind FROM pins ORDER BY id')
      assert.deepEqual(rows, [{ id: entryPin, kind: LOG_ENTRY_KIND }, { id: forged, kind: null }])
    } finally {
      await legacy.close()
    }
  })
})
