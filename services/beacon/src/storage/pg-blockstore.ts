import { NotFoundError } from 'interface-store'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as Digest from 'multiformats/hashes/digest'
import { byteaLiteral } from './binary-copy.ts'
import { digestMatches } from './hashers.ts'
import { readBlocks, writeBlocks } from './pg-block-batches.ts'
import type { BlockWrite } from './pg-block-batches.ts'
import { TickBatcher } from './tick-batcher.ts'
import type { ByteaReader, SqlQueryable } from './sql.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Blockstore, InputPair, Pair } from 'interface-blockstore'

/** Stored bytes do not hash to the block's multihash: the row is corrupt and is never served. */
export class BlockHashMismatchError extends Error {
  override readonly name = 'BlockHashMismatchError'
  readonly cid: CID

  constructor (cid: CID) {
    super(`stored bytes of block ${cid.toString()} do not match its multihash`)
    this.cid = cid
  }
}

/** A block offered to `put` does not hash to the CID it was offered under. */
export class InvalidBlockError extends Error {
  override readonly name = 'InvalidBlockError'
  readonly cid: CID

  constructor (cid: CID) {
    super(`bytes offered for ${cid.toString()} do not match its multihash`)
    this.cid = cid
  }
}

/** `delete` of a block that a pin still holds (the pin_blocks foreign key refused it). */
export class BlockHeldByPinError extends Error {
  override readonly name = 'BlockHeldByPinError'
  readonly cid: CID

  constructor (cid: CID) {
    super(`block ${cid.toString()} is held by a pin; remove the pin first`)
    this.cid = cid
  }
}

export interface PgBlockstoreInit {
  /** Block bytes are read through `queryByteaRows`, as bytes (never hex); the rest through `query`. */
  db: SqlQueryable & ByteaReader
  /** Called once for every read whose bytes fail verification (count it, log it). */
  onHashMismatch?: (cid: CID) => void
  /**
   * Blocks per shared statement: puts (of blocks under 64 KiB) and gets started in the same
   * turn of the event loop are sent together, up to this many; 1 sends every block alone.
   * @default 8
   */
  maxBatchBlocks?: number
}

const FOREIGN_KEY_VIOLATION = '23503'
/** Rows per page when `getAll` walks the table (guess: 64 × 256 KiB blocks = 16 MiB in memory). */
const GET_ALL_PAGE = 64
/** Corrupt blocks remembered per process (guess: corruption is rare; this bounds memory). */
const MAX_KNOWN_CORRUPT = 10_000
/**
 * Blocks per batched put or get (tick-batcher.ts). Measured at 16 gets in flight against
 * raw Postgres's one COPY per block, the sides taken in turn (docs/benchmarks.md): 1 KiB
 * gets ran at 0.67× unbatched, 1.65× in batches of 4, 1.98× of 8 and 2.3× of 16; 256 KiB
 * gets at 0.74–0.88× unbatched and 0.89–1.05× in batches of 8, 0.89× of 16. 8 keeps two
 * statements in flight at that load, and half a batch of Bitswap's 32.
 */
const MAX_BATCH_BLOCKS = 8
/**
 * Bytes per batched put; a block this size or larger is written alone, at once. Measured with
 * bench/storage on the loaded 2-core VM: 1 KiB puts in batches of 8 ran at 2.2–2.3× raw
 * Postgres, while 256 KiB puts in batches of four (1 MiB) fell to ~0.4× in a quick run, where
 * alone they run at ~1× (docs/benchmarks.md), so large blocks keep one statement each.
 */
const MAX_PUT_BATCH_BYTES = 64 * 1024

type Input = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>

/** The bytes of a block given whole or in chunks (as `put` and Helia's `get` hand them over). */
export async function collectBytes (value: Input): Promise<Uint8Array> {
  if (value instanceof Uint8Array) return value
  const chunks: Uint8Array[] = []
  for await (const chunk of value) chunks.push(chunk)
  return chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks)
}

/** Pairs carry their bytes as an async generator, as blockstore-core's do (callers `await` them). */
async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

function keyOf (cid: CID): string {
  return Buffer.from(cid.multihash.bytes).toString('base64')
}

function isSqlState (err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
}

/**
 * An `interface-blockstore` Blockstore on Postgres (or PGlite) through `SqlQueryable`,
 * keyed by multihash bytes, each block stored with its size. Every write and every read is
 * hash-verified: a write that does not match its CID is refused, and a read whose stored
 * bytes do not match is counted, reported and never returned.
 *
 * Besides the interface it offers `getAndTouch`, the primitive the pin pipeline and GC agree
 * on: a block read that way (or written) is safe from GC for the grace period.
 */
