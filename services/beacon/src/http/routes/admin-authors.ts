import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { Type } from 'typebox'
import { InvalidCursorError } from '../../logs/log-store.ts'
import type { LogStore } from '../../logs/log-store.ts'
import { FailureRef, HttpError } from '../errors.ts'

const cidString = (bytes: Uint8Array): string => CID.decode(bytes).toString()

const AuthorParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128, description: 'The author\'s peer ID' }) })

const AuthorSchema = Type.Object({
  author: Type.String(),
  head: Type.Union([Type.String(), Type.Null()], { description: 'Best head CID: highest seq, then lowest CID, among connected entries; null while only orphans are stored' }),
  seq: Type.Union([Type.Integer(), Type.Null()], { description: 'The head\'s seq' }),
  entries: Type.Integer({ description: 'Entries stored, orphans included' }),
  connected: Type.Integer({ description: 'Entries whose ancestry reaches the genesis entry' }),
  orphans: Type.Integer({ description: 'Entries whose ancestry has a gap' }),
  forks: Type.Integer({ description: 'Connected tips beyond the first' }),
  equivocations: Type.Integer({ description: 'Heights at which the author signed more than one entry' }),
  bytesPinned: Type.Integer({ description: 'Sum of the DAG sizes of the author\'s pinned entry pins' }),
  change: Type.String({ description: 'Version of this summary; grows on every change' })
})

const EntrySchema = Type.Object({
  cid: Type.String(),
  seq: Type.Integer(),
  prev: Type.Union([Type.String(), Type.Null()]),
  action: Type.String(),
  timestamp: Type.Integer({ description: 'The author\'s clock, ms since the epoch (informational)' }),
  receivedAt: Type.String({ format: 'date-time' }),
  connected: Type.Boolean(),
  pinned: Type.Boolean(),
  size: Type.Integer({ description: 'Bytes of the entry block' })
})

/** The author's peer ID as the log stores it; anything else is a 400 naming why. */
function authorId (id: string): string {
  try {
    return peerIdFromString(id).toString()
  } catch {
    throw new HttpError('badRequest', `${id} is not a peer ID`)
  }
}

/** Authors' signed logs as this fleet holds them: best head, counts, and the entries. */
export const adminAuthorRoutes: FastifyPluginAsyncTypebox<{ logs: Pick<LogStore, 'author' | 'entries'> }> = async (app, { logs }) => {
  app.get('/v1/authors/:id', {
    schema: {
      tags: ['admin'],
      summary: 'An author\'s best head and log counts',
      security: [{ bearer: [] }],
      params: AuthorParams,
      response: { 200: AuthorSchema, 400: FailureRef, 404: FailureRef }
    }
  }, async (request) => {
    const summary = await logs.author(authorId(request.params.id))
    if (summary === undefined) throw new HttpError('notFound', `no log entries of ${request.params.id}`)
    return {
      author: summary.author,
      head: summary.head === null ? null : cidString(summary.head.cid),
      seq: summary.head?.seq ?? null,
      entries: summary.entries,
      connected: summary.connected,
      orphans: summary.orphans,
      forks: summary.forks,
      equivocations: summary.equivocations,
      bytesPinned: summary.bytesPinned,
      change: summary.change
    }
  })

  app.get('/v1/authors/:id/entries', {
    schema: {
      tags: ['admin'],
      summary: 'An author\'s entries, highest seq first (lowest CID first within a seq); pass `next` as `cursor` for the following page',
      security: [{ bearer: [] }],
      params: AuthorParams,
      querystring: Type.Object({
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        cursor: Type.Optional(Type.String({ maxLength: 300 }))
      }),
      response: {
        200: Type.Object({ entries: Type.Array(EntrySchema), next: Type.Optional(Type.String()) }),
        400: FailureRef,
        404: FailureRef
      }
    }
  }, async (request) => {
    const author = authorId(request.params.id)
    let page
    try {
      page = await logs.entries(author, { limit: request.query.limit, before: request.query.cursor })
    } catch (err) {
      if (err instanceof InvalidCursorError) throw new HttpError('badRequest', err.message)
      throw err
    }
    if (page.entries.length === 0 && request.query.cursor === undefined) throw new HttpError('notFound', `no log entries of ${request.params.id}`)
    return {
      entries: page.entries.map((entry) => ({
        cid: cidString(entry.cid),
        seq: entry.seq,
        prev: entry.prev === null ? null : cidString(entry.prev),
        action: entry.action,
        timestamp: entry.timestamp,
        receivedAt: entry.receivedAt.toISOString(),
        connected: entry.connected,
        pinned: entry.pinnedAt !== null,
        size: entry.size
      })),
      ...(page.next === undefined ? {} : { next: page.next })
    }
  })
}
