/**
 * Account IDs are canonical (issue 17) on a worker on Postgres: one ed25519 key given as
 * `12D3KooW…`, `k51…` (CIDv1 libp2p-key, base36) and `bafz…` (the same CID, base32) is one
 * account, stored and shown as `12D3KooW…`, whichever form the API or an external feeder
 * used; anything that is not an ed25519 peer ID is a 400 with the reason; and migration 007
 * rewrites rows stored in another form, merging the duplicates.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { AccountRegistry } from '../../src/accounts/account-registry.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { loadMigrations, migrate } from '../../src/storage/migrate.ts'
import { openPostgres } from '../../src/storage/pg-client.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const TOKEN = 'accounts-test-admin-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }

/** One key in the three encodings a peer ID is commonly written in. */
function encodings (peer: PeerId): { base58: string, base36: string, base32: string } {
  const cid = peer.toCID()
  return { base58: peer.toString(), base36: cid.toString(base36), base32: cid.toString() }
}

async function ed25519 (): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

describe('canonical account IDs', () => {
  let worker: Worker

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({ DATABASE_URL: await createTestDatabase('accounts'), PHAROS_ADMIN_TOKENS: TOKEN })), createLogger('silent'))
  })
  after(async () => { await worker?.stop() })

  it('takes one key in three encodings as one account, stored and shown as 12D3KooW…', async () => {
    const key = encodings(await ed25519())
    assert.ok(key.base58.startsWith('12D3KooW') && key.base36.startsWith('k51') && key.base32.startsWith('bafz'), JSON.stringify(key))
    const countBefore = worker.accounts.count

    const statuses: number[] = []
    for (const given of [key.base36, key.base58, key.base32]) {
      const added = await worker.app.inject({ method: 'POST', url: '/v1/accounts', headers: auth, payload: { peerId: given, label: 'three ways' } })
      statuses.push(added.statusCode)
      assert.equal(added.json().peerId, key.base58, `${given.slice(0, 4)}… is shown canonical`)
    }
    assert.deepEqual(statuses, [201, 200, 200], 'the first one registers, the others find it')
    assert.equal(worker.accounts.count, countBefore + 1, 'N counts the key once')
    assert.equal(worker.accounts.isRegistered(key.base58), true)
    const { rows } = await worker.db.query<{ peer_id: string }>('SELECT peer_id FROM accounts WHERE peer_id = ANY($1::text[])', [Object.values(key)])
    assert.deepEqual(rows.map((row) => row.peer_id), [key.base58], 'one row, canonical')

    assert.equal((await worker.app.inject({ method: 'DELETE', url: `/v1/accounts/${key.base32}`, headers: auth })).statusCode, 204)
    assert.equal(worker.accounts.isRegistered(key.base58), false)
    assert.equal((await worker.app.inject({ method: 'DELETE', url: '/v1/accounts', headers: auth, payload: { peerId: key.base36 } })).statusCode, 404)
  })

  it('refuses what is not an ed25519 peer ID with 400 and the reason', async () => {
    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
    const notAKey = CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode('not a key'))).toString()
    for (const [bad, why] of [['not-a-peer-id', /is not a peer ID/], [secp, /secp256k1 peer ID; accounts are ed25519/], [notAKey, /is not a peer ID/]] as const) {
      for (const call of [
        { method: 'POST' as const, url: '/v1/accounts', payload: { peerId: bad } },
        { method: 'DELETE' as const, url: `/v1/accounts/${bad}` }
      ]) {
        const refused = await worker.app.inject({ ...call, headers: auth })
        assert.equal(refused.statusCode, 400, `${call.method} ${bad}`)
        assert.equal(refused.json().error.reason, 'BAD_REQUEST')
        assert.match(refused.json().error.details, why)
      }
    }
  })

  it('counts a feeder\'s row in another encoding once, with its canonical twin', async () => {
    const key = encodings(await ed25519())
    await worker.accounts.add(key.base58, 'via the API')
    const countBefore = worker.accounts.count
    // An external feeder writes the table directly, in the CID form.
    await worker.db.query('INSERT INTO accounts (peer_id, label) VALUES ($1, $2)', [key.base36, 'via a feeder'])
    const other = encodings(await ed25519())
    await worker.db.query('INSERT INTO accounts (peer_id, label) VALUES ($1, $2)', [other.base32, 'via a feeder'])
    await worker.accounts.refresh()
    assert.equal(worker.accounts.count, countBefore + 1, 'the first key once, the second key once')
    assert.equal(worker.accounts.isRegistered(other.base58), true, 'a CID-form row matches the peer ID libp2p names')
    assert.equal((await worker.app.inject({ method: 'GET', url: `/v1/accounts?limit=10000`, headers: auth })).json().accounts.some((account: { peerId: string }) => account.peerId === other.base32), false, 'shown canonical')
    // Removing the account removes every row of the key.
    assert.equal((await worker.app.inject({ method: 'DELETE', url: `/v1/accounts/${key.base58}`, headers: auth })).statusCode, 204)
    const { rows } = await worker.db.query('SELECT 1 FROM accounts WHERE peer_id = ANY($1::text[])', [Object.values(key)])
    assert.equal(rows.length, 0)
  })
})

describe('migration 007: canonical account IDs', () => {
  it('rewrites rows stored in another encoding and merges one key\'s rows into one', async () => {
    const db = await openPostgres(await createTestDatabase('accounts_migration'), { maxConnections: 2 })
    try {
      const all = await loadMigrations()
      const earlier = all.filter((migration) => migration.version < 7)
      assert.deepEqual(await migrate(db, earlier), earlier.map((migration) => migration.version))
      const merged = encodings(await ed25519())
      const alone = encodings(await ed25519())
      const rows: Array<[string, string | null, string]> = [
        [merged.base36, null, '2024-01-03T00:00:00Z'],
        [merged.base58, 'canonical', '2024-01-02T00:00:00Z'],
        [merged.base32, 'cid form', '2024-01-01T00:00:00Z'],
        [alone.base32, 'only as a CID', '2024-02-01T00:00:00Z'],
        ['nonsense', 'not a peer ID', '2024-03-01T00:00:00Z']
      ]
      for (const row of rows) await db.query('INSERT INTO accounts (peer_id, label, created_at) VALUES ($1, $2, $3)', row)

      const through7 = all.filter((migration) => migration.version <= 7)
      assert.deepEqual(await migrate(db, through7), [7])
      const after = await db.query<{ peer_id: string, label: string | null, created_at: Date }>('SELECT peer_id, label, created_at FROM accounts ORDER BY created_at')
      assert.deepEqual(after.rows.map((row) => [row.peer_id, row.label, row.created_at.toISOString()]), [
        [merged.base58, 'canonical', '2024-01-01T00:00:00.000Z'],
        [alone.base58, 'only as a CID', '2024-02-01T00:00:00.000Z'],
        ['nonsense', 'not a peer ID', '2024-03-01T00:00:00.000Z']
      ], 'the earliest created_at, the canonical row\'s label; a row that is no peer ID is left for the operator')

      const invalid: string[][] = []
      const registry = new AccountRegistry(db, { onInvalidIds: (ids) => { invalid.push(ids) } })
      await registry.refresh()
      assert.equal(registry.count, 2)
      await registry.refresh()
      assert.deepEqual(invalid, [['nonsense']], 'reported once, not at every refresh')
    } finally {
      await db.close()
    }
  })
})
