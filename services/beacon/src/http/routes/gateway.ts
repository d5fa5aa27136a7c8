import type { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CID } from 'multiformats/cid'
import { Type } from 'typebox'
import { schema } from '../../config/schema.ts'
import type { GatewayMetrics } from '../../metrics/gateway-metrics.ts'
import type { LimitMetrics } from '../../metrics/limit-metrics.ts'
import { CAR_CONTENT_TYPE, CarLimitError, CarWalk } from '../../storage/car-stream.ts'
import type { CarLimits, DagScope } from '../../storage/car-stream.ts'
import { MalformedBlockError, UnsupportedCodecError } from '../../storage/dag-links.ts'
import { BlockHashMismatchError } from '../../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../../storage/pg-blockstore.ts'
import { CarResponse } from '../car-response.ts'
import { CarStreamSlots } from '../car-stream-slots.ts'
import { sourceKey } from '../../net/source-address.ts'
import type { CarStreamSlotLimits } from '../car-stream-slots.ts'
import { FailureRef, HttpError } from '../errors.ts'

export interface GatewayRoutesOptions {
  /** Read directly, never through Helia: a gateway request must not fetch from the network. */
  blockstore: Pick<PgBlockstore, 'getBytes'>
  /** What one CAR response may carry. */
  carLimits: CarLimits
  /** Longest one CAR response may stream (PHAROS_GATEWAY_CAR_TIMEOUT_MS). */
  carTimeoutMs: number
  /** CAR streams open at once, on the worker and per client. */
  carStreams: CarStreamSlotLimits
  limitMetrics: Pick<LimitMetrics, 'blocked'>
  metrics: GatewayMetrics
}

const RAW = 'application/vnd.ipld.raw'
const CAR = 'application/vnd.ipld.car'
/** Blocks are immutable: a year, as the trustless gateway spec suggests for /ipfs/. */
const IMMUTABLE = 'public, max-age=29030400, immutable'

// Bytes or a stream go out as they are (Fastify serializes only objects); HEAD sends none.
const Binary = Type.Unsafe<Uint8Array | Readable | undefined>({ type: 'string', format: 'binary' })

/**
 * Retry-After of a CAR request refused because the stream caps are full (guess: the CARs of
 * posts and small files are sent within a few seconds).
 */
const BUSY_RETRY_AFTER_SECONDS = 5

/**
 * The response format from `?format=` or else the first acceptable Accept entry; a CAR
 * request must allow version 1 and depth-first (or unknown) order, which is what we send.
 */
function negotiate (format: 'raw' | 'car' | undefined, accept: string | undefined): 'raw' | 'car' | undefined {
  if (format !== undefined) return format
  for (const entry of (accept ?? '').split(',')) {
    const [type = '', ...rawParams] = entry.split(';').map((part) => part.trim().toLowerCase())
    const params = new Map(rawParams.map((param) => param.split('=').map((part) => part.trim()) as [string, string]))
    if (params.get('q') === '0') continue
    if (type === RAW) return 'raw'
    if (type === CAR && (params.get('version') ?? '1') === '1' && ['dfs', 'unk'].includes(params.get('order') ?? 'dfs')) return 'car'
  }
  return undefined
}

/**
 * Trustless HTTP gateway (raw blocks and CARs) for content this worker's fleet holds:
 * anything not in the blockstore is 404, and nothing is ever fetched from the network to
 * answer. A corrupt block is never sent: a raw request gets 500 BLOCK_HASH_MISMATCH, and a
 * CAR stream is cut off before the bad block.
 *
 * A CAR costs a walk of the DAG, so each is bounded (docs/storage.md): it needs a slot
 * under PHAROS_GATEWAY_CAR_MAX_STREAMS and _PER_IP (else 429 before anything is read); the
 * CAR limits are checked on the root before any header (403) and then as the walk goes;
 * and PHAROS_GATEWAY_CAR_TIMEOUT_MS cuts it off. A stream cut mid-way is destroyed, so the
 * client sees a failed transfer, never a CAR that looks complete.
 */
