/**
 * Fleet state on real Redis (DESIGN.md §6, docs/fleet.md): the seen set, membership, peer
 * views, ban sync and gossip bridge, run once against a single Redis and once against a
 * 3-node Redis Cluster (so a command touching two slots would fail), then a Redis outage
 * and return on a server this file stops and starts itself. Every fleet gets its own key
 * prefix, so test files sharing the Redis never meet.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Registry } from 'prom-client'
import { fleetKeys, seenShardOf } from '../../src/fleet/keys.ts'
import { startFleetState } from '../../src/fleet/fleet-state.ts'
import type { FleetStateOptions, RedisFleetState } from '../../src/fleet/fleet-state.ts'
import { encodeBridgeFrame, MAX_BRIDGE_FRAME_BYTES } from '../../src/fleet/gossip-bridge.ts'
import type { BridgeMessage } from '../../src/fleet/gossip-bridge.ts'
import { startInProcessFleetState } from '../../src/fleet/in-process-fleet-state.ts'
import type { RedisClient, RedisMode } from '../../src/fleet/redis-connection.ts'
import { RedisSeenSet } from '../../src/fleet/seen-set.ts'
import type { BanReason } from '../../src/bans/ban-list.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { createFleetMetrics } from '../../src/fleet/fleet-metrics.ts'
import { testRedisUrl } from '@pharos/testing/databases.ts'
import { startRedisCluster, startRedisServer } from '@pharos/testing/redis-servers.ts'
import type { RedisClusterServers, RedisServer } from '@pharos/testing/redis-servers.ts'
import { sleep, waitFor } from '@pharos/testing/wait.ts'

const HEARTBEAT_MS = 200

const silent = createLogger('silent')

/** Timings, limits and logger every fleet state in this file runs with. */
const TIMINGS = {
  heartbeatMs: HEARTBEAT_MS,
  seenTtlMs: 60_000,
  seenClaimTtlMs: 30_000,
  peerViewRetentionMs: 60_000,
  relaySlots: { slotsPerAccount: 2, reservationTtlMs: 60_000 },
  log: silent
} satisfies Partial<FleetStateOptions>

/** The options every outage test starts its one fleet state with; `extra` overrides. */
function outageTestOptions (url: string, workerName: string, workerId: string, extra: Partial<FleetStateOptions> = {}): FleetStateOptions {
  return {
    redis: { url, mode: 'single' },
    prefix: `test-${randomBytes(4).toString('hex')}:`,
    workerId,
    workerName,
    ...TIMINGS,
    record: () => ({ multiaddrs: [], httpUrl: null, connections: 0, ready: true }),
    ...extra
  }
}

async function newPeerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

/** One sample of a metric from a worker's registry (0 if the series does not exist). */
async function metricValue (registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name)
  assert.ok(metric !== undefined, `metric ${name} is registered`)
  const { values } = await metric.get()
  const sample = values.find((value) => Object.entries(labels).every(([key, label]) => value.labels[key] === label))
  return sample?.value ?? 0
}

/** Counts `pipeline()` calls on a real client (a spy: the calls still go to Redis). */
function spyPipelines (client: RedisClient): { calls: () => number, restore: () => void } {
  const target = client as unknown as { pipeline: (...args: unknown[]) => unknown }
  const original = target.pipeline
  let calls = 0
  target.pipeline = function (this: unknown, ...args: unknown[]) {
    calls++
    return original.apply(this, args)
  }
  return { calls: () => calls, restore: () => { delete (target as { pipeline?: unknown }).pipeline } }
}

interface TestWorker {
  state: RedisFleetState
  registry: Registry
  id: string
  name: string
}

