import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { multiaddr } from '@multiformats/multiaddr'
import type { FastifyRequest, preValidationAsyncHookHandler } from 'fastify'
import { CID } from 'multiformats/cid'
import { Type } from 'typebox'
import { RESERVED_META_PREFIX, reservedMetaKeys } from '../../pinning/pin-store.ts'
import type { PinFilter, PinRecord, PinStatus, PinStore } from '../../pinning/pin-store.ts'
import { bearerOwnerAuth } from '../admin-auth.ts'
import { FailureRef, HttpError } from '../errors.ts'

export interface PinRoutesOptions {
  store: Pick<PinStore, 'create' | 'get' | 'list' | 'remove' | 'replace' | 'usage'>
  /** Bearer tokens of the Pinning Service API and the owner each belongs to. */
  tokens: ReadonlyArray<{ token: string, owner: string }>
  /** Bytes of distinct blocks an owner may hold (PHAROS_PIN_OWNER_QUOTA_BYTES). */
  ownerQuotaBytes: number
  /** This worker's multiaddrs, with /p2p/<peer ID>: the pin's delegates. */
  delegates: () => string[]
  /** A pin was queued: start it now rather than at the next poll. */
  onQueued: () => void
  /**
   * A signed pin receipt (docs/logs.md "Receipts") for a pin that is pinned, or undefined
   * if it is not (any more). `GET /pins/{requestid}` puts it in `info.receipt`, base64.
   * @default none: no receipts
   */
  pinReceipt?: (pinId: string) => Promise<Uint8Array | undefined>
}

// Schemas mirror components.schemas of the IPFS Pinning Service API 1.0.0 (the tests
// validate responses against the spec's own YAML).
const StatusSchema = Type.Union([Type.Literal('queued'), Type.Literal('pinning'), Type.Literal('pinned'), Type.Literal('failed')])
const StringMap = Type.Record(Type.String(), Type.String())
const PinSchema = Type.Object({
  cid: Type.String({ minLength: 1, maxLength: 512, description: 'Content Identifier (CID) to be pinned recursively' }),
  name: Type.Optional(Type.String({ maxLength: 255 })),
  origins: Type.Optional(Type.Array(Type.String({ maxLength: 1024 }), { uniqueItems: true, maxItems: 20 })),
  meta: Type.Optional(Type.Record(Type.String({ maxLength: 255 }), Type.String({ maxLength: 4096 }), { maxProperties: 1000 }))
})
const PinStatusSchema = Type.Object({
  requestid: Type.String(),
  status: StatusSchema,
  created: Type.String({ format: 'date-time' }),
  pin: PinSchema,
  delegates: Type.Array(Type.String(), { uniqueItems: true, minItems: 1, maxItems: 20 }),
  info: Type.Optional(StringMap)
})
const PinResultsSchema = Type.Object({
  count: Type.Integer({ minimum: 0 }),
  results: Type.Array(PinStatusSchema, { maxItems: 1000 })
})
const errors = { 400: FailureRef, 401: FailureRef, 404: FailureRef, 429: FailureRef }
const RequestIdParams = Type.Object({ requestid: Type.String({ maxLength: 64 }) })

