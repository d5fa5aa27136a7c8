import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { SqlClient } from './sql.ts'

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url))
/** Any constant works; it only has to be the same on every worker. */
const MIGRATION_LOCK_KEY = 0x50484152 // "PHAR"

export interface Migration {
  version: number
  name: string
  sql: string
}

/** Reads `NNN_name.sql` files in version order. */
export async function loadMigrations (dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => /^\d{3}_[a-z0-9_]+\.sql$/.test(file)).sort()
  return await Promise.all(files.map(async (file) => ({
    version: Number(file.slice(0, 3)),
    name: file.slice(4, -4),
    sql: await readFile(new URL(file, `file://${dir}`), 'utf8')
  })))
}

/**
 * Applies every migration not yet applied, in one transaction under an advisory lock, so
 * several workers starting at once apply each migration exactly once. Returns the versions
 * it applied.
 */
export async function migrate (db: SqlClient, migrations?: Migration[]): Promise<number[]> {
  const all = migrations ?? await loadMigrations()
  return await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`)
    const { rows } = await tx.query<{ version: number }>('SELECT version FROM schema_migrations')
    const applied = new Set(rows.map((row) => row.version))
    const done: number[] = []
    for (const migration of all) {
      if (applied.has(migration.version)) continue
      // Migration files are trusted, versioned source; each may hold several statements.
      for (const statement of splitStatements(migration.sql)) await tx.query(statement)
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name])
      done.push(migration.version)
    }
    return done
  })
}

/**
 * Splits a migration into statements on `;` at line ends. Migrations are written for this:
 * no function bodies with inner semicolons at a line end (use `$$ … $$` on one line or
 * keep them out of migrations).
 */
function splitStatements (sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((statement) => statement.replace(/^\s*--.*$/gm, '').trim())
    .filter((statement) => statement.length > 0)
}