export class PgBlockstore implements Blockstore {
  private readonly db: SqlQueryable & ByteaReader
  private readonly onHashMismatch: (cid: CID) => void
  /** Multihashes (base64) whose stored bytes failed verification and were not rewritten since. */
  private readonly knownCorrupt = new Set<string>()
  /** Puts started in one turn of the event loop, written in one statement. */
  private readonly writes: TickBatcher<BlockWrite, void>
  /** Gets started in one turn of the event loop, read in one binary COPY. */
  private readonly reads: TickBatcher<Uint8Array, Uint8Array | undefined>

  constructor (init: PgBlockstoreInit) {
    this.db = init.db
    this.onHashMismatch = init.onHashMismatch ?? (() => {})
    this.writes = new TickBatcher({
      run: async (blocks) => await writeBlocks(this.db, blocks),
      maxItems: init.maxBatchBlocks ?? MAX_BATCH_BLOCKS,
      maxBytes: MAX_PUT_BATCH_BYTES,
      sizeOf: (block) => block.bytes.byteLength
    })
    this.reads = new TickBatcher({
      run: async (multihashes, answer) => await readBlocks(this.db, multihashes, (index, bytes) => { answer(index, { status: 'fulfilled', value: bytes }) }),
      maxItems: init.maxBatchBlocks ?? MAX_BATCH_BLOCKS
    })
  }

  async put (cid: CID, value: Input, options?: AbortOptions): Promise<CID> {
    options?.signal?.throwIfAborted()
    const bytes = await collectBytes(value)
    if (!await digestMatches(cid.multihash.code, cid.multihash.digest, bytes)) throw new InvalidBlockError(cid)
    // Concurrent puts share one statement; a second write of a block repairs a corrupt row.
    await this.writes.submit({ multihash: cid.multihash.bytes, bytes }, options?.signal)
    if (this.knownCorrupt.size > 0) this.knownCorrupt.delete(keyOf(cid))
    return cid
  }

  /**
   * Writes blocks in one statement, each verified against its CID first (as `put`). For
   * many small blocks at once (a batch of log entries): one round trip for the batch. A
   * block given twice is written once; rows are written in multihash order, so two such
   * statements cannot deadlock on each other's blocks.
   */
  async putBatch (blocks: ReadonlyArray<{ cid: CID, bytes: Uint8Array }>, options?: AbortOptions): Promise<void> {
    const unique = new Map<string, { cid: CID, bytes: Uint8Array }>()
    for (const block of blocks) {
      if (!await digestMatches(block.cid.multihash.code, block.cid.multihash.digest, block.bytes)) throw new InvalidBlockError(block.cid)
      unique.set(Buffer.from(block.cid.multihash.bytes).toString('hex'), block)
    }
    if (unique.size === 0) return
    options?.signal?.throwIfAborted()
    const keys = [...unique.keys()].sort()
    // bytea arrays travel as hex text: the one array encoding both engines' drivers share.
    await this.db.query(
      `INSERT INTO blocks (multihash, size, data)
       SELECT decode(b.multihash, 'hex'), b.size, decode(b.data, 'hex')
       FROM unnest($1::text[], $2::int4[], $3::text[]) WITH ORDINALITY AS b (multihash, size, data, n)
       ORDER BY b.n
       ON CONFLICT (multihash) DO UPDATE SET data = EXCLUDED.data, size = EXCLUDED.size, touched_at = now()`,
      [keys, keys.map((key) => unique.get(key)?.bytes.byteLength), keys.map((key) => Buffer.from(unique.get(key)?.bytes ?? []).toString('hex'))],
      { prepareAs: 'pharos_blockstore_put_batch' }
    )
    for (const { cid } of unique.values()) this.knownCorrupt.delete(keyOf(cid))
  }

  async * putMany (source: Iterable<InputPair> | AsyncIterable<InputPair>, options?: AbortOptions): AsyncGenerator<CID> {
    options?.signal?.throwIfAborted()
    for await (const { cid, bytes } of source) yield await this.put(cid, bytes, options)
  }

  async * get (cid: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
    // Concurrent gets share one binary COPY; each caller verifies its own block.
    yield await this.verified(cid, await this.reads.submit(cid.multihash.bytes, options?.signal))
  }

  async * getMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<Pair> {
    options?.signal?.throwIfAborted()
    // One block at a time, in order: callers such as DAG walkers feed the source from what
    // they have already read, so reading ahead could wait on ourselves.
    for await (const cid of source) {
      const bytes = await this.getBytes(cid, options)
      yield { cid, bytes: once(bytes) }
    }
  }

