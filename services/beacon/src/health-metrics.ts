import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import type { ReadinessReport } from './health.ts'
import { memoryLimitBytes } from './http/pressure-monitor.ts'

/**
 * Readiness and dependency health as gauges, so alerts do not have to probe /readyz:
 * updated on every readiness report (probes, and the worker's own periodic check).
 */
export function createHealthMetrics (registry: Registry, maxConnections: number) {
  const metrics = {
    ready: new Gauge({
      name: 'pharos_ready',
      help: '1 when /readyz answers 200 (ready or degraded), 0 when it answers 503',
      registers: [registry]
    }),
    checkOk: new Gauge({
      name: 'pharos_readiness_check_ok',
      help: 'Each readiness check: 1 passing, 0 failing (redis failing only degrades the worker)',
      labelNames: ['check'] as const,
      registers: [registry]
    }),
    postgresUp: new Gauge({
      name: 'pharos_postgres_up',
      help: '1 when the last storage check reached Postgres (or PGlite), 0 when it did not',
      registers: [registry]
    }),
    postgresErrors: new Counter({
      name: 'pharos_postgres_errors_total',
      help: 'Postgres operations that failed because the server was unreachable, by operation',
      labelNames: ['operation'] as const,
      registers: [registry]
    }),
    connectionsLimit: new Gauge({
      name: 'pharos_connections_limit',
      help: 'PHAROS_MAX_CONNECTIONS: connections held before the connection manager prunes',
      registers: [registry]
    }),
    // Beside process_resident_memory_bytes, so an alert sees the OOM killer coming (the
    // HTTP pressure monitor sheds at 90% of it) without cAdvisor or kube-state-metrics.
    memoryLimit: new Gauge({
      name: 'pharos_memory_limit_bytes',
      help: 'The memory limit the OS sets this process (a container\'s cgroup limit), in bytes; 0 when there is none',
      registers: [registry],
      collect () { this.set(memoryLimitBytes()) }
    }),
    observe (report: ReadinessReport): void {
      metrics.ready.set(report.ready ? 1 : 0)
      for (const [check, result] of Object.entries(report.checks)) {
        if (check === 'draining') continue
        metrics.checkOk.set({ check }, result === 'ok' ? 1 : 0)
      }
      if (report.checks.storage !== undefined) metrics.postgresUp.set(report.checks.storage === 'ok' ? 1 : 0)
    }
  }
  metrics.connectionsLimit.set(maxConnections)
  return metrics
}

export type HealthMetrics = ReturnType<typeof createHealthMetrics>
