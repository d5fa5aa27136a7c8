/**
 * Storage benchmark: `npm run bench:storage`.
 *
 * 1. put and get of 1 KiB and 256 KiB blocks on the Postgres blockstore (every read and
 *    write hash-verified, as in production), beside raw Postgres doing the same bytes in the
 *    same run (a plain `INSERT` of bytea rows; `COPY … TO STDOUT (FORMAT binary)` of those
 *    rows, one block per statement as the store reads them) and beside blockstore-fs (the
 *    js-stores baseline, which verifies nothing), 16 operations in flight, each figure
 *    beside its baseline as a ratio; with the round trips per operation and the CPU time of
 *    hash verification, which say what limits each figure. The blockstore coalesces
 *    concurrent operations into shared statements (tick-batcher.ts); the baseline does not;
 * 2. pinning and serving a UnixFS DAG: bench/pinning (against Helia).
 *
 * Needs TEST_PG_ADMIN_URL (the npm script starts a throwaway Postgres through
 * scripts/with-services.sh when it is unset). BENCH_SCALE=0.1 runs a tenth of the work;
 * `--quick` runs a quarter unless BENCH_SCALE says otherwise; `--json` prints the result
 * as bench/contract.ts describes (for `npm run bench`).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { byteaLiteral } from '@pharos/beacon/storage/binary-copy.ts'
import { migrate } from '@pharos/beacon/storage/migrate.ts'
import { PgBlockstore } from '@pharos/beacon/storage/pg-blockstore.ts'
import { openPostgres } from '@pharos/beacon/storage/pg-client.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import type { SqlClient } from '@pharos/beacon/storage/sql.ts'
import type { Blockstore } from 'interface-blockstore'
import { benchFlags, figure, printResult } from '../contract.ts'
import type { BenchFigure } from '../contract.ts'

const MB = 1_000_000
const flags = benchFlags()
const SCALE = Number(process.env.BENCH_SCALE ?? (flags.quick ? '0.25' : '1'))
const IN_FLIGHT = 16

interface Figure { blocksPerSecond: number, megabytesPerSecond: number }

async function makeBlocks (count: number, size: number): Promise<Array<{ cid: CID, bytes: Uint8Array }>> {
  const blocks = []
  for (let i = 0; i < count; i++) {
    const bytes = new Uint8Array(randomBytes(size))
    blocks.push({ cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes })
  }
  return blocks
}

/** CPU time (user + system) this process spent inside `timed`, by the label of the side measured. */
const cpuMicros = new Map<string, number>()

/** Runs `task` over every item with IN_FLIGHT at once; the seconds it took. */
async function timed<T> (items: T[], task: (item: T) => Promise<void>, cpuLabel?: string): Promise<number> {
  let next = 0
  const started = performance.now()
  const cpuBefore = process.cpuUsage()
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < items.length) {
      const item = items[next++]
      if (item !== undefined) await task(item)
    }
  }))
  if (cpuLabel !== undefined) {
    const cpu = process.cpuUsage(cpuBefore)
    cpuMicros.set(cpuLabel, (cpuMicros.get(cpuLabel) ?? 0) + cpu.user + cpu.system)
  }
  return (performance.now() - started) / 1000
}

function rate (count: number, bytesEach: number, seconds: number): Figure {
  return { blocksPerSecond: count / seconds, megabytesPerSecond: count * bytesEach / MB / seconds }
}

/** Runs `task` over every item with IN_FLIGHT at once; blocks/s and MB/s. */
async function measure<T> (items: T[], bytesEach: number, task: (item: T) => Promise<void>): Promise<Figure> {
  return rate(items.length, bytesEach, await timed(items, task))
}

type Block = { cid: CID, bytes: Uint8Array }
interface Side { name: string, put: (block: Block) => Promise<void>, get: (block: Block) => Promise<void> }
/** Slices each side's work is cut into, taken in alternating order (A B, B A, …). */
const SLICES = 8

/**
 * Puts then gets every block on two sides (the blockstore and its raw-Postgres baseline)
 * in alternating slices, so a change in the machine's load mid-run (it is shared) falls on
 * both sides alike rather than on whichever ran second.
 */
async function sideBySide (sides: [Side, Side], blocks: Block[], size: number): Promise<Array<{ put: Figure, get: Figure }>> {
  const slice = Math.ceil(blocks.length / SLICES)
  const slices = Array.from({ length: SLICES }, (_, i) => blocks.slice(i * slice, (i + 1) * slice)).filter((part) => part.length > 0)
  const seconds = sides.map(() => ({ put: 0, get: 0 }))
  for (const op of ['put', 'get'] as const) {
    for (const [i, part] of slices.entries()) {
      const items = op === 'get' ? [...part].sort(() => Math.random() - 0.5) : part
      for (const side of i % 2 === 0 ? [0, 1] : [1, 0]) {
        const spent = seconds[side]
        const run = sides[side]
        if (spent === undefined || run === undefined) continue
        spent[op] += await timed(items, run[op], `${run.name} ${op} ${size}`)
      }
    }
  }
  return seconds.map((spent) => ({ put: rate(blocks.length, size, spent.put), get: rate(blocks.length, size, spent.get) }))
}

