import { byteaLiteral } from './binary-copy.ts'
import { isStorageUnavailable } from './sql.ts'
import { BatchResultMissingError } from './tick-batcher.ts'
import type { ByteaReader, SqlQueryable } from './sql.ts'

/**
 * The statements behind the blockstore's batched put and get (tick-batcher.ts): many blocks
 * in one statement, each caller's outcome kept apart. The bytes are verified by the
 * blockstore, per caller, before a write and after a read; these functions only move them.
 */

/** A batched read returned another number of rows than it asked for blocks. */
export class BlockBatchRowsError extends Error {
  override readonly name = 'BlockBatchRowsError'
}

/** A verified block to store. */
export interface BlockWrite { multihash: Uint8Array, bytes: Uint8Array }

/** The map key of a multihash (its bytes as latin1: one char per byte, no encoding work). */
function keyOf (multihash: Uint8Array): string {
  return Buffer.from(multihash.buffer, multihash.byteOffset, multihash.byteLength).toString('latin1')
}

function compareBytes (a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b)
}

/** Statement texts by row count: one text per count, so each can be a named prepared statement. */
const insertTexts = new Map<number, string>()

function insertText (rows: number): string {
  let text = insertTexts.get(rows)
  if (text === undefined) {
    const values = Array.from({ length: rows }, (_, i) => `($${3 * i + 1}, $${3 * i + 2}, $${3 * i + 3})`).join(', ')
    // A second write of a block replaces the bytes: they were just verified, so this also
    // repairs a corrupt row.
    text = `INSERT INTO blocks (multihash, size, data) VALUES ${values}
       ON CONFLICT (multihash) DO UPDATE SET data = EXCLUDED.data, size = EXCLUDED.size, touched_at = now()`
    insertTexts.set(rows, text)
  }
  return text
}

/**
 * Stores `blocks` with one multi-row upsert (sent as binary parameters, prepared per row
 * count). The same multihash twice becomes one row (an upsert may not touch a row twice),
 * and rows go in multihash order, so two batches lock the rows they share in the same order
 * and cannot deadlock. If the statement fails for any reason but an unreachable server,
 * each block is written alone, so each caller gets its own outcome.
 */
export async function writeBlocks (db: SqlQueryable, blocks: BlockWrite[]): Promise<Array<PromiseSettledResult<void>>> {
  const unique = new Map<string, BlockWrite>()
  for (const block of blocks) unique.set(keyOf(block.multihash), block)
  const rows = [...unique.values()].sort((a, b) => compareBytes(a.multihash, b.multihash))
  const insert = async (batch: BlockWrite[]): Promise<void> => {
    await db.query(insertText(batch.length), batch.flatMap((row) => [row.multihash, row.bytes.byteLength, row.bytes]), { prepareAs: `pharos_blockstore_put_${batch.length}` })
  }
  try {
    await insert(rows)
    return blocks.map(() => ({ status: 'fulfilled', value: undefined }))
  } catch (err) {
    if (rows.length === 1 || isStorageUnavailable(err)) return blocks.map(() => ({ status: 'rejected', reason: err }))
  }
  const alone = new Map<string, PromiseSettledResult<void>>()
  await Promise.all(rows.map(async (row) => {
    alone.set(keyOf(row.multihash), await insert([row]).then(() => ({ status: 'fulfilled', value: undefined }), (reason: unknown) => ({ status: 'rejected', reason })))
  }))
  return blocks.map((block) => alone.get(keyOf(block.multihash)) ?? { status: 'rejected', reason: new BatchResultMissingError('a block of the batch was not written') })
}

/**
 * The stored bytes of each multihash (`undefined` for one not stored), read in one binary
 * COPY (never as hex). Rows come back in the order asked, one per multihash (NULL for a
 * missing block), so only block bytes cross the wire, not their keys; `onRead` is told of
 * each block as its row arrives, so its caller can verify it while the rest are read. If the
 * read fails for any reason but an unreachable server, each block is read alone, so each
 * caller gets its own outcome.
 */
export async function readBlocks (db: ByteaReader, multihashes: Uint8Array[], onRead: (index: number, bytes: Uint8Array | undefined) => void = () => {}): Promise<Array<PromiseSettledResult<Uint8Array | undefined>>> {
  const unique = new Map<string, Uint8Array>()
  /** Where each distinct multihash was asked for. */
  const askedAt = new Map<string, number[]>()
  multihashes.forEach((multihash, i) => {
    const key = keyOf(multihash)
    unique.set(key, multihash)
    askedAt.set(key, [...(askedAt.get(key) ?? []), i])
  })
  const uniqueList = [...unique.values()]
  const select = async (wanted: Uint8Array[]): Promise<Map<string, Uint8Array>> => {
    const only = wanted.length === 1 ? wanted[0] : undefined
    const rows = await db.queryByteaRows(only !== undefined
      ? `SELECT data FROM blocks WHERE multihash = ${byteaLiteral(only)}`
      : `SELECT (SELECT data FROM blocks WHERE multihash = wanted.multihash)
         FROM unnest(ARRAY[${wanted.map(byteaLiteral).join(', ')}]) WITH ORDINALITY AS wanted (multihash, position)
         ORDER BY wanted.position`, only !== undefined ? undefined : (row, i) => {
      const multihash = wanted[i]
      if (multihash === undefined) return
      for (const at of askedAt.get(keyOf(multihash)) ?? []) onRead(at, row[0] ?? undefined)
    })
    const found = new Map<string, Uint8Array>()
    if (only !== undefined) {
      const data = rows[0]?.[0]
      if (data != null) found.set(keyOf(only), data)
      return found
    }
    if (rows.length !== wanted.length) throw new BlockBatchRowsError(`asked for ${wanted.length} blocks, read ${rows.length} rows`)
    wanted.forEach((multihash, i) => {
      const data = rows[i]?.[0]
      if (data != null) found.set(keyOf(multihash), data)
    })
    return found
  }
  try {
    const found = await select(uniqueList)
    return multihashes.map((multihash) => ({ status: 'fulfilled', value: found.get(keyOf(multihash)) }))
  } catch (err) {
    if (unique.size === 1 || isStorageUnavailable(err)) return multihashes.map(() => ({ status: 'rejected', reason: err }))
  }
  const alone = new Map<string, PromiseSettledResult<Uint8Array | undefined>>()
  await Promise.all([...unique].map(async ([key, multihash]) => {
    alone.set(key, await select([multihash]).then((found) => ({ status: 'fulfilled', value: found.get(key) }), (reason: unknown) => ({ status: 'rejected', reason })))
  }))
  return multihashes.map((multihash) => alone.get(keyOf(multihash)) ?? { status: 'rejected', reason: new BatchResultMissingError('a block of the batch was not read') })
}
