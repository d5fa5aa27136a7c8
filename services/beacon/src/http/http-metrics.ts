import { Counter, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'
import { PRESSURE_SIGNALS } from './pressure-monitor.ts'

/** The HTTP surface's own counters (labels are closed sets). */
export function createHttpMetrics (registry: Registry) {
  const requestsShed = new Counter({
    name: 'pharos_http_requests_shed_total',
    help: 'HTTP requests answered 503 because the worker was overloaded, by the signal over its limit: event-loop-delay, heap-used, rss (PHAROS_HTTP_PRESSURE_MAX_*)',
    labelNames: ['reason'] as const,
    registers: [registry]
  })
  // Every reason is exported from the start, so a rate over it reads 0, not "no data".
  for (const reason of PRESSURE_SIGNALS) requestsShed.inc({ reason }, 0)
  // pharos_http_request_duration_seconds ends when the last byte is written, so a gateway CAR
  // lasts as long as its DAG and its client's reading: it says nothing of how fast the worker
  // answers. This ends when the response starts (the onSend hook, just before the headers go
  // out): the latency the gateway's alert watches.
  const responseStart = new Histogram({
    name: 'pharos_http_response_start_seconds',
    help: 'Time from a request\'s arrival until its response starts (status and headers sent), by method, route pattern and status class: for a streamed CAR, how long until its first block, whatever its length',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  return { requestsShed, responseStart }
}

export type HttpMetrics = ReturnType<typeof createHttpMetrics>
