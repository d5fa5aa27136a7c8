/**
 * The swarm load generator (loadtest/swarm) run end to end against a real worker, small:
 * 50 connections (10 full SDK peers, 40 light) for 6 s. It checks what the report must
 * hold, so the generator cannot rot unnoticed; its figures (lag, RSS, rates) are not
 * asserted, they belong to the benchmark.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { createTestDatabase } from '@pharos/testing/databases.ts'
import { runScript, spawnWorker, stopWorker, workerEnv } from '@pharos/testing/worker-process.ts'
import type { WorkerProcess } from '@pharos/testing/worker-process.ts'
import type { SwarmReport } from '../swarm/report.ts'

const CLI = fileURLToPath(new URL('../swarm/cli.ts', import.meta.url))
const TOKEN = 'loadtest-swarm-test-token-0123456789'

describe('loadtest:swarm against a worker', () => {
  let worker: WorkerProcess
  before(async () => {
    worker = await spawnWorker(await workerEnv({ DATABASE_URL: await createTestDatabase('swarm'), PHAROS_ADMIN_TOKENS: TOKEN, PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND: '100' }))
  })
  after(async () => { await stopWorker(worker) })

  it('holds 50 connections over TCP and WS with no failures, and every publish is pinned and fetched', async () => {
    const connections = 50
    const result = await runScript(CLI, [
      '--bootstrap', worker.multiaddrs.join(','),
      '--http', worker.httpUrl,
      '--connections', String(connections),
      '--full-peers', '10',
      '--duration', '6',
      '--publish-rate', '3',
      '--full-start-rate', '50',
      '--light-processes', '2',
      '--scrape-interval', '1',
      '--probe-size', '20',
      '--json'
    ], { PATH: process.env.PATH ?? '', PHAROS_ADMIN_TOKEN: TOKEN })
    assert.equal(result.code, 0, result.stderr)
    const report = JSON.parse(result.stdout) as SwarmReport
    assert.ok(worker.multiaddrs.some((addr) => addr.includes('/ws/')) && worker.multiaddrs.some((addr) => !addr.includes('/ws/')), 'the worker listens on TCP and WS, so both are mixed')
    assert.deepEqual(report.connections.failures, {}, result.stderr)
    assert.equal(report.connections.established, connections)
    assert.equal(report.connections.held, connections)
    assert.equal(report.connections.heldByWorkers, connections, 'the worker\'s own gauge agrees')
    assert.equal(report.join.ms.count, 10)
    assert.ok(report.publish.published >= 10, `published ${report.publish.published}`)
    assert.equal(report.publish.pinned, report.publish.published, 'every publish was pinned')
    assert.ok(report.fetch.fetched > 0 && report.fetch.bytes === report.fetch.fetched * report.settings.attachmentBytes, 'fetched posts carry their whole attachment')
    assert.equal(report.acceptRate.length, 1)
    assert.equal(report.acceptRate[0]?.opened, 20, 'the accept probe opened every connection')
    for (const phase of ['baseline', 'ramp', 'hold'] as const) {
      assert.ok(report.workers.lagP99Ms[phase].windows > 0, `lag scraped during ${phase}`)
      const delay = report.workers.eventLoopDelay[phase]
      assert.ok(delay !== null && delay.samples > 0 && delay.within20Ms >= 0 && delay.within20Ms <= delay.within50Ms && delay.within50Ms <= 1, `event-loop delay over ${phase}: ${JSON.stringify(delay)}`)
    }
    assert.ok(report.workers.rssHeldBytes > 0 && Number.isFinite(report.workers.lagP99Ms.hold.max))
    // Holding connections and pinning publishes costs the worker some CPU, and never more than its one thread can give plus GC helpers.
    const holdCpu = report.workers.cpuPercent.hold
    assert.ok(holdCpu !== null && holdCpu > 0 && holdCpu < 400, `worker CPU in the hold: ${holdCpu} %`)
  })
})
