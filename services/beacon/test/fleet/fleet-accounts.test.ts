/**
 * Accounts reach the whole fleet at once (issue 20, item 9): an account registered through
 * one worker is admitted by the others straight away, told through Redis as bans are, not at
 * their next periodic reload; a removal reaches them the same way. Three worker processes
 * on one Postgres and one Redis, with the periodic reload (PHAROS_ACCOUNTS_REFRESH_MS) set to
 * an hour, so only the push can explain what the siblings know.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type pg from 'pg'
import { generateKey } from '@pharos/peer/keys.ts'
import { createPharosPeer } from '@pharos/peer/pharos-peer.ts'
import type { PharosPeer } from '@pharos/peer/pharos-peer.ts'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { adminGet, startFleetProcesses, tcpAddress } from '../helpers/fleet-processes.ts'
import { waitForValue } from '@pharos/testing/wait.ts'
import { stopWorker } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'

const ADMIN = 'fleet-accounts-test-admin-token-0123456789'
const AN_HOUR_MS = 3_600_000

async function adminSend (worker: WorkerProcess, method: 'POST' | 'DELETE', path: string, body: unknown): Promise<number> {
  const response = await fetch(`${worker.httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000)
  })
  await response.body?.cancel()
  return response.status
}

async function listedBy (worker: WorkerProcess, peerId: string): Promise<boolean> {
  const { status, body } = await adminGet<{ accounts: Array<{ peerId: string }> }>(worker, '/v1/accounts?limit=10000', ADMIN)
  assert.equal(status, 200)
  return body.accounts.some((account) => account.peerId === peerId)
}

describe('an account registered through one worker of three', { timeout: 180_000 }, () => {
  let workers: WorkerProcess[] = []
  const peers: PharosPeer[] = []
  let db: pg.Pool

  before(async () => {
    const fleet = await startFleetProcesses({
      workers: 3,
      databaseUrl: await createTestDatabase('fleet_accounts'),
      adminToken: ADMIN,
      accounts: [],
      env: { PHAROS_ACCOUNTS_REFRESH_MS: String(AN_HOUR_MS) }
    })
    workers = fleet.workers
    db = fleet.db
  })

  after(async () => {
    await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
    await Promise.allSettled(workers.map(async (worker) => { await stopWorker(worker) }))
    await db?.end()
  })

  it('is admitted by another worker at once: its peer joins and publishes through worker 3 right after registering through worker 1', async () => {
    const [first, , third] = workers as [WorkerProcess, WorkerProcess, WorkerProcess]
    const privateKey = await generateKey()
    const peerId = peerIdFromPrivateKey(privateKey).toString()
    assert.equal(await adminSend(first, 'POST', '/v1/accounts', { peerId, label: 'registered through worker 1' }), 201)

    // No wait: the app registers its user, then the user's peer joins through whichever
    // worker it reaches. Refused as not-registered, start() throws OverlayRefusedError.
    const peer = await createPharosPeer({ privateKey, bootstrap: [tcpAddress(third)], beaconConnections: 1 })
    peers.push(peer)
    await peer.start({ signal: AbortSignal.timeout(30_000) })
    const entry = await peer.publishPost({ text: 'hello through worker 3' })
    await peer.waitUntilHeld([entry.cid], { state: 'stored', timeoutMs: 30_000 })
    const { rows } = await db.query<{ author: string }>('SELECT author FROM log_entries')
    assert.deepEqual(rows.map((row) => row.author), [peerId], 'worker 3 took the new account\'s entry')
  })

  it('is refused by the others once removed through worker 2, without the periodic reload', async () => {
    const [first, second, third] = workers as [WorkerProcess, WorkerProcess, WorkerProcess]
    const peerId = peerIdFromPrivateKey(await generateKey()).toString()
    assert.equal(await adminSend(first, 'POST', '/v1/accounts', { peerId }), 201)
    // The listing is read from Postgres; `count` is the worker's own registry.
    const countOf = async (worker: WorkerProcess): Promise<number> => (await adminGet<{ count: number }>(worker, '/v1/accounts?limit=1', ADMIN)).body.count
    await waitForValue('workers 2 and 3 to count the new account', 5000, async () => await countOf(third) === 2 && await countOf(second) === 2)
    assert.equal(await listedBy(third, peerId), true)

    assert.equal(await adminSend(second, 'DELETE', `/v1/accounts/${peerId}`, undefined), 204)
    await waitForValue('workers 1 and 3 to drop the removed account from their registries', 5000, async () => await countOf(first) === 1 && await countOf(third) === 1)
  })
})
