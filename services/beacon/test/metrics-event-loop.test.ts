/**
 * Event-loop lag as the worker exports it and as the load generator reads it. prom-client's
 * monitor records the whole interval between two of its timer callbacks, so its figures
 * carry the sampling interval; the generator takes it off to report the loop's delay.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { EVENT_LOOP_MONITORING_PRECISION_MS, createRegistry } from '../src/metrics/registry.ts'
import { parseWorkerMetrics } from '../../../loadtest/swarm/worker-metrics.ts'

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
      'process_cpu_seconds_total 2.5'
    ].join('\n')
    const busy = parseWorkerMetrics(text(0.0253))
    assert.ok(Math.abs(busy.lagP99Ms - 15.3) < 1e-9, `lag ${busy.lagP99Ms}`)
    assert.equal(busy.connections, 7)
    assert.equal(parseWorkerMetrics(text(0.0091)).lagP99Ms, 0)
  })
})
