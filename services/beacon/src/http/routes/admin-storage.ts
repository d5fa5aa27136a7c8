import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { GcAlreadyRunningError } from '../../pinning/garbage-collector.ts'
import type { GarbageCollector } from '../../pinning/garbage-collector.ts'
import type { PinStore } from '../../pinning/pin-store.ts'
import type { PgBlockstore } from '../../storage/pg-blockstore.ts'
import { FailureRef, HttpError } from '../errors.ts'

export interface AdminStorageRoutesOptions {
  gc: Pick<GarbageCollector, 'run'>
  pins: Pick<PinStore, 'usageByOwner'>
  blockstore: Pick<PgBlockstore, 'totals'>
}


/** Storage operations for operators: garbage collection on demand, and who holds what. */
export const adminStorageRoutes: FastifyPluginAsyncTypebox<AdminStorageRoutesOptions> = async (app, { gc, pins, blockstore }) => {
  app.post('/v1/gc', {
    schema: {
      tags: ['admin'],
      summary: 'Run block GC now (one runs at a time across the fleet) and report what it freed',
      security: [{ bearer: [] }],
      response: {
        200: Type.Object({
          blocks: Type.Integer({ description: 'Blocks removed' }),
          bytes: Type.Integer({ description: 'Bytes of block data removed' }),
          ms: Type.Integer()
        }),
        409: FailureRef
      }
    }
  }, async () => {
    try {
      return await gc.run()
    } catch (err) {
      if (err instanceof GcAlreadyRunningError) throw new HttpError('gcRunning', err.message)
      throw err
    }
  })

  app.get('/v1/storage', {
    schema: {
      tags: ['admin'],
      summary: 'Blocks and bytes stored, and what each pin owner holds (a block shared by pins counts once per owner)',
      security: [{ bearer: [] }],
      response: {
        200: Type.Object({
          blocks: Type.Integer(),
          bytes: Type.Integer(),
          owners: Type.Array(Type.Object({
            owner: Type.String(),
            pins: Type.Integer(),
            blocks: Type.Integer(),
            bytes: Type.Integer()
          }))
        })
      }
    }
  }, async () => ({ ...await blockstore.totals(), owners: await pins.usageByOwner() }))
}
