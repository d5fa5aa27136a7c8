import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BAN_REASONS, canonicalBanPeer, InvalidBanPeerError } from '../../bans/ban-list.ts'
import type { Ban, BanList } from '../../bans/ban-list.ts'
import { FailureRef, HttpError } from '../errors.ts'

const banProperties = {
  peer: Type.String({ description: 'The banned peer ID' }),
  reason: Type.Enum(BAN_REASONS),
  detail: Type.String(),
  bannedBy: Type.String({ description: 'The worker peer ID that banned it, or "admin"' }),
  createdAt: Type.String({ format: 'date-time' }),
  evidenceBytes: Type.Union([Type.Integer(), Type.Null()], { description: 'Size of the stored evidence (GET /v1/bans/{peer} returns it)' }),
  envelopeBytes: Type.Union([Type.Integer(), Type.Null()], { description: 'Size of the stored publish envelope (GET /v1/bans/{peer} returns it)' })
}

const BanSchema = Type.Object(banProperties)

const BanWithEvidenceSchema = Type.Object({
  ...banProperties,
  evidence: Type.Union([Type.String({ contentEncoding: 'base64' }), Type.Null()], { description: 'e.g. the entry block whose signature failed, base64' }),
  envelope: Type.Union([Type.String({ contentEncoding: 'base64' }), Type.Null()], {
    description: 'For a bad-signature ban, the publish envelope the banned peer signed around the evidence, base64 (docs/logs.md): its signature verifies against the banned peer ID, and the entry inside it is the evidence, whose author signature fails. Null for admin bans.'
  })
})

const PeerParams = Type.Object({ peer: Type.String({ minLength: 1, maxLength: 128 }) })

function view (ban: Ban) {
  return {
    peer: ban.peer,
    reason: ban.reason,
    detail: ban.detail,
    bannedBy: ban.bannedBy,
    createdAt: ban.createdAt.toISOString(),
    evidenceBytes: ban.evidence === null ? null : ban.evidence.length,
    envelopeBytes: ban.envelope === null ? null : ban.envelope.length
  }
}

/** A peer ID as bans store it; a path or body value that is not one is a 400 naming why. */
function canonical (peer: string): string {
  try {
    return canonicalBanPeer(peer)
  } catch (err) {
    if (err instanceof InvalidBanPeerError) throw new HttpError('badRequest', err.message)
    throw err
  }
}

/** Banned peers (fleet-wide): listed, added by an operator, lifted. */
/** What the ban routes use of the ban list. */
export type BanAdmin = Pick<BanList, 'ban' | 'count' | 'get' | 'list' | 'unban'>

export const adminBanRoutes: FastifyPluginAsyncTypebox<{ bans: BanAdmin }> = async (app, { bans }) => {
  app.get('/v1/bans', {
    schema: {
      tags: ['admin'],
      summary: 'Banned peers, in peer ID order; pass `next` as `after` for the following page',
      security: [{ bearer: [] }],
      querystring: Type.Object({
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        after: Type.Optional(Type.String({ maxLength: 128 }))
      }),
      response: {
        200: Type.Object({
          count: Type.Integer({ description: 'Peers banned in the fleet' }),
          bans: Type.Array(BanSchema),
          next: Type.Optional(Type.String())
        })
      }
    }
  }, async (request) => {
    const page = await bans.list({ limit: request.query.limit, after: request.query.after })
    return { count: await bans.count(), bans: page.bans.map(view), ...(page.next === undefined ? {} : { next: page.next }) }
  })

  app.get('/v1/bans/:peer', {
    schema: {
      tags: ['admin'],
      summary: 'One ban, with its evidence and, for a bad-signature ban, the envelope that proves it',
      security: [{ bearer: [] }],
      params: PeerParams,
      response: { 200: BanWithEvidenceSchema, 400: FailureRef, 404: FailureRef }
    }
  }, async (request) => {
    const ban = await bans.get(canonical(request.params.peer))
    if (ban === undefined) throw new HttpError('notFound', `${request.params.peer} is not banned`)
    const base64 = (bytes: Uint8Array | null): string | null => bytes === null ? null : Buffer.from(bytes).toString('base64')
    return { ...view(ban), evidence: base64(ban.evidence), envelope: base64(ban.envelope) }
  })

  app.post('/v1/bans', {
    schema: {
      tags: ['admin'],
      summary: 'Ban a peer (an ed25519 peer ID) fleet-wide: every worker refuses and drops its connections; 201 when new, 200 when it already was',
      security: [{ bearer: [] }],
      body: Type.Object({
        peer: Type.String({ minLength: 1, maxLength: 128 }),
        detail: Type.Optional(Type.String({ maxLength: 1000 }))
      }, { additionalProperties: false }),
      response: { 201: BanSchema, 200: BanSchema, 400: FailureRef }
    }
  }, async (request, reply) => {
    const peer = canonical(request.body.peer)
    const created = await bans.ban({ peer, reason: 'admin', detail: request.body.detail ?? '', bannedBy: 'admin' })
    const ban = await bans.get(peer)
    if (ban === undefined) throw new HttpError('conflict', `${peer} was unbanned while being banned`)
    return await reply.code(created ? 201 : 200).send(view(ban))
  })

  app.delete('/v1/bans/:peer', {
    schema: {
      tags: ['admin'],
      summary: 'Lift a ban; other workers follow on their next refresh',
      security: [{ bearer: [] }],
      params: PeerParams,
      response: { 204: Type.Null(), 404: FailureRef }
    }
  }, async (request, reply) => {
    if (!await bans.unban(request.params.peer)) throw new HttpError('notFound', `${request.params.peer} is not banned`)
    return await reply.code(204).send(null)
  })
}
