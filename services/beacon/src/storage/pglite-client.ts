import { Worker } from 'node:worker_threads'
import { PgliteQueryError } from './pglite-thread-protocol.ts'
import type { PgliteQueryResult, PgliteRequest, PgliteThreadData, PgliteThreadMessage } from './pglite-thread-protocol.ts'
import type { SqlClient, SqlQueryable, SqlResult } from './sql.ts'

export { PgliteQueryError } from './pglite-thread-protocol.ts'

/**
 * The PGlite thread is gone (it crashed, or ran out of memory): every request in flight and
 * every later one fails with this. `isStorageUnavailable` counts it as an outage.
 */
export class PgliteThreadExitedError extends Error {
  override readonly name = 'PgliteThreadExitedError'
  readonly code = PGLITE_THREAD_EXITED

  constructor (detail: string, options?: ErrorOptions) {
    super(`the PGlite thread exited: ${detail}`, options)
  }
}

/** The error code of `PgliteThreadExitedError` (sql.ts lists it among the outages). */
export const PGLITE_THREAD_EXITED = 'PHAROS_PGLITE_THREAD_EXITED'

/** A request made after `close()`. */
export class PgliteClosedError extends Error {
  override readonly name = 'PgliteClosedError'

  constructor () {
    super('the PGlite client is closed')
  }
}

export interface PgliteOptions {
  /** Called once if the PGlite thread dies while the client is open (log it: storage is gone). */
  onThreadExit?: (err: PgliteThreadExitedError) => void
}

/** The embedded engine: a `SqlClient` whose PGlite runs in a worker thread. */
export interface PgliteThreadClient extends SqlClient {
  readonly engine: 'pglite'
  /**
   * The worker thread PGlite runs in (its `threadId` is never the main thread's, 0). Tests
   * terminate it to check that a dead thread fails requests instead of hanging them.
   */
  readonly thread: Pick<Worker, 'threadId' | 'terminate'>
  /** Requests the thread has answered, and the bytea bytes its answers carried. */
  stats (): { answered: number, byteaBytes: number }
}

interface Pending {
  resolve: (value: PgliteQueryResult | undefined) => void
  reject: (err: Error) => void
}

const THREAD_SCRIPT = new URL('./pglite-thread.ts', import.meta.url)

/**
 * The embedded default: real Postgres compiled to WASM, persisted in `dataDir` (or in memory
 * when `dataDir` is undefined, for tests), run in a `node:worker_threads` thread.
 *
 * On the main thread, PGlite's WASM execution and its result parsing held the event loop for
 * every query: reading a 1 MiB block took ~100 ms, so peers pulling blocks over Bitswap or
 * the gateway starved /healthz and the overlay (issue 17). Here the main thread only posts a
 * request and receives the rows (bytea moved, not copied).
 *
 * PGlite is single-session, as before: a transaction holds the session from BEGIN to COMMIT
 * and every other query waits for it (PGlite's own mutex, in the thread). Errors keep their
 * message and Postgres fields (`code`, `constraint`, …). If the thread dies, every request in
 * flight and every later one fails with `PgliteThreadExitedError`; none hangs.
 */