const STATUS_LIST = '^(queued|pinning|pinned|failed)(,(queued|pinning|pinned|failed))*$'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** Most CIDs one `?cid=` filter may carry (the spec's maxItems). */
const MAX_CID_FILTER = 10

function parseCid (text: string): CID {
  try {
    return CID.parse(text)
  } catch {
    throw new HttpError('badRequest', `${JSON.stringify(text)} is not a CID`)
  }
}

function checkOrigins (origins: readonly string[] | undefined): void {
  for (const origin of origins ?? []) {
    try {
      multiaddr(origin)
    } catch {
      throw new HttpError('badRequest', `origin ${JSON.stringify(origin)} is not a multiaddr`)
    }
  }
}

/** Meta keys under `pharos:` are the worker's own (what kind of pin it is): a client may not set them. */
function checkMeta (meta: Readonly<Record<string, string>> | undefined): void {
  const reserved = reservedMetaKeys(meta)
  if (reserved.length > 0) {
    throw new HttpError('badRequest', `meta keys starting with "${RESERVED_META_PREFIX}" are reserved for the worker: ${reserved.map((key) => JSON.stringify(key)).join(', ')}`)
  }
}

/** The query parameters of `GET /pins` (the spec's); no other /pins route takes any. */
const LIST_PARAMETERS = ['cid', 'name', 'match', 'status', 'before', 'after', 'limit', 'meta'] as const
/** `meta[key]=value`: one pair of `meta` in the deepObject form. */
const DEEP_META = /^meta\[(.*)\]$/

/**
 * Checks a request's query against the parameters its route takes, and folds `meta` in the
 * deepObject form into one object, which `found` receives. The spec sends `meta` as a JSON
 * string; the generated clients (`@ipfs-shipyard/pinning-service-client`) send
 * `meta[key]=value` pairs, and a server that ignored them would list the owner's whole set
 * to an app that asked for its own pins only. An unknown parameter is refused, not dropped,
 * for the same reason: a misspelt filter must not widen a list (or what a client deletes from it).
 */
function checkQuery (parameters: readonly string[], found: (request: FastifyRequest, meta: Record<string, string>) => void): preValidationAsyncHookHandler {
  const takes = parameters.length === 0
    ? 'takes no query parameters'
    : `takes ${parameters.join(', ')}${parameters.includes('meta') ? ' (meta as JSON, or as meta[key]=value pairs)' : ''}`
  return async (request) => {
    const query = request.query as Record<string, unknown> | undefined
    if (query === undefined) return
    const meta: Record<string, string> = {}
    let deep = false
    for (const [key, value] of Object.entries(query)) {
      const pair = parameters.includes('meta') ? DEEP_META.exec(key) : null
      if (pair !== null) {
        const metaKey = pair[1] ?? ''
        if (metaKey.length === 0 || /[[\]]/.test(metaKey)) throw new HttpError('badRequest', `${JSON.stringify(key)}: meta[key]=value takes one key, with no brackets in it`)
        if (typeof value !== 'string') throw new HttpError('badRequest', `${JSON.stringify(key)} is given more than once`)
        meta[metaKey] = value
        deep = true
        delete query[key]
        continue
      }
      if (!parameters.includes(key)) {
        throw new HttpError('badRequest', `unknown query parameter ${JSON.stringify(key)}: ${request.method} ${request.routeOptions.url ?? ''} ${takes}`)
      }
    }
    if (!deep) return
    if (query.meta !== undefined) throw new HttpError('badRequest', 'send meta as JSON or as meta[key]=value pairs, not both')
    found(request, meta)
  }
}

function parseMeta (text: string): Record<string, string> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new HttpError('badRequest', 'meta must be a JSON object of string values')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw new HttpError('badRequest', 'meta must be a JSON object of string values')
  }
  return value as Record<string, string>
}

/**
 * What `PinStatus.info` says: the reason a pin failed (or is being retried), or what it
 * holds; while it is queued or pinning, `progress`: the latest attempt's blocks and bytes
 * walked so far and its start, as a JSON object in a string (the spec's `StatusInfo` values
 * are strings), e.g. `{"blocks":12,"bytes":3145728,"startedAt":"2026-01-02T03:04:05.678Z"}`.
 */
function infoOf (record: PinRecord): Record<string, string> | undefined {
  const progress = JSON.stringify({ blocks: record.progress.blocks, bytes: record.progress.bytes, startedAt: record.progress.startedAt })
  switch (record.status) {
    case 'failed': return { status_details: record.failureReason ?? 'failed' }
    case 'pinned': return { status_details: `pinned: ${record.dagBlocks ?? 0} blocks`, dag_size: String(record.dagBytes ?? 0) }
    case 'queued': return { ...(record.failureReason === null ? {} : { status_details: `retrying after: ${record.failureReason}` }), progress }
    case 'pinning': return { ...(record.attempts > 1 ? { status_details: `attempt ${record.attempts}` } : {}), progress }
  }
}

