/**
 * A block that arrives after the pin attempt that asked for it gave up (the flake of
 * pin-outage.test.ts under load). The attempt stalls and is retried later; meanwhile the
 * origin answers the dead attempt's want, and the block finds no want on the worker. An
 * origin running @helia/bitswap then counts the block as sent and ignores every new want of
 * it for its 5 s doNotResendBlockWindow: unless the worker cancelled the abandoned want, the
 * retry asks in vain, stalls, and with its attempts spent the pin fails although the origin
 * serves the block. Real worker, Postgres, and an origin peer on loopback; the origin's read
 * is held so the block goes out exactly between the two attempts.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { createContentPeer, httpClient, randomContent, testConfig, testLogger, waitForPin } from '../helpers/storage.ts'
import type { ContentPeer } from '../helpers/storage.ts'
import { waitFor } from '@pharos/testing/wait.ts'

const TOKEN = 'late-block-token-0123456789abcdef'

describe('a block that answers a pin attempt after it gave up', { timeout: 120_000 }, () => {
  let worker: Worker
  let origin: ContentPeer
  let reads = 0
  let release = (): void => {}

  before(async () => {
    worker = await startWorker(await testConfig({
      DATABASE_URL: await createTestDatabase('pin_late_block'),
      PHAROS_PIN_TOKENS: `alice:${TOKEN}`,
      PHAROS_PIN_STALL_TIMEOUT_MS: '2000',
      // The second attempt comes 3 s after the first stalled: inside the origin's 5 s
      // do-not-resend window that starts when it sends the late block, right after the stall.
      // The third comes 6 s after the second stalled: the origin drops the first want it gets
      // after the window too (its ledger reads wants before it expires old sends), so before
      // the fix all three ask in vain.
      PHAROS_PIN_RETRY_BASE_MS: '3000',
      PHAROS_PIN_MAX_ATTEMPTS: '3'
    }), testLogger())
    const released = new Promise<void>((resolve) => { release = resolve })
    origin = await createContentPeer({
      beforeRead: async () => {
        reads++
        await released
      }
    })
  })

  after(async () => {
    release()
    await origin?.stop()
    await worker?.stop()
  })

  it('is not lost: the retried attempt gets the block from the origin and the pin is pinned', async () => {
    const call = httpClient(worker.httpUrl, TOKEN)
    const cid = await origin.addFile(randomContent(16 * 1024))
    const added = await call('POST', '/pins', { cid: cid.toString(), origins: origin.multiaddrs() })
    assert.equal(added.status, 202, JSON.stringify(added.body))
    const pinRow = async (): Promise<{ status: string, attempts: number, failure: string | null }> => {
      const { rows } = await worker.db.query<{ status: string, attempts: number, failure: string | null }>(
        'SELECT status, attempts, failure_reason AS failure FROM pins WHERE id = $1', [added.body.requestid])
      assert.ok(rows[0] !== undefined)
      return rows[0]
    }

    // The first attempt's want reached the origin, which holds the block ...
    await waitFor('the origin to start reading the block for the first attempt', () => reads > 0, 30_000)
    // ... until the attempt stalled and was put back to wait for its retry.
    await waitFor('the first attempt to stall and wait for its retry', async () => {
      const row = await pinRow()
      return row.status === 'queued' && row.attempts === 1 && (row.failure ?? '').startsWith('PHAROS_PIN_STALL_TIMEOUT_MS')
    }, 30_000)
    // Now the origin answers the abandoned want: the block reaches a worker that wants nothing.
    release()
    await waitFor('the origin to send the late block', async () => (await origin.metrics.bitswapBlocksServed.get()).values[0]?.value === 1, 30_000)
    const between = await pinRow()
    assert.deepEqual({ status: between.status, attempts: between.attempts }, { status: 'queued', attempts: 1 },
      'the late block went out between the two attempts (the race this test sets up)')

    const pinned = await waitForPin(call, added.body.requestid)
    assert.equal(pinned.status, 'pinned', JSON.stringify(pinned))
  })
})
