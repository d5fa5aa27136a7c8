import type { FastifyReply, FastifyRequest } from 'fastify'
import type { HttpMetrics } from './http-metrics.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import { sendFailure } from './errors.ts'
import { PRESSURE_LIMIT_KEYS } from './pressure-monitor.ts'
import type { PressureMonitor } from './pressure-monitor.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * false: the route answers even while the worker is overloaded. For the operator's
     * routes only: `/healthz`, `/readyz`, `/metrics` cost next to nothing and are what a
     * kubelet, a load balancer and Prometheus need most under load; the admin API (`/v1`
     * behind its token) is how an operator bans an attack's peers. @default true
     */
    shedUnderPressure?: boolean
  }
}

/**
 * Seconds a shed client is asked to wait. Long enough for the pressure to have passed
 * (the monitor clears 1–2 s after it ends) and for a load balancer's readiness probe
 * (Kubernetes' default period is 10 s) to have moved new traffic elsewhere
 * (`@fastify/under-pressure`'s default).
 */
export const SHED_RETRY_AFTER_S = 10

export interface LoadSheddingDeps {
  pressure: Pick<PressureMonitor, 'overload'>
  metrics: Pick<HttpMetrics, 'requestsShed'>
  limitMetrics: Pick<LimitMetrics, 'blocked'>
}

/**
 * An `onRequest` hook for the whole app: while the worker is overloaded (event-loop delay,
 * heap or RSS over their PHAROS_HTTP_PRESSURE_* keys), every route but those that opt out
 * (`shedUnderPressure: false`)
 * answers 503 with Retry-After and the reason, before its body is read or any other hook
 * runs. Shedding HTTP first leaves the loop to the peers already connected.
 */
export function shedUnderPressure ({ pressure, metrics, limitMetrics }: LoadSheddingDeps) {
  return async function shedWhenOverloaded (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (request.routeOptions.config.shedUnderPressure === false) return
    const overload = pressure.overload()
    if (overload === undefined) return
    metrics.requestsShed.inc({ reason: overload.signal })
    limitMetrics.blocked(PRESSURE_LIMIT_KEYS[overload.signal])
    void reply.header('retry-after', String(SHED_RETRY_AFTER_S))
    await sendFailure(reply, 'overloaded', `the worker is overloaded: ${overload.reason}; retry in ${SHED_RETRY_AFTER_S} s or on another worker`)
    return reply
  }
}
