import { Histogram } from 'prom-client'
import type { Registry } from 'prom-client'

/** How often the sampler's timer is due, in ms. */
export const EVENT_LOOP_SAMPLE_INTERVAL_MS = 10

/** Bucket bounds (seconds); 0.02 and 0.05 are the load targets' (loadtest/README.md). */
export const EVENT_LOOP_DELAY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/**
 * The event loop's delay as a histogram: every 10 ms a timer records how late it fired.
 * prom-client's `nodejs_eventloop_lag_*` gauges hold percentiles of the last scrape window
 * only, with the sampling interval included (registry.ts); percentiles of several windows or
 * workers cannot be combined. Bucket counters can: `histogram_quantile` over any range and
 * any set of workers, and the load generator's percentiles over a whole phase. A loop
 * stalled for 100 ms records one late sample, not ten, as the perf_hooks monitor does.
 * `onSample` gets each sample too, in ms (inbound admission sheds new handshakes on it).
 */
export function startEventLoopDelayMetrics (registry: Registry, onSample?: (delayMs: number) => void): { stop: () => void } {
  const delay = new Histogram({
    name: 'pharos_event_loop_delay_seconds',
    help: `How late a timer due every ${EVENT_LOOP_SAMPLE_INTERVAL_MS} ms fired: the event loop's delay`,
    buckets: EVENT_LOOP_DELAY_BUCKETS,
    registers: [registry]
  })
  let due = performance.now() + EVENT_LOOP_SAMPLE_INTERVAL_MS
  const timer = setInterval(() => {
    const now = performance.now()
    const late = Math.max(0, now - due)
    delay.observe(late / 1000)
    onSample?.(late)
    due = now + EVENT_LOOP_SAMPLE_INTERVAL_MS
  }, EVENT_LOOP_SAMPLE_INTERVAL_MS)
  timer.unref()
  return { stop: () => { clearInterval(timer) } }
}
