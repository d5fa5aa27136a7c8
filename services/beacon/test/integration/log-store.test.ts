/**
 * The durable index of signed logs, on Postgres and PGlite: where an entry fits (genesis,
 * chain, orphan, fork), the best head every worker agrees on, counts that match a full
 * recount after every change, the changes feed and entry paging, and concurrent writers.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import pg from 'pg'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { InvalidCursorError, LogStore } from '../../src/logs/log-store.ts'
import type { Head, InsertOutcome, NewLogEntry, StoredOutcome } from '../../src/logs/log-store.ts'
import { migrate } from '../../src/storage/migrate.ts'
import { openPglite } from '../../src/storage/pglite-client.ts'
import { openPostgres } from '../../src/storage/pg-client.ts'
import type { SqlClient } from '../../src/storage/sql.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const DAG_CBOR = 0x71
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
let made = 0

/** A stand-in entry with a real dag-cbor CID; the store never looks inside the block. */
async function entry (author: string, seq: number, prev: Uint8Array | null, salt = ''): Promise<NewLogEntry> {
  const bytes = new TextEncoder().encode(`${author}|${seq}|${prev === null ? '' : hex(prev)}|${salt}|${made++}`)
  return { cid: CID.createV1(DAG_CBOR, await sha256.digest(bytes)).bytes, author, seq, prev, action: 'append-feed-post', timestamp: 1_700_000_000_000 + seq, size: bytes.length }
}

/** A linear log of `length` entries from genesis. */
async function chain (author: string, length: number): Promise<NewLogEntry[]> {
  const entries: NewLogEntry[] = []
  for (let seq = 0; seq < length; seq++) entries.push(await entry(author, seq, entries.at(-1)?.cid ?? null))
  return entries
}

function stored (outcome: InsertOutcome): StoredOutcome {
  assert.equal(outcome.status, 'stored', JSON.stringify(outcome))
  return outcome as StoredOutcome
}

async function insertAll (store: LogStore, entries: readonly NewLogEntry[]): Promise<void> {
  for (const e of entries) stored(await store.insert(e))
}

const lowest = (a: Uint8Array, b: Uint8Array): Uint8Array => Buffer.compare(a, b) <= 0 ? a : b

/** The counts `insert` kept incrementally equal a recount from the entries themselves. */
async function assertCountsHold (store: LogStore, author: string): Promise<void> {
  const kept = await store.author(author)
  const recounted = await store.recount(author)
  assert.ok(kept !== undefined && recounted !== undefined, `no summary of ${author}`)
  assert.deepEqual({ ...kept, change: '' }, { ...recounted, change: '' }, 'incremental counts equal a recount')
}

/**
 * Retries `check` until it passes or `timeoutMs` runs out. The changes feed holds a change
 * back while any older transaction on the server is open (other test files share the
 * server), so a change may take a moment to show.
 */
