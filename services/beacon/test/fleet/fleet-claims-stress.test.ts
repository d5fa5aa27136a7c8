/**
 * The seen set's exactly-once claim on a 3-node Redis Cluster, under load (issue 21 item 4,
 * docs/fleet.md "Claims under load"): two workers claim the same IDs at once, round after
 * round, while child processes spin on every core and this process's own event loop stalls
 * now and then, as a busy worker's does (signature checks, GC, a CPU-starved container).
 * Any ID claimed by both workers fails the test.
 *
 * The workers run with the default command timeout (1 s); every fourth round the event
 * loop stalls for longer than that while the claims are out, as a CPU-starved worker's does.
 * On the code before issue 21 this failed every run: the stalled worker's timers fired
 * before it read the replies already waiting in its sockets, it took Redis for hung and
 * claimed locally what the other worker held.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Registry } from 'prom-client'
import { startFleetState } from '../../src/fleet/fleet-state.ts'
import type { RedisFleetState } from '../../src/fleet/fleet-state.ts'
import { createLogger } from '../../src/logging/logger.ts'
import { createFleetMetrics } from '../../src/fleet/fleet-metrics.ts'
import { startRedisCluster } from '@pharos/testing/redis-servers.ts'
import type { RedisClusterServers } from '@pharos/testing/redis-servers.ts'
import { waitFor } from '@pharos/testing/wait.ts'

/** Rounds of concurrent claims; each round is a fresh set of IDs. Bounded by ROUNDS_BUDGET_MS too. */
const ROUNDS = 24
const IDS_PER_ROUND = 300
/** The stress part stops starting rounds after this, so the file stays well under a minute. */
const ROUNDS_BUDGET_MS = 25_000
/** The default (openFleetRedis commandTimeoutMs). */
const COMMAND_TIMEOUT_MS = 1000

/** Blocks this thread for `ms`, as synchronous work on a busy worker does. */
function stallEventLoop (ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) { /* spin */ }
}

/** One child process per core spinning until killed: the machine is loaded while claims run. */
function startCpuBurners (): ChildProcess[] {
  return Array.from({ length: availableParallelism() }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }))
}

describe('seen set on a 3-node Redis Cluster under CPU load', () => {
  let cluster: RedisClusterServers | undefined
  let burners: ChildProcess[] = []
  const workers: Array<{ state: RedisFleetState, registry: Registry }> = []

  before(async () => {
    cluster = await startRedisCluster(3)
  })

  after(async () => {
    for (const burner of burners) burner.kill('SIGKILL')
    await Promise.all(workers.map(async ({ state }) => { await state.stop() }))
    await cluster?.stop()
  })

  it('two workers claiming the same IDs at once, round after round, never both claim one', async () => {
    assert.ok(cluster !== undefined)
    const prefix = `stress-${randomBytes(4).toString('hex')}:`
    for (let i = 0; i < 2; i++) {
      const workerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
      const registry = new Registry()
      const state = await startFleetState({
        redis: { url: cluster.url, mode: 'cluster', commandTimeoutMs: COMMAND_TIMEOUT_MS },
        prefix,
        workerId,
        workerName: `worker-${i + 1}`,
        // Heartbeats far apart: the seen set's are the only commands that matter here.
        heartbeatMs: 60_000,
        seenTtlMs: 60_000,
        seenClaimTtlMs: 30_000,
        peerViewRetentionMs: 60_000,
        relaySlots: { slotsPerAccount: 2, reservationTtlMs: 60_000 },
        log: createLogger('silent'),
        metrics: createFleetMetrics(registry),
        record: () => ({ multiaddrs: [], httpUrl: null, connections: 0, ready: true }),
        connectWaitMs: 10_000
      })
      workers.push({ state, registry })
    }
    const [a, b] = workers.map(({ state }) => state) as [RedisFleetState, RedisFleetState]

    /** Each worker's claims by result and Redis errors, for the failure message. */
    const claimCounts = async (): Promise<string> => (await Promise.all(workers.map(async ({ registry }) => {
      const claims = (await registry.getSingleMetric('pharos_seen_claims_total')?.get())?.values.map(({ labels, value }) => `${String(labels.result)}=${value}`).join(' ')
      const errors = (await registry.getSingleMetric('pharos_redis_errors_total')?.get())?.values.filter(({ value }) => value > 0).map(({ labels, value }) => `${String(labels.operation)}=${value}`).join(' ')
      return `claims ${claims ?? ''}, Redis errors ${errors ?? ''}`
    }))).join('; ')
    burners = startCpuBurners()
    const started = performance.now()
    let rounds = 0
    let stalls = 0
    for (; rounds < ROUNDS && performance.now() - started < ROUNDS_BUDGET_MS; rounds++) {
      // A stall may have made a worker drop its connection as hung: both must be back
      // before a round, or its claims would be answered locally by design (Redis down).
      await waitFor('both workers connected to the Cluster', () => a.redis.isUp() && b.redis.isUp(), 15_000)
      const ids = Array.from({ length: IDS_PER_ROUND }, (_, i) => `${prefix}round-${rounds}:message-${i}`)
      const claimsA = Promise.all(ids.map(async (id) => await a.seen.claim(id)))
      const claimsB = Promise.all(ids.map(async (id) => await b.seen.claim(id)))
      // Every fourth round, the event loop stalls longer than the command timeout once the
      // pipelines are out (after the 2 ms batch window): their replies arrive during the
      // stall and wait in the sockets to be read.
      if (rounds % 4 === 1) {
        await new Promise((resolve) => setTimeout(resolve, 2))
        await new Promise((resolve) => setImmediate(resolve))
        stallEventLoop(COMMAND_TIMEOUT_MS * 1.2)
        stalls++
      }
      const [byA, byB] = await Promise.all([claimsA, claimsB])
      const doubles = ids.filter((_, i) => byA[i] === 'claimed' && byB[i] === 'claimed').length
      if (doubles > 0 || byA.length !== IDS_PER_ROUND) console.log(`# round ${rounds}: ${doubles} double claims; ${await claimCounts()}`)
      ids.forEach((id, i) => {
        const claims = [byA[i], byB[i]].filter((result) => result === 'claimed').length
        assert.equal(claims, 1, `round ${rounds}: ${id} claimed exactly once (A: ${byA[i]}, B: ${byB[i]})`)
      })
    }
    console.log(`# ${rounds} rounds of ${IDS_PER_ROUND} concurrent claims (${stalls} with a stalled event loop) beside ${burners.length} CPU burners in ${Math.round(performance.now() - started)} ms`)
    assert.ok(stalls >= 3, `only ${stalls} stalled rounds (${rounds} in all) ran within the budget`)
  })
})
