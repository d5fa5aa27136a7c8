/**
 * Postgres goes away while a pin attempt is under way (issue 6, faults): settling the
 * attempt fails, nothing is lost and nothing escapes as an unhandled rejection (node:test
 * fails a file on one), and once Postgres is back the job runs again and is pinned.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { startPostgresServer } from '@pharos/testing/postgres-server.ts'
import type { PostgresServer } from '@pharos/testing/postgres-server.ts'
import { createContentPeer, httpClient, randomContent, testConfig, testLogger, waitForPin } from '../helpers/storage.ts'
import type { ContentPeer } from '../helpers/storage.ts'
import { sleep, waitForValue } from '@pharos/testing/wait.ts'

const TOKEN = 'outage-token-0123456789abcdef'

describe('a pin attempt when Postgres goes away', { timeout: 120_000 }, () => {
  let postgres: PostgresServer
  let worker: Worker
  let origin: ContentPeer
  let release = (): void => {}

  before(async () => {
    postgres = await startPostgresServer()
    worker = await startWorker(await testConfig({
      DATABASE_URL: postgres.url,
      PHAROS_PIN_TOKENS: `alice:${TOKEN}`,
      PHAROS_PIN_STALL_TIMEOUT_MS: '1000',
      PHAROS_PIN_RETRY_BASE_MS: '100',
      PHAROS_PIN_LEASE_MS: '2000'
    }), testLogger())
    const released = new Promise<void>((resolve) => { release = resolve })
    origin = await createContentPeer({ beforeRead: async () => { await released } })
  })

  after(async () => {
    release()
    await origin?.stop()
    await worker?.stop()
    await postgres?.destroy()
  })

  it('is taken again after Postgres returns, and pinned', async () => {
    const call = httpClient(worker.httpUrl, TOKEN)
    const cid = await origin.addFile(randomContent(16 * 1024))
    const added = await call('POST', '/pins', { cid: cid.toString(), origins: origin.multiaddrs() })
    assert.equal(added.status, 202, JSON.stringify(added.body))
    await waitForValue('the attempt to start', 10_000, async () => {
      const { rows } = await worker.db.query<{ status: string }>('SELECT status FROM pins WHERE id = $1', [added.body.requestid])
      return rows[0]?.status === 'pinning'
    })
    // The attempt stalls after 1 s and tries to record the retry while Postgres is down.
    await postgres.stop()
    await sleep(3000)
    await postgres.start()
    release()
    const pinned = await waitForPin(call, added.body.requestid)
    assert.equal(pinned.status, 'pinned', JSON.stringify(pinned))
  })
})