async function eventually<T> (check: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

/** Every change after `cursor`, a page of `limit` at a time. */
async function drain (store: LogStore, cursor: string, limit: number): Promise<{ heads: Head[], cursor: string }> {
  const heads: Head[] = []
  for (let pages = 0; pages < 1000; pages++) {
    const page = await store.changesSince(cursor, limit)
    heads.push(...page.heads)
    if (page.cursor === cursor) break
    cursor = page.cursor
  }
  return { heads, cursor }
}

let authorNo = 0
const newAuthor = (): string => `author-${authorNo++}-${randomUUID().slice(0, 8)}`

const engines: Array<{ name: string, open: () => Promise<SqlClient> }> = [
  { name: 'Postgres', open: async () => await openPostgres(await createTestDatabase('logs')) },
  { name: 'PGlite', open: async () => await openPglite(undefined) }
]

for (const engine of engines) {
  describe(`LogStore on ${engine.name}`, () => {
    let db: SqlClient
    let store: LogStore
    before(async () => {
      db = await engine.open()
      await migrate(db)
      store = new LogStore(db)
    })
    after(async () => { await db.close() })

    it('stores a genesis entry as the head', async () => {
      const author = newAuthor()
      const [genesis] = await chain(author, 1)
      assert.ok(genesis !== undefined)
      const outcome = stored(await store.insert(genesis))
      assert.equal(outcome.orphan, false)
      assert.equal(outcome.headChanged, true)
      assert.equal(outcome.equivocation, false)
      assert.equal(outcome.missingPrev, undefined)
      assert.deepEqual(outcome.head && { ...outcome.head, change: '' }, { author, cid: genesis.cid, seq: 0, forks: 0, entries: 1, change: '' })
      await assertCountsHold(store, author)
    })

    it('follows a chain, and refuses duplicates and entries whose seq does not follow', async () => {
      const author = newAuthor()
      const entries = await chain(author, 3)
      await insertAll(store, entries)
      const [e0, e1, e2] = entries as [NewLogEntry, NewLogEntry, NewLogEntry]
      assert.deepEqual((await store.heads([author]))[0]?.cid, e2.cid)

      assert.deepEqual(await store.insert(e1), { status: 'duplicate' })
      assert.deepEqual(await store.insert(await entry(author, 5, e1.cid)), { status: 'rejected', reason: 'bad-seq' }, 'seq is not prev.seq + 1')
      assert.deepEqual(await store.insert(await entry(author, 1, e1.cid)), { status: 'rejected', reason: 'bad-seq' }, 'seq repeats prev.seq')
      assert.deepEqual(await store.insert(await entry(author, 3, null)), { status: 'rejected', reason: 'bad-seq' }, 'no prev above seq 0')
      assert.deepEqual(await store.insert(await entry(author, 0, e0.cid)), { status: 'rejected', reason: 'bad-seq' }, 'seq 0 with a prev')
      const [other] = await chain(newAuthor(), 1)
      assert.ok(other !== undefined)
      stored(await store.insert(other))
      assert.deepEqual(await store.insert(await entry(author, 1, other.cid)), { status: 'rejected', reason: 'bad-prev' }, 'prev is another author\'s')

      const summary = await store.author(author)
      assert.equal(summary?.entries, 3, 'nothing refused was stored')
      assert.equal(summary?.head?.seq, 2)
      await assertCountsHold(store, author)
    })

    it('keeps an orphan apart until its missing parent arrives, then connects it and moves the head', async () => {
      const author = newAuthor()
      const [e0, e1, e2, e3] = await chain(author, 4) as [NewLogEntry, NewLogEntry, NewLogEntry, NewLogEntry]
      stored(await store.insert(e0))

      const orphan = stored(await store.insert(e2))
      assert.equal(orphan.orphan, true)
      assert.deepEqual(orphan.missingPrev, e1.cid, 'the entry to fetch is its prev')
      assert.equal(orphan.headChanged, false)
      assert.deepEqual(orphan.head?.cid, e0.cid, 'an orphan never becomes the head')

      const above = stored(await store.insert(e3))
      assert.equal(above.orphan, true, 'a child of an orphan is an orphan')
      assert.equal(above.missingPrev, undefined, 'its prev is stored; the gap is further down')
      assert.deepEqual(await store.missingAncestor(e3.cid), e1.cid)
      assert.deepEqual(await store.missingAncestor(e1.cid), e1.cid, 'a CID not stored is itself missing')
      assert.equal(await store.missingAncestor(e0.cid), undefined, 'genesis: nothing missing')
      assert.equal((await store.author(author))?.orphans, 2)
      await assertCountsHold(store, author)

      const filled = stored(await store.insert(e1))
      assert.equal(filled.orphan, false)
      assert.equal(filled.connectedOrphans, 2)
      assert.equal(filled.headChanged, true)
      assert.deepEqual(filled.head?.cid, e3.cid)
      assert.equal(filled.head?.seq, 3)
      const summary = await store.author(author)
      assert.equal(summary?.orphans, 0)
      assert.equal(summary?.connected, 4)
      assert.equal(summary?.forks, 0)
      await assertCountsHold(store, author)
    })

    it('an orphan whose seq does not follow its parent stays an orphan when the parent arrives', async () => {
      const author = newAuthor()
      const [e0, e1] = await chain(author, 2) as [NewLogEntry, NewLogEntry]
      stored(await store.insert(e0))
      const liar = await entry(author, 7, e1.cid)
      assert.equal(stored(await store.insert(liar)).orphan, true)
      const filled = stored(await store.insert(e1))
      assert.equal(filled.connectedOrphans, 0)
      assert.deepEqual(filled.head?.cid, e1.cid)
      assert.equal((await store.author(author))?.orphans, 1)
      await assertCountsHold(store, author)
    })

    it('records a fork: two tips, one equivocation, and the lowest CID as head', async () => {
      const author = newAuthor()
      const base = await chain(author, 2)
      await insertAll(store, base)
      const parent = base[1]?.cid ?? null
      const a = await entry(author, 2, parent, 'a')
      const b = await entry(author, 2, parent, 'b')
      assert.equal(stored(await store.insert(a)).equivocation, false)
      const second = stored(await store.insert(b))
      assert.equal(second.equivocation, true)
      assert.deepEqual(second.head?.cid, lowest(a.cid, b.cid), 'highest seq, then lowest CID bytes')
      assert.equal(second.head?.forks, 1)

      const summary = await store.author(author)
      assert.equal(summary?.tips, 2)
      assert.equal(summary?.forks, 1)
      assert.equal(summary?.equivocations, 1)
      const { rows } = await db.query<{ cid: Uint8Array }>('SELECT cid FROM log_equivocations WHERE author = $1 AND seq = 2 ORDER BY cid', [author])
      assert.deepEqual(rows.map((row) => hex(row.cid)).sort(), [hex(a.cid), hex(b.cid)].sort())
      await assertCountsHold(store, author)

      // The branch with the higher CID grows: the higher seq wins over the lower CID.
      const loser = Buffer.compare(a.cid, b.cid) <= 0 ? b : a
      const grown = stored(await store.insert(await entry(author, 3, loser.cid)))
      assert.equal(grown.headChanged, true)
      assert.equal(grown.head?.seq, 3)
      assert.equal(grown.head?.forks, 1, 'still two tips')
      await assertCountsHold(store, author)
    })

    it('pages an author\'s entries by seq descending, CID ascending, without gaps or repeats', async () => {
      const author = newAuthor()
      const base = await chain(author, 4)
      await insertAll(store, base)
      const forked = [await entry(author, 2, base[1]?.cid ?? null, 'x'), await entry(author, 2, base[1]?.cid ?? null, 'y')]
      await insertAll(store, forked)
      const all = [...base, ...forked]
      const expected = [...all].sort((p, q) => q.seq - p.seq || Buffer.compare(p.cid, q.cid)).map((e) => hex(e.cid))

      const seen: string[] = []
      let cursor: string | undefined
      for (let pages = 0; pages < 10; pages++) {
        const page = await store.entries(author, { limit: 2, before: cursor })
        seen.push(...page.entries.map((e) => hex(e.cid)))
        assert.ok(page.entries.every((e) => e.author === author && e.action === 'append-feed-post' && e.receivedAt instanceof Date))
        if (page.next === undefined) break
        cursor = page.next
      }
      assert.deepEqual(seen, expected)
      await assert.rejects(store.entries(author, { limit: 2, before: 'nonsense' }), InvalidCursorError)
    })

    it('walks ancestry back along prev, and reports what is stored and pinned', async () => {
      const author = newAuthor()
      const entries = await chain(author, 5)
      await insertAll(store, entries)
      const cids = entries.map((e) => e.cid)
      assert.deepEqual(await store.ancestry(cids[4] as Uint8Array, 3), [cids[4], cids[3], cids[2]])
      assert.deepEqual(await store.ancestry(cids[1] as Uint8Array, 10), [cids[1], cids[0]])
      assert.deepEqual(await store.ancestry((await entry(author, 9, cids[0] as Uint8Array)).cid, 10), [])

      const unknown = (await entry(author, 1, null)).cid
      const status = await store.has([cids[0] as Uint8Array, unknown])
      assert.deepEqual([...status.keys()], [hex(cids[0] as Uint8Array)])
      assert.deepEqual(status.get(hex(cids[0] as Uint8Array)), { connected: true, pinned: false })

      // An entry's pin settles: the entries it holds are marked once, with their latency.
      const pinId = randomUUID()
      await db.query(
        `INSERT INTO pins (id, owner, cid, root_cid, status, created, dag_bytes) VALUES ($1, $2, 'x', 'x', 'pinning', clock_timestamp(), 1234)`,
        [pinId, author])
      assert.equal(await store.setPin(cids[0] as Uint8Array, pinId), true)
      assert.equal(await store.setPin(cids[1] as Uint8Array, pinId), true)
      assert.equal(await store.setPin(unknown, pinId), false)
      assert.equal((await store.author(author))?.bytesPinned, 0, 'a pin still pinning holds nothing yet')
      await db.query('UPDATE pins SET status = \'pinned\' WHERE id = $1', [pinId])
      const marked = await store.markPinned(pinId)
      assert.deepEqual(marked.map((m) => hex(m.cid)).sort(), [hex(cids[0] as Uint8Array), hex(cids[1] as Uint8Array)].sort())
      assert.ok(marked.every((m) => m.seconds >= 0 && m.receivedAt instanceof Date))
      assert.deepEqual(await store.markPinned(pinId), [], 'marked once')
      assert.equal((await store.has([cids[1] as Uint8Array])).get(hex(cids[1] as Uint8Array))?.pinned, true)
      assert.equal((await store.author(author))?.bytesPinned, 1234, 'one pin counted once')
    })

    it('feeds changed heads in order, a page at a time, from cursor 0', async () => {
      const first = await store.changesSince('0', 10_000)
      const authors = [newAuthor(), newAuthor(), newAuthor()]
      for (const author of authors) await insertAll(store, await chain(author, 2))
      const onlyOrphans = newAuthor()
      stored(await store.insert(await entry(onlyOrphans, 4, (await entry(onlyOrphans, 3, null)).cid)))

      const { heads: seen, cursor } = await eventually(async () => {
        const drained = await drain(store, first.cursor, 1)
        assert.deepEqual(drained.heads.map((head) => head.author), authors, 'each author once, at its last change, in change order; no head, no entry')
        return drained
      })
      assert.ok(seen.every((head) => head.seq === 1))
      assert.deepEqual((await store.changesSince(cursor, 10)).heads, [], 'nothing new')

      await insertAll(store, [await entry(authors[0] as string, 2, seen[0]?.cid ?? null)])
      const next = await eventually(async () => {
        const page = await store.changesSince(cursor, 10)
        assert.deepEqual(page.heads.map((head) => [head.author, head.seq]), [[authors[0], 2]])
        return page
      })
      assert.ok(BigInt(next.heads[0]?.change ?? 0) > BigInt(seen[0]?.change ?? 0), 'the row version grew')

      const all = await drain(store, '0', 10_000)
      assert.ok(authors.every((author) => all.heads.some((head) => head.author === author)))
      await assert.rejects(store.changesSince('12:x', 10), InvalidCursorError)
    })

    it('answers heads for known authors only', async () => {
      const author = newAuthor()
      await insertAll(store, await chain(author, 3))
      const heads = await store.heads([author, 'nobody'])
      assert.deepEqual(heads.map((head) => [head.author, head.seq, head.entries, head.forks]), [[author, 2, 3, 0]])
      assert.deepEqual(await store.heads([]), [])
      assert.equal(await store.author('nobody'), undefined)
    })
  })
}

/** Entries of one author: a chain with side branches (forks), in a fixed order to shuffle. */
async function forkedLog (author: string, length: number): Promise<NewLogEntry[]> {
  const main = await chain(author, length)
  const branches: NewLogEntry[] = []
  // Side branches end below the main chain's head, so the head is main's last entry.
  for (let seq = 3; seq <= length - 3; seq += 7) {
    const twig = await entry(author, seq, main[seq - 1]?.cid ?? null, `fork-${seq}`)
    branches.push(twig, await entry(author, seq + 1, twig.cid, `fork-${seq}`))
  }
  return [...main, ...branches]
}

/** A deterministic shuffle (the test must say the same thing on every run). */
function shuffled<T> (items: readonly T[], seed: number): T[] {
  const out = [...items]
  let state = seed
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2 ** 31
    const j = state % (i + 1)
    const a = out[i] as T
    out[i] = out[j] as T
    out[j] = a
  }
  return out
}

