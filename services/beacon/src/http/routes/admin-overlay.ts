import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { OverlayDriver } from '../../overlay/overlay-driver.ts'

const Peers = Type.Array(Type.String())

export const adminOverlayRoutes: FastifyPluginAsyncTypebox<{ overlay: OverlayDriver }> = async (app, { overlay }) => {
  app.get('/v1/overlay', {
    schema: {
      tags: ['admin'],
      summary: 'HyParView views and Plumtree eager/lazy sets per topic',
      security: [{ bearer: [] }],
      response: {
        200: Type.Object({
          topics: Type.Record(Type.String(), Type.Object({
            networkSize: Type.Integer(),
            activeCapacity: Type.Integer(),
            passiveCapacity: Type.Integer(),
            active: Peers,
            passive: Peers,
            pending: Peers,
            reconnecting: Peers,
            eager: Peers,
            lazy: Peers,
            cachedMessages: Type.Integer(),
            missingMessages: Type.Integer()
          }))
        })
      }
    }
  }, async () => {
    const topics = Object.fromEntries(Object.entries(overlay.snapshot()).map(([topic, view]) => [topic, {
      networkSize: view.networkSize,
      activeCapacity: view.activeCapacity,
      passiveCapacity: view.passiveCapacity,
      active: [...view.active],
      passive: [...view.passive],
      pending: [...view.pending],
      reconnecting: [...view.reconnecting],
      eager: [...view.eager],
      lazy: [...view.lazy],
      cachedMessages: view.cachedMessages,
      missingMessages: view.missingMessages
    }]))
    return { topics }
  })
}
