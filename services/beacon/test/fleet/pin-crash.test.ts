import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { createTestDatabase, testFleet } from '@pharos/testing/databases.ts'
import { createContentPeer, httpClient, metricValue, MiB, randomContent, sha256Hex, verifyCar, fileFromBlocks, waitForPin } from '../helpers/storage.ts'
import type { ContentPeer } from '../helpers/storage.ts'
import { spawnWorker, stopWorker, workerEnv } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'

const TOKEN = 'crash-owner-token-0123456789'
/** Blocks the origin serves before it holds the rest back (the file has 11). */
const SERVED_BEFORE_HOLD = 4

/**
 * A worker process is killed with SIGKILL in the middle of a pin; another worker process
 * takes the job once the lease lapses and finishes it from where the first one stopped.
 */
describe('a worker killed mid-pin loses nothing', () => {
  let databaseUrl: string
  let db: pg.Client
  let origin: ContentPeer
  const workers: WorkerProcess[] = []
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })

  before(async () => {
    databaseUrl = await createTestDatabase('pin_crash')
    db = new pg.Client({ connectionString: databaseUrl })
    await db.connect()
    let reads = 0
    origin = await createContentPeer({
      beforeRead: async () => {
        if (++reads > SERVED_BEFORE_HOLD) await held
      }
    })
  })

  after(async () => {
    release()
    for (const worker of workers) await stopWorker(worker)
    await origin?.stop()
    await db?.end()
  })

  const fleet = testFleet()
  const start = async (): Promise<WorkerProcess> => {
    const worker = await spawnWorker(await workerEnv(fleet({
      DATABASE_URL: databaseUrl,
      PHAROS_PIN_TOKENS: `owner:${TOKEN}`,
      PHAROS_PIN_LEASE_MS: '1500',
      PHAROS_PIN_POLL_INTERVAL_MS: '200',
      // One block in flight, so the origin's hold stops the job between blocks.
      PHAROS_PIN_FETCH_CONCURRENCY: '1'
    })))
    workers.push(worker)
    return worker
  }

  it('another worker process finishes the pin, reusing the blocks already stored', async () => {
    const file = randomContent(10 * MiB)
    const cid = await origin.addFile(file)
    const first = await start()
    const added = await httpClient(first.httpUrl, TOKEN)('POST', '/pins', { cid: cid.toString(), origins: origin.multiaddrs() })
    assert.equal(added.status, 202)
    const id = added.body.requestid as string

    // Mid-pin: the first worker holds the lease and has recorded the blocks it got.
    for (let i = 0; ; i++) {
      const { rows } = await db.query<{ status: string, lease_owner: string, held: string }>(
        'SELECT status, lease_owner, (SELECT count(*) FROM pin_blocks WHERE pin_id = $1) AS held FROM pins WHERE id = $1', [id])
      if (rows[0]?.status === 'pinning' && rows[0].lease_owner === first.peerId && Number(rows[0].held) === SERVED_BEFORE_HOLD) break
      assert.ok(i < 200, `the first worker did not get mid-pin: ${JSON.stringify(rows[0])}`)
      await sleep(50)
    }
    first.child.kill('SIGKILL')
    assert.equal((await first.exited).signal, 'SIGKILL')

    const second = await start()
    release()
    const pinned = await waitForPin(httpClient(second.httpUrl, TOKEN), id, ['pinned', 'failed'], 60_000)
    assert.equal(pinned.status, 'pinned', JSON.stringify(pinned))

    const { rows } = await db.query<{ attempts: number, lease_owner: string, blocks: string }>(
      'SELECT attempts, lease_owner, (SELECT count(*) FROM pin_blocks WHERE pin_id = $1) AS blocks FROM pins WHERE id = $1', [id])
    assert.equal(rows[0]?.lease_owner, second.peerId, 'the second worker settled the pin')
    assert.equal(rows[0]?.attempts, 2)
    const total = Number(rows[0]?.blocks)
    assert.equal(total, 11)
    const fetched = metricValue(await (await fetch(`${second.httpUrl}/metrics`)).text(), 'pharos_pin_blocks_fetched_total')
    assert.equal(fetched, total - SERVED_BEFORE_HOLD, 'the blocks the killed worker stored were not fetched again')

    const car = await verifyCar(new Uint8Array(await (await fetch(`${second.httpUrl}/ipfs/${cid.toString()}?format=car`)).arrayBuffer()))
    assert.equal(sha256Hex(await fileFromBlocks(cid, car.blocks)), sha256Hex(file))
  })
})
