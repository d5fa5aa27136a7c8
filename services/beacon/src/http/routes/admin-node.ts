import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Config } from '../../config/schema.ts'
import { schema } from '../../config/schema.ts'
import type { NodeView } from '../node-view.ts'

const limitKeys = (Object.keys(schema) as Array<keyof typeof schema>)
  .filter((key) => schema[key].group === 'limits' || schema[key].group === 'relay')

export const adminNodeRoutes: FastifyPluginAsyncTypebox<{ config: Config, node: NodeView }> = async (app, { config, node }) => {
  app.get('/v1/node', {
    schema: {
      tags: ['admin'],
      summary: 'This worker: peer ID, multiaddrs and the limits it enforces',
      security: [{ bearer: [] }],
      response: {
        200: Type.Object({
          peerId: Type.String(),
          multiaddrs: Type.Array(Type.String()),
          limits: Type.Record(Type.String(), Type.Number())
        })
      }
    }
  }, async () => ({
    peerId: node.peerId(),
    multiaddrs: node.multiaddrs(),
    limits: Object.fromEntries(limitKeys.map((key) => [key, Number(config[key])]))
  }))

  app.get('/v1/peers', {
    schema: {
      tags: ['admin'],
      summary: 'Peers connected to this worker',
      security: [{ bearer: [] }],
      querystring: Type.Object({
        limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 })
      }),
      response: {
        200: Type.Object({
          total: Type.Integer(),
          peers: Type.Array(Type.Object({
            peerId: Type.String(),
            connections: Type.Array(Type.Object({
              remoteAddr: Type.String(),
              transport: Type.String(),
              direction: Type.Union([Type.Literal('inbound'), Type.Literal('outbound')]),
              openedAt: Type.String({ format: 'date-time' })
            }))
          }))
        })
      }
    }
  }, async (request) => node.peers(request.query.limit))
}
