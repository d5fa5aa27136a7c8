import { mkdir } from 'node:fs/promises'
import { PGlite } from '@electric-sql/pglite'
import type { SqlClient, SqlQueryable, SqlResult } from './sql.ts'

/**
 * The embedded default: real Postgres compiled to WASM, in-process, persisted in `dataDir`
 * (or in memory when `dataDir` is undefined, for tests).
 */
export async function openPglite (dataDir: string | undefined): Promise<SqlClient> {
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true })
  const db = await PGlite.create(dataDir)

  const wrap = (q: Pick<PGlite, 'query'>): SqlQueryable => ({
    async query<Row> (text: string, params?: readonly unknown[]): Promise<SqlResult<Row>> {
      const result = await q.query<Row>(text, params === undefined ? undefined : [...params])
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length }
    }
  })
  const self = wrap(db)

  return {
    engine: 'pglite',
    query: self.query,
    async exec (script) { await db.exec(script) },
    async transaction (fn) { return await db.transaction(async (tx) => await fn(wrap(tx))) },
    async withSession (fn) { return await fn(self) },
    async close () { await db.close() }
  }
}
