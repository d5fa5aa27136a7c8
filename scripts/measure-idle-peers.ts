/**
 * What idle SDK peers cost: N peers (default 50) in one child process join a fleet of three
 * worker processes, and once all have joined, the child's CPU time is read from /proc over
 * 30 s of doing nothing. docs/fleet.md "Idle cost of a peer" quotes it.
 *
 *   scripts/with-services.sh node_modules/.bin/node scripts/measure-idle-peers.ts [peers]
 *
 * The peers run in the fault scenario's swarm child (services/beacon/test/helpers), so what is
 * measured is what the scenario runs.
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { startFleetProcesses, tcpAddress } from '../services/beacon/test/helpers/fleet-processes.ts'
import type { SwarmConfig, SwarmReply } from '../services/beacon/test/helpers/swarm-protocol.ts'
import { stopWorker } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'

const PEERS = Number(process.argv[2] ?? 50)
const IDLE_MS = 30_000
const SWARM_CHILD = fileURLToPath(new URL('../services/beacon/test/helpers/swarm-child.ts', import.meta.url))

/** User + system CPU time of a process so far, in ms (clock ticks are 10 ms on Linux). */
async function cpuMs (pid: number | undefined): Promise<number> {
  const fields = (await readFile(`/proc/${pid ?? 'self'}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) * 10
}

function nextReply (child: ChildProcess, type: SwarmReply['type']): Promise<SwarmReply> {
  return new Promise((resolve) => {
    const onMessage = (reply: SwarmReply): void => {
      if (reply.type !== type) return
      child.off('message', onMessage)
      resolve(reply)
    }
    child.on('message', onMessage)
  })
}

const seeds = Array.from({ length: PEERS }, () => randomBytes(32))
const ids = await Promise.all(seeds.map(async (seed) => peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seed)).toString()))
const fleet = await startFleetProcesses({ workers: 3, databaseUrl: await createTestDatabase('idle_peers'), adminToken: 'idle-peers-admin-token-0123456789', accounts: ids })
const workers = fleet.workers as [WorkerProcess, WorkerProcess, WorkerProcess]
const config: SwarmConfig = {
  network: 'pharos',
  networkSize: PEERS,
  follow: ids.slice(0, 10),
  peers: seeds.map((seed, i) => ({ seed: seed.toString('hex'), bootstrap: [0, 1, 2].map((offset) => tcpAddress(workers[(i + offset) % 3] as WorkerProcess)), beaconConnections: 1 }))
}
const child = fork(SWARM_CHILD, [], { env: { ...process.env, SWARM_CONFIG: JSON.stringify(config) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
try {
  await nextReply(child, 'ready')
  const startedAt = Date.now()
  const started = nextReply(child, 'started')
  child.send({ type: 'start', concurrency: 8 })
  const reply = await started
  const failures = reply.type === 'started' ? reply.failures.length : -1
  console.log(`${PEERS} peers joined in ${((Date.now() - startedAt) / 1000).toFixed(1)} s (${failures} failed)`)
  const workersBefore = await Promise.all(workers.map(async (worker) => await cpuMs(worker.child.pid)))
  const before = await cpuMs(child.pid)
  const from = Date.now()
  await new Promise((resolve) => setTimeout(resolve, IDLE_MS))
  const elapsed = Date.now() - from
  const share = (await cpuMs(child.pid) - before) / elapsed
  const workersShare = (await Promise.all(workers.map(async (worker, i) => await cpuMs(worker.child.pid) - (workersBefore[i] ?? 0)))).reduce((sum, ms) => sum + ms, 0) / elapsed
  console.log(`idle for ${(elapsed / 1000).toFixed(0)} s: the peers' process used ${(share * 100).toFixed(1)} % of a core (${(share * 1000 / PEERS).toFixed(2)} ms of CPU per peer per second); the three workers ${(workersShare * 100).toFixed(1)} % together`)
} finally {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.send({ type: 'stop' })
  await exited
  await Promise.all(workers.map(stopWorker))
  await fleet.db.end()
}
