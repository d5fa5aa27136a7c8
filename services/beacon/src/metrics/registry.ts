import { Registry, collectDefaultMetrics } from 'prom-client'

/**
 * prom-client default metrics that list every active handle or resource on each scrape: one
 * entry per socket, so O(connections) allocations in one synchronous task. In a profile at
 * 3,000 connections they were half of each scrape's 30–58 ms (docs/benchmarks.md); the
 * connection gauges and `process_open_fds` tell operators the same.
 */
const PER_HANDLE_METRICS = [
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total'
]

/**
 * How often prom-client's event-loop monitor (`perf_hooks.monitorEventLoopDelay`) samples, in
 * ms. Each sample is the whole time between two of its timer callbacks, this interval
 * included, so `nodejs_eventloop_lag_*_seconds` read about 0.010 on an idle worker: the
 * loop's delay is the value less this (docs/operations.md).
 */
export const EVENT_LOOP_MONITORING_PRECISION_MS = 10

/**
 * The worker's one metrics registry, built in main and passed down (no global registry:
 * libp2p's prometheus metrics would otherwise clear it). Process metrics (CPU, RSS, heap,
 * event-loop lag, open file descriptors) come from prom-client's default collectors, less
 * PER_HANDLE_METRICS.
 */
export function createRegistry (): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_MONITORING_PRECISION_MS })
  for (const name of PER_HANDLE_METRICS) registry.removeSingleMetric(name)
  return registry
}