async function drain (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<number> {
  let length = 0
  for await (const chunk of source) length += chunk.byteLength
  return length
}

async function putGet (store: Blockstore, blocks: Array<{ cid: CID, bytes: Uint8Array }>, size: number): Promise<{ put: Figure, get: Figure }> {
  const put = await measure(blocks, size, async ({ cid, bytes }) => { await store.put(cid, bytes) })
  const shuffled = [...blocks].sort(() => Math.random() - 0.5)
  const get = await measure(shuffled, size, async ({ cid }) => {
    if (await drain(store.get(cid)) !== size) throw new Error(`short read of ${cid.toString()}`)
  })
  return { put, get }
}

const rawOperation = (op: 'put' | 'get'): string => op === 'put' ? 'INSERT' : 'COPY … TO STDOUT (FORMAT binary)'

/** What limits each blockstore figure: its round trips and the share of its time spent hashing. */
function limits (): string[] {
  return blockstores.map((row) => {
    const microsPerOp = 1e6 / row.pg.blocksPerSecond
    const size = row.label === '1 KiB' ? 1024 : 256 * 1024
    const cpuPerOp = (side: string): string => ((cpuMicros.get(`${side} ${row.op} ${size}`) ?? 0) / row.count).toFixed(0)
    return `${row.label} ${row.op}: ${row.roundTrips.toFixed(2)} statements (round trips) per operation; ${microsPerOp.toFixed(0)} µs of wall time per operation across ${IN_FLIGHT} in flight; this process's CPU per operation ${cpuPerOp('blockstore')} µs (raw Postgres: ${cpuPerOp('raw')} µs), of which sha2-256 verification ${row.hashMicros.toFixed(1)} µs.`
  })
}

const fmt = (n: number, digits = 1): string => n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits)

interface StoreRow {
  label: string
  count: number
  op: 'put' | 'get'
  pg: Figure
  /** Raw Postgres doing the same bytes: INSERT for put, binary COPY for get. */
  raw: Figure
  fs: Figure
  /** Statements (each one round trip) the blockstore sent per operation. */
  roundTrips: number
  /** CPU time of one sha2-256 verification of a block of this size, in µs. */
  hashMicros: number
}

/** Raw Postgres: bytea rows in a table of their own, keyed like `blocks`, stored the same way. */
const RAW_TABLE = `CREATE TABLE IF NOT EXISTS bench_raw_blocks (multihash bytea PRIMARY KEY, data bytea NOT NULL);
ALTER TABLE bench_raw_blocks ALTER COLUMN data SET STORAGE EXTERNAL`

function rawPostgres (db: SqlClient, size: number): Side {
  return {
    name: 'raw',
    put: async ({ cid, bytes }) => {
      await db.query('INSERT INTO bench_raw_blocks (multihash, data) VALUES ($1, $2)', [cid.multihash.bytes, bytes])
    },
    get: async ({ cid }) => {
      const rows = await db.queryByteaRows(`SELECT data FROM bench_raw_blocks WHERE multihash = ${byteaLiteral(cid.multihash.bytes)}`)
      if (rows[0]?.[0]?.byteLength !== size) throw new Error(`short read of ${cid.toString()}`)
    }
  }
}

function blockstoreSide (store: Blockstore, size: number): Side {
  return {
    name: 'blockstore',
    put: async ({ cid, bytes }) => { await store.put(cid, bytes) },
    get: async ({ cid }) => {
      if (await drain(store.get(cid)) !== size) throw new Error(`short read of ${cid.toString()}`)
    }
  }
}

/**
 * `db` counting the statements sent through it (each is one round trip to the server): the
 * blockstore's puts go through `query`, its gets through `queryByteaRows`, so each count
 * belongs to one operation.
 */
function countingStatements (db: SqlClient): { db: SqlClient, statements: () => Record<'put' | 'get', number> } {
  const statements = { put: 0, get: 0 }
  return {
    db: {
      ...db,
      query: async (text, params, options) => { statements.put++; return await db.query(text, params, options) },
      queryByteaRows: async (query, onRow) => { statements.get++; return await db.queryByteaRows(query, onRow) }
    },
    statements: () => ({ ...statements })
  }
}

/** Mean CPU time of verifying one block's sha2-256, one at a time, in µs. */
async function hashMicros (blocks: Array<{ bytes: Uint8Array }>): Promise<number> {
  const sample = blocks.slice(0, 500)
  const started = performance.now()
  for (const { bytes } of sample) await sha256.digest(bytes)
  return (performance.now() - started) * 1000 / sample.length
}

