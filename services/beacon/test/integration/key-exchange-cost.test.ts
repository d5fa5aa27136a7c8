/**
 * What a key-exchange request may cost the worker (issue 17, item 8), on real Postgres: an
 * unregistered peer is refused before its frame is decoded or storage is asked anything; a
 * GETKEY against a 10,000-reader allow-list verifies no signature (the list was verified once,
 * at deposit, and its readers indexed) and still answers entitled and unentitled requesters
 * right; a key deposited before the index existed is verified once, then indexed.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it, mock } from 'node:test'
import { generateKeyPair, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { decodeKeyExchange, encodeKeyExchange, keyHashOf, signAllowList } from '@pharos/protocol/log/index.ts'
import type { KeyExchangeMessage } from '@pharos/protocol/log/index.ts'
import { signerFor } from '@pharos/peer/keys.ts'
import { ContentKeyStore } from '../../src/keys/content-key-store.ts'
import { ContentKeySealer } from '../../src/keys/key-sealing.ts'
import { allowListEntitlement } from '../../src/keys/entitlement.ts'
import type { KeyExchangeOutcome } from '../../src/keys/key-exchange-service.ts'
import { KeyExchangeService } from '../../src/keys/key-exchange-service.ts'
import { migrate } from '../../src/storage/migrate.ts'
import { openPostgres } from '../../src/storage/pg-client.ts'
import type { SqlClient, SqlQueryable } from '../../src/storage/sql.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { testLogger } from '../helpers/storage.ts'

const READERS = 10_000
const author = signerFor(await generateKeyPair('Ed25519'))

/** A client that counts every statement sent to Postgres, in transactions too. */
function counting (db: SqlClient): { db: SqlClient, queries: () => number } {
  let queries = 0
  const count = (q: SqlQueryable): SqlQueryable => ({
    query: async (text, params) => {
      queries++
      return await q.query(text, params)
    }
  })
  return {
    db: { ...db, query: count(db).query, transaction: async (fn) => await db.transaction(async (tx) => await fn(count(tx))) },
    queries: () => queries
  }
}

/** Peer IDs for a list's readers: valid ed25519 peer IDs, without the cost of real key pairs. */
function readerIds (n: number): string[] {
  return Array.from({ length: n }, () => peerIdFromPublicKey(publicKeyFromRaw(randomBytes(32)) as Parameters<typeof peerIdFromPublicKey>[0]).toString())
}

