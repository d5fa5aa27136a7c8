import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { DEFAULT_REGISTRY_PAGE, MAX_REGISTRY_PAGE } from '@pharos/protocol/registry/index.ts'
import { BadRegistryRequestError } from '../../accounts/registry-service.ts'
import type { RegistryService } from '../../accounts/registry-service.ts'
import { FailureRef, HttpError } from '../errors.ts'

const PeerIds = Type.Array(Type.String({ description: 'An ed25519 peer ID (12D3KooW…)' }))

/**
 * The registry of accounts, public: which keys may join the overlay is what every peer
 * must know to gate its own views, and N sizes them (docs/registry.md). The same signed page
 * as `/<network>/registry/1.0.0`; the decoded fields are for reading, `statement` is what a
 * peer verifies (with the fleet's registry key, `signer`).
 */
export const registryRoutes: FastifyPluginAsyncTypebox<{ registry: Pick<RegistryService, 'page'> }> = async (app, { registry }) => {
  app.get('/v1/registry', {
    schema: {
      tags: ['registry'],
      summary: 'The registered accounts, signed by the fleet\'s registry key: a snapshot page, or the changes since `cursor`',
      querystring: Type.Object({
        cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The `cursor` of a page: answers the changes since it (a cursor this worker does not know, or too old, gets a fresh snapshot)' })),
        after: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'The last account of the previous snapshot page (when `more` was true)' })),
        limit: Type.Integer({ minimum: 1, maximum: MAX_REGISTRY_PAGE, default: DEFAULT_REGISTRY_PAGE, description: 'Accounts (or changed accounts) per page' })
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          network: Type.String(),
          kind: Type.Union([Type.Literal('snapshot'), Type.Literal('changes')]),
          cursor: Type.String({ description: 'Send it back as `cursor` for the changes since this page' }),
          count: Type.Integer({ description: 'N: the registered accounts' }),
          accounts: Type.Array(Type.String(), { description: 'A snapshot page\'s accounts, in peer ID order; of changes, the accounts registered now' }),
          removed: PeerIds,
          more: Type.Boolean({ description: 'A snapshot: another page follows (ask with `after`); changes: more wait (ask with the new `cursor`)' }),
          issuedAt: Type.String({ format: 'date-time' }),
          signer: Type.String({ description: 'The fleet\'s registry key, as a peer ID' }),
          statement: Type.String({ description: 'The signed page, base64 (canonical dag-cbor statement of kind `registry`)' })
        }),
        400: FailureRef
      }
    }
  }, async (request) => {
    const { cursor, after, limit } = request.query
    try {
      const { page, statement, signer } = await registry.page({ cursor: cursor ?? null, after: after ?? null, limit })
      return { ...page, issuedAt: new Date(page.issuedAt).toISOString(), signer, statement: Buffer.from(statement).toString('base64') }
    } catch (err) {
      if (err instanceof BadRegistryRequestError) throw new HttpError('badRequest', err.message)
      throw err
    }
  })
}
