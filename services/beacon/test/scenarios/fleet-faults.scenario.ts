/**
 * The fleet, end to end (issue 6): three worker processes on one Postgres and one Redis of
 * this test's own (so they can be stopped), 200 real SDK peers in two child processes, each
 * peer connected to one worker and listing the others as fallbacks. 500 entries are
 * published through random peers (so at random workers), acknowledged once a beacon
 * reports them stored; meanwhile one worker is killed with SIGKILL, Redis is stopped for
 * 10 s and Postgres for 10 s. Then every acknowledged entry must be stored once, pinned
 * once, and delivered to every peer.
 *
 * `npm test` runs it after the other tests, alone; `npm run test:fleet-scenario` runs it by
 * itself (7–13 minutes on 2 cores). FLEET_E2E_PEERS, FLEET_E2E_ENTRIES and
 * FLEET_E2E_FAULTS shrink it for a quick look.
 */
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type pg from 'pg'
import { adminGet, peersHeldBy, startFleetProcesses, tcpAddress } from '../helpers/fleet-processes.ts'
import { startPostgresServer } from '@pharos/testing/postgres-server.ts'
import type { PostgresServer } from '@pharos/testing/postgres-server.ts'
import { startRedisServer } from '@pharos/testing/redis-servers.ts'
import { sleep, waitFor, waitForValue } from '@pharos/testing/wait.ts'
import type { RedisServer } from '@pharos/testing/redis-servers.ts'
import { stopWorker, tempDir } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'
import type { PeerDeliveries, SwarmCommand, SwarmConfig, SwarmPeerSpec, SwarmReply } from '../helpers/swarm-protocol.ts'

const SWARM_CHILD = fileURLToPath(new URL('../helpers/swarm-child.ts', import.meta.url))
const ADMIN = 'fleet-e2e-admin-token-0123456789'
const PEERS = Number(process.env.FLEET_E2E_PEERS ?? 200)
/** Peers that publish; fewer when FLEET_E2E_PEERS shrinks the run below that. */
const PUBLISHERS = Math.min(24, PEERS)
const ENTRIES = Number(process.env.FLEET_E2E_ENTRIES ?? 500)
const SWARMS = 2
/** Publishes started per second (Plumtree stays a clean tree well below 20/s; see docs/overlay.md). */
const PUBLISH_RATE = 10
const OUTAGE_MS = 10_000
/** Which faults to inject (all by default); FLEET_E2E_FAULTS=redis,… runs a subset to isolate one. */
const FAULTS = new Set((process.env.FLEET_E2E_FAULTS ?? 'kill,redis,postgres').split(','))

interface Readyz { status: string, checks: Record<string, string> }
interface WorkersPage { stale: boolean, workers: Array<{ peerId: string }> }
interface FleetPeersPage { peers: Array<{ peerId: string, workerPeerId: string, connected: boolean }>, next?: string }

