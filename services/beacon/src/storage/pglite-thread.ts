/**
 * The thread that runs PGlite for the embedded worker (started by pglite-client.ts): every
 * query's WASM execution and result parsing happen here, off the main thread, so the main
 * thread's event loop (HTTP, libp2p, the overlay) is not held while blocks are read.
 *
 * PGlite has one session. Its own mutex makes a query wait while a transaction holds the
 * session, so this thread runs each request as it arrives and lets PGlite order them.
 */
import { mkdir } from 'node:fs/promises'
import { parentPort, workerData } from 'node:worker_threads'
import { PGlite, types } from '@electric-sql/pglite'
import type { Transaction } from '@electric-sql/pglite'
import { serializeError, transferablesOf } from './pglite-thread-protocol.ts'
import type { PgliteQueryResult, PgliteRequest, PgliteThreadData, PgliteThreadMessage } from './pglite-thread-protocol.ts'

/** Thrown inside PGlite's transaction callback to make it roll back (never leaves this file). */
class RollbackRequested extends Error {
  override readonly name = 'RollbackRequested'
}

class TransactionNotOpenError extends Error {
  override readonly name = 'TransactionNotOpenError'
  constructor (tx: number) {
    super(`transaction ${tx} is not open in the PGlite thread`)
  }
}

interface OpenTransaction {
  tx: Transaction
  /** Lets PGlite's transaction callback return (COMMIT) or throw (ROLLBACK). */
  finish: (commit: boolean) => void
  /** Settles once COMMIT or ROLLBACK ran. */
  done: Promise<void>
}

/**
 * bytea in and out through Node's native hex codec. PGlite's own parser builds each byte in a
 * JavaScript callback (~70 ms of CPU per MiB read, ~600 ms per MiB written, measured with
 * PGlite 0.5 on Node 22); these take a few ms. Each parsed value gets an ArrayBuffer of its
 * own, so it can be transferred to the main thread without a copy.
 */
const byteaParser = (text: string): Uint8Array => {
  const hex = text.slice(2) // the `\x` of Postgres's hex output format
  const bytes = new Uint8Array(hex.length >>> 1)
  Buffer.from(bytes.buffer).write(hex, 'hex')
  return bytes
}
const byteaSerializer = (value: unknown): string => {
  if (!(value instanceof Uint8Array)) throw new TypeError('a bytea parameter must be a Uint8Array')
  return '\\x' + Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')
}

const port = parentPort
if (port === null) throw new Error('pglite-thread.ts runs only as a worker thread (pglite-client.ts starts it)')
const { dataDir } = workerData as PgliteThreadData

const post = (message: PgliteThreadMessage, transfer: ArrayBuffer[] = []): void => { port.postMessage(message, transfer) }

let db: PGlite
try {
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true })
  db = await PGlite.create(dataDir, {
    parsers: { [types.BYTEA]: byteaParser },
    serializers: { [types.BYTEA]: byteaSerializer }
  })
} catch (err) {
  post({ kind: 'failed', error: serializeError(err) })
  throw err
}

const transactions = new Map<number, OpenTransaction>()

function inTransaction (tx: number | undefined): Pick<Transaction, 'query' | 'exec'> {
  if (tx === undefined) return db
  const open = transactions.get(tx)
  if (open === undefined) throw new TransactionNotOpenError(tx)
  return open.tx
}

/** Resolves once PGlite ran BEGIN for `tx` and holds its session for it. */
async function begin (tx: number): Promise<void> {
  let began: (handle: Transaction) => void = () => {}
  let finish: (commit: boolean) => void = () => {}
  const begun = new Promise<Transaction>((resolve) => { began = resolve })
  const finished = new Promise<boolean>((resolve) => { finish = resolve })
  const done = db.transaction(async (handle) => {
    began(handle)
    if (!await finished) throw new RollbackRequested()
  }).catch((err: unknown) => {
    if (!(err instanceof RollbackRequested)) throw err
  }).finally(() => { transactions.delete(tx) })
  // BEGIN itself failing (a closed database) rejects `done` before the callback runs.
  const beginFailed = done.then(() => { throw new TransactionNotOpenError(tx) })
  beginFailed.catch(() => {}) // once BEGIN ran, `end` is who waits for `done`
  const handle = await Promise.race([begun, beginFailed])
  transactions.set(tx, { tx: handle, finish, done })
}

async function run (request: PgliteRequest): Promise<PgliteQueryResult | undefined> {
  switch (request.op) {
    case 'query': {
      const result = await inTransaction(request.tx).query<Record<string, unknown>>(request.text, request.params)
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length }
    }
    case 'exec':
      await inTransaction(request.tx).exec(request.script)
      return undefined
    case 'begin':
      await begin(request.tx)
      return undefined
    case 'end': {
      const open = transactions.get(request.tx)
      if (open === undefined) throw new TransactionNotOpenError(request.tx)
      open.finish(request.commit)
      await open.done
      return undefined
    }
    case 'close':
      await db.close()
      return undefined
  }
}

port.on('message', (request: PgliteRequest) => {
  run(request).then(
    (value) => { post({ kind: 'reply', id: request.id, ok: true, value }, value === undefined ? [] : transferablesOf(value.rows)) },
    (err: unknown) => { post({ kind: 'reply', id: request.id, ok: false, error: serializeError(err) }) }
  )
})
post({ kind: 'ready' })