export async function openPglite (dataDir: string | undefined, options: PgliteOptions = {}): Promise<PgliteThreadClient> {
  const thread = new Worker(THREAD_SCRIPT, { workerData: { dataDir } satisfies PgliteThreadData })
  await new Promise<void>((resolve, reject) => {
    const settle = (err?: Error): void => {
      thread.off('message', onMessage)
      thread.off('error', settle)
      thread.off('exit', onExit)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onMessage = (message: PgliteThreadMessage): void => {
      if (message.kind === 'ready') settle()
      else if (message.kind === 'failed') settle(new PgliteQueryError(message.error))
    }
    const onExit = (code: number): void => { settle(new PgliteThreadExitedError(`exit code ${code} while starting`)) }
    thread.on('message', onMessage)
    thread.on('error', settle)
    thread.on('exit', onExit)
  })

  const pending = new Map<number, Pending>()
  let nextRequest = 0
  let nextTransaction = 0
  let gone: Error | undefined
  let closing = false
  let answered = 0
  let byteaBytes = 0

  // The thread keeps the process alive only while a request waits on it, as PGlite in the
  // main thread did: an idle open client does not stop the process from exiting.
  thread.unref()

  const fail = (err: Error): void => {
    if (gone !== undefined) return
    gone = err
    for (const waiting of pending.values()) waiting.reject(err)
    pending.clear()
    thread.unref()
    if (!closing && err instanceof PgliteThreadExitedError) options.onThreadExit?.(err)
  }
  thread.on('message', (message: PgliteThreadMessage) => {
    if (message.kind !== 'reply') return
    const waiting = pending.get(message.id)
    if (waiting === undefined) return
    pending.delete(message.id)
    if (pending.size === 0) thread.unref()
    answered++
    if (message.ok) {
      byteaBytes += byteaBytesOf(message.value)
      waiting.resolve(message.value)
    } else {
      waiting.reject(new PgliteQueryError(message.error))
    }
  })
  thread.on('error', (err) => { fail(new PgliteThreadExitedError(err.message, { cause: err })) })
  thread.on('exit', (code) => { fail(closing ? new PgliteClosedError() : new PgliteThreadExitedError(`exit code ${code}`)) })

  const request = async (body: DistributiveOmit<PgliteRequest, 'id'>, transfer: ArrayBuffer[] = []): Promise<PgliteQueryResult | undefined> => {
    if (gone !== undefined) throw gone
    const id = ++nextRequest
    const reply = new Promise<PgliteQueryResult | undefined>((resolve, reject) => { pending.set(id, { resolve, reject }) })
    if (pending.size === 1) thread.ref()
    thread.postMessage({ ...body, id }, transfer)
    return await reply
  }

  const queryable = (tx: number | undefined): SqlQueryable => ({
    async query<Row> (text: string, params?: readonly unknown[]): Promise<SqlResult<Row>> {
      const { values, transfer } = prepareParams(params)
      const result = await request({ op: 'query', text, params: values, tx }, transfer)
      if (result === undefined) throw new Error('the PGlite thread answered a query without rows')
      return { rows: result.rows as Row[], rowCount: result.rowCount }
    }
  })
  const self = queryable(undefined)

  return {
    engine: 'pglite',
    thread,
    stats: () => ({ answered, byteaBytes }),
    query: self.query,
    async queryByteaRows (query, onRow) {
      // PGlite returns bytea as Uint8Arrays (moved from its thread, not copied); the columns
      // come back in select-list order.
      const { rows } = await self.query<Record<string, Uint8Array | null>>(query)
      const byteaRows = rows.map((row) => Object.values(row))
      if (onRow !== undefined) byteaRows.forEach(onRow)
      return byteaRows
    },
    async exec (script) { await request({ op: 'exec', script, tx: undefined }) },
    async transaction (fn) {
      const tx = ++nextTransaction
      await request({ op: 'begin', tx })
      let result
      try {
        result = await fn(queryable(tx))
      } catch (err) {
        await request({ op: 'end', tx, commit: false }).catch(() => {})
        throw err
      }
      await request({ op: 'end', tx, commit: true })
      return result
    },
    async withSession (fn) { return await fn(self) },
    async close () {
      if (closing) return
      closing = true
      if (gone === undefined) await request({ op: 'close' }).catch(() => {})
      await thread.terminate()
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/**
 * Parameters as the thread receives them. A structured clone copies the whole ArrayBuffer
 * under a Uint8Array, so a view into something larger (a block inside a received Bitswap
 * message, a Buffer from Node's pool) is first copied to its own buffer, which then moves.
 */
function prepareParams (params: readonly unknown[] | undefined): { values: unknown[] | undefined, transfer: ArrayBuffer[] } {
  if (params === undefined) return { values: undefined, transfer: [] }
  const transfer: ArrayBuffer[] = []
  const values = params.map((value) => {
    if (!(value instanceof Uint8Array) || (value.byteOffset === 0 && value.byteLength === value.buffer.byteLength)) return value
    const own = new Uint8Array(value)
    transfer.push(own.buffer)
    return own
  })
  return { values, transfer }
}

function byteaBytesOf (result: PgliteQueryResult | undefined): number {
  let bytes = 0
  for (const row of result?.rows ?? []) {
    for (const value of Object.values(row)) if (value instanceof Uint8Array) bytes += value.byteLength
  }
  return bytes
}
