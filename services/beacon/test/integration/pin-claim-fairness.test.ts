/**
 * The pin queue's claim order is fair across owners (issue 17, item 10): one owner's backlog
 * of due jobs (an author's burst of junk entries) takes one slot's turn at a time, so another
 * owner's job is claimed by the next free slot instead of after the whole backlog. Asserted on
 * the order of claims, on Postgres and on PGlite, and on a queue big enough that a claim that
 * walked every queued job would show in its plan.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { CLAIM_NEXT_SQL, PinStore } from '../../src/pinning/pin-store.ts'
import type { PinJob } from '../../src/pinning/pin-store.ts'
import { migrate } from '../../src/storage/migrate.ts'
import { openPglite } from '../../src/storage/pglite-client.ts'
import { openPostgres } from '../../src/storage/pg-client.ts'
import type { SqlClient } from '../../src/storage/sql.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'

const LEASE_MS = 60_000

async function rawCid (text: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(text)))
}

async function queue (store: PinStore, owner: string, count: number, label: string): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    const cid = await rawCid(`${label} ${i}`)
    ids.push((await store.create({ owner, cid, cidText: cid.toString(), name: `${label} ${i}` })).id)
  }
  return ids
}

const engines: Array<{ name: string, open: () => Promise<SqlClient> }> = [
  { name: 'Postgres', open: async () => await openPostgres(await createTestDatabase('claim_fairness')) },
  { name: 'PGlite', open: async () => await openPglite(undefined) }
]

for (const engine of engines) {
  describe(`pin claims on ${engine.name}`, () => {
    let db: SqlClient
    let store: PinStore

    before(async () => {
      db = await engine.open()
      await migrate(db)
      store = new PinStore(db)
    })

    after(async () => { await db?.close() })

    it('give another owner\'s job the next free slot, however many due jobs one owner queued first', async () => {
      await db.query('DELETE FROM pins')
      // The flooding author queues 40 jobs first; an honest user queues one after them.
      const flood = await queue(store, 'author:flooder', 40, 'junk')
      const [honest] = await queue(store, 'alice', 1, 'post')
      assert.ok(honest !== undefined)

      // Four slots (PHAROS_PIN_CONCURRENCY's default) claim in turn.
      const claimed: PinJob[] = []
      for (let slot = 0; slot < 4; slot++) {
        const job = await store.claim(`worker-${slot}`, LEASE_MS)
        assert.ok(job !== undefined, 'a due job is claimed')
        claimed.push(job)
      }
      const owners = claimed.map((job) => job.owner)
      // The oldest due job goes first (both owners run nothing); the honest user's is the very
      // next claim: its owner runs no job, the flooder already runs one. It does not wait for
      // the flood, nor for more than the one slot's turn the flood already had.
      assert.deepEqual(owners.slice(0, 2), ['author:flooder', 'alice'])
      assert.equal(claimed[0]?.id, flood[0])
      assert.equal(claimed[1]?.id, honest)
      // With the honest user served, the flood takes the free slots, oldest first.
      assert.deepEqual(claimed.slice(2).map((job) => job.id), flood.slice(1, 3))
    })

    it('round-robins owners that each have a backlog, by how many jobs each runs, then by age', async () => {
      await db.query('DELETE FROM pins')
      const a = await queue(store, 'owner-a', 5, 'a')
      const b = await queue(store, 'owner-b', 5, 'b')
      const c = await queue(store, 'owner-c', 5, 'c')
      const claimed: PinJob[] = []
      for (let i = 0; i < 9; i++) {
        const job = await store.claim('worker', LEASE_MS)
        assert.ok(job !== undefined)
        claimed.push(job)
      }
      assert.deepEqual(claimed.map((job) => job.id), [a[0], b[0], c[0], a[1], b[1], c[1], a[2], b[2], c[2]])

      // Jobs that settle free their owner's turns: owner-b, now running the fewest, goes next.
      for (const job of claimed.filter((job) => job.owner === 'owner-b').slice(0, 2)) assert.equal(await store.complete(job, { blocks: 0, bytes: 0 }), true)
      assert.equal((await store.claim('worker', LEASE_MS))?.id, b[3])
    })

    it('takes a job whose lease lapsed (its worker died) like any due job', async () => {
      await db.query('DELETE FROM pins')
      const [lost] = await queue(store, 'owner-a', 1, 'lost')
      const first = await store.claim('dead-worker', 1)
      assert.equal(first?.id, lost)
      await new Promise((resolve) => setTimeout(resolve, 20))
      const again = await store.claim('live-worker', LEASE_MS)
      assert.deepEqual([again?.id, again?.attempt], [lost, 2])
      assert.equal(await store.claim('live-worker', LEASE_MS), undefined, 'nothing else is due')
    })

    it('claims without walking every queued job: one index probe per waiting owner', async () => {
      await db.query('DELETE FROM pins')
      // A backlog of 20,000 due jobs of one owner, and 50 other owners with one each.
      await db.query(
        `INSERT INTO pins (id, owner, cid, root_cid, created)
         SELECT gen_random_uuid(), 'author:flooder', 'bafk' || g, 'bafk' || g, clock_timestamp() + g * interval '1 microsecond'
         FROM generate_series(1, 20000) AS g`)
      await db.query(
        `INSERT INTO pins (id, owner, cid, root_cid, created)
         SELECT gen_random_uuid(), 'owner-' || g, 'bafy' || g, 'bafy' || g, clock_timestamp() + (20000 + g) * interval '1 microsecond'
         FROM generate_series(1, 50) AS g`)
      await db.query('ANALYZE pins')
      const first = await store.claim('worker', LEASE_MS)
      assert.equal(first?.owner, 'author:flooder', 'the oldest due job, when no owner runs any')
      const second = await store.claim('worker', LEASE_MS)
      assert.match(second?.owner ?? '', /^owner-/, 'then an owner that runs nothing, not the flood')

      // The plan of the claim: rows read from pins stay near the number of owners (51), far
      // below the 20,000 jobs queued.
      const { rows } = await db.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${CLAIM_NEXT_SQL}`)
      const read = rowsReadFromPins(rows[0]?.['QUERY PLAN'])
      const started = performance.now()
      await store.claim('worker', LEASE_MS)
      console.log(`# claim on ${engine.name} with 20,049 jobs of 51 owners queued: ${read.rows} rows read from pins, ${(performance.now() - started).toFixed(1)} ms`)
      assert.equal(read.seqScans, 0, 'no sequential scan of pins')
      assert.ok(read.rows < 1000, `rows read from pins: ${read.rows}`)
    })
  })
}

interface PlanNode {
  'Node Type': string
  'Relation Name'?: string
  'Actual Rows'?: number
  'Actual Loops'?: number
  'Rows Removed by Filter'?: number
  'Rows Removed by Index Recheck'?: number
  Plans?: PlanNode[]
}

/** Rows the plan's scans of `pins` read (returned or filtered out, over every loop), and its sequential scans of it. */
function rowsReadFromPins (plan: unknown): { rows: number, seqScans: number } {
  const total = { rows: 0, seqScans: 0 }
  const visit = (node: PlanNode): void => {
    if (node['Relation Name'] === 'pins') {
      const loops = node['Actual Loops'] ?? 1
      total.rows += ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * loops
      if (node['Node Type'] === 'Seq Scan') total.seqScans++
    }
    for (const child of node.Plans ?? []) visit(child)
  }
  const [root] = plan as Array<{ Plan: PlanNode }>
  assert.ok(root !== undefined, 'a JSON plan')
  visit(root.Plan)
  return total
}
