/**
 * Two workers on a Redis Cluster (three primaries) and one Postgres: the fleet state works
 * on Cluster as on one Redis, an entry published at worker A reaches a peer connected only
 * to worker C, through the fleet's gossip bridge, and is verified and stored once, and a
 * ban made on A takes effect on C at once, without waiting for C's Postgres refresh.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKey } from '@pharos/peer/keys.ts'
import { createPharosPeer } from '@pharos/peer/pharos-peer.ts'
import type { PharosPeer } from '@pharos/peer/pharos-peer.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { createTestDatabase, testFleet } from '@pharos/testing/databases.ts'
import { startRedisCluster } from '@pharos/testing/redis-servers.ts'
import type { RedisClusterServers } from '@pharos/testing/redis-servers.ts'
import { testConfig, testLogger } from '../helpers/storage.ts'
import { waitFor } from '@pharos/testing/wait.ts'

async function counter (worker: Worker, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await worker.app.inject({ method: 'GET', url: '/metrics' })).body.split('\n')
    .find((line) => line.startsWith(name) && Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
  return metric === undefined ? 0 : Number(metric.slice(metric.lastIndexOf(' ') + 1))
}

describe('a fleet on Redis Cluster', { timeout: 180_000 }, () => {
  let cluster: RedisClusterServers
  let a: Worker
  let c: Worker
  const peers: PharosPeer[] = []

  before(async () => {
    cluster = await startRedisCluster(3)
    const fleet = testFleet(cluster.url)
    const shared = {
      DATABASE_URL: await createTestDatabase('fleet_cluster'),
      PHAROS_REDIS_MODE: 'cluster',
      PHAROS_FLEET_HEARTBEAT_MS: '500',
      PHAROS_ACCOUNTS_REFRESH_MS: '600000',
      PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND: '1000'
    }
    a = await startWorker(await testConfig(fleet(shared)), testLogger())
    c = await startWorker(await testConfig(fleet(shared)), testLogger())
  })

  after(async () => {
    await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
    await c?.stop()
    await a?.stop()
    await cluster?.stop()
  })

  const peerOn = async (worker: Worker): Promise<PharosPeer> => {
    const tcp = worker.node.getMultiaddrs().map((addr) => addr.toString()).find((addr) => !addr.includes('/ws'))
    assert.ok(tcp !== undefined)
    const peer = await createPharosPeer({ privateKey: await generateKey(), bootstrap: [tcp], networkSize: 4 })
    peers.push(peer)
    await a.accounts.add(peer.peerId.toString(), 'cluster-test')
    return peer
  }

  it('lists both workers from Cluster and marks Redis up', async () => {
    await waitFor('each worker to see the other', async () => {
      const lists = await Promise.all([a, c].map(async (worker) => await worker.fleet.membership.list()))
      return lists.every((list) => list.length === 2 && list.every((entry) => !entry.stale))
    }, 10_000)
    for (const worker of [a, c]) {
      assert.equal(await counter(worker, 'pharos_redis_up'), 1)
      const ready = await worker.app.inject({ method: 'GET', url: '/readyz' })
      assert.equal(ready.json().status, 'ready')
      assert.equal(ready.json().checks.redis, 'ok')
    }
  })

  it('delivers an entry accepted by A to a peer connected only to C, stored once', async () => {
    const author = await peerOn(a)
    const reader = await peerOn(c)
    await Promise.all([a, c].map(async (worker) => { await worker.accounts.refresh() }))
    await author.start()
    await reader.start()
    reader.follow([author.peerId.toString()])
    const got: string[] = []
    reader.onEntry((block) => { got.push(block.cid.toString()) })
    // The reader's only connection is to C, and it has no other overlay neighbour but C.
    assert.deepEqual(reader.libp2p.getPeers().map(String), [c.node.peerId.toString()])

    const bridgedBefore = await counter(c, 'pharos_gossip_bridge_messages_total', { direction: 'received' })
    const entry = await author.publishPost({ text: 'from A to C' })
    await waitFor('the reader to get the entry', () => got.includes(entry.cid.toString()), 15_000)
    await author.waitUntilHeld([entry.cid], { state: 'stored', timeoutMs: 15_000 })
    assert.ok(await counter(c, 'pharos_gossip_bridge_messages_total', { direction: 'received' }) > bridgedBefore, 'C got it over the fleet bridge')
    const { rows } = await a.db.query<{ n: number }>('SELECT count(*)::int AS n FROM log_entries WHERE cid = $1', [entry.cid.bytes])
    assert.equal(rows[0]?.n, 1)
    const accepted = await counter(a, 'pharos_log_entries_total', { result: 'accepted' }) + await counter(c, 'pharos_log_entries_total', { result: 'accepted' })
    const duplicates = await counter(a, 'pharos_log_entries_total', { reason: 'duplicate' }) + await counter(c, 'pharos_log_entries_total', { reason: 'duplicate' })
    assert.equal(accepted, 1, 'verified and stored by one worker')
    assert.equal(duplicates, 0, 'the other never verified it')
  })

  it('makes a ban on A take effect on C at once (before C reloads bans from Postgres)', async () => {
    const victim = (await generateKey())
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
    const peer = peerIdFromPrivateKey(victim).toString()
    await a.bans.ban({ peer, reason: 'admin', detail: 'cluster test', bannedBy: 'test' })
    await waitFor('C to learn the ban', () => c.bans.isBanned(peer), 5000)
  })
})
