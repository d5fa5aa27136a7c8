import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'

/**
 * How a CAR response of the gateway ended: sent whole; cut at a limit (or refused before any
 * header by one); refused because too many CAR streams were open; its root is not held;
 * the client went away first; or it failed (a missing, corrupt or malformed block, storage
 * down).
 */
export type CarOutcome = 'complete' | 'limit' | 'busy' | 'not-found' | 'client-closed' | 'error'

/** The trustless gateway's CAR streams (labels are closed sets). */
export function createGatewayMetrics (registry: Registry) {
  return {
    carStreams: new Gauge({
      name: 'pharos_gateway_car_streams',
      help: 'CAR responses this worker is streaming now (capped by PHAROS_GATEWAY_CAR_MAX_STREAMS)',
      registers: [registry]
    }),
    carResponses: new Counter({
      name: 'pharos_gateway_car_responses_total',
      help: 'CAR requests by how they ended: complete, limit (cut or refused by a limit), busy (429), not-found, client-closed, error',
      labelNames: ['outcome'] as const,
      registers: [registry]
    })
  }
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>