describe('LogStore across workers (Postgres)', () => {
  let url: string
  const clients: SqlClient[] = []
  const open = async (): Promise<SqlClient> => {
    const client = await openPostgres(url, { maxConnections: 8 })
    clients.push(client)
    return client
  }

  before(async () => {
    url = await createTestDatabase('logs_fleet')
    await migrate(await open())
  })
  after(async () => { await Promise.all(clients.map(async (client) => { await client.close() })) })

  it('two workers given the same forked log in different orders pick the same head', async () => {
    const author = newAuthor()
    const log = await forkedLog(author, 20)
    // Apart: one on Postgres, one on PGlite, each fed its own order.
    const elsewhere = await openPglite(undefined)
    try {
      await migrate(elsewhere)
      const here = new LogStore(await open())
      const there = new LogStore(elsewhere)
      for (const e of shuffled(log, 1)) await here.insert(e)
      for (const e of shuffled(log, 2)) await there.insert(e)
      const [a, b] = [await here.author(author), await there.author(author)]
      assert.deepEqual({ ...a, change: '' }, { ...b, change: '' })
      assert.equal(a?.orphans, 0)
      assert.equal(a?.head?.seq, 19)
      await assertCountsHold(here, author)
      await assertCountsHold(there, author)
    } finally {
      await elsewhere.close()
    }
  })

  it('batches of the same entries in two orders, on Postgres and PGlite, give the heads and counts one-at-a-time inserts give', async () => {
    // Three authors with forks and an equivocation, batched 7 at a time (batches hold several
    // authors, and an entry's prev may come later in the batch, in a later batch, or before).
    const authors = [newAuthor(), newAuthor(), newAuthor()]
    const log: NewLogEntry[] = []
    for (const author of authors) log.push(...await forkedLog(author, 20))
    const batches = (entries: NewLogEntry[]): NewLogEntry[][] => Array.from({ length: Math.ceil(entries.length / 7) }, (_, i) => entries.slice(i * 7, i * 7 + 7))
    const embedded = await openPglite(undefined)
    try {
      await migrate(embedded)
      const one = new LogStore(await open())
      for (const e of log) stored(await one.insert(e))
      const ordered = await Promise.all([1, 2].map(async () => {
        const client = await openPostgres(await createTestDatabase('logs_batch'), { maxConnections: 4 })
        clients.push(client)
        await migrate(client)
        return new LogStore(client)
      }))
      const stores = [...ordered, new LogStore(embedded)]
      for (const [i, store] of stores.entries()) {
        for (const batch of batches(shuffled(log, 10 + i))) {
          const outcomes = await store.insertMany(batch)
          assert.equal(outcomes.length, batch.length)
          for (const outcome of outcomes) stored(outcome)
        }
      }
      const expected = await one.heads(authors)
      assert.equal(expected.length, 3)
      for (const store of stores) {
        assert.deepEqual((await store.heads(authors)).map((head) => ({ ...head, change: '' })), expected.map((head) => ({ ...head, change: '' })))
        for (const author of authors) {
          assert.deepEqual({ ...await store.author(author), change: '' }, { ...await one.author(author), change: '' })
          await assertCountsHold(store, author)
        }
      }
    } finally {
      await embedded.close()
    }
  })

  it('a batch refuses only its bad entries: duplicate, bad seq, bad prev and an entry over the cap', async () => {
    const store = new LogStore(await open())
    const [author, other] = [newAuthor(), newAuthor()]
    const [e0, e1, e2, e3] = await chain(author, 4) as [NewLogEntry, NewLogEntry, NewLogEntry, NewLogEntry]
    const [o0] = await chain(other, 1) as [NewLogEntry]
    stored(await store.insert(o0))
    stored(await store.insert(e0))
    const outcomes = await store.insertMany([
      e0,
      e1,
      await entry(author, 5, e1.cid),
      await entry(author, 1, o0.cid),
      e2,
      e2,
      e3
    ], { maxEntries: 3, maxOrphans: 10 })
    assert.deepEqual(outcomes.map((outcome) => outcome.status === 'rejected' ? outcome.reason : outcome.status),
      ['duplicate', 'stored', 'bad-seq', 'bad-prev', 'stored', 'duplicate', 'too-many-entries'])
    assert.deepEqual((await store.heads([author]))[0]?.cid, e2.cid)
    assert.equal((await store.author(author))?.entries, 3)
    await assertCountsHold(store, author)
    assert.deepEqual(await store.insertMany([]), [])
  })

  it('inserts to one author from two pools at once serialise: nothing is left orphaned and the counts hold', async () => {
    const author = newAuthor()
    const log = await forkedLog(author, 60)
    const [one, two] = [new LogStore(await open()), new LogStore(await open())]
    // Reverse-ish orders on each side maximise children racing their parents.
    const order = shuffled(log, 7)
    const outcomes = await Promise.all(order.map(async (e, i) => await (i % 2 === 0 ? one : two).insert(e)))
    assert.ok(outcomes.every((outcome) => outcome.status === 'stored'), JSON.stringify(outcomes.filter((o) => o.status !== 'stored')))
    // The same entries again, from both sides at once: each is a duplicate exactly once more.
    const again = await Promise.all(order.flatMap((e) => [one.insert(e), two.insert(e)]))
    assert.ok(again.every((outcome) => outcome.status === 'duplicate'))

    const summary = await one.author(author)
    assert.equal(summary?.entries, log.length)
    assert.equal(summary?.orphans, 0, 'every child that raced its parent was connected')
    assert.equal(summary?.head?.seq, 59)
    const branches = (log.length - 60) / 2
    assert.equal(summary?.forks, branches, 'one extra tip per side branch')
    await assertCountsHold(one, author)
  })

  it('the changes feed never steps past a change that commits later', async () => {
    const store = new LogStore(await open())
    const { cursor } = await store.changesSince('0', 100_000)
    // A transaction that began (and took its xid) before the next insert, still open.
    const older = new pg.Client({ connectionString: url })
    await older.connect()
    try {
      await older.query('BEGIN')
      await older.query('SELECT pg_current_xact_id()')
      const author = newAuthor()
      await insertAll(store, await chain(author, 1))
      // Other tests' writes to this database may still show up after `cursor`; this author must not.
      const authorsNow = (await drain(store, cursor, 100)).heads.map((head) => head.author)
      assert.ok(!authorsNow.includes(author), 'held back while an older transaction may still commit')
      await older.query('COMMIT')
      await eventually(async () => {
        assert.ok((await drain(store, cursor, 100)).heads.some((head) => head.author === author), 'listed once the older transaction is over')
      })
    } finally {
      await older.end()
    }
  })
})

