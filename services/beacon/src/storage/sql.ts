import { PGLITE_THREAD_EXITED } from './pglite-client.ts'

/**
 * One small SQL interface over the two Postgres engines Pharos runs on: PGlite (embedded,
 * in a worker thread of the process, on a data directory) and a Postgres server through `pg`. The same SQL runs on
 * both; code asks for this interface, never for an engine.
 */
/** `pg` returns bytea as Buffers, PGlite as Uint8Arrays; both become plain Uint8Arrays (no copy). */
export function rowBytes (bytes: Uint8Array): Uint8Array {
  return Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes
}

export interface SqlResult<Row> {
  rows: Row[]
  /** Rows returned or affected. */
  rowCount: number
}

export interface QueryOptions {
  /**
   * Prepare the statement once per connection under this name and reuse it (Postgres
   * server only; PGlite ignores it): a hot statement then skips the server's parse and plan.
   * One name must always carry the same text. Measured on the blockstore's put of 1 KiB
   * blocks: ~20 % more puts/s (docs/benchmarks.md).
   */
  prepareAs?: string
}

export interface SqlQueryable {
  query<Row = Record<string, unknown>>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<SqlResult<Row>>
}

/**
 * Rows whose every column is bytea, read as raw bytes and never as hex text: a Postgres
 * server sends them in a binary COPY (binary-copy.ts); PGlite hands bytea over as bytes
 * already. The blockstore reads blocks this way.
 */
export interface ByteaReader {
  /**
   * The rows of `query` (a SELECT, or INSERT/UPDATE/DELETE … RETURNING, every output column
   * bytea), each as its columns' bytes in order. `query` takes no parameters: inline bytea
   * values with `byteaLiteral` (binary-copy.ts). `onRow` sees each row as soon as it is
   * read, before the statement completes (a Postgres server streams them; PGlite hands them
   * over together), so a caller can act on the first rows while the rest arrive.
   */
  queryByteaRows(query: string, onRow?: (row: Array<Uint8Array | null>, index: number) => void): Promise<Array<Array<Uint8Array | null>>>
}

export interface SqlClient extends SqlQueryable, ByteaReader {
  readonly engine: 'pglite' | 'postgres'
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>
  /** Runs `fn` inside BEGIN … COMMIT on one connection; rolls back if it throws. */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>
  /**
   * Runs `fn` on one dedicated connection, for session-scoped state such as advisory
   * locks. On PGlite there is only one session, so this is the client itself.
   */
  withSession<T>(fn: (session: SqlQueryable) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/**
 * Node socket errors that mean the server cannot be reached (or went away mid-query), and
 * the embedded engine's thread having died (pglite-client.ts).
 */
const UNREACHABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', PGLITE_THREAD_EXITED])
/** SQLSTATEs of a server that is shutting down, starting, or full; class 08 is added below. */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300'])
/** `pg` raises these as plain Errors without a code. */
const UNAVAILABLE_MESSAGES = [/^Connection terminated/, /timeout exceeded when trying to connect/, /not queryable/, /Client was closed/]

/**
 * Whether `err` means "Postgres is unreachable right now" rather than "this query is wrong":
 * the first is retried (ingest holds its entries, HTTP answers 503, pin jobs go back to the
 * queue); the second is a bug or bad input and is handled where it happens.
 */
export function isStorageUnavailable (err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && (UNREACHABLE_ERRNOS.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08'))) return true
  if (UNAVAILABLE_MESSAGES.some((re) => re.test(err.message))) return true
  // AggregateError from a failed connect to several addresses (localhost → ::1 and 127.0.0.1).
  if (err instanceof AggregateError) return err.errors.some(isStorageUnavailable)
  return err.cause !== undefined && err.cause !== err && isStorageUnavailable(err.cause)
}
