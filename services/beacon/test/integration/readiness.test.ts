/**
 * `/readyz` is anonymous (issue 17, item 15): a failing check answers with its name and a
 * fixed reason, never the driver's error text, which names the database host and user. The
 * error goes to the worker's log instead, once per change. Against real Postgres: a URL whose
 * host does not resolve, and the test server with a role that does not exist.
 */
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import fastify from 'fastify'
import pg from 'pg'
import { Readiness } from '../../src/health.ts'
import { healthRoutes } from '../../src/http/routes/health.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'

/** What a probe sees, and what the worker logged meanwhile. */
async function probe (databaseUrl: string, times = 1): Promise<{ status: number, body: string, logs: string[] }> {
  const logs: string[] = []
  const log = createLogger('info', new Writable({ write (chunk: Buffer, _encoding, done) { logs.push(chunk.toString()); done() } }))
  // The driver a worker uses, on a URL it cannot use (openPostgres itself refuses to start on one).
  const db = new pg.Pool({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 })
  const readiness = new Readiness({ log, timeoutMs: 10_000 })
  readiness.addCheck('storage', async () => { await db.query('SELECT 1') }, { failure: 'unreachable' })
  const app = fastify()
  await app.register(healthRoutes, { readiness })
  try {
    let response = await app.inject({ method: 'GET', url: '/readyz' })
    for (let i = 1; i < times; i++) response = await app.inject({ method: 'GET', url: '/readyz' })
    return { status: response.statusCode, body: response.body, logs }
  } finally {
    await app.close()
    await db.end()
  }
}

describe('/readyz with Postgres unreachable', () => {
  it('says "storage: unreachable" and nothing of a host that does not resolve; the log has the detail', async () => {
    const { status, body, logs } = await probe('postgres://leaky_user:leaky_password@leaky-db-host.invalid:5432/leaky_db')
    assert.equal(status, 503)
    assert.deepEqual(JSON.parse(body), { ready: false, status: 'not-ready', checks: { storage: 'unreachable' } })
    assert.doesNotMatch(body, /leaky/)
    assert.ok(logs.some((line) => line.includes('readiness check failing') && line.includes('leaky-db-host.invalid')), `logged: ${logs.join('')}`)
  })

  it('says nothing of the user a real server refused, and logs it once however often it is probed', async () => {
    const url = new URL(await createTestDatabase('readiness'))
    url.username = 'leaky_role_that_does_not_exist'
    const { status, body, logs } = await probe(url.toString(), 3)
    assert.equal(status, 503)
    assert.deepEqual(JSON.parse(body).checks, { storage: 'unreachable' })
    assert.doesNotMatch(body, /leaky|127\.0\.0\.1|role|password/)
    const failing = logs.filter((line) => line.includes('readiness check failing'))
    assert.equal(failing.length, 1, 'one log line for three probes of the same failure')
    assert.match(failing[0] ?? '', /leaky_role_that_does_not_exist/)
  })
})