async function blockstoreBench (): Promise<StoreRow[]> {
  const db = await openPostgres(await createTestDatabase('bench_storage'), { maxConnections: 20 })
  await migrate(db)
  await db.exec(RAW_TABLE)
  const counted = countingStatements(db)
  const pgStore = new PgBlockstore({ db: counted.db })
  const dir = await mkdtemp(join(tmpdir(), 'pharos-bench-fs-'))
  const fsStore = new FsBlockstore(dir)
  await fsStore.open()
  const rows: StoreRow[] = []
  try {
    for (const { size, count, label } of [
      { size: 1024, count: Math.round(20_000 * SCALE), label: '1 KiB' },
      { size: 256 * 1024, count: Math.round(800 * SCALE), label: '256 KiB' }
    ]) {
      const blocks = await makeBlocks(count, size)
      // Warm both stores (connections, directories, JIT) on blocks that are not measured.
      const warm = await makeBlocks(Math.min(200, count), size)
      const sides: [Side, Side] = [blockstoreSide(pgStore, size), rawPostgres(db, size)]
      await db.query('TRUNCATE bench_raw_blocks')
      await sideBySide(sides, warm, size)
      await putGet(fsStore, warm, size)
      await db.query('TRUNCATE bench_raw_blocks')
      const statementsBefore = counted.statements()
      const [pg, raw] = await sideBySide(sides, blocks, size)
      if (pg === undefined || raw === undefined) throw new Error('sideBySide measured no sides')
      // The raw side sends its statements through `db`, not the counted one: these are the
      // blockstore's, one put and one get of every block (fewer statements than blocks when
      // concurrent operations share one).
      const statementsAfter = counted.statements()
      const roundTrips = { put: (statementsAfter.put - statementsBefore.put) / count, get: (statementsAfter.get - statementsBefore.get) / count }
      const fs = await putGet(fsStore, blocks, size)
      const hash = await hashMicros(blocks)
      for (const op of ['put', 'get'] as const) rows.push({ label, count, op, pg: pg[op], raw: raw[op], fs: fs[op], roundTrips: roundTrips[op], hashMicros: hash })
      console.error(`blockstores: ${label} done`)
    }
  } finally {
    await fsStore.close()
    await rm(dir, { recursive: true, force: true })
    await db.close()
  }
  return rows
}

const blockstores = await blockstoreBench()

if (flags.json) {
  const figures: BenchFigure[] = blockstores.map((row) => figure(
    `Postgres blockstore ${row.op}, ${row.label} blocks`, row.pg.blocksPerSecond, 'blocks/s',
    { label: `raw Postgres ${rawOperation(row.op)}, ${row.label} blocks`, value: row.raw.blocksPerSecond }, 'higher'))
  figures.push(...blockstores.map((row) => figure(
    `Postgres blockstore ${row.op}, ${row.label} blocks, against the filesystem`, row.pg.blocksPerSecond, 'blocks/s',
    { label: `blockstore-fs ${row.op}, ${row.label} blocks`, value: row.fs.blocksPerSecond }, 'higher')))
  printResult({
    name: 'storage',
    figures,
    notes: [
      `BENCH_SCALE ${SCALE}: ${blockstores.map((row) => `${row.label} × ${row.count}`).filter((item, i, all) => all.indexOf(item) === i).join(' and ')} blocks, ${IN_FLIGHT} operations in flight; every Postgres blockstore read and write is sha2-256-verified, raw Postgres and blockstore-fs verify nothing. The blockstore coalesces the operations its callers start in one turn of the event loop into one statement (a multi-row INSERT for puts of blocks under 64 KiB, one binary COPY for gets, up to 8 blocks each); raw Postgres sends one statement per block, as the issue defines it. Targets (issue 21): ≥ 0.9 of raw Postgres for 1 KiB blocks, ≥ 0.7 for 256 KiB.`,
      ...limits()
    ]
  })
} else {
  const os = await import('node:os')
  console.log(`Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), scale ${SCALE}, ${IN_FLIGHT} operations in flight\n`)
  console.log('| block | op | Postgres blocks/s | Postgres MB/s | raw Postgres blocks/s | Postgres ÷ raw | blockstore-fs blocks/s | Postgres ÷ fs |')
  console.log('|---|---|---:|---:|---:|---:|---:|---:|')
  for (const row of blockstores) {
    console.log(`| ${row.label} × ${row.count} | ${row.op} | ${fmt(row.pg.blocksPerSecond)} | ${fmt(row.pg.megabytesPerSecond)} | ${fmt(row.raw.blocksPerSecond)} | ${(row.pg.blocksPerSecond / row.raw.blocksPerSecond).toFixed(2)} | ${fmt(row.fs.blocksPerSecond)} | ${(row.pg.blocksPerSecond / row.fs.blocksPerSecond).toFixed(2)} |`)
  }
  console.log()
  for (const line of limits()) console.log(`- ${line}`)
}
