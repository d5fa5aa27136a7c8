/**
 * HTTP under pressure (issue 19, item 2): while the worker is overloaded (event-loop delay,
 * heap or RSS over their PHAROS_HTTP_PRESSURE_* keys) every route answers 503 with
 * Retry-After and the reason, but for /healthz (a kubelet restarting an overloaded worker
 * only moves its load), /readyz (which says not ready, naming the limit, so a load balancer
 * sends new traffic elsewhere), /metrics and the admin API (an operator needs them most
 * then). Each shed request is counted, and the worker is ready again once the pressure ends.
 *
 * A real worker in this process: the test holds this process's event loop with a busy-wait
 * longer than the limit, as a handshake flood did, right before each request it makes, so the
 * request is served by a worker whose loop was just held. Memory is forced over by a bound
 * below what any process uses.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { getHeapStatistics } from 'node:v8'
import { loadConfig } from '../../src/config/load.ts'
import { pressureLimits } from '../../src/http/pressure-monitor.ts'
import { startWorker } from '../../src/worker.ts'
import type { Worker } from '../../src/worker.ts'
import { metricValue, testConfig, testLogger } from '../helpers/storage.ts'
import { waitFor } from '@pharos/testing/wait.ts'

/** The event-loop bound of the first worker, and how long the test holds the loop: well over it. */
const MAX_DELAY_MS = 200
const HOLD_MS = 3 * MAX_DELAY_MS

/** Holds this process's event loop, and with it the worker's, for `ms`. */
function holdEventLoop (ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) { /* the loop is held */ }
}

interface Answer { status: number, retryAfter: string | null, body: string }

interface Failure { error: { reason: string, details: string } }
interface Readiness { ready: boolean, status: string, checks: Record<string, string> }

describe('HTTP with the event loop held (PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS)', () => {
  let worker: Worker
  /** 503s the test saw on routes that shed, so the counters can be checked against them exactly. */
  let shedSeen = 0

  async function get (path: string): Promise<Answer> {
    const response = await fetch(new URL(path, worker.httpUrl))
    const answer = { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.text() }
    if (!['/healthz', '/readyz', '/metrics'].includes(path) && answer.status === 503) shedSeen++
    return answer
  }

  before(async () => {
    worker = await startWorker(await testConfig({ PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: String(MAX_DELAY_MS) }), testLogger())
    // Starting may itself hold the loop (migrations, keys): begin from a worker that is clear.
    await waitFor('the worker to be ready after its start', async () => (await get('/readyz')).status === 200)
  })
  after(async () => { await worker?.stop() })

  it('answers a normal route 503 with Retry-After and the limit it is over', async () => {
    holdEventLoop(HOLD_MS)
    const answer = await get('/docs/json')
    assert.equal(answer.status, 503, answer.body)
    assert.equal(answer.retryAfter, '10')
    const failure = JSON.parse(answer.body) as Failure
    assert.equal(failure.error.reason, 'OVERLOADED')
    assert.match(failure.error.details, new RegExp(`event-loop delay over PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS \\(${MAX_DELAY_MS} ms\\)`))
  })

  it('says not ready on /readyz, naming the limit, so load balancers move new traffic away', async () => {
    holdEventLoop(HOLD_MS)
    const answer = await get('/readyz')
    assert.equal(answer.status, 503, answer.body)
    const report = JSON.parse(answer.body) as Readiness
    assert.equal(report.ready, false)
    assert.equal(report.status, 'not-ready')
    assert.equal(report.checks.overload, `event-loop delay over PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS (${MAX_DELAY_MS} ms)`)
    assert.equal(report.checks.storage, 'ok', 'the other checks still report their own state')
  })

  it('still answers /healthz and /metrics, and counts each shed request', async () => {
    holdEventLoop(HOLD_MS)
    const health = await get('/healthz')
    assert.equal(health.status, 200, health.body)
    assert.deepEqual(JSON.parse(health.body), { status: 'ok' })
    holdEventLoop(HOLD_MS)
    const metrics = await get('/metrics')
    assert.equal(metrics.status, 200, metrics.body)
    assert.ok(shedSeen >= 1, 'the normal route was shed above')
    assert.equal(metricValue(metrics.body, 'pharos_http_requests_shed_total{reason="event-loop-delay"}'), shedSeen)
    assert.equal(metricValue(metrics.body, 'pharos_limit_blocked_total{limit="PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS"}'), shedSeen)
    assert.equal(metricValue(metrics.body, 'pharos_http_requests_shed_total{reason="rss"}'), 0)
    assert.match(metrics.body, /^pharos_http_requests_shed_total\{reason="rss"\} 0$/m, 'every reason is exported before it is first counted')
  })

  it('is ready again, and serves every route, once the loop runs freely', async () => {
    await waitFor('/readyz to answer ready again', async () => (await get('/readyz')).status === 200)
    const report = JSON.parse((await get('/readyz')).body) as Readiness
    assert.equal(report.checks.overload, 'ok')
    await waitFor('/docs/json to be served again', async () => (await get('/docs/json')).status === 200)
  })
})

