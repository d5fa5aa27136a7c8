/**
 * The quota check is atomic per owner (issue 17, item 18): two pins of one owner that run at
 * once, each within the quota but not both together, cannot both be pinned. Both attempts
 * start (and read the owner's usage) before either has a block, because each pin's origin
 * holds its block back until both are fetching; then both DAGs arrive together. On Postgres and on
 * PGlite, with real workers and a real origin peer over Bitswap.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { createContentPeer, httpClient, randomContent, testConfig, testLogger, waitForPin } from '../helpers/storage.ts'
import type { ContentPeer, JsonBody } from '../helpers/storage.ts'
import { waitFor } from '@pharos/testing/wait.ts'

const TOKEN = 'quota-race-token-0123456789'
const KiB = 1024
const QUOTA = 24 * KiB
const PIN_BYTES = 16 * KiB

const engines: Array<{ name: string, env: () => Promise<Record<string, string>> }> = [
  { name: 'Postgres', env: async () => ({ DATABASE_URL: await createTestDatabase('quota_race') }) },
  { name: 'PGlite', env: async () => ({}) }
]

for (const engine of engines) {
  describe(`concurrent pins of one owner against its quota (${engine.name})`, () => {
    let worker: Worker
    /** One origin per pin: a peer serves one want at a time, so one origin holding back would hide the second want. */
    const origins: ContentPeer[] = []
    /** Blocks the origins were asked for while they held them back. */
    const asked = new Set<string>()
    let release = (): void => {}

    before(async () => {
      worker = await startWorker(await testConfig({
        ...await engine.env(),
        PHAROS_PIN_TOKENS: `alice:${TOKEN}`,
        PHAROS_PIN_OWNER_QUOTA_BYTES: String(QUOTA),
        PHAROS_PIN_CONCURRENCY: '4'
      }), testLogger())
      const released = new Promise<void>((resolve) => { release = resolve })
      for (let i = 0; i < 2; i++) {
        origins.push(await createContentPeer({
          beforeRead: async (cid) => {
            asked.add(cid.toString())
            await released
          }
        }))
      }
    })

    after(async () => {
      release()
      await Promise.all(origins.map(async (origin) => { await origin.stop() }))
      await worker?.stop()
    })

    it('pins one of two pins whose sum crosses the quota and fails the other naming the key', async () => {
      const call = httpClient(worker.httpUrl, TOKEN)
      const cids: CID[] = []
      for (const origin of origins) {
        const bytes = randomContent(PIN_BYTES)
        const cid = CID.createV1(raw.code, await sha256.digest(bytes))
        await origin.blockstore.put(cid, bytes)
        cids.push(cid)
      }
      const ids: string[] = []
      for (const [i, cid] of cids.entries()) {
        const added = await call('POST', '/pins', { cid: cid.toString(), origins: origins[i]?.multiaddrs() })
        assert.equal(added.status, 202, JSON.stringify(added.body))
        ids.push(added.body.requestid as string)
      }
      // Both attempts have read the owner's usage (nothing held yet) and wait on the origin.
      await waitFor('both pins fetching from the origin', () => cids.every((cid) => asked.has(cid.toString())), 30_000)
      release()

      const settled: JsonBody[] = []
      for (const id of ids) settled.push(await waitForPin(call, id))
      const statuses = settled.map((pin) => pin.status as string).sort()
      assert.deepEqual(statuses, ['failed', 'pinned'], `each fits alone, both do not: ${JSON.stringify(settled.map((pin) => pin.info))}`)
      const failed = settled.find((pin) => pin.status === 'failed')
      assert.match(failed.info.status_details, /^PHAROS_PIN_OWNER_QUOTA_BYTES: /)
      const usage = await worker.storage.pins.usage('alice')
      assert.equal(usage.bytes, PIN_BYTES, 'the owner holds one pin\'s bytes, within its quota')
      assert.equal(await blockedBy(worker, 'PHAROS_PIN_OWNER_QUOTA_BYTES'), 1)
    })
  })
}

/** `pharos_limit_blocked_total{limit}` from the worker's /metrics. */
async function blockedBy (worker: Worker, limit: string): Promise<number> {
  const text = await (await fetch(`${worker.httpUrl}/metrics`)).text()
  const line = text.split('\n').find((entry) => entry.startsWith(`pharos_limit_blocked_total{limit="${limit}"} `))
  return line === undefined ? 0 : Number(line.split(' ').at(-1))
}
