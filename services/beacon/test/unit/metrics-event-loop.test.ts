/**
 * Event-loop lag as the worker exports it and as the load generator reads it. prom-client's
 * monitor records the whole interval between two of its timer callbacks, so its figures
 * carry the sampling interval; the generator takes it off to report the loop's delay. The
 * worker's own histogram (`pharos_event_loop_delay_seconds`) records the delay alone, in
 * buckets the generator adds up over a whole phase.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { Registry } from 'prom-client'
import { startEventLoopDelayMetrics } from '../../src/metrics/event-loop-metrics.ts'
import { EVENT_LOOP_MONITORING_PRECISION_MS, createRegistry } from '../../src/metrics/registry.ts'
import { addBuckets, bucketQuantile, bucketsBetween, shareWithin } from '../../../../loadtest/swarm/report.ts'
import type { Buckets } from '../../../../loadtest/swarm/report.ts'
import { parseWorkerMetrics } from '../../../../loadtest/swarm/worker-metrics.ts'

function gaugeValue (text: string, name: string): number {
  const line = text.split('\n').find((entry) => entry.startsWith(`${name} `))
  assert.ok(line !== undefined, `${name} exported`)
  return Number(line.slice(name.length + 1))
}

describe('event-loop lag', () => {
  it('every sample of the exported lag includes the sampling interval, even on an idle loop', async () => {
    const registry = createRegistry()
    await registry.metrics() // resets the histogram: what follows is an idle window
    await sleep(30 * EVENT_LOOP_MONITORING_PRECISION_MS)
    const text = await registry.metrics()
    const minMs = gaugeValue(text, 'nodejs_eventloop_lag_min_seconds') * 1000
    // A pure delay would be near 0 on a loop doing nothing; half the interval leaves room for timer jitter.
    assert.ok(minMs >= EVENT_LOOP_MONITORING_PRECISION_MS / 2, `idle minimum ${minMs} ms`)
  })

  it('the load generator reports the p99 less the sampling interval, never below zero', () => {
    const text = (p99Seconds: number): string => [
      'process_resident_memory_bytes 1000',
      `nodejs_eventloop_lag_p99_seconds ${p99Seconds}`,
      'pharos_connections{transport="tcp"} 3',
      'pharos_connections{transport="ws"} 4',
      'process_cpu_seconds_total 2.5',
      'pharos_event_loop_delay_seconds_bucket{le="+Inf"} 9',
      'pharos_event_loop_delay_seconds_bucket{le="0.02"} 8',
      'pharos_event_loop_delay_seconds_sum 0.4'
    ].join('\n')
    const busy = parseWorkerMetrics(text(0.0253))
    assert.ok(Math.abs(busy.lagP99Ms - 15.3) < 1e-9, `lag ${busy.lagP99Ms}`)
    assert.equal(busy.connections, 7)
    assert.deepEqual(busy.delayBuckets, [{ le: 0.02, count: 8 }, { le: Number.POSITIVE_INFINITY, count: 9 }], 'buckets in order of bound, +Inf last')
    assert.equal(parseWorkerMetrics(text(0.0091)).lagP99Ms, 0)
  })

  it('the worker\'s delay histogram records a stalled loop as one late sample, and idle ones as on time', async () => {
    const registry = new Registry()
    const sampler = startEventLoopDelayMetrics(registry)
    try {
      await sleep(50)
      const stalledUntil = performance.now() + 150
      while (performance.now() < stalledUntil) { /* a stall of 150 ms */ }
      await sleep(50)
      const buckets = parseWorkerMetrics(['process_resident_memory_bytes 1', 'nodejs_eventloop_lag_p99_seconds 0', 'process_cpu_seconds_total 1', await registry.metrics()].join('\n')).delayBuckets
      const count = (le: number): number => buckets.find((bucket) => bucket.le === le)?.count ?? Number.NaN
      assert.ok(count(Number.POSITIVE_INFINITY) >= 4, `${count(Number.POSITIVE_INFINITY)} samples in ~250 ms`)
      assert.equal(count(Number.POSITIVE_INFINITY) - count(0.1), 1, 'one sample over 100 ms: the stall')
      assert.ok(count(0.02) >= 2, 'the idle samples were about on time')
    } finally {
      sampler.stop()
    }
  })

  it('bucket arithmetic: differences between scrapes, sums over workers, quantiles and shares', () => {
    const before: Buckets = [{ le: 0.01, count: 10 }, { le: 0.02, count: 12 }, { le: 0.05, count: 12 }, { le: Number.POSITIVE_INFINITY, count: 13 }]
    const after: Buckets = [{ le: 0.01, count: 100 }, { le: 0.02, count: 190 }, { le: 0.05, count: 198 }, { le: Number.POSITIVE_INFINITY, count: 213 }]
    const window = bucketsBetween(before, after)
    assert.deepEqual(window.map((bucket) => bucket.count), [90, 178, 186, 200])
    const both = addBuckets([window, window])
    assert.deepEqual(both.map((bucket) => bucket.count), [180, 356, 372, 400])
    // 200 samples: the median (100th) is 10 of the 88 between 10 and 20 ms
    assert.ok(Math.abs(bucketQuantile(window, 0.5) - (0.01 + 0.01 * 10 / 88)) < 1e-12)
    assert.equal(bucketQuantile(window, 0.99), 0.05, 'past the highest finite bound: that bound')
    assert.equal(bucketQuantile(window, 0.2), 0.01 * 40 / 90, 'in the first bucket: from zero')
    assert.equal(shareWithin(window, 0.02), 0.89)
    assert.ok(Number.isNaN(bucketQuantile(bucketsBetween(after, after), 0.99)), 'no samples: NaN')
    assert.throws(() => shareWithin(window, 0.03), /no bucket bound/)
  })
})
