import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { httpClient, metricValue, testConfig, testLogger, waitForPin } from '../helpers/storage.ts'
import type { HttpCall } from '../helpers/storage.ts'

const TOKEN = 'links-owner-token-0123456789'

/**
 * The pin walk's link extraction on hostile blocks (issue 17, item 11), through the Pinning
 * Service API of a worker on Postgres. The blocks are put in its blockstore first, so the
 * walk reads them from storage and needs no peer.
 */
describe('pin walk over hostile blocks (Postgres)', () => {
  let worker: Worker
  let call: HttpCall

  before(async () => {
    worker = await startWorker(await testConfig({
      DATABASE_URL: await createTestDatabase('pin_link_limits'),
      PHAROS_PIN_TOKENS: `owner:${TOKEN}`,
      PHAROS_DAG_MAX_LINKS_PER_BLOCK: '100',
      PHAROS_PIN_MAX_BLOCKS: '50',
      PHAROS_PIN_MAX_ATTEMPTS: '2',
      PHAROS_PIN_RETRY_BASE_MS: '200',
      PHAROS_PIN_STALL_TIMEOUT_MS: '3000'
    }), testLogger())
    call = httpClient(worker.httpUrl, TOKEN)
  })
  after(async () => { await worker?.stop() })

  async function put (code: number, bytes: Uint8Array): Promise<CID> {
    const cid = CID.createV1(code, await sha256.digest(bytes))
    await worker.storage.blockstore.put(cid, bytes)
    return cid
  }

  async function pin (cid: CID): Promise<{ status: string, reason: string | null, attempts: number }> {
    const added = await call('POST', '/pins', { cid: cid.toString() })
    assert.equal(added.status, 202, JSON.stringify(added.body))
    const settled = await waitForPin(call, added.body.requestid, ['pinned', 'failed'], 30_000)
    const { rows } = await worker.db.query<{ reason: string | null, attempts: number }>('SELECT failure_reason AS reason, attempts FROM pins WHERE id = $1', [added.body.requestid])
    return { status: settled.status, reason: rows[0]?.reason ?? null, attempts: Number(rows[0]?.attempts) }
  }

  it('fails a pin whose block links more than PHAROS_DAG_MAX_LINKS_PER_BLOCK at once, naming the key, and counts it', async () => {
    // 101 links to blocks nobody has: without the cap the walk would wait on all of them.
    const links = await Promise.all(Array.from({ length: 101 }, async (_, i) => CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(`absent ${i}`)))))
    const root = await put(dagCbor.code, dagCbor.encode({ links }))
    const result = await pin(root)
    assert.equal(result.status, 'failed')
    assert.equal(result.attempts, 1, 'a limit is not retried')
    assert.match(result.reason ?? '', /^PHAROS_DAG_MAX_LINKS_PER_BLOCK: block \S+ links more than 100 blocks \(limit 100\)$/)
    const exposition = await (await fetch(`${worker.httpUrl}/metrics`)).text()
    assert.equal(metricValue(exposition, 'pharos_limit_blocked_total{limit="PHAROS_DAG_MAX_LINKS_PER_BLOCK"}'), 1)
  })

  it('fails a pin whose links alone pass PHAROS_PIN_MAX_BLOCKS before fetching any: the walk holds no more', async () => {
    const links = await Promise.all(Array.from({ length: 60 }, async (_, i) => CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(`absent too ${i}`)))))
    const root = await put(dagCbor.code, dagCbor.encode({ links }))
    const metrics = async (): Promise<string> => await (await fetch(`${worker.httpUrl}/metrics`)).text()
    const fetchedBefore = metricValue(await metrics(), 'pharos_pin_blocks_fetched_total{from="any"}')
    const result = await pin(root)
    assert.equal(result.status, 'failed')
    assert.equal(result.attempts, 1)
    assert.equal(result.reason, 'PHAROS_PIN_MAX_BLOCKS: the DAG has more than 50 blocks (limit 50)')
    assert.equal(metricValue(await metrics(), 'pharos_pin_blocks_fetched_total{from="any"}'), fetchedBefore, 'no link was fetched')
  })

  it('pins a block nested 200,000 levels deep: extraction has no recursion to overflow', async () => {
    const leaf = await put(raw.code, new TextEncoder().encode('the one leaf under 200,000 lists'))
    const inner = dagCbor.encode(leaf)
    const depth = 200_000
    const nested = new Uint8Array(depth + inner.length)
    nested.fill(0x81, 0, depth)
    nested.set(inner, depth)
    const root = await put(dagCbor.code, nested)
    const result = await pin(root)
    assert.equal(result.status, 'pinned', result.reason ?? '')
    assert.equal(result.attempts, 1)
  })

  it('fails a pin whose block verifies but is not dag-cbor on its first attempt, naming the block', async () => {
    const root = await put(dagCbor.code, new Uint8Array([0xa1, 0x01, 0x02])) // a map keyed by an integer
    const result = await pin(root)
    assert.equal(result.status, 'failed')
    assert.equal(result.attempts, 1, 'bytes that do not parse never will: no retry')
    assert.equal(result.reason, `block ${root.toString()} is not valid dag-cbor: a map key is a uint, not a string`)
  })
})
