/**
 * A fleet of worker processes for tests, as operators run one: one Postgres database, one
 * Redis prefix, one fleet secret, a name (and so a peer ID) per worker.
 */
import assert from 'node:assert/strict'
import pg from 'pg'
import { testFleet } from '@pharos/testing/databases.ts'
import { sleep } from '@pharos/testing/wait.ts'
import { spawnWorker, workerEnv } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'

export interface FleetProcessesInit {
  workers: number
  databaseUrl: string
  /** Defaults to the test command's Redis. */
  redisUrl?: string
  adminToken: string
  /** Peer IDs registered as accounts before the second worker starts. */
  accounts: readonly string[]
  /** Env for every worker on top of the fleet's. */
  env?: Record<string, string>
}

export interface FleetProcesses {
  workers: WorkerProcess[]
  /** A small pool on the fleet's database, for counting rows. */
  db: pg.Pool
}

export async function startFleetProcesses (init: FleetProcessesInit): Promise<FleetProcesses> {
  const fleet = testFleet(init.redisUrl)
  const env = async (): Promise<Record<string, string>> => await workerEnv(fleet({
    DATABASE_URL: init.databaseUrl,
    PHAROS_ADMIN_TOKENS: init.adminToken,
    PHAROS_ACCOUNTS_REFRESH_MS: '1000',
    PHAROS_FLEET_HEARTBEAT_MS: '1000',
    ...init.env
  }))
  // The first worker applies the migrations; the accounts go in before the others start.
  const workers = [await spawnWorker(await env())]
  const db = new pg.Pool({ connectionString: init.databaseUrl, max: 2 })
  db.on('error', () => {}) // a test may stop Postgres on purpose
  await db.query('INSERT INTO accounts (peer_id, label) SELECT unnest($1::text[]), \'fleet-test\'', [init.accounts])
  for (let i = 1; i < init.workers; i++) workers.push(await spawnWorker(await env()))
  await sleep(1500) // every worker reloads the accounts (PHAROS_ACCOUNTS_REFRESH_MS)
  assert.equal(new Set(workers.map((worker) => worker.peerId)).size, init.workers, 'one identity per worker name from one fleet secret')
  return { workers, db }
}

/** A worker's loopback TCP address, for bootstrap lists. */
export function tcpAddress (worker: WorkerProcess): string {
  return worker.multiaddrs.find((addr) => addr.startsWith('/ip4/127.0.0.1/') && addr.includes('/tcp/') && !addr.includes('/ws')) ?? assert.fail(`worker ${worker.peerId} has no TCP address`)
}

/** GET `path` (e.g. `/v1/workers`) on a worker's HTTP API with an admin token: its status and JSON body. */
export async function adminGet<Body> (worker: WorkerProcess, path: string, token: string): Promise<{ status: number, body: Body }> {
  const response = await fetch(`${worker.httpUrl}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) })
  return { status: response.status, body: await response.json() as Body }
}

/** The peers a worker holds live connections to (`GET /v1/peers`, scope worker). */
export async function peersHeldBy (worker: WorkerProcess, token: string): Promise<Set<string>> {
  const { status, body } = await adminGet<{ peers: Array<{ peerId: string }> }>(worker, '/v1/peers?limit=10000', token)
  assert.equal(status, 200, `GET /v1/peers on ${worker.peerId}: ${status}`)
  return new Set(body.peers.map((peer) => peer.peerId))
}
