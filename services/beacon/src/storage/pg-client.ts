import pg from 'pg'
import { BinaryCopyOut } from './binary-copy.ts'
import { isStorageUnavailable } from './sql.ts'
import type { QueryOptions, SqlClient, SqlQueryable, SqlResult } from './sql.ts'

export interface PgClientOptions {
  /** Pool size per worker. @default 20 (guess: pin jobs + HTTP + ingest in parallel) */
  maxConnections?: number
  /** How long a query may wait for a free connection before it fails. @default 10000 */
  connectionTimeoutMs?: number
  /** Called on pool-level errors (a server that went away), so the process does not crash. */
  onError?: (err: Error) => void
  /** Called when an operation fails because the server is unreachable (counted in metrics). */
  onUnavailable?: (operation: 'query' | 'transaction' | 'session' | 'pool') => void
}

// int8 arrives as a string from `pg`; every int8 Pharos stores (sizes, counts, sequence
// numbers) fits in 2^53, and PGlite already returns numbers, so both engines agree.
const types = {
  getTypeParser (oid: number, format?: 'text' | 'binary') {
    if (oid === pg.types.builtins.INT8) return (value: string) => Number(value)
    return pg.types.getTypeParser(oid, format as 'text')
  }
}

/** A Postgres server through a `pg` connection pool. */
export async function openPostgres (url: string, options: PgClientOptions = {}): Promise<SqlClient> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 20,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
    types
  })
  pool.on('error', (err) => {
    options.onUnavailable?.('pool')
    options.onError?.(err)
  })
  const counted = async <T>(operation: 'query' | 'transaction' | 'session', run: () => Promise<T>): Promise<T> => {
    try {
      return await run()
    } catch (err) {
      if (isStorageUnavailable(err)) options.onUnavailable?.(operation)
      throw err
    }
  }

  const wrap = (q: pg.Pool | pg.PoolClient): SqlQueryable => ({
    async query<Row> (text: string, params?: readonly unknown[], options?: QueryOptions): Promise<SqlResult<Row>> {
      const values = params === undefined ? undefined : [...params]
      const result = options?.prepareAs === undefined
        ? await q.query(text, values)
        : await q.query({ name: options.prepareAs, text, values })
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? result.rows.length }
    }
  })

  const withClient = async <T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await pool.connect()
    let broken: Error | undefined
    // The pool listens for errors on idle clients only. A connection that dies while checked
    // out, between two queries (Postgres stopped mid-session), emits 'error' on the client,
    // and with no listener that kills the worker (seen in the fleet scenario's Postgres
    // outage). Its next query fails anyway; the client is discarded at release.
    const onError = (err: Error): void => {
      broken ??= err
      options.onError?.(err)
    }
    client.on('error', onError)
    try {
      return await fn(client)
    } catch (err) {
      broken ??= err instanceof Error ? err : new Error(String(err))
      throw err
    } finally {
      client.removeListener('error', onError)
      // A client whose session may hold state (locks, an aborted transaction) is discarded.
      client.release(broken)
    }
  }

  // Fail at start, not at first use, when the server cannot be reached.
  await pool.query('SELECT 1')

  return {
    engine: 'postgres',
    async query<Row> (text: string, params?: readonly unknown[], options?: QueryOptions) { return await counted('query', async () => await wrap(pool).query<Row>(text, params, options)) },
    async queryByteaRows (query, onRow) {
      return await counted('query', async () => await withClient(async (client) => {
        const copy = new BinaryCopyOut(query, onRow)
        client.query(copy)
        return await copy.rows
      }))
    },
    async exec (script) { await pool.query(script) },
    async transaction (fn) {
      return await counted('transaction', async () => await withClient(async (client) => {
        await client.query('BEGIN')
        try {
          const result = await fn(wrap(client))
          await client.query('COMMIT')
          return result
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {})
          throw err
        }
      }))
    },
    async withSession (fn) { return await counted('session', async () => await withClient(async (client) => await fn(wrap(client)))) },
    async close () { await pool.end() }
  }
}