describe('GET /v1/authors on a worker', () => {
  const ADMIN_TOKEN = 'test-admin-token-0123456789'
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }
  let worker: Worker
  const cidText = (bytes: Uint8Array): string => CID.decode(bytes).toString()

  before(async () => {
    worker = await startWorker(loadConfig(await inProcessEnv({ PHAROS_ADMIN_TOKENS: ADMIN_TOKEN })), createLogger('silent'))
  })
  after(async () => { await worker.stop() })

  it('shows an author\'s head and counts, and pages its entries', async () => {
    const author = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const base = await chain(author, 3)
    const fork = await entry(author, 2, base[1]?.cid ?? null, 'fork')
    const orphan = await entry(author, 9, (await entry(author, 8, fork.cid)).cid)
    await insertAll(worker.logs, [...base, fork, orphan])
    const head = lowest(base[2]?.cid as Uint8Array, fork.cid)

    const summary = await worker.app.inject({ method: 'GET', url: `/v1/authors/${author}`, headers: auth })
    assert.equal(summary.statusCode, 200, summary.body)
    assert.deepEqual({ ...summary.json<Record<string, unknown>>(), change: '' }, {
      author, head: cidText(head), seq: 2, entries: 5, connected: 4, orphans: 1, forks: 1, equivocations: 1, bytesPinned: 0, change: ''
    })

    const seen: Array<Record<string, unknown>> = []
    let url = `/v1/authors/${author}/entries?limit=2`
    for (let pages = 0; pages < 10; pages++) {
      const page = await worker.app.inject({ method: 'GET', url, headers: auth })
      assert.equal(page.statusCode, 200, page.body)
      const body = page.json<{ entries: Array<Record<string, unknown>>, next?: string }>()
      seen.push(...body.entries)
      if (body.next === undefined) break
      url = `/v1/authors/${author}/entries?limit=2&cursor=${encodeURIComponent(body.next)}`
    }
    assert.deepEqual(seen.map((e) => e.seq), [9, 2, 2, 1, 0])
    assert.deepEqual(seen[0], {
      cid: cidText(orphan.cid), seq: 9, prev: cidText(orphan.prev as Uint8Array), action: 'append-feed-post',
      timestamp: orphan.timestamp, receivedAt: seen[0]?.receivedAt, connected: false, pinned: false, size: orphan.size
    })
    assert.equal(seen[4]?.prev, null)
    assert.ok(!Number.isNaN(Date.parse(String(seen[0]?.receivedAt))))

    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    assert.equal((await worker.app.inject({ method: 'GET', url: `/v1/authors/${other}`, headers: auth })).statusCode, 404)
    assert.equal((await worker.app.inject({ method: 'GET', url: `/v1/authors/${other}/entries`, headers: auth })).statusCode, 404)
    const bad = await worker.app.inject({ method: 'GET', url: '/v1/authors/not-a-peer', headers: auth })
    assert.equal(bad.statusCode, 400)
    assert.match(bad.json().error.details, /not a peer ID/)
    assert.equal((await worker.app.inject({ method: 'GET', url: `/v1/authors/${author}/entries?cursor=zzz`, headers: auth })).statusCode, 400)
    assert.equal((await worker.app.inject({ method: 'GET', url: `/v1/authors/${author}` })).statusCode, 401)
  })
})
