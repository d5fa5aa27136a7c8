/**
 * Storage benchmark: `npm run bench:storage`.
 *
 * 1. put and get of 1 KiB and 256 KiB blocks on the Postgres blockstore (every read and
 *    write hash-verified, as in production) and on blockstore-fs (the js-stores baseline,
 *    which verifies nothing), in the same run, 16 operations in flight, each figure beside
 *    the baseline as a ratio;
 * 2. pinning a 100 MiB UnixFS DAG from a peer on loopback through the Pinning Service API
 *    of an in-process worker on Postgres, in MB/s from POST to `pinned`.
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
import { migrate } from '../../services/beacon/src/storage/migrate.ts'
import { PgBlockstore } from '../../services/beacon/src/storage/pg-blockstore.ts'
import { openPostgres } from '../../services/beacon/src/storage/pg-client.ts'
import { startWorker } from '../../services/beacon/src/worker.ts'
import { createTestDatabase } from '../../services/beacon/test/helpers/databases.ts'
import { createContentPeer, httpClient, testConfig, testLogger, waitForPin } from '../../services/beacon/test/helpers/storage.ts'
import type { Blockstore } from 'interface-blockstore'
import { benchFlags, figure, printResult } from '../contract.ts'
import type { BenchFigure } from '../contract.ts'

const MiB = 1024 * 1024
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

/** Runs `task` over every item with IN_FLIGHT at once; blocks/s and MB/s. */
async function measure<T> (items: T[], bytesEach: number, task: (item: T) => Promise<void>): Promise<Figure> {
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < items.length) {
      const item = items[next++]
      if (item !== undefined) await task(item)
    }
  }))
  const seconds = (performance.now() - started) / 1000
  return { blocksPerSecond: items.length / seconds, megabytesPerSecond: items.length * bytesEach / MB / seconds }
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

const fmt = (n: number, digits = 1): string => n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits)

interface StoreRow { label: string, count: number, op: 'put' | 'get', pg: Figure, fs: Figure }

async function blockstoreBench (): Promise<StoreRow[]> {
  const db = await openPostgres(await createTestDatabase('bench_storage'), { maxConnections: 20 })
  await migrate(db)
  const pgStore = new PgBlockstore({ db })
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
      await putGet(pgStore, warm, size)
      await putGet(fsStore, warm, size)
      const pg = await putGet(pgStore, blocks, size)
      const fs = await putGet(fsStore, blocks, size)
      for (const op of ['put', 'get'] as const) rows.push({ label, count, op, pg: pg[op], fs: fs[op] })
      console.error(`blockstores: ${label} done`)
    }
  } finally {
    await fsStore.close()
    await rm(dir, { recursive: true, force: true })
    await db.close()
  }
  return rows
}

interface PinRun { mib: number, blocks: number, seconds: number, megabytesPerSecond: number }

async function pinBench (): Promise<PinRun> {
  const size = Math.round(100 * MiB * SCALE)
  const token = 'bench-owner-token-0123456789'
  const worker = await startWorker(await testConfig({
    DATABASE_URL: await createTestDatabase('bench_pin'),
    PHAROS_PIN_TOKENS: `bench:${token}`,
    PHAROS_PIN_MAX_BYTES: String(2 * size + MiB)
  }), testLogger())
  const origin = await createContentPeer()
  try {
    const cid = await origin.addFile(new Uint8Array(randomBytes(size)))
    const call = httpClient(worker.httpUrl, token)
    const started = performance.now()
    const added = await call('POST', '/pins', { cid: cid.toString(), origins: origin.multiaddrs() })
    const pinned = await waitForPin(call, added.body.requestid, ['pinned', 'failed'], 600_000)
    const seconds = (performance.now() - started) / 1000
    if (pinned.status !== 'pinned') throw new Error(`the pin failed: ${JSON.stringify(pinned.info)}`)
    console.error('pin: done')
    return { mib: size / MiB, blocks: Number(pinned.info.status_details.replace(/\D+/g, '')), seconds, megabytesPerSecond: Number(pinned.info.dag_size) / MB / seconds }
  } finally {
    await origin.stop()
    await worker.stop()
  }
}

const blockstores = await blockstoreBench()
const pin = await pinBench()
const largePut = blockstores.find((row) => row.label === '256 KiB' && row.op === 'put')
if (largePut === undefined) throw new Error('no 256 KiB put figure')

if (flags.json) {
  const figures: BenchFigure[] = blockstores.map((row) => figure(
    `Postgres blockstore ${row.op}, ${row.label} blocks`, row.pg.blocksPerSecond, 'blocks/s',
    { label: `blockstore-fs ${row.op}, ${row.label} blocks`, value: row.fs.blocksPerSecond }, 'higher'))
  figures.push(figure(
    `pin a ${pin.mib.toFixed(0)} MiB UnixFS DAG from a loopback peer (POST /pins → pinned)`, pin.megabytesPerSecond, 'MB/s',
    { label: 'Postgres blockstore put, 256 KiB blocks', value: largePut.pg.megabytesPerSecond }, 'higher'))
  printResult({
    name: 'storage',
    figures,
    notes: [
      `BENCH_SCALE ${SCALE}: ${blockstores.map((row) => `${row.label} × ${row.count}`).filter((item, i, all) => all.indexOf(item) === i).join(' and ')} blocks, ${IN_FLIGHT} operations in flight; every Postgres read and write is sha2-256-verified, blockstore-fs verifies nothing.`,
      `The pin's baseline is the raw Postgres put rate of 256 KiB blocks in MB/s: what pinning keeps of the store's own write speed after Bitswap, verification and the pin bookkeeping (${pin.blocks} blocks in ${pin.seconds.toFixed(2)} s).`
    ]
  })
} else {
  const os = await import('node:os')
  console.log(`Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), scale ${SCALE}, ${IN_FLIGHT} operations in flight\n`)
  console.log('| block | op | Postgres blocks/s | Postgres MB/s | blockstore-fs blocks/s | blockstore-fs MB/s | Postgres ÷ fs |')
  console.log('|---|---|---:|---:|---:|---:|---:|')
  for (const row of blockstores) {
    console.log(`| ${row.label} × ${row.count} | ${row.op} | ${fmt(row.pg.blocksPerSecond)} | ${fmt(row.pg.megabytesPerSecond)} | ${fmt(row.fs.blocksPerSecond)} | ${fmt(row.fs.megabytesPerSecond)} | ${(row.pg.blocksPerSecond / row.fs.blocksPerSecond).toFixed(2)} |`)
  }
  console.log()
  console.log('| DAG | blocks | seconds | MB/s |')
  console.log('|---|---:|---:|---:|')
  console.log(`| ${pin.mib.toFixed(0)} MiB UnixFS file (@helia/unixfs defaults: 1 MiB raw leaves) | ${pin.blocks} | ${pin.seconds.toFixed(2)} | ${fmt(pin.megabytesPerSecond)} |`)
}
