import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Readiness } from '../../health.ts'

const ReadinessSchema = Type.Object({
  ready: Type.Boolean(),
  status: Type.Union([Type.Literal('ready'), Type.Literal('degraded'), Type.Literal('not-ready')]),
  checks: Type.Record(Type.String(), Type.String())
})

export const healthRoutes: FastifyPluginAsyncTypebox<{ readiness: Readiness }> = async (app, { readiness }) => {
  // Liveness never sheds: a kubelet that restarts an overloaded worker only moves its load.
  app.get('/healthz', {
    config: { shedUnderPressure: false },
    schema: {
      tags: ['operations'],
      summary: 'Liveness: the process answers HTTP',
      response: { 200: Type.Object({ status: Type.Literal('ok') }) }
    }
  }, async () => ({ status: 'ok' as const }))

  // Readiness answers under load too: it is how a load balancer learns of the overload.
  app.get('/readyz', {
    config: { shedUnderPressure: false },
    schema: {
      tags: ['operations'],
      summary: 'Readiness: libp2p listens, storage answers, not overloaded, not draining (200 with status degraded while Redis is down)',
      response: { 200: ReadinessSchema, 503: ReadinessSchema }
    }
  }, async (_request, reply) => {
    const report = await readiness.report()
    return await reply.code(report.ready ? 200 : 503).send(report)
  })
}