/**
 * The IPFS Pinning Service API 1.0.0 at /pins, so `ipfs pin remote` clients work. Every
 * token belongs to an owner; an owner sees and changes only its own pins, and its pins
 * count against its storage quota.
 */
export const pinRoutes: FastifyPluginAsyncTypebox<PinRoutesOptions> = async (app, options) => {
  const { store } = options
  const owners = new WeakMap<FastifyRequest, string>()
  const ownerOf = (request: FastifyRequest): string => {
    const owner = owners.get(request)
    if (owner === undefined) throw new HttpError('unauthorized', 'send Authorization: Bearer <token>')
    return owner
  }
  app.addHook('onRequest', bearerOwnerAuth(options.tokens, (request, owner) => { owners.set(request, owner) }))
  const deepMeta = new WeakMap<FastifyRequest, Record<string, string>>()
  const listQuery = checkQuery(LIST_PARAMETERS, (request, meta) => { deepMeta.set(request, meta) })
  const noQuery = checkQuery([], () => {})
  // `?cid=a&cid=b` is the exploded form of `?cid=a,b`; accept both.
  app.addHook('preValidation', async (request) => {
    const query = request.query as Record<string, unknown> | undefined
    if (query === undefined) return
    for (const key of ['cid', 'status']) {
      const value = query[key]
      if (Array.isArray(value)) query[key] = value.join(',')
    }
  })

  const statusOf = (record: PinRecord) => {
    const delegates = [...new Set(options.delegates())].slice(0, 20)
    const info = infoOf(record)
    return {
      requestid: record.id,
      status: record.status,
      created: record.created,
      pin: {
        cid: record.cid,
        ...(record.name === null ? {} : { name: record.name }),
        ...(record.origins.length === 0 ? {} : { origins: record.origins }),
        ...(Object.keys(record.meta).length === 0 ? {} : { meta: record.meta })
      },
      delegates,
      ...(info === undefined ? {} : { info })
    }
  }

  const checkQuota = async (owner: string): Promise<void> => {
    const usage = await store.usage(owner)
    if (usage.bytes >= options.ownerQuotaBytes) {
      throw new HttpError('quotaExceeded', `PHAROS_PIN_OWNER_QUOTA_BYTES: owner ${owner} holds ${usage.bytes} bytes of ${options.ownerQuotaBytes}; remove pins to add more`)
    }
  }

  const requestId = (text: string): string => {
    if (!UUID.test(text)) throw new HttpError('notFound', `no pin ${text}`)
    return text.toLowerCase()
  }

  app.get('/pins', {
    preValidation: listQuery,
    schema: {
      operationId: 'getPins',
      tags: ['pins'],
      summary: 'List pin objects (newest first; only pinned ones unless `status` says otherwise)',
      security: [{ bearer: [] }],
      querystring: Type.Object({
        cid: Type.Optional(Type.String({ maxLength: 10 * 512, description: 'Comma-separated CIDs (at most 10)' })),
        name: Type.Optional(Type.String({ maxLength: 255 })),
        match: Type.Optional(Type.Union([Type.Literal('exact'), Type.Literal('iexact'), Type.Literal('partial'), Type.Literal('ipartial')])),
        status: Type.Optional(Type.String({ pattern: STATUS_LIST, description: 'Comma-separated statuses' })),
        before: Type.Optional(Type.String({ format: 'date-time' })),
        after: Type.Optional(Type.String({ format: 'date-time' })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 10 })),
        meta: Type.Optional(Type.String({ maxLength: 8192, description: 'JSON object; pins whose meta has every pair. The deepObject form, meta[key]=value (what generated clients send), is accepted too.' }))
      }, { additionalProperties: false }),
      response: { 200: PinResultsSchema, ...errors }
    }
  }, async (request) => {
    const query = request.query
    const metaPairs = deepMeta.get(request)
    const cids = query.cid?.split(',').filter((text) => text.length > 0).map(parseCid)
    if (cids !== undefined && (cids.length === 0 || cids.length > MAX_CID_FILTER)) throw new HttpError('badRequest', `cid takes 1 to ${MAX_CID_FILTER} CIDs`)
    const filter: PinFilter = {
      statuses: query.status === undefined ? ['pinned'] : [...new Set(query.status.split(','))] as PinStatus[],
      limit: query.limit ?? 10,
      ...(cids === undefined ? {} : { cids }),
      ...(query.name === undefined ? {} : { name: query.name, match: query.match ?? 'exact' }),
      ...(query.before === undefined ? {} : { before: query.before }),
      ...(query.after === undefined ? {} : { after: query.after }),
      ...(query.meta === undefined ? {} : { meta: parseMeta(query.meta) }),
      ...(metaPairs === undefined ? {} : { meta: metaPairs })
    }
    const { count, results } = await store.list(ownerOf(request), filter)
    return { count, results: results.map(statusOf) }
  })

  app.post('/pins', {
    preValidation: noQuery,
    schema: {
      operationId: 'addPin',
      tags: ['pins'],
      summary: 'Add a pin object: the DAG under `cid` is fetched (from `origins` and connected peers) and kept',
      security: [{ bearer: [] }],
      body: PinSchema,
      response: { 202: PinStatusSchema, ...errors }
    }
  }, async (request, reply) => {
    const owner = ownerOf(request)
    const cid = parseCid(request.body.cid)
    checkOrigins(request.body.origins)
    checkMeta(request.body.meta)
    await checkQuota(owner)
    const record = await store.create({ ...request.body, owner, cid, cidText: request.body.cid })
    options.onQueued()
    return await reply.code(202).send(statusOf(record))
  })

  app.get('/pins/:requestid', {
    preValidation: noQuery,
    schema: {
      operationId: 'getPinByRequestId',
      tags: ['pins'],
      summary: 'Get a pin object and its status; once pinned, info.receipt is the worker\'s signed pin receipt (base64)',
      security: [{ bearer: [] }],
      params: RequestIdParams,
      response: { 200: PinStatusSchema, ...errors }
    }
  }, async (request) => {
    const id = requestId(request.params.requestid)
    const record = await store.get(ownerOf(request), id)
    if (record === undefined) throw new HttpError('notFound', `no pin ${id}`)
    const status = statusOf(record)
    // Only here, not in lists: each receipt costs a count over the pin's blocks and a signature.
    const receipt = record.status === 'pinned' ? await options.pinReceipt?.(record.id) : undefined
    if (receipt === undefined) return status
    return { ...status, info: { ...status.info, receipt: Buffer.from(receipt).toString('base64') } }
  })

  app.post('/pins/:requestid', {
    preValidation: noQuery,
    schema: {
      operationId: 'replacePinByRequestId',
      tags: ['pins'],
      summary: 'Replace a pin object: blocks common to the old and new DAG are kept throughout',
      security: [{ bearer: [] }],
      params: RequestIdParams,
      body: PinSchema,
      response: { 202: PinStatusSchema, ...errors }
    }
  }, async (request, reply) => {
    const owner = ownerOf(request)
    const id = requestId(request.params.requestid)
    const cid = parseCid(request.body.cid)
    checkOrigins(request.body.origins)
    checkMeta(request.body.meta)
    await checkQuota(owner)
    const record = await store.replace(owner, id, { ...request.body, owner, cid, cidText: request.body.cid })
    if (record === undefined) throw new HttpError('notFound', `no pin ${id}`)
    options.onQueued()
    return await reply.code(202).send(statusOf(record))
  })

  app.delete('/pins/:requestid', {
    preValidation: noQuery,
    schema: {
      operationId: 'deletePinByRequestId',
      tags: ['pins'],
      summary: 'Remove a pin object; blocks no other pin holds become collectable',
      security: [{ bearer: [] }],
      params: RequestIdParams,
      response: { 202: Type.Unsafe<undefined>({ description: 'Pin removed (no body)' }), ...errors }
    }
  }, async (request, reply) => {
    const id = requestId(request.params.requestid)
    if (!await store.remove(ownerOf(request), id)) throw new HttpError('notFound', `no pin ${id}`)
    return await reply.code(202).send(undefined)
  })
}
