/**
 * The blockstore's statement sharing (tick-batcher.ts) against raw Postgres, with more
 * blocks than the quick storage bench and the sides taken in turn slice by slice, so one
 * figure is not one burst of the shared machine's load:
 * `scripts/node-with-services.sh bench/storage/batching-ab.ts`.
 *
 * Environment: SIZE (block bytes, default 262144), COUNT (blocks, default 1200), SLICE
 * (blocks per turn, default 50), BATCHES (comma-separated `maxBatchBlocks` values for the
 * gets, default `8,1`; the puts use the first). 16 operations in flight, as bench/storage.
 * Prints one JSON line for the puts and one for the gets, with each side's ratio to raw.
 */
import { randomBytes } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { byteaLiteral } from '@pharos/beacon/storage/binary-copy.ts'
import { migrate } from '@pharos/beacon/storage/migrate.ts'
import { PgBlockstore } from '@pharos/beacon/storage/pg-blockstore.ts'
import { openPostgres } from '@pharos/beacon/storage/pg-client.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'

const SIZE = Number(process.env.SIZE ?? 256 * 1024)
const COUNT = Number(process.env.COUNT ?? 1200)
const SLICE = Number(process.env.SLICE ?? 50)
const BATCHES = (process.env.BATCHES ?? '8,1').split(',').map(Number)
const IN_FLIGHT = 16

interface Block { cid: CID, bytes: Uint8Array }
interface Side { name: string, put: (block: Block) => Promise<void>, get: (block: Block) => Promise<void> }

const db = await openPostgres(await createTestDatabase('bench_batching'), { maxConnections: 20 })
await migrate(db)
await db.exec(`CREATE TABLE bench_raw_blocks (multihash bytea PRIMARY KEY, data bytea NOT NULL);
ALTER TABLE bench_raw_blocks ALTER COLUMN data SET STORAGE EXTERNAL`)

const blocks: Block[] = []
for (let i = 0; i < COUNT; i++) {
  const bytes = new Uint8Array(randomBytes(SIZE))
  blocks.push({ cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes })
}

/** Runs `task` over `items` with IN_FLIGHT at once; milliseconds. */
async function timed (items: Block[], task: (block: Block) => Promise<void>): Promise<number> {
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < items.length) {
      const item = items[next++]
      if (item !== undefined) await task(item)
    }
  }))
  return performance.now() - started
}

const rawSide: Side = {
  name: 'raw',
  put: async ({ cid, bytes }) => { await db.query('INSERT INTO bench_raw_blocks (multihash, data) VALUES ($1, $2)', [cid.multihash.bytes, bytes]) },
  get: async ({ cid }) => {
    const rows = await db.queryByteaRows(`SELECT data FROM bench_raw_blocks WHERE multihash = ${byteaLiteral(cid.multihash.bytes)}`)
    if (rows[0]?.[0]?.byteLength !== SIZE) throw new Error(`short read of ${cid.toString()}`)
  }
}
const storeSides: Side[] = BATCHES.map((maxBatchBlocks) => {
  const store = new PgBlockstore({ db, maxBatchBlocks })
  return {
    name: `blockstore, batches of ${maxBatchBlocks}`,
    put: async ({ cid, bytes }) => { await store.put(cid, bytes) },
    get: async ({ cid }) => {
      let length = 0
      for await (const chunk of store.get(cid)) length += chunk.byteLength
      if (length !== SIZE) throw new Error(`short read of ${cid.toString()}`)
    }
  }
})

/** Every side does `op` on every block of `order`, slice by slice, the sides rotating first place. */
async function inTurn (sides: Side[], op: 'put' | 'get', order: Block[]): Promise<Record<string, unknown>> {
  const ms = new Map<string, number>()
  for (let start = 0, turn = 0; start < order.length; start += SLICE, turn++) {
    const part = order.slice(start, start + SLICE)
    for (let i = 0; i < sides.length; i++) {
      const side = sides[(i + turn) % sides.length]
      if (side !== undefined) ms.set(side.name, (ms.get(side.name) ?? 0) + await timed(part, side[op]))
    }
  }
  const rawMs = ms.get(rawSide.name) ?? Number.NaN
  return Object.fromEntries([...ms].map(([name, spent]) => [name, { perSecond: Math.round(COUNT / spent * 1000), ratio: Number((rawMs / spent).toFixed(2)) }]))
}

const firstStore = storeSides[0]
if (firstStore === undefined) throw new Error('BATCHES names no batch size')
// Puts: each side writes every block into its own table (the other blockstores share `blocks`).
console.log(JSON.stringify({ op: 'put', size: SIZE, blocks: COUNT, sides: await inTurn([rawSide, firstStore], 'put', blocks) }))
console.log(JSON.stringify({ op: 'get', size: SIZE, blocks: COUNT, sides: await inTurn([rawSide, ...storeSides], 'get', [...blocks].sort(() => Math.random() - 0.5)) }))
await db.close()
