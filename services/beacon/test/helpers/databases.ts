import { randomBytes } from 'node:crypto'
import pg from 'pg'

/**
 * A fresh database on the throwaway Postgres that the test command started, so test files
 * running in parallel never share tables. Fails loudly when the test command did not start
 * Postgres: a test that needs it must not pass without it.
 */
export async function createTestDatabase (prefix: string): Promise<string> {
  const adminUrl = process.env.TEST_PG_ADMIN_URL
  if (adminUrl === undefined) throw new Error('TEST_PG_ADMIN_URL is unset: run tests through `npm test` (scripts/with-services.sh)')
  const name = `${prefix}_${randomBytes(4).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_')
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

export function testRedisUrl (): string {
  const url = process.env.TEST_REDIS_URL
  if (url === undefined) throw new Error('TEST_REDIS_URL is unset: run tests through `npm test` (scripts/with-services.sh)')
  return url
}
