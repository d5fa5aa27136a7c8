import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { SqlClient, SqlQueryable } from './sql.ts'

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url))
/** Any constant works; it only has to be the same on every worker. */
const MIGRATION_LOCK_KEY = 0x50484152 // "PHAR"

/**
 * One versioned step: SQL statements (`NNN_name.sql`), or, for a data migration SQL does
 * badly (re-encoding peer IDs, say), code (`NNN_name.ts` exporting `up(tx)`). Both run in
 * the one migration transaction, in version order.
 */
export type Migration =
  | { version: number, name: string, sql: string }
  | { version: number, name: string, up: (tx: SqlQueryable) => Promise<void> }

/** Two migration files claim one version (two branches each added the next number). */
export class DuplicateMigrationVersionError extends Error {
  override readonly name = 'DuplicateMigrationVersionError'
}

/** Reads `NNN_name.sql` and `NNN_name.ts` files in version order. */
export async function loadMigrations (dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => /^\d{3}_[a-z0-9_]+\.(sql|ts)$/.test(file)).sort()
  const migrations = await Promise.all(files.map(async (file): Promise<Migration> => {
    const version = Number(file.slice(0, 3))
    const name = file.slice(4, file.lastIndexOf('.'))
    if (file.endsWith('.sql')) return { version, name, sql: await readFile(join(dir, file), 'utf8') }
    const module = await import(pathToFileURL(join(dir, file)).href) as { up?: unknown }
    if (typeof module.up !== 'function') throw new TypeError(`migration ${file} exports no up(tx) function`)
    return { version, name, up: module.up as (tx: SqlQueryable) => Promise<void> }
  }))
  for (const [i, migration] of migrations.entries()) {
    const before = migrations[i - 1]
    if (before?.version === migration.version) throw new DuplicateMigrationVersionError(`migrations ${before.name} and ${migration.name} both claim version ${migration.version}; renumber one`)
  }
  return migrations
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
      if ('up' in migration) await migration.up(tx)
      else for (const statement of splitStatements(migration.sql)) await tx.query(statement)
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
