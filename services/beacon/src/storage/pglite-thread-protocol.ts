/**
 * The messages between the main thread's PGlite client (pglite-client.ts) and the thread
 * that runs PGlite (pglite-thread.ts). Both sides import this file; it does no I/O.
 */

/** What the thread is started with (`workerData`). */
export interface PgliteThreadData {
  /** PGlite's data directory; `undefined` keeps the database in memory (tests). */
  dataDir: string | undefined
}

/** One request from the main thread; `id` pairs it with its reply. */
export type PgliteRequest =
  | { id: number, op: 'query', text: string, params: unknown[] | undefined, tx: number | undefined }
  | { id: number, op: 'exec', script: string, tx: number | undefined }
  /** Opens transaction `tx`: the reply comes once BEGIN ran and PGlite's session is held for it. */
  | { id: number, op: 'begin', tx: number }
  /** Ends transaction `tx` with COMMIT (`commit`) or ROLLBACK; the reply comes once it ran. */
  | { id: number, op: 'end', tx: number, commit: boolean }
  | { id: number, op: 'close' }

export interface PgliteQueryResult {
  rows: Array<Record<string, unknown>>
  rowCount: number
}

/** The thread's messages: once `ready` (or `failed`), then one reply per request. */
export type PgliteThreadMessage =
  | { kind: 'ready' }
  | { kind: 'failed', error: SerializedError }
  | { kind: 'reply', id: number, ok: true, value: PgliteQueryResult | undefined }
  | { kind: 'reply', id: number, ok: false, error: SerializedError }

/**
 * The Postgres error fields callers read (`code` is the SQLSTATE: unique and foreign-key
 * violations, unavailability), copied field by field: a structured clone of an Error keeps
 * only its message, and PGlite's errors also carry the query's parameters (block bytes),
 * which must not be copied back.
 */
const ERROR_FIELDS = ['code', 'severity', 'detail', 'hint', 'position', 'where', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine'] as const
export type SqlErrorField = typeof ERROR_FIELDS[number]

export type SerializedError = { name: string, message: string } & Partial<Record<SqlErrorField, string>>

export function serializeError (err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) }
  const serialized: SerializedError = { name: err.name, message: err.message }
  for (const field of ERROR_FIELDS) {
    const value: unknown = (err as unknown as Record<string, unknown>)[field]
    if (typeof value === 'string' || typeof value === 'number') serialized[field] = String(value)
  }
  return serialized
}

/**
 * An error PGlite raised in its thread, rebuilt on the main thread with the same message and
 * Postgres fields (`code`, `constraint`, …), so callers handle it as they handled PGlite's own.
 */
export class PgliteQueryError extends Error {
  override readonly name = 'PgliteQueryError'
  /** The error's class in the PGlite thread (e.g. `DatabaseError`, `TransactionAbortedError`). */
  readonly threadErrorName: string
  readonly code?: string
  readonly severity?: string
  readonly detail?: string
  readonly hint?: string
  readonly position?: string
  readonly where?: string
  readonly schema?: string
  readonly table?: string
  readonly column?: string
  readonly dataType?: string
  readonly constraint?: string
  readonly routine?: string

  constructor (serialized: SerializedError) {
    super(serialized.message)
    this.threadErrorName = serialized.name
    Object.assign(this, Object.fromEntries(ERROR_FIELDS.filter((field) => serialized[field] !== undefined).map((field) => [field, serialized[field]])))
  }
}

/**
 * The buffers of a result that can move to the other thread instead of being copied: each
 * Uint8Array value (bytea, bytea[]) that is the whole of its own ArrayBuffer. PGlite's bytea
 * parser (pglite-thread.ts) allocates one per value; a view into anything larger (a shared
 * pool, PGlite's memory) is copied as usual.
 */
export function transferablesOf (rows: ReadonlyArray<Record<string, unknown>>): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>()
  const add = (value: unknown): void => {
    if (value instanceof Uint8Array) {
      if (value.buffer instanceof ArrayBuffer && value.byteOffset === 0 && value.byteLength === value.buffer.byteLength && value.byteLength > 0) buffers.add(value.buffer)
    } else if (Array.isArray(value)) {
      for (const item of value) add(item)
    }
  }
  for (const row of rows) for (const value of Object.values(row)) add(value)
  return [...buffers]
}