describe('key exchange costs (Postgres)', () => {
  let raw: SqlClient
  let db: ReturnType<typeof counting>
  let service: KeyExchangeService
  const registered = new Set<string>()
  const outcomes: KeyExchangeOutcome[] = []
  const readers = readerIds(READERS)
  const stranger = readerIds(1)[0] ?? ''
  const outsider = readerIds(1)[0] ?? ''
  const key = new Uint8Array(randomBytes(32))
  let keyHash: Uint8Array

  const ask = async (message: KeyExchangeMessage, from: string): Promise<KeyExchangeMessage> => {
    const answer = await service.answer(encodeKeyExchange(message), from, AbortSignal.timeout(30_000))
    assert.ok(answer !== undefined, 'answered, not aborted')
    const decoded = decodeKeyExchange(answer)
    assert.ok(decoded.ok)
    return decoded.value
  }

  before(async () => {
    raw = await openPostgres(await createTestDatabase('keyexchange_cost'))
    await migrate(raw)
    db = counting(raw)
    for (const peer of [author.peerId, ...readers, stranger]) registered.add(peer)
    service = new KeyExchangeService({
      keys: new ContentKeyStore(db.db, new ContentKeySealer([{ version: 'v1', key: new Uint8Array(randomBytes(32)) }])),
      entitlement: allowListEntitlement,
      isRegistered: (peer) => registered.has(peer),
      node: { dialProtocol: async () => { throw new Error('this test pushes nothing') } },
      network: 'pharos-keyexchange-cost',
      log: testLogger(),
      onOutcome: (outcome) => { outcomes.push(outcome) }
    })
    keyHash = await keyHashOf(key)
    const rule = await signAllowList({ keyHash, version: 1, peers: readers }, author)
    assert.deepEqual(await ask({ t: 'deposit', key, rule }, author.peerId), { t: 'deposited', keyHash })
  })

  after(async () => { await raw?.close() })

  it('refuses an unregistered peer before decoding its frame or asking storage anything, and counts it', async () => {
    const before = db.queries()
    outcomes.length = 0
    const getkey = await ask({ t: 'getkey', keyHash }, outsider)
    assert.equal(getkey.t, 'error')
    assert.match(getkey.t === 'error' ? getkey.message : '', /not a registered account/)
    // Not even decoded: a frame that is not CBOR gets the same answer.
    const garbage = await service.answer(new Uint8Array([0xff, 0x00, 0x13]), outsider, AbortSignal.timeout(1000))
    const refusal = garbage === undefined ? undefined : decodeKeyExchange(garbage)
    assert.equal(refusal?.ok === true ? refusal.value.t : 'aborted', 'error')
    // A deposit by an unregistered author: refused before its rule is parsed.
    const deposit = await ask({ t: 'deposit', key, rule: new Uint8Array(64) }, outsider)
    assert.equal(deposit.t, 'error')
    // Over the topic, naming an unregistered requester: nothing looked up, nothing pushed.
    await service.onTopicRequest(encodeKeyExchange({ t: 'getkey', keyHash, requester: outsider }))
    assert.equal(db.queries(), before, 'no statement reached Postgres')
    assert.deepEqual(outcomes, ['unregistered', 'unregistered', 'unregistered', 'unregistered'])
  })

  it('answers GETKEY against a 10,000-reader list without verifying a signature, right for every requester', async () => {
    const verify = mock.method(globalThis.crypto.subtle, 'verify')
    try {
      const last = readers.at(-1) ?? ''
      const before = db.queries()
      const started = performance.now()
      assert.deepEqual(await ask({ t: 'getkey', keyHash }, last), { t: 'key', keyHash, key })
      const ms = performance.now() - started
      assert.equal(db.queries() - before, 1, 'one statement: the key and the requester\'s place on its list')
      assert.deepEqual(await ask({ t: 'getkey', keyHash }, readers[0] ?? ''), { t: 'key', keyHash, key })
      assert.deepEqual(await ask({ t: 'getkey', keyHash }, author.peerId), { t: 'key', keyHash, key })
      assert.deepEqual(await ask({ t: 'getkey', keyHash }, stranger), { t: 'denied', reason: 'not on the author\'s allow-list', code: 'not-entitled' })
      assert.equal(verify.mock.callCount(), 0, 'no signature verified per request')
      console.log(`# GETKEY against a ${READERS}-reader allow-list: ${ms.toFixed(1)} ms, ${verify.mock.callCount()} signature verifications`)
    } finally {
      verify.mock.restore()
    }
  })

  it('a new rule version replaces the readers; an older one is refused', async () => {
    const [kept, added] = [readers[5] ?? '', stranger]
    const rule2 = await signAllowList({ keyHash, version: 2, peers: [kept, added] }, author)
    assert.deepEqual(await ask({ t: 'deposit', key, rule: rule2 }, author.peerId), { t: 'deposited', keyHash })
    assert.equal((await ask({ t: 'getkey', keyHash }, added)).t, 'key')
    assert.equal((await ask({ t: 'getkey', keyHash }, kept)).t, 'key')
    assert.equal((await ask({ t: 'getkey', keyHash }, readers[6] ?? '')).t, 'denied', 'dropped from the list')
    const stale = await signAllowList({ keyHash, version: 1, peers: readers }, author)
    assert.equal((await ask({ t: 'deposit', key, rule: stale }, author.peerId)).t, 'error')
    assert.equal((await ask({ t: 'getkey', keyHash }, readers[6] ?? '')).t, 'denied', 'the older rule did not come back')
  })

  it('verifies a key deposited before readers were indexed once, then answers from the index', async () => {
    const legacyKey = new Uint8Array(randomBytes(32))
    const legacyHash = await keyHashOf(legacyKey)
    const reader = readers[7] ?? ''
    const rule = await signAllowList({ keyHash: legacyHash, version: 1, peers: [reader] }, author)
    // As a worker before migration 009 stored it: the rule, no readers.
    await raw.query('INSERT INTO content_keys (key_hash, author, key, rule, rule_version) VALUES ($1, $2, $3, $4, 1)', [legacyHash, author.peerId, legacyKey, rule])
    const verify = mock.method(globalThis.crypto.subtle, 'verify')
    try {
      assert.equal((await ask({ t: 'getkey', keyHash: legacyHash }, stranger)).t, 'denied')
      assert.equal(verify.mock.callCount(), 1, 'verified once, on first use')
      assert.equal((await ask({ t: 'getkey', keyHash: legacyHash }, reader)).t, 'key')
      assert.equal((await ask({ t: 'getkey', keyHash: legacyHash }, stranger)).t, 'denied')
      assert.equal(verify.mock.callCount(), 1, 'then answered from the index')
    } finally {
      verify.mock.restore()
    }
  })
})
