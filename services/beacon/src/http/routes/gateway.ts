import type { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { CID } from 'multiformats/cid'
import { Type } from 'typebox'
import { schema as configSchema } from '../../config/schema.ts'
import type { GatewayMetrics } from '../gateway-metrics.ts'
import type { LimitMetrics } from '../../metrics/limit-metrics.ts'
import { CAR_CONTENT_TYPE, CarLimitError, CarWalk, EntityBytesOutOfRangeError } from '../../storage/car-stream.ts'
import type { CarLimits, DagScope, EntityBytes } from '../../storage/car-stream.ts'
import { MalformedBlockError, UnsupportedCodecError } from '../../storage/dag-links.ts'
import { PathNotFoundError, resolvePath } from '../../storage/dag-path.ts'
import type { BlockReader, ResolvedPath } from '../../storage/dag-path.ts'
import { BlockHashMismatchError } from '../../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../../storage/pg-blockstore.ts'
import { CarResponse } from '../car-response.ts'
import { CarStreamSlots } from '../car-stream-slots.ts'
import { sourceKey } from '../../net/source-address.ts'
import type { CarStreamSlotLimits } from '../car-stream-slots.ts'
import { FailureRef, HttpError } from '../errors.ts'
import { CAR, carEtag, carScope, GatewayRequestError, ifNoneMatchMatches, negotiate, parseEntityBytes, pathSegments, RAW } from '../gateway-negotiation.ts'
import type { GatewayQuery, Negotiated } from '../gateway-negotiation.ts'

/** The request shape both gateway routes share (`/ipfs/:cid` and `/ipfs/:cid/*`). */
interface GatewayRoute {
  Params: { cid: string, '*'?: string }
  Querystring: GatewayQuery
  Headers: { accept?: string, 'if-none-match'?: string }
}

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

/** Blocks are immutable: a year, as the trustless gateway spec suggests for /ipfs/. */
const IMMUTABLE = 'public, max-age=29030400, immutable'

// Bytes or a stream go out as they are (Fastify serializes only objects); HEAD and 304 send none.
const Binary = Type.Unsafe<Uint8Array | Readable | undefined>({ type: 'string', format: 'binary' })

/**
 * Retry-After of a CAR request refused because the stream caps are full (guess: the CARs of
 * posts and small files are sent within a few seconds).
 */
const BUSY_RETRY_AFTER_SECONDS = 5

/**
 * Trustless HTTP gateway (raw blocks and CARs, specs.ipfs.tech/http-gateways/trustless-gateway)
 * for content this worker's fleet holds: anything not in the blockstore is 404, and nothing
 * is ever fetched from the network to answer. A corrupt block is never sent: a raw request
 * gets 500 BLOCK_HASH_MISMATCH, and a CAR stream is cut off before the bad block.
 *
 * `/ipfs/{cid}/{path}` resolves the path through UnixFS directories (HAMT-sharded too),
 * dag-pb link names and dag-cbor/dag-json fields: a raw request gets the block the path
 * ends at, a CAR the blocks that verify the path and then the scope below its end. The
 * identity CIDs (the spec's probe `bafkqaaa`) are answered from the CID itself.
 *
 * A CAR costs a walk of the DAG, so each is bounded (docs/storage.md): it needs a slot
 * under PHAROS_GATEWAY_CAR_MAX_STREAMS and _PER_IP (else 429 before anything is read); the
 * CAR limits are checked on the path and its end before any header (403) and then as the
 * walk goes; and PHAROS_GATEWAY_CAR_TIMEOUT_MS cuts it off. A stream cut mid-way is
 * destroyed, so the client sees a failed transfer, never a CAR that looks complete.
 */
export const gatewayRoutes: FastifyPluginAsyncTypebox<GatewayRoutesOptions> = async (app, options) => {
  const { blockstore, carLimits, limitMetrics, metrics } = options
  const slots = new CarStreamSlots(options.carStreams)
  const getBytes: BlockReader = async (cid, abort) => await blockstore.getBytes(cid, abort)

  const schema = {
    tags: ['gateway'],
    summary: 'A block (application/vnd.ipld.raw) or a DAG as a CAR (application/vnd.ipld.car) this service holds, by CID and optional content path (/ipfs/{cid}/{path…})',
    params: Type.Object({ cid: Type.String({ maxLength: 512 }) }),
    querystring: Type.Object({
      format: Type.Optional(Type.String({ description: 'raw or car; takes precedence over Accept' })),
      'dag-scope': Type.Optional(Type.String({ description: 'CAR: block, entity or all (default all; entity when entity-bytes is given)' })),
      'entity-bytes': Type.Optional(Type.String({ description: 'CAR: from:to, inclusive byte offsets of a UnixFS file (negative from its end; to may be *)' })),
      'car-version': Type.Optional(Type.String({ description: 'CAR: 1 (only)' })),
      'car-order': Type.Optional(Type.String({ description: 'CAR: dfs or unk (dfs is sent)' })),
      'car-dups': Type.Optional(Type.String({ description: 'CAR: n (only)' }))
    }),
    headers: Type.Object({ accept: Type.Optional(Type.String()), 'if-none-match': Type.Optional(Type.String()) }),
    response: {
      200: {
        description: 'The block, or the CAR stream',
        content: { [RAW]: { schema: Binary }, [CAR]: { schema: Binary } }
      },
      304: { description: 'If-None-Match matched the ETag: the client\'s copy is current', type: 'null' },
      400: FailureRef,
      403: FailureRef,
      404: FailureRef,
      406: FailureRef,
      422: FailureRef,
      429: FailureRef,
      500: FailureRef
    }
  }

  const handler = async (request: FastifyRequest<GatewayRoute>, reply: FastifyReply): Promise<FastifyReply> => {
    let cid: CID
    try {
      cid = CID.parse(request.params.cid)
    } catch {
      throw new HttpError('badRequest', `${JSON.stringify(request.params.cid)} is not a CID`)
    }
    let negotiated: Negotiated
    let segments: string[]
    let entityBytes: EntityBytes | undefined
    let scope: DagScope = 'block'
    try {
      segments = pathSegments(request.url)
      negotiated = negotiate(request.query, request.headers.accept, request.url)
      if (negotiated.format === 'car') {
        entityBytes = parseEntityBytes(request.query['entity-bytes'])
        scope = carScope(request.query, entityBytes)
      }
    } catch (err) {
      if (err instanceof GatewayRequestError) throw new HttpError(err.kind, err.message)
      throw err
    }
    const ipfsPath = ['', 'ipfs', cid.toString(), ...segments].join('/')

    /** Headers of a 200 and of a 304 alike (RFC 9110 §15.4.5 asks a 304 for ETag, Cache-Control, Content-Location and Vary). */
    const representation = (etag: string, roots: readonly CID[]): void => {
      void reply
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', IMMUTABLE)
        .header('vary', 'Accept')
        .header('etag', etag)
        .header('x-ipfs-path', ipfsPath)
        .header('x-ipfs-roots', roots.map(String).join(','))
      if (negotiated.contentLocation !== undefined) void reply.header('content-location', negotiated.contentLocation)
    }
    const ifNoneMatch = request.headers['if-none-match']

    if (negotiated.format === 'raw') {
      const resolved = await resolveOrFail(cid, segments)
      const { terminal } = resolved
      representation(`"${terminal.cid.toString()}.raw"`, resolved.roots)
      if (ifNoneMatchMatches(ifNoneMatch, `"${terminal.cid.toString()}.raw"`)) return await reply.code(304).send()
      void reply
        .type(RAW)
        .header('content-disposition', `attachment; filename="${terminal.cid.toString()}.bin"`)
        .header('content-length', terminal.bytes.byteLength)
      const body = terminal.bytes
      return await reply.send(request.method === 'HEAD' ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength))
    }

    // A CAR the client already holds: 304 once the root is known to be held, no slot, no walk.
    const etag = carEtag(cid.toString(), scope, segments, entityBytes)
    if (ifNoneMatchMatches(ifNoneMatch, etag)) {
      await resolveOrFail(cid, [])
      representation(etag, [cid])
      return await reply.code(304).send()
    }

    // A CAR body holds a stream slot from before its root is read until its response
    // closes (sent, cut off, refused, or the client went away).
    let car: CarResponse | undefined
    if (request.method === 'GET') {
      const slot = slots.acquire(sourceKey(request.ip))
      if ('key' in slot) {
        limitMetrics.blocked(slot.key)
        metrics.carResponses.inc({ outcome: 'busy' })
        const env = configSchema[slot.key].env
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

    // The path and its end are read (and verified) before any header is sent: 404 and 500 are still possible.
    const resolved = await resolveOrFail(cid, segments, car)
    // The path and its end alone may cross a CAR limit or be unreadable: that can still be said with a status.
    const walk = beginWalk(cid, scope, resolved, entityBytes, car, request.log)

    representation(etag, resolved.roots)
    void reply
      .type(CAR_CONTENT_TYPE)
      .header('content-disposition', `attachment; filename="${cid.toString()}.car"`)
    if (car === undefined) return await reply.send(undefined) // HEAD
    return await reply.send(car.body(walk))
  }

  app.route<GatewayRoute>({ method: ['GET', 'HEAD'], url: '/ipfs/:cid', exposeHeadRoute: false, schema, handler })
  // /ipfs/{cid}/{path…}: the same operation with a content path. OpenAPI has no path template
  // that spans slashes, so the document shows /ipfs/{cid} and says a path may follow.
  const withPath = { ...schema, hide: true, params: Type.Object({ cid: Type.String({ maxLength: 512 }), '*': Type.String() }) }
  app.route<GatewayRoute>({ method: ['GET', 'HEAD'], url: '/ipfs/:cid/*', exposeHeadRoute: false, schema: withPath, handler })

  /**
   * The root and the blocks along `segments`. A root or path block not held is 404
   * NOT_FOUND; a segment that names nothing 404 PATH_NOT_FOUND; a corrupt block 500; a block
   * that cannot be decoded 422.
   */
  async function resolveOrFail (cid: CID, segments: readonly string[], car?: CarResponse): Promise<ResolvedPath> {
    try {
      return await resolvePath(getBytes, cid, segments)
    } catch (err) {
      const notFound = err instanceof Error && err.name === 'NotFoundError'
      car?.settle(notFound || err instanceof PathNotFoundError ? 'not-found' : 'error', err)
      if (err instanceof BlockHashMismatchError) throw new HttpError('blockCorrupt', `a stored block on ${cid.toString()}${segments.length > 0 ? '/' + segments.join('/') : ''} is corrupt; it is not served`)
      if (err instanceof PathNotFoundError) throw new HttpError('pathNotFound', err.message)
      if (err instanceof MalformedBlockError) throw new HttpError('dagNotTraversable', err.message)
      if (notFound) throw new HttpError('notFound', segments.length === 0 ? `${cid.toString()} is not held by this service` : `a block on /ipfs/${cid.toString()}/${segments.join('/')} is not held by this service`)
      throw err
    }
  }

  /** The walk, begun on the path's end: over a CAR limit 403, unreadable links 422, entity-bytes past the end 400. */
  function beginWalk (cid: CID, scope: DagScope, resolved: ResolvedPath, entityBytes: EntityBytes | undefined, car: CarResponse | undefined, log: typeof app.log): CarWalk {
    const walk = new CarWalk(cid, scope, carLimits, { path: resolved, entityBytes })
    car?.track(walk)
    try {
      walk.begin(resolved.terminal.bytes)
    } catch (err) {
      if (err instanceof CarLimitError) {
        if (car !== undefined) {
          car.settle('limit', err)
        } else {
          // HEAD: no response to record it; counted all the same.
          limitMetrics.blocked(err.key)
          log.info({ cid: cid.toString(), limit: configSchema[err.key].env, reason: err.message }, 'CAR request refused at a limit')
        }
        throw new HttpError('carLimit', err.message)
      }
      if (err instanceof EntityBytesOutOfRangeError) {
        car?.settle('not-found', err)
        throw new HttpError('badRequest', err.message)
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
