import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { FleetMembership } from '../../fleet/membership.ts'
import { InvalidFleetCursorError } from '../../fleet/peer-views.ts'
import type { PeerViews } from '../../fleet/peer-views.ts'
import { FailureRef, HttpError } from '../errors.ts'
import type { NodeView } from '../node-view.ts'

export interface FleetView {
  membership: FleetMembership
  peerViews: PeerViews
}

const WorkerSchema = Type.Object({
  name: Type.String(),
  peerId: Type.String(),
  multiaddrs: Type.Array(Type.String()),
  httpUrl: Type.Union([Type.String(), Type.Null()]),
  startedAt: Type.String({ format: 'date-time' }),
  heartbeatAt: Type.String({ format: 'date-time' }),
  connections: Type.Integer(),
  ready: Type.Boolean(),
  self: Type.Boolean({ description: 'the worker answering this request' })
})

const WorkerPeersSchema = Type.Object({
  scope: Type.Literal('worker'),
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

const FleetPeersSchema = Type.Object({
  scope: Type.Literal('fleet'),
  stale: Type.Boolean({ description: 'Redis could not be read: only this worker\'s own peers are shown' }),
  peers: Type.Array(Type.Object({
    peerId: Type.String(),
    worker: Type.String(),
    workerPeerId: Type.String(),
    addrs: Type.Array(Type.String()),
    transport: Type.String(),
    connected: Type.Boolean(),
    lastSeen: Type.String({ format: 'date-time' })
  })),
  next: Type.Optional(Type.String({ description: 'pass as `cursor` for the next page' }))
})

/** The fleet as Redis sees it (DESIGN.md §6, §7): workers and which peers each holds. */
export const adminFleetRoutes: FastifyPluginAsyncTypebox<{ fleet: FleetView, node: NodeView }> = async (app, { fleet, node }) => {
  app.get('/v1/workers', {
    schema: {
      tags: ['admin'],
      summary: 'Live workers of the fleet (heartbeat within three intervals), from Redis',
      security: [{ bearer: [] }],
      response: {
        200: Type.Object({
          stale: Type.Boolean({ description: 'Redis could not be read: the last list known' }),
          workers: Type.Array(WorkerSchema)
        })
      }
    }
  }, async () => {
    const workers = await fleet.membership.list()
    const self = node.peerId()
    return {
      stale: workers.some((worker) => worker.stale),
      workers: workers.map((worker) => ({
        name: worker.name,
        peerId: worker.peerId,
        multiaddrs: worker.multiaddrs,
        httpUrl: worker.httpUrl,
        startedAt: new Date(worker.startedAt).toISOString(),
        heartbeatAt: new Date(worker.heartbeatAt).toISOString(),
        connections: worker.connections,
        ready: worker.ready,
        self: worker.peerId === self
      }))
    }
  })

  app.get('/v1/peers', {
    schema: {
      tags: ['admin'],
      summary: 'Peers connected to this worker (scope=worker), or held by every worker of the fleet with their addresses and last-seen time (scope=fleet)',
      security: [{ bearer: [] }],
      querystring: Type.Object({
        scope: Type.Union([Type.Literal('worker'), Type.Literal('fleet')], { default: 'worker' }),
        limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
        cursor: Type.Optional(Type.String({ maxLength: 4096, description: 'scope=fleet: `next` of the previous page' }))
      }),
      response: { 200: Type.Union([WorkerPeersSchema, FleetPeersSchema]), 400: FailureRef }
    }
  }, async (request) => {
    const { scope, limit, cursor } = request.query
    if (scope === 'worker') {
      if (cursor !== undefined) throw new HttpError('badRequest', 'cursor pages scope=fleet only')
      return { scope, ...node.peers(limit) }
    }
    let page
    try {
      page = await fleet.peerViews.fleetView(cursor === undefined ? { limit } : { limit, cursor })
    } catch (err) {
      if (err instanceof InvalidFleetCursorError) throw new HttpError('badRequest', err.message)
      throw err
    }
    return {
      scope,
      stale: page.stale,
      peers: page.peers.map((peer) => ({ ...peer, lastSeen: new Date(peer.lastSeen).toISOString() })),
      ...(page.cursor === undefined ? {} : { next: page.cursor })
    }
  })
}
