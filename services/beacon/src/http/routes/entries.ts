import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CID } from 'multiformats/cid'
import { Type } from 'typebox'
import type { LogStore } from '../../logs/log-store.ts'
import { TokenBuckets } from '../../logs/token-buckets.ts'
import type { WebEntries, WebEntryRefusal } from '../../logs/web-entries.ts'
import type { LimitMetrics } from '../../metrics/limit-metrics.ts'
import { sourceKey } from '../../net/source-address.ts'
import type { ReceiptIssuer } from '../../receipts/receipt-issuer.ts'
import { FailureRef, HttpError } from '../errors.ts'
import type { HttpErrorName } from '../errors.ts'

export interface EntryRoutesOptions {
  entries: Pick<WebEntries, 'submit'>
  logs: Pick<LogStore, 'has'>
  /** Signs the receipts; `signer` is the worker's peer ID. */
  receipts: Pick<ReceiptIssuer, 'forDag' | 'signer'>
  /** PHAROS_ENTRIES_MAX_BODY_BYTES: the largest CAR accepted (413 past it). */
  maxBodyBytes: number
  /** PHAROS_ENTRIES_PER_MINUTE_PER_IP: posts one client may make per minute (429 past it). */
  perMinutePerIp: number
  limitMetrics: Pick<LimitMetrics, 'blocked'>
}

const CAR_CONTENT_TYPE = 'application/vnd.ipld.car'

const STATUS_OF: Record<WebEntryRefusal['kind'], HttpErrorName> = {
  malformed: 'badRequest',
  forbidden: 'forbidden',
  'too-large': 'payloadTooLarge',
  'rate-limited': 'tooManyRequests',
  unavailable: 'unavailable'
}

const AcceptedSchema = Type.Object({
  cid: Type.String({ description: 'The entry\'s CID: what it is stored, pinned and gossiped under' }),
  status: Type.Union([Type.Literal('accepted'), Type.Literal('duplicate')], { description: 'accepted: stored now and broadcast on the overlay; duplicate: stored before, nothing new was done' }),
  receipt: Type.String({ description: 'Where to ask for the worker\'s signed receipt once the entry and its content are pinned' })
})

const ReceiptSchema = Type.Object({
  cid: Type.String(),
  signer: Type.String({ description: 'The worker\'s peer ID: the receipt verifies against it' }),
  receipt: Type.String({ description: 'The signed pin receipt statement (scope: entry), base64' })
})

const PendingSchema = Type.Object({
  cid: Type.String(),
  status: Type.Literal('pinning', { description: 'The entry is stored and its pin is under way; ask again' })
})

/**
 * The web mirror's write path (logs/web-entries.ts): `POST /v1/entries` takes a CAR whose
 * root is an entry its author signed, with the blocks of its content; `GET
 * /v1/entries/{cid}/receipt` answers the worker's signed receipt once it is pinned. Public,
 * like the gateway: what is posted carries its author's signature and must be a registered
 * account's, and each client (IP, IPv6 /64) and each author is rate-limited.
 */
export const entryRoutes: FastifyPluginAsyncTypebox<EntryRoutesOptions> = async (app, options) => {
  const perIp = TokenBuckets.perMinute(options.perMinutePerIp)

  app.addContentTypeParser(CAR_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: options.maxBodyBytes }, (_request, body, done) => { done(null, body) })

  app.post('/v1/entries', {
    bodyLimit: options.maxBodyBytes,
    // Before the body is read: a client over its rate costs the worker no upload.
    onRequest: async (request, reply) => {
      const client = sourceKey(request.ip)
      if (perIp.take(client)) return
      options.limitMetrics.blocked('entriesPerMinutePerIp')
      void reply.header('retry-after', String(Math.max(1, Math.ceil(perIp.msUntilToken(client) / 1000))))
      throw new HttpError('tooManyRequests', `PHAROS_ENTRIES_PER_MINUTE_PER_IP: this client posted more than ${options.perMinutePerIp} entries a minute`, 'CLIENT_RATE_LIMITED')
    },
    schema: {
      tags: ['logs'],
      summary: 'Publish a signed log entry with its content blocks (a CAR whose root is the entry), as if it came by gossip',
      consumes: [CAR_CONTENT_TYPE],
      response: { 202: AcceptedSchema, 400: FailureRef, 403: FailureRef, 413: FailureRef, 415: FailureRef, 429: FailureRef, 503: FailureRef }
    }
  }, async (request, reply) => {
    const body = request.body
    if (!(body instanceof Uint8Array)) throw new HttpError('unsupportedMediaType', `send the entry as ${CAR_CONTENT_TYPE}`)
    const result = await options.entries.submit(body)
    if (!result.ok) {
      const { refusal } = result
      if (refusal.kind === 'rate-limited') {
        if (refusal.reason === 'AUTHOR_RATE_LIMITED') options.limitMetrics.blocked('entriesPerMinutePerAuthor')
        void reply.header('retry-after', String(Math.max(1, Math.ceil(refusal.retryAfterMs / 1000))))
      }
      if (refusal.kind === 'unavailable') void reply.header('retry-after', '5')
      throw new HttpError(STATUS_OF[refusal.kind], refusal.message, refusal.reason)
    }
    const cid = result.cid.toString()
    const receipt = `/v1/entries/${cid}/receipt`
    return await reply.code(202).header('location', receipt).send({ cid, status: result.status, receipt })
  })

  app.get('/v1/entries/:cid/receipt', {
    schema: {
      tags: ['logs'],
      summary: 'The worker\'s signed receipt for a posted entry and its content, once pinned (202 while its pin is under way)',
      params: Type.Object({ cid: Type.String({ maxLength: 512 }) }),
      response: { 200: ReceiptSchema, 202: PendingSchema, 400: FailureRef, 404: FailureRef }
    }
  }, async (request, reply) => {
    let cid: CID
    try {
      cid = CID.parse(request.params.cid)
    } catch (err) {
      throw new HttpError('badRequest', `not a CID: ${err instanceof Error ? err.message : String(err)}`)
    }
    const held = (await options.logs.has([cid.bytes])).get(Buffer.from(cid.bytes).toString('hex'))
    if (held === undefined) throw new HttpError('notFound', `no entry ${cid.toString()} is stored here`, 'UNKNOWN_ENTRY')
    const issued = held.pinned ? await options.receipts.forDag({ cid }) : undefined
    if (issued?.ok !== true) return await reply.code(202).send({ cid: cid.toString(), status: 'pinning' as const })
    return { cid: cid.toString(), signer: options.receipts.signer, receipt: Buffer.from(issued.statement).toString('base64') }
  })
}
