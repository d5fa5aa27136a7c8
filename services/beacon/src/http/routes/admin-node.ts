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
      summary: 'This worker: peer ID, multiaddrs and the limits it enforces (GET /v1/peers lists its peers)',
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
}
