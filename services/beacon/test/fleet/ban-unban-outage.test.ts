/**
 * An unban made while Redis is down is not lost (issue 17, item 19): the lift cannot reach
 * Redis, so the ban's entry stays in the bans hash; when Redis returns, a resync checks what
 * it reads against Postgres, the source of truth, removes the stale entry and does not ban
 * the peer again, on this worker nor on one that starts afterwards. A real worker on Postgres
 * and a real Redis that is stopped (SIGKILL) and started again with its data (append-only
 * file, so the stale entry survives, as it would with any persistent or clustered Redis).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Redis } from 'ioredis'
import { loadConfig } from '../../src/config/load.ts'
import { fleetKeys } from '../../src/fleet/index.ts'
import type { RedisFleetState } from '../../src/fleet/index.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase, TEST_FLEET_SECRET } from '@pharos/testing/databases.ts'
import { startRedisServer } from '@pharos/testing/redis-servers.ts'
import type { RedisServer } from '@pharos/testing/redis-servers.ts'
import { testLogger } from '../helpers/storage.ts'
import { waitFor } from '@pharos/testing/wait.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const PREFIX = 'ban-outage:'

describe('an unban while Redis is down', () => {
  let redis: RedisServer
  let databaseUrl: string
  const workers: Worker[] = []
  let inspect: Redis

  const start = async (name: string): Promise<Worker> => {
    const worker = await startWorker(loadConfig(await inProcessEnv({
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      PHAROS_REDIS_PREFIX: PREFIX,
      PHAROS_FLEET_SECRET: TEST_FLEET_SECRET,
      PHAROS_WORKER_NAME: name,
      PHAROS_FLEET_HEARTBEAT_MS: '500'
    })), testLogger())
    workers.push(worker)
    return worker
  }
  const fleetOf = (worker: Worker): RedisFleetState => worker.fleet as RedisFleetState
  const inRedis = async (peer: string): Promise<boolean> => await inspect.hexists(fleetKeys(PREFIX).bans(), peer) === 1

  before(async () => {
    // Data kept across a stop and start: the bans hash outlives the outage.
    redis = await startRedisServer({ extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always'] })
    databaseUrl = await createTestDatabase('ban_outage')
    inspect = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 200 })
    inspect.on('error', () => {})
  })

  after(async () => {
    for (const worker of workers) await worker.stop()
    inspect?.disconnect()
    await redis?.destroy()
  })

  it('stays lifted when Redis returns: the stale entry is removed, not learnt again', async () => {
    const worker = await start('worker-1')
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    assert.equal(await worker.bans.ban({ peer, reason: 'admin', detail: 'outage test', bannedBy: 'admin' }), true)
    await waitFor('the ban announced in Redis', async () => await inRedis(peer), 10_000)

    await redis.stop()
    await waitFor('the worker sees Redis down', () => !fleetOf(worker).redis.isUp(), 10_000)
    assert.equal(await worker.bans.unban(peer), true)
    assert.equal(worker.bans.isBanned(peer), false)

    await redis.start()
    await waitFor('the worker reconnected', () => fleetOf(worker).redis.isUp(), 20_000)
    // However many resyncs ran on reconnect, one more now, after it.
    await fleetOf(worker).bans.resync()
    assert.equal(worker.bans.isBanned(peer), false, 'not banned again by the entry Redis kept')
    assert.equal(await inRedis(peer), false, 'the stale entry is gone from Redis')

    // A worker that joins the fleet afterwards resyncs too: it does not ban the peer either.
    const later = await start('worker-2')
    await fleetOf(later).bans.resync()
    assert.equal(later.bans.isBanned(peer), false)
  })

  it('still spreads a ban that stands in Postgres through a resync', async () => {
    const [worker] = workers
    assert.ok(worker !== undefined)
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    // A ban written by another worker that Redis knows of but this worker has not heard yet:
    // Postgres holds it, so a resync learns it.
    await worker.db.query("INSERT INTO bans (peer, reason, detail, banned_by) VALUES ($1, 'admin', 'elsewhere', 'admin')", [peer])
    await inspect.hset(fleetKeys(PREFIX).bans(), peer, JSON.stringify({ reason: 'admin', by: 'another-worker', at: Date.now() }))
    assert.equal(worker.bans.isBanned(peer), false)
    await fleetOf(worker).bans.resync()
    assert.equal(worker.bans.isBanned(peer), true)
    assert.equal(await inRedis(peer), true)
  })
})