async function metric (worker: WorkerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${worker.httpUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  const line = text.split('\n').find((row) => row.startsWith(`${name} `) || row.startsWith(`${name}{`))
  if (line === undefined) throw new Error(`${name} not exported`)
  return Number(line.slice(line.lastIndexOf(' ') + 1))
}

/** One swarm child: its peers, and a promise per pending reply. */
class Swarm {
  readonly child: ChildProcess
  private readonly waiters = new Map<string, (reply: SwarmReply) => void>()
  readonly ready: Promise<void>

  constructor (config: SwarmConfig) {
    this.child = fork(SWARM_CHILD, [], { env: { ...process.env, SWARM_CONFIG: JSON.stringify(config) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    this.ready = new Promise((resolve) => { this.waiters.set('ready', () => { resolve() }) })
    this.child.on('message', (reply: SwarmReply) => {
      const key = 'id' in reply ? `${reply.type === 'publish-failed' ? 'published' : reply.type}:${reply.id}` : reply.type
      const waiter = this.waiters.get(key)
      this.waiters.delete(key)
      waiter?.(reply)
    })
  }

  async ask<T extends SwarmReply['type']> (command: SwarmCommand, answer: T, id?: number): Promise<SwarmReply> {
    const key = id === undefined ? answer : `${answer}:${id}`
    const reply = new Promise<SwarmReply>((resolve) => { this.waiters.set(key, resolve) })
    this.child.send(command)
    return await reply
  }

  async stop (): Promise<void> {
    if (this.child.exitCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.send({ type: 'stop' } satisfies SwarmCommand)
    await Promise.race([exited, sleep(20_000)])
    this.child.kill('SIGKILL')
  }
}

describe('a fleet of three workers under faults (real Postgres, Redis and 200 peers)', { timeout: 900_000 }, () => {
  let postgres: PostgresServer
  let redis: RedisServer
  let db: pg.Pool
  const workers: WorkerProcess[] = []
  const swarms: Swarm[] = []
  const peerIds: string[] = []
  const publisherIds: string[] = []
  let home: number[] = []


  before(async () => {
    postgres = await startPostgresServer()
    redis = await startRedisServer()
    const seeds = Array.from({ length: PEERS }, () => randomBytes(32))
    for (const seed of seeds) peerIds.push(peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seed)).toString())
    const fleet = await startFleetProcesses({
      workers: 3,
      databaseUrl: postgres.url,
      redisUrl: redis.url,
      adminToken: ADMIN,
      accounts: peerIds,
      env: {
        PHAROS_SEEN_CLAIM_TTL_MS: '3000',
        PHAROS_PIN_LEASE_MS: '3000',
        PHAROS_PIN_POLL_INTERVAL_MS: '200',
        PHAROS_PIN_CONCURRENCY: '16',
        PHAROS_PIN_STALL_TIMEOUT_MS: '10000',
        PHAROS_PIN_RETRY_MAX_MS: '20000',
        PHAROS_DATABASE_POOL_SIZE: '10',
        PHAROS_SHUTDOWN_READINESS_DELAY_MS: '0'
      }
    })
    workers.push(...fleet.workers)
    db = fleet.db

    // Peer i lives on worker i % 3 and lists the other two after it, in case it goes away.
    home = peerIds.map((_, i) => i % 3)
    publisherIds.push(...peerIds.slice(0, PUBLISHERS))
    const specs: SwarmPeerSpec[] = seeds.map((seed, i) => ({
      seed: seed.toString('hex'),
      bootstrap: [0, 1, 2].map((offset) => tcpAddress(workers[(i + offset) % 3] as WorkerProcess)),
      beaconConnections: 1
    }))
    for (let s = 0; s < SWARMS; s++) {
      swarms.push(new Swarm({ network: 'pharos', networkSize: PEERS, follow: publisherIds, peers: specs.filter((_, i) => i % SWARMS === s) }))
    }
    await Promise.all(swarms.map(async (swarm) => { await swarm.ready }))
    const started = await Promise.all(swarms.map(async (swarm) => await swarm.ask({ type: 'start', concurrency: 8 }, 'started')))
    for (const reply of started) assert.deepEqual(reply.type === 'started' && reply.failures, [], 'every peer joined')
  })

  after(async () => {
    await Promise.allSettled(swarms.map(async (swarm) => { await swarm.stop() }))
    await Promise.allSettled(workers.map(async (worker) => { await stopWorker(worker) }))
    // The workers' logs, for reading what happened after a failure.
    const logDir = await tempDir('pharos-fleet-e2e-logs-')
    await Promise.all(workers.map(async (worker, i) => { await writeFile(join(logDir, `worker-${i}.log`), `${worker.lines.join('\n')}\n${worker.stderr()}`) }))
    console.log(`fleet e2e: worker logs in ${logDir}`)
    await db?.end().catch(() => {})
    await redis?.destroy()
    await postgres?.destroy()
  })

  /** Swarm s holds peers s, s + SWARMS, …: the swarm and its local index of global peer i. */
  const locate = (i: number): { swarm: Swarm, local: number } => ({ swarm: swarms[i % SWARMS] as Swarm, local: Math.floor(i / SWARMS) })

  it('every worker lists the fleet and the peers each worker holds', async () => {
    for (const worker of workers) {
      const { body } = await adminGet<WorkersPage>(worker, '/v1/workers', ADMIN)
      assert.equal(body.stale, false)
      assert.deepEqual(body.workers.map((w) => w.peerId).sort(), workers.map((w) => w.peerId).sort())
    }
    // Who holds each peer, by the fleet view (flushed to Redis once a heartbeat). A peer may
    // be connected to several workers: their overlays dial it too.
    const holders = async (): Promise<Map<string, Set<string>>> => {
      const seen = new Map<string, Set<string>>()
      let cursor: string | undefined
      do {
        const { body } = await adminGet<FleetPeersPage>(workers[0] as WorkerProcess, `/v1/peers?scope=fleet&limit=500${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`, ADMIN)
        for (const peer of body.peers) {
          if (!peer.connected) continue
          const set = seen.get(peer.peerId) ?? new Set()
          set.add(peer.workerPeerId)
          seen.set(peer.peerId, set)
        }
        cursor = body.next
      } while (cursor !== undefined)
      return seen
    }
    // Each peer dials its home worker first and the next on its list if that dial fails (a
    // loaded machine times some out), so most, not all, are at home: the fleet must list
    // every peer, and each worker must hold its share.
    let seen = new Map<string, Set<string>>()
    await waitFor('the fleet view to list every peer as connected', async () => {
      seen = await holders()
      return peerIds.every((id) => seen.has(id))
    }, 20_000, () => `${peerIds.filter((id) => !seen.has(id)).length} peers missing`)
    const atHome = peerIds.filter((id, i) => seen.get(id)?.has(workers[home[i] ?? 0]?.peerId ?? '') === true).length
    console.log(`fleet e2e: ${atHome} of ${PEERS} peers are held by their home worker, the rest by the next on their list`)
    for (const worker of workers) {
      const held = peerIds.filter((id) => seen.get(id)?.has(worker.peerId) === true).length
      assert.ok(held >= PEERS / 6, `worker ${worker.peerId} holds ${held} of ${PEERS} peers: the peers are spread over the workers`)
    }
  })

  it('stores, pins and delivers 500 entries once each through a SIGKILL, a Redis outage and a Postgres outage', async () => {
    const acked: string[] = []
    const failures: string[] = []
    const latencies: number[] = []
    const busy = new Set<number>()
    const killed = workers[2] as WorkerProcess
    let leasedByKilled: string[] = []
    const faults: Array<Promise<void>> = []
    const degradedSeen: string[] = []

    const publishOne = async (id: number): Promise<void> => {
      let publisher: number
      do publisher = Math.floor(Math.random() * PUBLISHERS)
      while (busy.has(publisher))
      busy.add(publisher)
      const { swarm, local } = locate(publisher)
      const reply = await swarm.ask({ type: 'publish', id, peer: local, text: `entry ${id} from ${publisher}` }, 'published', id)
      busy.delete(publisher)
      if (reply.type === 'published') {
        acked.push(reply.cid)
        latencies.push(reply.ms)
        if (acked.length % 50 === 0) {
          const recent = latencies.slice(-50).sort((x, y) => x - y)
          console.log(`fleet e2e: ${acked.length} acknowledged after ${Math.round((Date.now() - runStarted) / 1000)} s; last 50 publish → stored p50 ${recent[25]} ms, max ${recent.at(-1)} ms`)
        }
      } else if (reply.type === 'publish-failed') {
        failures.push(`#${id} via peer ${publisher}: ${reply.error}`)
        console.log(`fleet e2e: publish #${id} via peer ${publisher} failed after ${Math.round((Date.now() - runStarted) / 1000)} s: ${reply.error}`)
      }
    }

    const inFlight: Array<Promise<void>> = []
    const runStarted = Date.now()
    for (let id = 0; id < ENTRIES; id++) {
      while (busy.size >= PUBLISHERS - 2) await sleep(20)
      inFlight.push(publishOne(id))
      await sleep(1000 / PUBLISH_RATE)
      if (id === Math.floor(ENTRIES * 0.2) && FAULTS.has('kill')) {
        const { rows } = await db.query<{ id: string }>('SELECT id::text FROM pins WHERE lease_owner = $1', [killed.peerId])
        leasedByKilled = rows.map((row) => row.id)
        killed.child.kill('SIGKILL')
        await killed.exited
      }
      if (id === Math.floor(ENTRIES * 0.4) && FAULTS.has('redis')) {
        faults.push((async () => {
          await redis.stop()
          const { status, body } = await waitForValue('a worker to report Redis as degrading', 8000, async () => {
            const answer = await adminGet<Readyz>(workers[0] as WorkerProcess, '/readyz', ADMIN)
            return answer.body.status === 'degraded' ? answer : undefined
          })
          assert.equal(status, 200, '/readyz stays 200 while only Redis is down')
          degradedSeen.push(body.checks.redis ?? '')
          assert.equal(await metric(workers[0] as WorkerProcess, 'pharos_redis_up'), 0)
          await sleep(OUTAGE_MS)
          await redis.start()
        })())
      }
      if (id === Math.floor(ENTRIES * 0.66) && FAULTS.has('postgres')) {
        faults.push((async () => {
          await postgres.stop()
          await waitForValue('/readyz to answer 503 without Postgres', 8000, async () => (await adminGet<Readyz>(workers[1] as WorkerProcess, '/readyz', ADMIN)).status === 503)
          await sleep(OUTAGE_MS)
          await postgres.start()
        })())
      }
    }
    await Promise.all(faults)
    await Promise.all(inFlight)
    assert.deepEqual(failures, [], 'every publish was acknowledged')
    assert.equal(acked.length, ENTRIES)
    assert.equal(degradedSeen.length, FAULTS.has('redis') ? 1 : 0, 'the Redis outage was seen as degraded')

    for (const worker of workers.slice(0, 2)) {
      await waitForValue(`${worker.peerId} to be ready again (Redis and Postgres back)`, 30_000, async () => {
        const { status, body } = await adminGet<Readyz>(worker, '/readyz', ADMIN)
        return status === 200 && body.status === 'ready'
      })
      assert.equal(await metric(worker, 'pharos_redis_up'), 1, 'reconnected to Redis without a restart')
    }

    // Stored once: one row per acknowledged entry, and nothing else.
    const { rows: [stored] } = await db.query<{ rows: number, distinct: number }>('SELECT count(*)::int AS rows, count(DISTINCT cid)::int AS distinct FROM log_entries')
    assert.deepEqual(stored, { rows: ENTRIES, distinct: ENTRIES })
    const { rows: storedCids } = await db.query<{ cid: Buffer }>('SELECT cid FROM log_entries')
    const { CID } = await import('multiformats/cid')
    const storedSet = new Set(storedCids.map((row) => CID.decode(new Uint8Array(row.cid)).toString()))
    for (const cid of acked) assert.ok(storedSet.has(cid), `acknowledged entry ${cid} is stored`)

    // Pinned once: one entry pin per entry, all pinned, including the killed worker's jobs.
    await waitForValue('every entry pin to be pinned', 300_000, async () => {
      const { rows: [pins] } = await db.query<{ pinned: number }>(
        "SELECT count(*)::int AS pinned FROM log_entries e JOIN pins p ON p.id = e.pin_id WHERE p.status = 'pinned'")
      return pins?.pinned === ENTRIES
    })
    const { rows: [pins] } = await db.query<{ pins: number, distinct: number }>(
      "SELECT count(*)::int AS pins, count(DISTINCT root_cid)::int AS distinct FROM pins WHERE kind = 'log-entry'")
    assert.deepEqual(pins, { pins: ENTRIES, distinct: ENTRIES }, 'each entry has exactly one pin')
    if (leasedByKilled.length > 0) {
      const { rows } = await db.query<{ status: string }>('SELECT status FROM pins WHERE id = ANY($1::uuid[])', [leasedByKilled])
      assert.ok(rows.every((row) => row.status === 'pinned'), 'the killed worker\'s leased jobs were finished by the others')
    }

    // The killed worker's peers moved to the other workers.
    const orphaned = FAULTS.has('kill') ? peerIds.filter((_, i) => home[i] === 2) : []
    await waitForValue('the killed worker\'s peers to be held by the other two', 60_000, async () => {
      const held = await Promise.all(workers.slice(0, 2).map(async (worker) => await peersHeldBy(worker, ADMIN)))
      return orphaned.every((id) => held.some((set) => set.has(id)))
    })

    // Delivered to every peer: first by gossip (measured, see docs/fleet.md), then every peer
    // runs the sync an app runs on reconnecting, and must then hold every entry.
    const report = async (): Promise<PeerDeliveries[]> => (await Promise.all(swarms.map(async (swarm) => await swarm.ask({ type: 'missing', cids: acked }, 'missing'))))
      .flatMap((reply) => reply.type === 'missing' ? reply.perPeer : [])
    const byGossip = await waitForValue('every peer to hold every entry by gossip', 30_000, async () => {
      const perPeer = await report()
      return perPeer.every((peer) => peer.missing === 0) ? perPeer : undefined
    }).catch(async () => await report())
    const gossipDelivered = byGossip.reduce((sum, peer) => sum + acked.length - peer.missing, 0) / (byGossip.length * acked.length)
    const synced = await Promise.all(swarms.map(async (swarm) => await swarm.ask({ type: 'sync' }, 'synced')))
    for (const reply of synced) assert.deepEqual(reply.type === 'synced' && reply.failures, [], 'every peer synced')
    const final = await waitForValue('every peer to hold every entry after sync', 60_000, async () => {
      const perPeer = await report()
      return perPeer.every((peer) => peer.missing === 0) ? perPeer : undefined
    }).catch(async (err: unknown) => {
      const lacking = (await report()).filter((peer) => peer.missing > 0)
      throw new Error(`${(err as Error).message}: ${lacking.length} peers lack entries, e.g. ${JSON.stringify(lacking.slice(0, 5))}`)
    })
    assert.equal(final.length, PEERS)
    assert.ok(final.every((peer) => peer.running), 'every peer still runs')
    console.log(`fleet e2e: ${(gossipDelivered * 100).toFixed(1)}% of (peer, entry) pairs delivered by gossip alone; the rest by sync`)
    const sorted = latencies.sort((a, b) => a - b)
    console.log(`fleet e2e: ${ENTRIES} entries acknowledged; publish → stored p50 ${sorted[Math.floor(sorted.length / 2)]} ms, p99 ${sorted[Math.floor(sorted.length * 0.99)]} ms; ${leasedByKilled.length} pin jobs were leased by the killed worker`)
  })
})
