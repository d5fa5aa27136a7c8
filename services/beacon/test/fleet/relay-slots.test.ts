/**
 * Fair relay slots (issue 9, part 3), end to end: two workers started in-process on one
 * Postgres and one Redis, real js-libp2p clients reserving over the relay hop protocol.
 * Reservations go to registered accounts only, a reconnecting peer keeps one slot, and an
 * account's slots are counted over the fleet.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Redis } from 'ioredis'
import { loadConfig } from '../../src/config/load.ts'
import { fleetKeys } from '../../src/fleet/index.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createClientPeer } from '../helpers/client-peer.ts'
import type { ClientPeer } from '../helpers/client-peer.ts'
import { createTestDatabase, testFleet, testRedisUrl } from '@pharos/testing/databases.ts'
import { requestReservation, STATUS_OK, STATUS_PERMISSION_DENIED } from '../helpers/relay-hop.ts'
import { inProcessEnv } from '@pharos/testing/worker-process.ts'

const RECONNECTS = 20

describe('relay slots per account, shared by two workers through Redis', () => {
  const workers: Worker[] = []
  const peers: ClientPeer[] = []
  let redis: Redis
  let keys: ReturnType<typeof fleetKeys>

  const tcpAddrOf = (worker: Worker): Multiaddr => worker.node.getMultiaddrs().find((addr) => addr.toString().startsWith('/ip4/127.0.0.1/') && !addr.toString().includes('/ws')) ?? assert.fail('no TCP address')
  const peer = async (): Promise<ClientPeer> => {
    const created = await createClientPeer()
    peers.push(created)
    return created
  }
  /** Registers an account through one worker and has every worker reload the table. */
  const register = async (client: ClientPeer): Promise<void> => {
    await workers[0]?.accounts.add(client.peerId.toString())
    await Promise.all(workers.map(async (worker) => { await worker.accounts.refresh() }))
  }
  const outcomes = async (worker: Worker): Promise<Record<string, number>> => {
    const text = (await worker.app.inject({ method: 'GET', url: '/metrics' })).body
    const counts: Record<string, number> = {}
    for (const [, outcome, value] of text.matchAll(/^pharos_relay_reservation_requests_total\{outcome="([^"]+)"\} (\d+)$/gm)) counts[outcome ?? ''] = Number(value)
    return counts
  }
  const slotHolders = async (client: ClientPeer): Promise<string[]> => (await redis.zrange(keys.relaySlots(client.peerId.toString()), '0', '-1')).sort()

  before(async () => {
    const fleet = testFleet()
    const database = await createTestDatabase('relay_slots')
    const env = async (): Promise<Record<string, string>> => await inProcessEnv(fleet({
      DATABASE_URL: database,
      PHAROS_RELAY_SLOTS_PER_ACCOUNT: '1',
      // Every reconnect below asks again: the per-peer request bound is not what is tested.
      PHAROS_RELAY_MAX_RESERVATIONS_PER_PEER: String(RECONNECTS + 5)
    }))
    const first = await env()
    keys = fleetKeys(first.PHAROS_REDIS_PREFIX ?? assert.fail('no prefix'))
    workers.push(await startWorker(loadConfig(first), createLogger('silent')))
    workers.push(await startWorker(loadConfig(await env()), createLogger('silent')))
    redis = new Redis(testRedisUrl())
  })

  after(async () => {
    await Promise.all(peers.map(async (p) => { await p.stop() }))
    await Promise.all(workers.map(async (worker) => { await worker.stop() }))
    redis?.disconnect()
  })

  it(`keeps one reservation for a peer that reconnects ${RECONNECTS} times`, async () => {
    const worker = workers[0] as Worker
    const client = await peer()
    await register(client)
    const before = await outcomes(worker)
    for (let i = 0; i < RECONNECTS; i++) {
      assert.equal(await requestReservation(client, tcpAddrOf(worker)), STATUS_OK, `reservation after connect ${i + 1}`)
      await client.hangUp(worker.node.peerId)
    }
    const after = await outcomes(worker)
    assert.equal((after.granted ?? 0) - (before.granted ?? 0), 1, 'one slot granted')
    assert.equal((after.renewed ?? 0) - (before.renewed ?? 0), RECONNECTS - 1, 'every reconnect reused it')
    assert.deepEqual(await slotHolders(client), [worker.node.peerId.toString()], 'one slot in Redis, held by this worker')
    assert.equal([...worker.node.services.relay.reservations.keys()].filter((holder) => holder.equals(client.peerId)).length, 1)
  })

  it('gives an unregistered peer no reservation', async () => {
    const worker = workers[0] as Worker
    const stranger = await peer()
    const before = await outcomes(worker)
    assert.equal(await requestReservation(stranger, tcpAddrOf(worker)), STATUS_PERMISSION_DENIED)
    assert.equal(((await outcomes(worker))['not-registered'] ?? 0) - (before['not-registered'] ?? 0), 1)
    assert.equal(worker.node.services.relay.reservations.has(stranger.peerId), false)
    assert.deepEqual(await slotHolders(stranger), [], 'nothing in Redis')
  })

  it('holds an account to its slots over both workers, and frees the slot when its holder drains', async () => {
    const [a, b] = workers as [Worker, Worker]
    const client = await peer()
    await register(client)
    assert.equal(await requestReservation(client, tcpAddrOf(a)), STATUS_OK, 'the first slot, at worker A')
    const refusedBefore = (await outcomes(b))['account-slots'] ?? 0
    assert.equal(await requestReservation(client, tcpAddrOf(b)), STATUS_PERMISSION_DENIED, 'PHAROS_RELAY_SLOTS_PER_ACCOUNT=1 is held at A')
    assert.equal(((await outcomes(b))['account-slots'] ?? 0) - refusedBefore, 1)
    assert.equal(b.node.services.relay.reservations.has(client.peerId), false)
    assert.deepEqual(await slotHolders(client), [a.node.peerId.toString()])

    // A stops (SIGTERM): its reservations end with it, and so do their slots.
    await a.stop()
    assert.deepEqual(await slotHolders(client), [])
    assert.equal(await requestReservation(client, tcpAddrOf(b)), STATUS_OK, 'the slot A gave back is taken at B')
    assert.deepEqual(await slotHolders(client), [b.node.peerId.toString()])
  })
})
