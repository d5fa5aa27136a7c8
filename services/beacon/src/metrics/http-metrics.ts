import { Counter } from 'prom-client'
import type { Registry } from 'prom-client'
import { PRESSURE_SIGNALS } from '../http/pressure-monitor.ts'

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
  return { requestsShed }
}

export type HttpMetrics = ReturnType<typeof createHttpMetrics>
