import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'

const Peers = Type.Array(Type.String())
const Count = Type.Integer({ minimum: 0 })
const Bucket = Type.Object({ perSecond: Type.Number(), burst: Type.Number() })

export const adminOverlayRoutes: FastifyPluginAsyncTypebox<{ overlay: OverlayDriver }> = async (app, { overlay }) => {
  app.get('/v1/overlay', {
    schema: {
      tags: ['admin'],
      summary: 'HyParView views and Plumtree eager/lazy sets per topic; every neighbour\'s score and budget',
      description: 'neighbours: each overlay neighbour remembered (lowest score first) with its score (0 is clean; below `scoring.threshold` it is dropped), the tokens left in its data and control buckets, its offences by kind, how often it was dropped, and until when it is kept out (docs/overlay-driver.md "Budgets and scores").',
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
          })),
          neighbourBudget: Type.Object({
            data: Bucket,
            control: Bucket,
            scoring: Type.Object({
              threshold: Type.Number(),
              halfLifeMs: Type.Number(),
              backOffMs: Type.Number(),
              backOffMaxMs: Type.Number(),
              weights: Type.Object({
                'invalid-payload': Type.Number(),
                'unsolicited-graft': Type.Number(),
                'ihave-flood': Type.Number(),
                'control-flood': Type.Number(),
                'data-flood': Type.Number()
              })
            })
          }),
          neighbours: Type.Array(Type.Object({
            peer: Type.String(),
            score: Type.Number(),
            dataTokens: Count,
            controlTokens: Count,
            offences: Type.Object({
              'invalid-payload': Count,
              'unsolicited-graft': Count,
              'ihave-flood': Count,
              'control-flood': Count,
              'data-flood': Count
            }),
            drops: Count,
            backOffUntil: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
            lastBackOffMs: Type.Union([Type.Integer(), Type.Null()])
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
    const { budget, scoring } = overlay.neighbourRules()
    const neighbourBudget = {
      data: { perSecond: budget.dataFramesPerSecond, burst: budget.dataFramesBurst },
      control: { perSecond: budget.controlFramesPerSecond, burst: budget.controlFramesBurst },
      scoring: {
        threshold: scoring.threshold,
        halfLifeMs: scoring.halfLifeMs,
        backOffMs: scoring.backOffMs,
        backOffMaxMs: scoring.backOffMaxMs,
        weights: { ...scoring.weights }
      }
    }
    const neighbours = overlay.neighbours().map((state) => ({
      ...state,
      backOffUntil: state.backOffUntil === null ? null : new Date(state.backOffUntil).toISOString()
    }))
    return { topics, neighbourBudget, neighbours }
  })
}
