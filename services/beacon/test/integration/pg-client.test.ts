/**
 * The Postgres client survives a connection that dies while a session holds it: the pool
 * listens for errors on idle clients only, so before the fix the worker died of an unhandled
 * 'error' event when Postgres went away mid-session (the fleet scenario's Postgres outage).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { openPostgres } from '../../src/storage/pg-client.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { waitFor } from '@pharos/testing/wait.ts'

describe('the Postgres client', () => {
  it('takes a session connection that dies between two queries as that session\'s error, and the pool goes on', async () => {
    const url = await createTestDatabase('pg_client')
    const errors: Error[] = []
    const db = await openPostgres(url, { maxConnections: 3, onError: (err) => { errors.push(err) } })
    try {
      const session = db.withSession(async (session) => {
        const { rows: [me] } = await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
        // Another connection ends this one while the session is between queries, as a server
        // going away does.
        await db.query('SELECT pg_terminate_backend($1)', [me?.pid])
        await waitFor('the session\'s connection to report its end', () => errors.length > 0, 10_000)
        await sleep(50)
        return await session.query('SELECT 1')
      })
      await assert.rejects(session, 'the next query of the dead session fails')
      assert.ok(errors.length >= 1, 'the error reached onError instead of killing the process')
      const { rows } = await db.query<{ one: number }>('SELECT 1 AS one')
      assert.deepEqual(rows, [{ one: 1 }], 'the pool gives out a healthy connection')
    } finally {
      await db.close()
    }
  })
})