  async * getAll (options?: AbortOptions): AsyncGenerator<Pair> {
    options?.signal?.throwIfAborted()
    let after: Uint8Array = new Uint8Array(0)
    for (;;) {
      const rows = await this.db.queryByteaRows(
        `SELECT multihash, data FROM blocks WHERE multihash > ${byteaLiteral(after)} ORDER BY multihash LIMIT ${GET_ALL_PAGE}`
      )
      for (const [multihash, data] of rows) {
        if (multihash == null) throw new TypeError('blocks.multihash is NOT NULL, yet a row had none')
        const cid = CID.createV1(raw.code, Digest.decode(multihash))
        const bytes = await this.verified(cid, data ?? undefined)
        yield { cid, bytes: once(bytes) }
        options?.signal?.throwIfAborted()
      }
      const last = rows.at(-1)?.[0]
      if (last == null || rows.length < GET_ALL_PAGE) return
      after = last
    }
  }

  async has (cid: CID, options?: AbortOptions): Promise<boolean> {
    options?.signal?.throwIfAborted()
    const { rows } = await this.db.query('SELECT 1 FROM blocks WHERE multihash = $1', [cid.multihash.bytes])
    return rows.length > 0
  }

  async delete (cid: CID, options?: AbortOptions): Promise<void> {
    options?.signal?.throwIfAborted()
    try {
      await this.db.query('DELETE FROM blocks WHERE multihash = $1', [cid.multihash.bytes])
    } catch (err) {
      if (isSqlState(err, FOREIGN_KEY_VIOLATION)) throw new BlockHeldByPinError(cid)
      throw err
    }
  }

  async * deleteMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<CID> {
    options?.signal?.throwIfAborted()
    for await (const cid of source) {
      await this.delete(cid, options)
      yield cid
    }
  }

  /**
   * The stored size of a block, without reading its bytes; `undefined` when it is not stored.
   * Bitswap asks it before reading a block to send (its send budget reserves this much).
   */
  async sizeOf (cid: CID, options?: AbortOptions): Promise<number | undefined> {
    options?.signal?.throwIfAborted()
    const { rows } = await this.db.query<{ size: number }>('SELECT size FROM blocks WHERE multihash = $1', [cid.multihash.bytes])
    return rows[0]?.size
  }

  /** The verified bytes of one block (the single-buffer form of `get`). */
  async getBytes (cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    for await (const bytes of this.get(cid, options)) return bytes
    throw new NotFoundError()
  }

  /**
   * The verified bytes of a block if it is stored, refreshing its `touched_at` in the same
   * statement, so GC leaves it alone for its grace period; `undefined` if it is not stored.
   * A pin job calls this before it relies on a block it did not write itself: if GC deleted
   * the row first, the update finds nothing and the job fetches the block again.
   */
  async getAndTouch (cid: CID, options?: AbortOptions): Promise<Uint8Array | undefined> {
    options?.signal?.throwIfAborted()
    const rows = await this.db.queryByteaRows(
      `UPDATE blocks SET touched_at = now() WHERE multihash = ${byteaLiteral(cid.multihash.bytes)} RETURNING data`
    )
    const row = rows[0]
    return row === undefined ? undefined : await this.verified(cid, row[0] ?? undefined)
  }

  /**
   * Whether this process has seen the stored bytes of `cid` fail verification (and no good
   * bytes were written since). The Bitswap view answers "not here" for such a block, so a
   * fetch through Helia repairs it instead of reading the bad row again.
   */
  isKnownCorrupt (cid: CID): boolean {
    return this.knownCorrupt.has(keyOf(cid))
  }

  /** Blocks and bytes stored, fleet-wide. */
  async totals (): Promise<{ blocks: number, bytes: number }> {
    const { rows } = await this.db.query<{ blocks: number, bytes: number }>(
      'SELECT count(*)::int8 AS blocks, coalesce(sum(size), 0)::int8 AS bytes FROM blocks'
    )
    return rows[0] ?? { blocks: 0, bytes: 0 }
  }

  private async verified (cid: CID, data: Uint8Array | undefined): Promise<Uint8Array> {
    if (data === undefined) throw new NotFoundError(`block ${cid.toString()} is not stored`)
    if (await digestMatches(cid.multihash.code, cid.multihash.digest, data)) return data
    if (this.knownCorrupt.size >= MAX_KNOWN_CORRUPT) this.knownCorrupt.clear()
    this.knownCorrupt.add(keyOf(cid))
    this.onHashMismatch(cid)
    throw new BlockHashMismatchError(cid)
  }
}
