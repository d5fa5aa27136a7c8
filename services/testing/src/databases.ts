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

/** One test secret for every fleet in the tests; worker names keep identities apart. */
export const TEST_FLEET_SECRET = 'pharos-test-fleet-secret-0123456789abcdef'

/**
 * A fleet of its own on the shared test Redis: one key prefix per call, so fleets of test
 * files running in parallel never see each other's workers, seen IDs or bans; one content-key
 * sealing secret per call, shared by its workers. Each call of
 * the returned function is the env of one more worker, with a name (and so a peer ID) of
 * its own.
 */
export function testFleet (redisUrl = testRedisUrl()): (extra?: Record<string, string>) => Record<string, string> {
  const prefix = `test-${randomBytes(4).toString('hex')}:`
  // One sealing key for the whole fleet, as operators give it: a key one worker deposits, any other opens.
  const sealingSecret = `v1:${randomBytes(32).toString('base64')}`
  let workers = 0
  return (extra = {}) => ({
    REDIS_URL: redisUrl,
    PHAROS_REDIS_PREFIX: prefix,
    PHAROS_FLEET_SECRET: TEST_FLEET_SECRET,
    PHAROS_KEY_SEALING_SECRET: sealingSecret,
    PHAROS_WORKER_NAME: `worker-${++workers}`,
    ...extra
  })
}

/** Runs one statement on a test database and returns its rows (a connection of its own, closed after). */
export async function queryTestDatabase<Row extends Record<string, unknown>> (url: string, text: string, values: unknown[] = []): Promise<Row[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<Row>(text, values)).rows
  } finally {
    await client.end()
  }
}
