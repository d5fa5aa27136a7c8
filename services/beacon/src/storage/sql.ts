/**
 * One small SQL interface over the two Postgres engines Pharos runs on: PGlite (embedded,
 * in-process, on a data directory) and a Postgres server through `pg`. The same SQL runs on
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

export interface SqlQueryable {
  query<Row = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<SqlResult<Row>>
}

export interface SqlClient extends SqlQueryable {
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