export const gatewayRoutes: FastifyPluginAsyncTypebox<GatewayRoutesOptions> = async (app, options) => {
  const { blockstore, carLimits, limitMetrics, metrics } = options
  const slots = new CarStreamSlots(options.carStreams)

  app.route({
    method: ['GET', 'HEAD'],
    url: '/ipfs/:cid',
    exposeHeadRoute: false,
    schema: {
      tags: ['gateway'],
      summary: 'A block (application/vnd.ipld.raw) or a DAG as a CAR (application/vnd.ipld.car) this service holds',
      params: Type.Object({ cid: Type.String({ maxLength: 512 }) }),
      querystring: Type.Object({
        format: Type.Optional(Type.Union([Type.Literal('raw'), Type.Literal('car')])),
        'dag-scope': Type.Union([Type.Literal('all'), Type.Literal('entity'), Type.Literal('block')], { default: 'all' })
      }),
      headers: Type.Object({ accept: Type.Optional(Type.String()) }),
      response: {
        200: {
          description: 'The block, or the CAR stream',
          content: { [RAW]: { schema: Binary }, [CAR]: { schema: Binary } }
        },
        400: FailureRef,
        403: FailureRef,
        404: FailureRef,
        406: FailureRef,
        422: FailureRef,
        429: FailureRef,
        500: FailureRef
      }
    },
    handler: async (request, reply) => {
      let cid: CID
      try {
        cid = CID.parse(request.params.cid)
      } catch {
        throw new HttpError('badRequest', `${JSON.stringify(request.params.cid)} is not a CID`)
      }
      const format = negotiate(request.query.format, request.headers.accept)
      if (format === undefined) throw new HttpError('notAcceptable', `send Accept: ${RAW} or ${CAR} (or ?format=raw|car)`)
      const scope: DagScope = request.query['dag-scope']

      // A CAR body holds a stream slot from before its root is read until its response
      // closes (sent, cut off, refused, or the client went away).
      let car: CarResponse | undefined
      if (format === 'car' && request.method === 'GET') {
        const slot = slots.acquire(sourceKey(request.ip))
        if ('key' in slot) {
          limitMetrics.blocked(slot.key)
          metrics.carResponses.inc({ outcome: 'busy' })
          const env = schema[slot.key].env
          request.log.info({ limit: env }, 'CAR request refused: too many CAR streams open')
          void reply.header('retry-after', String(BUSY_RETRY_AFTER_SECONDS))
          throw new HttpError('carStreamsBusy', `${env}: ${slot.limit} CAR streams are open ${slot.key === 'gatewayCarMaxStreamsPerIp' ? 'for this client' : 'on this worker'}; retry in ${BUSY_RETRY_AFTER_SECONDS} s`)
        }
        metrics.carStreams.set(slots.open)
        car = new CarResponse({
          blockstore,
          timeoutMs: options.carTimeoutMs,
          release: () => {
            slot.release()
            metrics.carStreams.set(slots.open)
          },
          limitMetrics,
          metrics,
          log: request.log
        })
        reply.raw.once('close', car.closed)
      }

      // The root is read (and verified) before any header is sent: 404 and 500 are still possible.
      let root: Uint8Array
      try {
        root = await blockstore.getBytes(cid)
      } catch (err) {
        const notFound = err instanceof Error && err.name === 'NotFoundError'
        car?.settle(notFound ? 'not-found' : 'error', err)
        if (err instanceof BlockHashMismatchError) throw new HttpError('blockCorrupt', `the stored copy of ${cid.toString()} is corrupt; it is not served`)
        if (notFound) throw new HttpError('notFound', `${cid.toString()} is not held by this service`)
        throw err
      }
      // The root alone may cross a CAR limit or be unreadable: that can still be said with a status.
      const walk = format === 'car' ? beginWalk(cid, scope, root, car, request.log) : undefined

      void reply
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', IMMUTABLE)
        .header('vary', 'Accept')
        .header('x-ipfs-path', `/ipfs/${request.params.cid}`)
        .header('x-ipfs-roots', cid.toString())
      if (format === 'raw') {
        void reply
          .type(RAW)
          .header('etag', `"${cid.toString()}.raw"`)
          .header('content-disposition', `attachment; filename="${cid.toString()}.bin"`)
          .header('content-length', root.byteLength)
        return await reply.send(request.method === 'HEAD' ? undefined : Buffer.from(root.buffer, root.byteOffset, root.byteLength))
      }
      void reply
        .type(CAR_CONTENT_TYPE)
        .header('etag', `"${cid.toString()}.car.${scope}"`)
        .header('content-disposition', `attachment; filename="${cid.toString()}.car"`)
      if (car === undefined || walk === undefined) return await reply.send(undefined) // HEAD
      return await reply.send(car.body(walk))
    }
  })

  /** The walk, begun on the root: a root over a CAR limit is 403, one whose links cannot be read 422. */
  function beginWalk (cid: CID, scope: DagScope, root: Uint8Array, car: CarResponse | undefined, log: typeof app.log): CarWalk {
    const walk = new CarWalk(cid, scope, carLimits)
    car?.track(walk)
    try {
      walk.begin(root)
    } catch (err) {
      if (err instanceof CarLimitError) {
        if (car !== undefined) {
          car.settle('limit', err)
        } else {
          // HEAD: no response to record it; counted all the same.
          limitMetrics.blocked(err.key)
          log.info({ cid: cid.toString(), limit: schema[err.key].env, reason: err.message }, 'CAR request refused at a limit')
        }
        throw new HttpError('carLimit', err.message)
      }
      if (err instanceof MalformedBlockError || err instanceof UnsupportedCodecError) {
        car?.settle('error', err)
        throw new HttpError('dagNotTraversable', err.message)
      }
      throw err
    }
    return walk
  }
}