/** A fleet of workers on one Redis and one fresh prefix; `stopAll` in `after`. */
function testFleet (redis: () => { url: string, mode: RedisMode }) {
  const prefix = `test-${randomBytes(4).toString('hex')}:`
  const workers: TestWorker[] = []
  let count = 0
  return {
    prefix,
    keys: fleetKeys(prefix),
    async start (overrides: Partial<FleetStateOptions> = {}): Promise<TestWorker> {
      const id = await newPeerId()
      const name = `worker-${++count}`
      const registry = new Registry()
      const state = await startFleetState({
        redis: redis(),
        prefix,
        workerId: id,
        workerName: name,
        ...TIMINGS,
        metrics: createFleetMetrics(registry),
        record: () => ({ multiaddrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${id}`], httpUrl: `http://${name}:8080`, connections: 7, ready: true }),
        connectWaitMs: 10_000,
        ...overrides
      })
      assert.equal(state.redis.isUp(), true, `${name} connected to Redis`)
      const worker = { state, registry, id, name }
      workers.push(worker)
      return worker
    },
    async stopAll (): Promise<void> {
      await Promise.all(workers.map(async (worker) => { await worker.state.stop() }))
    },
    /** Redis errors a worker counted, connection errors aside (CROSSSLOT would land here). */
    async commandErrors (worker: TestWorker): Promise<number> {
      let total = 0
      for (const operation of ['seen', 'membership', 'peer-views', 'bans', 'bridge', 'relay-slots']) total += await metricValue(worker.registry, 'pharos_redis_errors_total', { operation })
      return total
    }
  }
}

const topologies: Array<{ name: string, setup: () => Promise<{ url: string, mode: RedisMode, stop: () => Promise<void> }> }> = [
  { name: 'a single Redis', setup: async () => ({ url: testRedisUrl(), mode: 'single', stop: async () => {} }) },
  {
    name: 'a 3-node Redis Cluster',
    setup: async () => {
      const cluster: RedisClusterServers = await startRedisCluster(3)
      return { url: cluster.url, mode: 'cluster', stop: cluster.stop }
    }
  }
]

for (const topology of topologies) {
  describe(`fleet state on ${topology.name}`, () => {
    let redis: { url: string, mode: RedisMode, stop: () => Promise<void> } | undefined
    const fleets: Array<ReturnType<typeof testFleet>> = []
    const fleet = (): ReturnType<typeof testFleet> => {
      const created = testFleet(() => {
        assert.ok(redis !== undefined)
        return { url: redis.url, mode: redis.mode }
      })
      fleets.push(created)
      return created
    }

    before(async () => {
      redis = await topology.setup()
    })

    after(async () => {
      await Promise.all(fleets.map(async (created) => { await created.stopAll() }))
      await redis?.stop()
    })

    it('seen set: two workers claiming the same 500 IDs at once claim each exactly once, in few pipelines', async () => {
      const f = fleet()
      // Heartbeats (membership, peer view flushes) a minute apart: the only pipelines the
      // spy can see during the test are the seen set's.
      const [a, b] = [await f.start({ heartbeatMs: 60_000 }), await f.start({ heartbeatMs: 60_000 })]
      await Promise.all([a.state.peerViews.flush(), a.state.membership.beat()])
      const ids = Array.from({ length: 500 }, (_, i) => `${f.prefix}message-${i}`)
      const spy = spyPipelines(a.state.redis.client)
      const statsBefore = { ...a.state.seen.stats }
      const [byA, byB] = await Promise.all([
        Promise.all(ids.map(async (id) => await a.state.seen.claim(id))),
        Promise.all(ids.map(async (id) => await b.state.seen.claim(id)))
      ])
      spy.restore()
      ids.forEach((id, i) => {
        const claims = [byA[i], byB[i]].filter((result) => result === 'claimed').length
        assert.equal(claims, 1, `${id} claimed exactly once (A: ${byA[i]}, B: ${byB[i]})`)
      })
      const claimed = await metricValue(a.registry, 'pharos_seen_claims_total', { result: 'claimed' }) + await metricValue(b.registry, 'pharos_seen_claims_total', { result: 'claimed' })
      assert.equal(claimed, 500)
      assert.equal(await metricValue(a.registry, 'pharos_seen_claims_total', { result: 'local' }), 0)
      // 500 claims in batches of at most 256, one pipeline per shard of 16 in each: at most
      // 2 × 16 round trips instead of 500.
      const pipelines = spy.calls()
      assert.ok(pipelines >= 2 && pipelines <= 32, `500 claims went out in ${pipelines} pipelines`)
      assert.equal(a.state.seen.stats.pipelines - statsBefore.pipelines, pipelines)
      assert.equal(a.state.seen.stats.commands - statsBefore.commands, 500)
      console.log(`# seen set (${topology.name}): 500 concurrent claims per worker in ${pipelines} pipelines`)

      // A worker asked again about its own IDs answers from memory, without Redis.
      const again = spyPipelines(a.state.redis.client)
      const ownId = ids[byA.indexOf('claimed')] as string
      assert.equal(await a.state.seen.claim(ownId), 'seen')
      await sleep(20)
      assert.equal(again.calls(), 0)
      again.restore()

      // Completed IDs read as done from the other worker; claimed ones as claimed.
      const doneByA = ids.filter((_, i) => byA[i] === 'claimed').slice(0, 10)
      await Promise.all(doneByA.map(async (id) => { await a.state.seen.complete(id) }))
      const fresh = `${f.prefix}never-seen`
      const heldByB = ids.filter((_, i) => byB[i] === 'claimed').slice(0, 10)
      const states = await b.state.seen.states([...doneByA, ...heldByB, fresh])
      for (const id of doneByA) assert.equal(states.get(id), 'done')
      for (const id of heldByB) assert.equal(states.get(id), 'claimed')
      assert.equal(states.get(fresh), 'absent')
      assert.equal(await f.commandErrors(a) + await f.commandErrors(b), 0, 'no Redis command failed (no CROSSSLOT)')
    })

    it('seen set: claimMany claims a batch at once, one pipeline per shard, each ID once across workers', async () => {
      const f = fleet()
      const [a, b] = [await f.start({ heartbeatMs: 60_000 }), await f.start({ heartbeatMs: 60_000 })]
      await Promise.all([a.state.peerViews.flush(), a.state.membership.beat()])
      const ids = Array.from({ length: 100 }, (_, i) => `${f.prefix}batch-${i}`)
      const spy = spyPipelines(a.state.redis.client)
      const statsBefore = { ...a.state.seen.stats }
      const first = await a.state.seen.claimMany([...ids, ids[0] as string])
      spy.restore()
      assert.deepEqual(first, [...ids.map(() => 'claimed'), 'seen'], 'every ID claimed, the repeated one once')
      // 100 IDs over 16 shards: one pipeline per shard touched, sent at once, none after.
      assert.ok(spy.calls() <= 16, `100 claims went out in ${spy.calls()} pipelines`)
      assert.equal(a.state.seen.stats.commands - statsBefore.commands, 100)
      const [second, third] = await Promise.all([b.state.seen.claimMany(ids), a.state.seen.claimMany(ids)])
      assert.deepEqual(second, ids.map(() => 'seen'), 'another worker finds them claimed')
      assert.deepEqual(third, ids.map(() => 'seen'), 'the claimer finds them its own')
      // Two workers claiming the same fresh batch at once: each ID goes to exactly one.
      const fresh = ids.map((id) => `${id}-fresh`)
      const [byA, byB] = await Promise.all([a.state.seen.claimMany(fresh), b.state.seen.claimMany(fresh)])
      fresh.forEach((id, i) => { assert.equal([byA[i], byB[i]].filter((result) => result === 'claimed').length, 1, `${id} claimed exactly once`) })
      assert.equal(await f.commandErrors(a) + await f.commandErrors(b), 0, 'no Redis command failed (no CROSSSLOT)')
    })

    it('seen set: an expired claim or seen mark makes the ID claimable again', async () => {
      const f = fleet()
      const a = await f.start()
      const shortLived = (workerId: string): RedisSeenSet => new RedisSeenSet({ redis: a.state.redis, keys: f.keys, workerId, seenTtlMs: 400, claimTtlMs: 300 })
      const x = shortLived('worker-x')
      const y = shortLived('worker-y')
      const claimedId = `${f.prefix}claimed-then-abandoned`
      const doneId = `${f.prefix}done-then-forgotten`
      assert.equal(await x.claim(claimedId), 'claimed')
      assert.equal(await y.claim(claimedId), 'seen')
      assert.equal(await x.claim(doneId), 'claimed')
      await x.complete(doneId)
      assert.equal((await y.states([doneId])).get(doneId), 'done')
      assert.equal(await y.claim(doneId), 'seen')
      await sleep(550)
      assert.deepEqual(await y.states([claimedId, doneId]), new Map([[claimedId, 'absent'], [doneId, 'absent']]))
      assert.equal(await y.claim(claimedId), 'claimed', 'a claim its worker never completed lapses')
      assert.equal(await y.claim(doneId), 'claimed', 'a handled ID is forgotten after the seen TTL')
    })

    it('relay slots: an account holds at most its slots over the fleet; its own worker renews in place; release and expiry free a slot', async () => {
      const f = fleet()
      const [a, b, c] = [await f.start(), await f.start(), await f.start()]
      const account = await newPeerId()
      const key = f.keys.relaySlots(account)
      const now = Date.now()
      assert.equal(await a.state.relaySlots.reserve(account, now), 'granted')
      // A peer that reconnects and reserves again at the same worker keeps its one slot.
      for (let i = 1; i <= 20; i++) assert.equal(await a.state.relaySlots.reserve(account, now + i), 'renewed', `re-reservation ${i}`)
      assert.equal(await a.state.redis.client.zcard(key), 1, 'twenty re-reservations hold one slot')
      assert.equal(await b.state.relaySlots.reserve(account, now), 'granted', 'a second worker takes the second slot')
      assert.equal(await c.state.relaySlots.reserve(account, now), 'full', 'no third slot with PHAROS_RELAY_SLOTS_PER_ACCOUNT=2')
      assert.deepEqual((await a.state.redis.client.zrange(key, '0', '-1')).sort(), [a.id, b.id].sort())
      const ttl = await a.state.redis.client.pttl(key)
      assert.ok(ttl > 0 && ttl <= 60_000, `the slot set expires with the reservation (PTTL ${ttl})`)

      await a.state.relaySlots.release([account])
      assert.equal(a.state.relaySlots.held().has(account), false)
      assert.equal(await c.state.relaySlots.reserve(account, now), 'granted', 'a released slot is free again')
      // Past the reservation TTL, every slot taken at `now` has lapsed.
      assert.equal(await a.state.relaySlots.reserve(account, now + 60_001), 'granted', 'expired slots are free again')
      assert.deepEqual(await a.state.redis.client.zrange(key, '0', '-1'), [a.id])

      assert.equal(await metricValue(a.registry, 'pharos_relay_slots_total', { result: 'granted' }), 2)
      assert.equal(await metricValue(a.registry, 'pharos_relay_slots_total', { result: 'renewed' }), 20)
      assert.equal(await metricValue(c.registry, 'pharos_relay_slots_total', { result: 'full' }), 1)
      assert.equal(await metricValue(a.registry, 'pharos_relay_slots_total', { result: 'local' }), 0)
      assert.equal(await f.commandErrors(a) + await f.commandErrors(b) + await f.commandErrors(c), 0, 'no Redis command failed (no CROSSSLOT)')

      // A worker that stops gives its slots back.
      await c.state.stop()
      assert.deepEqual(await a.state.redis.client.zrange(key, '0', '-1'), [a.id])
    })

    it('membership: workers see each other, a silent one drops out after three beats, leave removes at once', async () => {
      const f = fleet()
      const [a, b, c] = [await f.start(), await f.start(), await f.start()]
      await waitFor('A lists A, B and C', async () => (await a.state.membership.list()).length === 3)
      const listed = await b.state.membership.list()
      assert.deepEqual(listed.map((worker) => worker.peerId), [a.id, b.id, c.id].sort())
      const recordOfA = listed.find((worker) => worker.peerId === a.id)
      assert.ok(recordOfA !== undefined)
      assert.equal(recordOfA.name, a.name)
      assert.deepEqual(recordOfA.multiaddrs, [`/ip4/127.0.0.1/tcp/4001/p2p/${a.id}`])
      assert.equal(recordOfA.httpUrl, `http://${a.name}:8080`)
      assert.equal(recordOfA.connections, 7)
      assert.equal(recordOfA.ready, true)
      assert.equal(recordOfA.stale, false)
      assert.ok(recordOfA.heartbeatAt >= recordOfA.startedAt)
      await waitFor('the workers gauge reads 3', async () => await metricValue(a.registry, 'pharos_fleet_workers') === 3)

      // B stops beating (a crash, as the fleet sees it): gone three intervals after its last
      // beat. Counted from the last beat's own heartbeatAt (the latest A listed: a beat in
      // flight at stop() may still land), not from stop(): beats run late on a busy machine
      // (the next is due an interval after the last one finished, plus event-loop lag), so
      // the last may be more than an interval before stop().
      const listedB = (await a.state.membership.list()).find((worker) => worker.peerId === b.id)
      assert.ok(listedB !== undefined, 'B listed while it beats')
      let lastBeatAt = listedB.heartbeatAt
      b.state.membership.stop()
      await waitFor('B drops out of A\'s list', async () => {
        const stillListed = (await a.state.membership.list()).find((worker) => worker.peerId === b.id)
        if (stillListed !== undefined) lastBeatAt = Math.max(lastBeatAt, stillListed.heartbeatAt)
        return stillListed === undefined
      }, 3 * HEARTBEAT_MS + 2000)
      const gone = Date.now() - lastBeatAt
      assert.ok(gone >= 3 * HEARTBEAT_MS, `B dropped out ${gone} ms after its last beat, before three beats`)

      // C leaves: gone at once.
      await c.state.membership.leave()
      assert.deepEqual((await a.state.membership.list()).map((worker) => worker.peerId), [a.id])
      assert.equal(await f.commandErrors(a), 0)
    })

    it('peer views: connects, disconnects with last-seen, a fleet view across workers, paging and seed candidates', async () => {
      const f = fleet()
      const [a, b] = [await f.start(), await f.start()]
      const [p1, p2, p3, p4] = [await newPeerId(), await newPeerId(), await newPeerId(), await newPeerId()]
      a.state.peerViews.connected(p1, { addrs: ['/ip4/10.0.0.1/tcp/4001'], transport: 'tcp' })
      a.state.peerViews.connected(p2, { addrs: ['/ip4/10.0.0.2/tcp/4001/ws'], transport: 'websockets' })
      const beforeDisconnect = Date.now()
      a.state.peerViews.disconnected(p2)
      b.state.peerViews.connected(p3, { addrs: ['/ip4/10.0.0.3/tcp/4001'], transport: 'tcp' })
      b.state.peerViews.connected(p4, { addrs: [], transport: 'tcp' })
      assert.equal(await a.state.peerViews.flush(), true)
      assert.equal(await b.state.peerViews.flush(), true)
      await waitFor('A lists both workers', async () => (await a.state.membership.list()).length === 2)
      assert.equal(await metricValue(a.registry, 'pharos_fleet_peers'), 1)
      assert.equal(await metricValue(b.registry, 'pharos_fleet_peers'), 2)

      const view = await b.state.peerViews.fleetView({ limit: 100 })
      assert.equal(view.stale, false)
      assert.equal(view.cursor, undefined)
      const byPeer = new Map(view.peers.map((peer) => [peer.peerId, peer]))
      assert.equal(byPeer.size, 4)
      assert.deepEqual(byPeer.get(p1), { peerId: p1, worker: a.name, workerPeerId: a.id, addrs: ['/ip4/10.0.0.1/tcp/4001'], transport: 'tcp', connected: true, lastSeen: byPeer.get(p1)?.lastSeen })
      const disconnected = byPeer.get(p2)
      assert.equal(disconnected?.connected, false)
      assert.equal(disconnected?.transport, 'websockets')
      assert.deepEqual(disconnected?.addrs, ['/ip4/10.0.0.2/tcp/4001/ws'])
      assert.ok((disconnected?.lastSeen ?? 0) >= beforeDisconnect)
      assert.equal(byPeer.get(p3)?.workerPeerId, b.id)
      assert.equal(byPeer.get(p3)?.worker, b.name)

      // One peer per page: every peer exactly once.
      const paged: string[] = []
      let cursor: string | undefined
      do {
        const page = await a.state.peerViews.fleetView({ limit: 1, cursor })
        assert.ok(page.peers.length <= 1)
        paged.push(...page.peers.map((peer) => peer.peerId))
        cursor = page.cursor
      } while (cursor !== undefined)
      assert.deepEqual(paged.sort(), [p1, p2, p3, p4].sort())

      // Seeds come from other workers only, connected and with addresses.
      assert.deepEqual((await a.state.peerViews.seedCandidates(10)).map((seed) => seed.peerId), [p3])
      assert.deepEqual(await b.state.peerViews.seedCandidates(10), [{ peerId: p1, addrs: ['/ip4/10.0.0.1/tcp/4001'], workerPeerId: a.id }])
      await assert.rejects(a.state.peerViews.fleetView({ limit: 10, cursor: 'not-a-cursor' }), { name: 'InvalidFleetCursorError' })
      assert.equal(await f.commandErrors(a) + await f.commandErrors(b), 0)
    })

    it('peer views: a disconnected peer is dropped once the retention has passed', async () => {
      const f = fleet()
      const a = await f.start({ peerViewRetentionMs: 300 })
      const [kept, dropped] = [await newPeerId(), await newPeerId()]
      a.state.peerViews.connected(kept, { addrs: ['/ip4/10.0.0.9/tcp/1'], transport: 'tcp' })
      a.state.peerViews.connected(dropped, { addrs: ['/ip4/10.0.0.10/tcp/1'], transport: 'tcp' })
      a.state.peerViews.disconnected(dropped)
      await a.state.peerViews.flush()
      const raw = a.state.redis.client
      assert.deepEqual((await raw.hkeys(f.keys.peerView(a.id))).sort(), [kept, dropped].sort())
      await sleep(400)
      await a.state.peerViews.flush()
      assert.deepEqual(await raw.hkeys(f.keys.peerView(a.id)), [kept])
      const ttl = await raw.pttl(f.keys.peerView(a.id))
      assert.ok(ttl > 0 && ttl <= 3 * HEARTBEAT_MS, `the view expires with its worker (TTL ${ttl} ms)`)
    })

    it('peer views: a view that expired in Redis (its worker stalled) is written whole again at the next flush', async () => {
      const f = fleet()
      const a = await f.start()
      const peers = [await newPeerId(), await newPeerId()]
      for (const peer of peers) a.state.peerViews.connected(peer, { addrs: ['/ip4/10.0.0.11/tcp/1'], transport: 'tcp' })
      await a.state.peerViews.flush()
      const raw = a.state.redis.client
      await raw.del(f.keys.peerView(a.id))
      assert.equal(await a.state.peerViews.flush(), true)
      assert.deepEqual((await raw.hkeys(f.keys.peerView(a.id))).sort(), [...peers].sort())
    })

    it('peer views: 10,000 peers flush and read back whole', async () => {
      const f = fleet()
      const [a, b] = [await f.start(), await f.start()]
      const peers = Array.from({ length: 10_000 }, (_, i) => `peer-${i.toString().padStart(5, '0')}`)
      for (const [i, peer] of peers.entries()) a.state.peerViews.connected(peer, { addrs: [`/ip4/10.1.${i >> 8}.${i & 255}/tcp/4001`], transport: 'tcp' })
      const flushStart = performance.now()
      assert.equal(await a.state.peerViews.flush(), true)
      const flushMs = performance.now() - flushStart
      await waitFor('B lists A', async () => (await b.state.membership.list()).some((worker) => worker.peerId === a.id))
      const readStart = performance.now()
      const seen = new Map<string, string>()
      let cursor: string | undefined
      let pages = 0
      do {
        const page = await b.state.peerViews.fleetView({ limit: 1000, cursor })
        assert.ok(page.peers.length <= 1000)
        for (const peer of page.peers) if (peer.workerPeerId === a.id) seen.set(peer.peerId, peer.addrs[0] ?? '')
        cursor = page.cursor
        pages++
      } while (cursor !== undefined)
      const readMs = performance.now() - readStart
      assert.equal(seen.size, 10_000)
      assert.equal(seen.get('peer-04242'), `/ip4/10.1.${4242 >> 8}.${4242 & 255}/tcp/4001`)
      const seeds = await b.state.peerViews.seedCandidates(50)
      assert.equal(seeds.length, 50)
      assert.ok(seeds.every((seed) => seed.workerPeerId === a.id && seed.addrs.length === 1))
      console.log(`# peer views (${topology.name}): 10,000 peers flushed in ${flushMs.toFixed(0)} ms, read back in ${pages} pages in ${readMs.toFixed(0)} ms`)
      assert.equal(await f.commandErrors(a) + await f.commandErrors(b), 0)
    })

    it('ban sync: a ban reaches the other worker, a later worker resyncs it, malformed entries are dropped and counted', async () => {
      const f = fleet()
      const [a, b] = [await f.start(), await f.start()]
      const heard = { a: [] as Array<[string, BanReason]>, b: [] as Array<[string, BanReason]>, bUnbans: [] as string[] }
      a.state.bans.onRemoteBan((peer, reason) => { heard.a.push([peer, reason]) })
      b.state.bans.onRemoteBan((peer, reason) => { heard.b.push([peer, reason]) })
      b.state.bans.onRemoteUnban((peer) => { heard.bUnbans.push(peer) })
      await Promise.all([a.state.bans.resync(), b.state.bans.resync()])

      // B must be subscribed before A's ban can reach it: announce a probe until B hears it.
      const probe = await newPeerId()
      await waitFor('B hears a probe ban', async () => {
        await a.state.bans.announce(probe, 'admin')
        return heard.b.some(([peer]) => peer === probe)
      })
      await a.state.bans.unannounce(probe)
      await waitFor('B hears the probe unban', () => heard.bUnbans.includes(probe))
      heard.a.length = 0
      heard.b.length = 0

      const banned = await newPeerId()
      assert.equal(await a.state.bans.announce(banned, 'bad-signature'), true)
      await waitFor('B hears the ban', () => heard.b.some(([peer]) => peer === banned))
      assert.deepEqual(heard.b, [[banned, 'bad-signature']])
      await sleep(100)
      assert.deepEqual(heard.a, [], 'A is not told of its own ban')
      assert.equal(await a.state.bans.announce('not-a-peer-id', 'admin'), false, 'a peer ID other workers would drop is refused')

      // Garbage in the hash and on the channel: dropped and counted, never thrown.
      const raw = a.state.redis.client
      await raw.hset(f.keys.bans(), 'not-a-peer-id', JSON.stringify({ reason: 'admin', by: a.id, at: Date.now() }))
      await raw.hset(f.keys.bans(), await newPeerId(), '{not json')
      await raw.hset(f.keys.bans(), await newPeerId(), JSON.stringify({ reason: 'made-up', by: a.id, at: Date.now() }))
      await raw.publish(f.keys.banEvents(), 'garbage')
      await raw.publish(f.keys.banEvents(), JSON.stringify({ op: 'ban', peer: await newPeerId(), reason: 'admin' }))
      await waitFor('B counts two malformed events', async () => await metricValue(b.registry, 'pharos_fleet_malformed_total', { source: 'ban-events' }) === 2)

      // A worker started later learns every ban standing.
      const c = await f.start()
      const heardByC: Array<[string, BanReason]> = []
      c.state.bans.onRemoteBan((peer, reason) => { heardByC.push([peer, reason]) })
      await waitFor('C resyncs the standing ban', () => heardByC.some(([peer]) => peer === banned))
      assert.deepEqual(heardByC, [[banned, 'bad-signature']], 'only the one valid ban (the probe was lifted)')
      assert.equal(await metricValue(c.registry, 'pharos_fleet_malformed_total', { source: 'bans' }), 3)

      // Lifted by A: B is told.
      await a.state.bans.unannounce(banned)
      await waitFor('B hears the unban', () => heard.bUnbans.includes(banned))
      assert.equal(await raw.hexists(f.keys.bans(), banned), 0)
      assert.equal(await f.commandErrors(a) + await f.commandErrors(b) + await f.commandErrors(c), 0)
    })

    it('gossip bridge: a frame from A reaches B byte for byte and not A; malformed frames are dropped and counted', async () => {
      const f = fleet()
      const [a, b] = [await f.start(), await f.start()]
      const atA: BridgeMessage[] = []
      const atB: BridgeMessage[] = []
      a.state.bridge.onMessage((message) => { atA.push(message) })
      b.state.bridge.onMessage((message) => { atB.push(message) })
      await waitFor('B hears a probe frame', async () => {
        await a.state.bridge.publish('probe', 'probe', new Uint8Array([1]))
        return atB.length > 0
      })
      await sleep(50)
      atB.length = 0
      const receivedBefore = await metricValue(b.registry, 'pharos_gossip_bridge_messages_total', { direction: 'received' })

      const payload = new Uint8Array(randomBytes(64 * 1024))
      const messageId = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
      assert.equal(await a.state.bridge.publish('content', messageId, payload), true)
      await waitFor('B receives the frame', () => atB.length === 1)
      const received = atB[0]
      assert.ok(received !== undefined)
      assert.equal(received.topic, 'content')
      assert.equal(received.messageId, messageId)
      assert.equal(received.origin, a.id)
      assert.deepEqual(received.payload, payload)
      assert.equal(await metricValue(b.registry, 'pharos_gossip_bridge_messages_total', { direction: 'received' }), receivedBefore + 1)
      assert.ok(await metricValue(a.registry, 'pharos_gossip_bridge_messages_total', { direction: 'published' }) >= 2)
      await sleep(100)
      assert.deepEqual(atA, [], 'A does not hear its own frames')

      // Malformed: garbage, a truncated frame, an unknown version, a frame over the bound.
      const raw = a.state.redis.client
      const good = encodeBridgeFrame({ topic: 'content', messageId: 'x', payload: new Uint8Array([1, 2, 3]), origin: a.id })
      const badVersion = Buffer.from(good)
      badVersion[0] = 9
      await raw.publish(f.keys.bridge(), Buffer.from('garbage'))
      await raw.publish(f.keys.bridge(), good.subarray(0, 10))
      await raw.publish(f.keys.bridge(), badVersion)
      await raw.publish(f.keys.bridge(), Buffer.concat([good, Buffer.alloc(MAX_BRIDGE_FRAME_BYTES)]))
      await waitFor('B drops four frames', async () => await metricValue(b.registry, 'pharos_gossip_bridge_messages_total', { direction: 'dropped' }) === 4)
      assert.equal(atB.length, 1, 'nothing malformed was delivered')
      assert.equal(await a.state.bridge.publish('content', 'big', new Uint8Array(MAX_BRIDGE_FRAME_BYTES)), false, 'an oversized message is not sent')
      assert.equal(await f.commandErrors(a) + await f.commandErrors(b), 0)
    })
  })
}

describe('fleet state through a Redis outage', () => {
  let server: RedisServer
  const states: RedisFleetState[] = []

  before(async () => {
    server = await startRedisServer()
  })

  after(async () => {
    await Promise.all(states.map(async (state) => { await state.stop() }))
    await server.destroy()
  })

  it('degrades to local state at once while Redis is down, and re-announces and resyncs when it returns', async () => {
    const prefix = `test-${randomBytes(4).toString('hex')}:`
    const keys = fleetKeys(prefix)
    const id = await newPeerId()
    const registry = new Registry()
    const state = await startFleetState(outageTestOptions(server.url, 'survivor', id, { prefix, metrics: createFleetMetrics(registry) }))
    states.push(state)
    assert.equal(state.redis.isUp(), true)
    assert.equal(await metricValue(registry, 'pharos_redis_up'), 1)
    const transitions: boolean[] = []
    state.redis.onStateChange((up) => { transitions.push(up) })
    const [before, during] = [await newPeerId(), await newPeerId()]
    state.peerViews.connected(before, { addrs: ['/ip4/10.0.0.1/tcp/1'], transport: 'tcp' })
    assert.equal(await state.peerViews.flush(), true)

    await server.stop()
    await waitFor('the worker sees Redis down', () => !state.redis.isUp(), 5000)
    assert.deepEqual(transitions, [false])
    assert.equal(await metricValue(registry, 'pharos_redis_up'), 0)

    const started = performance.now()
    assert.equal(await state.seen.claim(`${prefix}during-outage`), 'claimed')
    assert.equal(await state.seen.claim(`${prefix}during-outage`), 'seen', 'remembered locally: not handled twice by this worker')
    const answered = await state.seen.states([`${prefix}other`])
    const elapsed = performance.now() - started
    assert.ok(elapsed < 1500, `answered in ${elapsed.toFixed(1)} ms while Redis was down`)
    assert.equal(answered.get(`${prefix}other`), 'absent')
    assert.equal(await metricValue(registry, 'pharos_seen_claims_total', { result: 'local' }), 1)
    const listed = await state.membership.list()
    assert.deepEqual(listed.map((worker) => [worker.peerId, worker.stale]), [[id, true]], 'the last list known, flagged stale')
    const localView = await state.peerViews.fleetView({ limit: 10 })
    assert.equal(localView.stale, true)
    assert.deepEqual(localView.peers.map((peer) => peer.peerId), [before])
    state.peerViews.connected(during, { addrs: ['/ip4/10.0.0.2/tcp/1'], transport: 'tcp' })
    assert.equal(await state.bridge.publish('content', 'm', new Uint8Array([1])), false)
    assert.equal(await state.bans.announce(id, 'admin'), false)
    console.log(`# outage: claim + states answered in ${elapsed.toFixed(1)} ms while Redis was down`)

    // Down long enough for reconnect attempts to fail and back off to their cap.
    await sleep(2500)
    assert.equal(state.redis.isUp(), false)

    // The server returns empty (it persists nothing): the worker must put its state back.
    await server.start()
    const restarted = performance.now()
    await waitFor('the worker sees Redis up again', () => state.redis.isUp(), 10_000)
    const reconnectMs = performance.now() - restarted
    assert.ok(reconnectMs < 2500, `reconnected ${reconnectMs.toFixed(0)} ms after Redis returned (backoff capped at 2 s)`)
    assert.deepEqual(transitions, [false, true])
    const raw = state.redis.client
    await waitFor('membership re-announced', async () => await raw.exists(keys.worker(id)) === 1 && await raw.zscore(keys.workers(), id) !== null, 5000)
    await waitFor('peer view resynced', async () => (await raw.hkeys(keys.peerView(id))).sort().join() === [before, during].sort().join(), 5000)
    assert.deepEqual((await state.membership.list()).map((worker) => [worker.peerId, worker.stale]), [[id, false]])
    assert.equal(await state.seen.claim(`${prefix}after-outage`), 'claimed')
    assert.ok(await metricValue(registry, 'pharos_redis_errors_total', { operation: 'connection' }) >= 1)
    console.log(`# outage: reconnected ${reconnectMs.toFixed(0)} ms after Redis returned`)
  })

  it('a Redis that hangs (no reply, connection open) costs one command timeout (and the lost claim\'s patience), then the worker degrades at once', async () => {
    const prefix = `test-${randomBytes(4).toString('hex')}:`
    const registry = new Registry()
    const state = await startFleetState(outageTestOptions(server.url, 'partitioned', await newPeerId(), { prefix, metrics: createFleetMetrics(registry) }))
    states.push(state)
    assert.equal(state.redis.isUp(), true)
    server.pause()
    try {
      const started = performance.now()
      assert.equal(await state.seen.claim(`${prefix}first`), 'claimed')
      const first = performance.now() - started
      // Sent and unanswered: asked again for up to 2 s (the seen set's lostClaimPatienceMs),
      // in case the connection comes back, before it is handled locally.
      assert.ok(first < 3500, `the first claim gave up after ${first.toFixed(0)} ms`)
      assert.equal(state.redis.isUp(), false, 'a timed-out connection counts as down at once')
      const next = performance.now()
      assert.equal(await state.seen.claim(`${prefix}second`), 'claimed')
      const second = performance.now() - next
      assert.ok(second < 50, `the next claim answered locally in ${second.toFixed(1)} ms`)
      assert.equal(await metricValue(registry, 'pharos_seen_claims_total', { result: 'local' }), 2)
      console.log(`# hung Redis: first claim answered after ${first.toFixed(0)} ms (command timeout + lost-claim patience), the next in ${second.toFixed(1)} ms`)
    } finally {
      server.resume()
    }
    await waitFor('reconnected once Redis answers again', () => state.redis.isUp(), 10_000)
    assert.equal(await state.seen.claim(`${prefix}third`), 'claimed')
    assert.equal(await metricValue(registry, 'pharos_seen_claims_total', { result: 'claimed' }), 1)
  })

  it('a claim whose reply is lost to a stall is asked again, not guessed: another worker\'s claim still reads as seen', async () => {
    const prefix = `test-${randomBytes(4).toString('hex')}:`
    const [holder, asker] = [
      await startFleetState(outageTestOptions(server.url, 'holder', await newPeerId(), { prefix })),
      await startFleetState(outageTestOptions(server.url, 'asker', await newPeerId(), { prefix, metrics: createFleetMetrics(new Registry()) }))
    ]
    states.push(holder, asker)
    assert.equal(await holder.seen.claim(`${prefix}contested`), 'claimed')
    // Redis freezes with the asker's claim on its way, for longer than the command timeout
    // (1 s), then answers again: the reply is lost, the claim's outcome unknown.
    server.pause()
    const resumed = sleep(1300).then(() => { server.resume() })
    try {
      assert.equal(await asker.seen.claim(`${prefix}contested`), 'seen', 'the holder has it: a lost reply is no licence to claim')
    } finally {
      await resumed
    }
  })

  it('a claim this worker already holds in Redis (an earlier attempt whose reply was lost) reads as its own', async () => {
    const prefix = `test-${randomBytes(4).toString('hex')}:`
    const id = await newPeerId()
    const state = await startFleetState(outageTestOptions(server.url, 'retrier', id, { prefix }))
    states.push(state)
    const messageId = `${prefix}landed-earlier`
    await state.redis.client.set(fleetKeys(prefix).seen(seenShardOf(messageId), messageId), id, 'PX', 30_000)
    assert.equal(await state.seen.claim(messageId), 'claimed')
    const other = `${prefix}someone-elses`
    await state.redis.client.set(fleetKeys(prefix).seen(seenShardOf(other), other), await newPeerId(), 'PX', 30_000)
    assert.equal(await state.seen.claim(other), 'seen')
  })

  it('starts degraded when Redis is down at boot, and connects when it comes up', async () => {
    const down = await startRedisServer()
    await down.stop()
    try {
      const prefix = `test-${randomBytes(4).toString('hex')}:`
      const id = await newPeerId()
      const started = performance.now()
      const state = await startFleetState(outageTestOptions(down.url, 'early', id, { prefix, connectWaitMs: 300 }))
      states.push(state)
      assert.ok(performance.now() - started < 2000, 'start did not wait for Redis')
      assert.equal(state.redis.isUp(), false)
      assert.equal(await state.seen.claim('early-message'), 'claimed')
      await down.start()
      await waitFor('connected once Redis is up', () => state.redis.isUp(), 10_000)
      await waitFor('announced', async () => await state.redis.client.exists(fleetKeys(prefix).worker(id)) === 1, 5000)
    } finally {
      await down.destroy()
    }
  })
})

describe('in-process fleet state (no Redis)', () => {
  it('answers through the same interfaces: a TTL seen set, a fleet of one, its own peer view', async () => {
    const registry = new Registry()
    const state = startInProcessFleetState({
      workerId: 'self',
      workerName: 'alone',
      seenTtlMs: 60_000,
      seenClaimTtlMs: 100,
      peerViewRetentionMs: 60_000,
      relaySlots: { slotsPerAccount: 2, reservationTtlMs: 60_000 },
      metrics: createFleetMetrics(registry),
      record: () => ({ multiaddrs: ['/ip4/127.0.0.1/tcp/1'], httpUrl: null, connections: 1, ready: true })
    })
    assert.equal(state.redis, undefined)
    assert.equal(await state.seen.claim('m1'), 'claimed')
    assert.equal(await state.seen.claim('m1'), 'seen')
    assert.equal(await state.seen.claim('m2'), 'claimed')
    assert.deepEqual(await state.seen.claimMany(['m2', 'm3', 'm3']), ['seen', 'claimed', 'seen'])
    await state.seen.complete('m1')
    await sleep(150)
    assert.deepEqual(await state.seen.states(['m1', 'm2', 'm3']), new Map([['m1', 'done'], ['m2', 'absent'], ['m3', 'absent']]))
    assert.equal(await state.seen.claim('m2'), 'claimed', 'an abandoned claim lapses')
    assert.deepEqual((await state.membership.list()).map((worker) => [worker.name, worker.stale]), [['alone', false]])
    state.peerViews.connected('p1', { addrs: ['/ip4/10.0.0.1/tcp/1'], transport: 'tcp' })
    state.peerViews.connected('p2', { addrs: [], transport: 'tcp' })
    const first = await state.peerViews.fleetView({ limit: 1 })
    assert.equal(first.peers[0]?.peerId, 'p1')
    assert.ok(first.cursor !== undefined)
    const second = await state.peerViews.fleetView({ limit: 1, cursor: first.cursor })
    assert.deepEqual(second.peers.map((peer) => peer.peerId), ['p2'])
    assert.equal(second.cursor, undefined)
    assert.deepEqual(await state.peerViews.seedCandidates(5), [])
    assert.equal(await state.bridge.publish('content', 'm1', new Uint8Array([1])), false)
    assert.equal(await metricValue(registry, 'pharos_fleet_peers'), 2)
    assert.equal(await metricValue(registry, 'pharos_fleet_workers'), 1)
    await state.stop()
  })
})
