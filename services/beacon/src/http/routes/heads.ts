import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { checkSyncRequest, SYNC_LIMITS } from '@pharos/protocol/log/index.ts'
import type { HeadInfo, SyncRequest, SyncResponse } from '@pharos/protocol/log/index.ts'
import type { SyncResponder } from '../../logs/sync-responder.ts'
import { FailureRef, HttpError } from '../errors.ts'

export interface HeadRoutesOptions {
  /** The libp2p sync protocol's responder: both surfaces answer from the same code. */
  sync: Pick<SyncResponder, 'respond'>
}

/** A comma-separated list of 1024 peer IDs (52 characters each) and its commas. */
const MAX_AUTHORS_PARAM = SYNC_LIMITS.authors * 53
/** Requests from HTTP are answered within this, like sync requests (guess, as log-service.ts). */
const REQUEST_TIMEOUT_MS = 30_000

const HeadSchema = Type.Object({
  author: Type.String({ description: 'The author\'s peer ID' }),
  cid: Type.String({ description: 'Best head CID: highest seq, then lowest CID, among entries whose ancestry reaches genesis' }),
  seq: Type.Integer({ minimum: 0 }),
  forks: Type.Integer({ minimum: 0, description: 'Tips other than the best head' }),
  entries: Type.Integer({ minimum: 0, description: 'Entries the fleet holds for the author, orphans included' })
})
const HeadsSchema = Type.Object({
  heads: Type.Array(HeadSchema),
  cursor: Type.Optional(Type.String({ description: 'With since: the cursor to ask with next (the same one when nothing changed)' }))
})

const json = (head: HeadInfo) => ({ author: head.author, cid: head.cid.toString(), seq: head.seq, forks: head.forks, entries: head.entries })

/**
 * `GET /v1/heads`: the sync protocol's `heads` and `changes` requests for web clients, answered
 * by the same responder with the same bounds and refusals. Public, like the gateway: heads
 * are CIDs of signed entries that the overlay gossips to every registered peer anyway.
 */
export const headRoutes: FastifyPluginAsyncTypebox<HeadRoutesOptions> = async (app, { sync }) => {
  // `?authors=a&authors=b` is the exploded form of `?authors=a,b`; accept both.
  app.addHook('preValidation', async (request) => {
    const query = request.query as Record<string, unknown> | undefined
    if (query !== undefined && Array.isArray(query.authors)) query.authors = query.authors.join(',')
  })

  app.get('/v1/heads', {
    schema: {
      tags: ['logs'],
      summary: 'Best heads of the listed authors (authors=…), or the heads that changed after a cursor (since=…)',
      querystring: Type.Object({
        authors: Type.Optional(Type.String({ maxLength: MAX_AUTHORS_PARAM, description: `Comma-separated author peer IDs, at most ${SYNC_LIMITS.authors}` })),
        since: Type.Optional(Type.String({ maxLength: 64, description: 'A cursor: "0" for from the start, else one a previous answer gave' })),
        limit: Type.Optional(Type.Integer({ description: `With since: heads per answer, 1..${SYNC_LIMITS.changes} (default ${SYNC_LIMITS.changes})` }))
      }),
      response: { 200: HeadsSchema, 400: FailureRef }
    }
  }, async (request) => {
    const { authors, since, limit } = request.query
    if ((authors === undefined) === (since === undefined)) throw new HttpError('badRequest', 'give either authors=<peer IDs> or since=<cursor>, not both')
    if (authors !== undefined && limit !== undefined) throw new HttpError('badRequest', 'limit goes with since, not with authors')
    // Built as the wire request and checked by the wire's own rules, so both refuse alike.
    const checked = checkSyncRequest(authors !== undefined
      ? { t: 'heads', authors: authors.split(',').filter((author) => author.length > 0), known: [] }
      : { t: 'changes', cursor: since, limit: limit ?? SYNC_LIMITS.changes })
    if (!checked.ok) throw new HttpError('badRequest', checked.detail)
    // No `known` heads, so nothing is fetched from the asker and the asker's name is unused.
    const answer: SyncResponse = await sync.respond(checked.value satisfies SyncRequest, 'http', AbortSignal.timeout(REQUEST_TIMEOUT_MS))
    switch (answer.t) {
      case 'heads': return { heads: answer.heads.map(json) }
      case 'changes': return { heads: answer.heads.map(json), cursor: answer.cursor }
      case 'error': throw new HttpError(answer.code === 'bad-request' ? 'badRequest' : 'unavailable', answer.message)
      default: throw new Error(`a ${answer.t} answer to a ${checked.value.t} request`)
    }
  })
}