describe('HTTP with the resident memory over PHAROS_HTTP_PRESSURE_MAX_RSS_BYTES', () => {
  const ADMIN_TOKEN = 'load-shedding-test-admin-token'
  let worker: Worker

  before(async () => {
    worker = await startWorker(await testConfig({
      PHAROS_ADMIN_TOKENS: ADMIN_TOKEN,
      PHAROS_HTTP_PRESSURE_MAX_RSS_BYTES: '1',
      // Only RSS is watched, so the reason cannot be a stall of this busy process.
      PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
      PHAROS_HTTP_PRESSURE_MAX_HEAP_USED_BYTES: '0'
    }), testLogger())
  })
  after(async () => { await worker?.stop() })

  it('sheds normal routes and reports it on /readyz for as long as it is over; /healthz, /metrics and the admin API answer', async () => {
    const shed = await fetch(new URL('/docs/json', worker.httpUrl))
    assert.equal(shed.status, 503)
    assert.equal(shed.headers.get('retry-after'), '10')
    assert.match((await shed.json() as Failure).error.details, /resident memory over PHAROS_HTTP_PRESSURE_MAX_RSS_BYTES/)
    // The admin API is not shed (an operator banning an attack's peers needs it then); it still asks for its token.
    assert.equal((await fetch(new URL('/v1/node', worker.httpUrl))).status, 401)
    assert.equal((await fetch(new URL('/v1/node', worker.httpUrl), { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 200)
    // Public routes under /v1 are shed like the rest.
    assert.equal((await fetch(new URL('/v1/audits', worker.httpUrl))).status, 503)
    const ready = await fetch(new URL('/readyz', worker.httpUrl))
    assert.equal(ready.status, 503)
    assert.match((await ready.json() as Readiness).checks.overload ?? '', /^resident memory over PHAROS_HTTP_PRESSURE_MAX_RSS_BYTES \(1 B\)$/)
    assert.equal((await fetch(new URL('/healthz', worker.httpUrl))).status, 200)
    const metrics = await fetch(new URL('/metrics', worker.httpUrl))
    assert.equal(metrics.status, 200)
    const text = await metrics.text()
    assert.equal(metricValue(text, 'pharos_http_requests_shed_total{reason="rss"}'), 2, '/docs/json and /v1/audits')
    assert.equal(metricValue(text, 'pharos_limit_blocked_total{limit="PHAROS_HTTP_PRESSURE_MAX_RSS_BYTES"}'), 2)
    assert.equal(metricValue(text, 'pharos_http_requests_shed_total{reason="event-loop-delay"}'), 0)
  })
})

describe('pressure limits from config', () => {
  it('takes 90% of V8\'s heap limit when the heap key is unset, and 0 as off', () => {
    const unset = pressureLimits(loadConfig({}))
    assert.equal(unset.maxEventLoopDelayMs, 250)
    assert.equal(unset.maxHeapUsedBytes, Math.floor(getHeapStatistics().heap_size_limit * 0.9))
    const off = pressureLimits(loadConfig({ PHAROS_HTTP_PRESSURE_MAX_HEAP_USED_BYTES: '0', PHAROS_HTTP_PRESSURE_MAX_RSS_BYTES: '0', PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' }))
    assert.deepEqual(off, { maxEventLoopDelayMs: 0, maxHeapUsedBytes: 0, maxRssBytes: 0 })
  })
})
