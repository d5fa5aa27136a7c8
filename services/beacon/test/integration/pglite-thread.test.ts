/**
 * The embedded engine runs PGlite in a worker thread (storage/pglite-client.ts, issue 17
 * item 6): queries leave the main thread's event loop free, and the `SqlClient` contract
 * holds across the thread boundary — errors with their SQLSTATE, bytea as Uint8Array, one
 * session held by a transaction until it commits, and a dead thread fails requests rather
 * than hanging them.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { threadId as mainThreadId } from 'node:worker_threads'
import { openPglite, PgliteThreadExitedError } from '../../src/storage/pglite-client.ts'
import type { PgliteThreadClient } from '../../src/storage/pglite-client.ts'
import { isStorageUnavailable } from '../../src/storage/sql.ts'

describe('PGlite in a worker thread', () => {
  let db: PgliteThreadClient

  before(async () => {
    db = await openPglite(undefined)
    await db.exec(`
      CREATE TABLE parent (id int PRIMARY KEY, name text UNIQUE);
      CREATE TABLE child (id int PRIMARY KEY, parent int NOT NULL REFERENCES parent (id));
      CREATE TABLE blobs (id int PRIMARY KEY, data bytea, list bytea[]);
    `)
  })
  after(async () => { await db.close() })

  it('runs queries in a thread other than the main one, and the main event loop keeps turning during a long query', async () => {
    // The longest the main event loop went without running a timer while the query ran.
    let lastTick = performance.now()
    let worstGapMs = 0
    const ticker = setInterval(() => {
      const now = performance.now()
      worstGapMs = Math.max(worstGapMs, now - lastTick)
      lastTick = now
    }, 10)
    const started = performance.now()
    // Seconds of CPU inside PGlite's WASM, which on the main thread is one synchronous run.
    const { rows } = await db.query<{ total: number }>('SELECT sum(g)::int8 AS total FROM generate_series(1, 3000000) g')
    const tookMs = performance.now() - started
    clearInterval(ticker)
    worstGapMs = Math.max(worstGapMs, performance.now() - lastTick)
    assert.equal(rows[0]?.total, 3000000 * 3000001 / 2)
    // PGlite on the main thread holds the loop for the whole query; here it never stops for
    // more than a fraction of it (the bound is loose for a loaded machine).
    assert.ok(worstGapMs < tookMs / 2, `the main event loop stood still ${worstGapMs.toFixed(0)} ms during a ${tookMs.toFixed(0)} ms query`)
    assert.notEqual(db.thread.threadId, mainThreadId)
  })

  it('keeps the SQLSTATE and fields of errors raised in the thread', async () => {
    await db.query('INSERT INTO parent (id, name) VALUES (1, $1)', ['one'])
    await assert.rejects(db.query('INSERT INTO parent (id, name) VALUES (2, $1)', ['one']), (err: Error & { code?: string, constraint?: string }) => {
      assert.equal(err.code, '23505')
      assert.equal(err.constraint, 'parent_name_key')
      assert.match(err.message, /duplicate key/)
      assert.equal(isStorageUnavailable(err), false)
      return true
    })
    await assert.rejects(db.query('INSERT INTO child (id, parent) VALUES (1, 99)'), { code: '23503' })
    await assert.rejects(db.query('SELEC 1'), { code: '42601' })
    await assert.rejects(db.exec('SELECT * FROM no_such_table'), { code: '42P01' })
  })

  it('returns bytea as Uint8Array, and stores exactly the bytes of a view into a larger buffer', async () => {
    const backing = new Uint8Array(64 * 1024).map((_, i) => i % 251)
    const view = backing.subarray(1000, 1000 + 3000)
    const pooled = Buffer.from('a pooled Buffer is a view into a shared 8 KiB slab')
    await db.query('INSERT INTO blobs (id, data, list) VALUES (1, $1, $2), (2, $3, NULL), (3, $4, NULL)', [view, [pooled, new Uint8Array(0)], pooled, new Uint8Array(0)])
    const { rows } = await db.query<{ id: number, data: Uint8Array, list: Uint8Array[] | null }>('SELECT id, data, list FROM blobs ORDER BY id')
    const [first, second, third] = rows
    assert.ok(first !== undefined && second !== undefined && third !== undefined)
    assert.ok(first.data instanceof Uint8Array)
    assert.equal(first.data.byteLength, 3000)
    assert.deepEqual(Buffer.from(first.data), Buffer.from(view))
    assert.deepEqual(first.list?.map((item) => Buffer.from(item).toString()), [pooled.toString(), ''])
    assert.equal(Buffer.from(second.data).toString(), pooled.toString())
    assert.equal(third.data.byteLength, 0)
    // The caller's buffers are untouched (parameters are copied or cloned, never moved away).
    assert.equal(backing.byteLength, 64 * 1024)
    assert.equal(pooled.toString(), 'a pooled Buffer is a view into a shared 8 KiB slab')
  })

  it('holds the one session for a transaction until it commits: other queries wait', async () => {
    const order: string[] = []
    let outside: Promise<unknown> | undefined
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO parent (id, name) VALUES (10, $1)', ['ten'])
      outside = db.query<{ n: number }>('SELECT count(*)::int AS n FROM parent WHERE id = 10').then((result) => {
        order.push(`outside saw ${result.rows[0]?.n}`)
      })
      await new Promise((resolve) => setTimeout(resolve, 200))
      order.push('commit')
    })
    await outside
    assert.deepEqual(order, ['commit', 'outside saw 1'])
  })

  it('rolls a transaction back when its function throws, and passes its error on', async () => {
    class Abandon extends Error {}
    await assert.rejects(db.transaction(async (tx) => {
      await tx.query('INSERT INTO parent (id, name) VALUES (20, $1)', ['twenty'])
      throw new Abandon('changed my mind')
    }), Abandon)
    await assert.rejects(db.transaction(async (tx) => {
      await tx.query('INSERT INTO parent (id, name) VALUES (21, $1)', ['twenty-one'])
      await tx.query('INSERT INTO parent (id, name) VALUES (22, $1)', ['twenty-one'])
    }), { code: '23505' })
    const { rows } = await db.query('SELECT id FROM parent WHERE id IN (20, 21, 22)')
    assert.equal(rows.length, 0)
    // The session is free again.
    assert.equal((await db.query('SELECT 1 AS one')).rows.length, 1)
  })

  it('fails requests in flight and later ones with PgliteThreadExitedError when the thread dies, without hanging', async () => {
    const exits: Error[] = []
    const doomed = await openPglite(undefined, { onThreadExit: (err) => { exits.push(err) } })
    try {
      const inFlight = doomed.query('SELECT sum(g)::int8 FROM generate_series(1, 20000000) g')
      await new Promise((resolve) => setTimeout(resolve, 50))
      await doomed.thread.terminate()
      await assert.rejects(inFlight, (err: Error) => {
        assert.ok(err instanceof PgliteThreadExitedError)
        assert.equal(isStorageUnavailable(err), true)
        return true
      })
      await assert.rejects(doomed.query('SELECT 1'), PgliteThreadExitedError)
      await assert.rejects(doomed.transaction(async () => {}), PgliteThreadExitedError)
      assert.equal(exits.length, 1)
    } finally {
      await doomed.close()
    }
  })
})
