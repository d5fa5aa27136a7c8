import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Registry } from 'prom-client'

export const metricsRoutes: FastifyPluginAsyncTypebox<{ registry: Registry }> = async (app, { registry }) => {
  // Never shed: an overloaded worker is when operators need its figures most.
  app.get('/metrics', {
    config: { shedUnderPressure: false },
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics: process, libp2p and pharos_*',
      response: { 200: Type.String() }
    }
  }, async (_request, reply) => {
    const body = await registry.metrics()
    return await reply.type(registry.contentType).send(body)
  })
}
