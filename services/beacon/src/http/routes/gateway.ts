import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CID } from 'multiformats/cid'
import { Type } from 'typebox'
import { CAR_CONTENT_TYPE, carStream } from '../../storage/car-stream.ts'
import type { DagScope } from '../../storage/car-stream.ts'
import { BlockHashMismatchError } from '../../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../../storage/pg-blockstore.ts'
import { FailureRef, HttpError } from '../errors.ts'

export interface GatewayRoutesOptions {
  /** Read directly, never through Helia: a gateway request must not fetch from the network. */
  blockstore: Pick<PgBlockstore, 'getBytes'>
}

const RAW = 'application/vnd.ipld.raw'
const CAR = 'application/vnd.ipld.car'
/** Blocks are immutable: a year, as the trustless gateway spec suggests for /ipfs/. */
const IMMUTABLE = 'public, max-age=29030400, immutable'

// Bytes or a stream go out as they are (Fastify serializes only objects); HEAD sends none.
const Binary = Type.Unsafe<Uint8Array | Readable | undefined>({ type: 'string', format: 'binary' })

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
 */
export const gatewayRoutes: FastifyPluginAsyncTypebox<GatewayRoutesOptions> = async (app, { blockstore }) => {
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
        404: FailureRef,
        406: FailureRef,
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

      // The root is read (and verified) before any header is sent: 404 and 500 are still possible.
      let root: Uint8Array
      try {
        root = await blockstore.getBytes(cid)
      } catch (err) {
        if (err instanceof BlockHashMismatchError) throw new HttpError('blockCorrupt', `the stored copy of ${cid.toString()} is corrupt; it is not served`)
        if (err instanceof Error && err.name === 'NotFoundError') throw new HttpError('notFound', `${cid.toString()} is not held by this service`)
        throw err
      }

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
      if (request.method === 'HEAD') return await reply.send(undefined)
      // An error mid-stream destroys the response: the client sees a truncated transfer,
      // not a CAR that looks complete.
      const abort = new AbortController()
      request.raw.once('close', () => { abort.abort() })
      return await reply.send(Readable.from(carStream(blockstore, cid, scope, { signal: abort.signal }), { objectMode: false }))
    }
  })
}
