import { Registry, collectDefaultMetrics } from 'prom-client'

/**
 * The worker's one metrics registry, built in main and passed down (no global registry:
 * libp2p's prometheus metrics would otherwise clear it). Process metrics (CPU, RSS, heap,
 * event-loop lag) come from prom-client's default collectors.
 */
export function createRegistry (): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 })
  return registry
}
