import { createHash } from 'node:crypto'
import type { DagScope, EntityBytes } from '../storage/car-stream.ts'

/**
 * What a trustless gateway request asks for, read from its URL and headers the way the
 * trustless and path gateway specs say (specs.ipfs.tech/http-gateways/trustless-gateway,
 * …/path-gateway), before anything is read from storage.
 */

export const RAW = 'application/vnd.ipld.raw'
export const CAR = 'application/vnd.ipld.car'

export type GatewayFormat = 'raw' | 'car'

/** A request the gateway refuses before reading anything: 400 or 406, with the reason. */
export class GatewayRequestError extends Error {
  override readonly name = 'GatewayRequestError'
  readonly kind: 'badRequest' | 'notAcceptable'

  constructor (kind: 'badRequest' | 'notAcceptable', details: string) {
    super(details)
    this.kind = kind
  }
}

/** The query parameters that shape a response. */
export interface GatewayQuery {
  format?: string
  'dag-scope'?: string
  'entity-bytes'?: string
  'car-version'?: string
  'car-order'?: string
  'car-dups'?: string
}

/** The CAR this gateway writes, and the parameter values a client may ask for that it satisfies. */
const CAR_SUPPORTED = {
  version: ['1'],
  /** `unk` lets the gateway pick; it picks `dfs`. */
  order: ['dfs', 'unk'],
  dups: ['n']
} as const

interface AcceptEntry {
  type: string
  params: Map<string, string>
  q: number
}

/** Accept's media ranges (RFC 9110 §12.5.1), each with its parameters and weight (1 unless given). */
function parseAccept (header: string): AcceptEntry[] {
  const entries: AcceptEntry[] = []
  for (const range of header.split(',')) {
    const [type = '', ...rawParams] = range.split(';').map((part) => part.trim())
    if (type === '') continue
    const params = new Map<string, string>()
    let q = 1
    for (const param of rawParams) {
      const at = param.indexOf('=')
      if (at < 1) continue
      const name = param.slice(0, at).trim().toLowerCase()
      const value = param.slice(at + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase()
      if (name === 'q') {
        const weight = Number(value)
        q = Number.isFinite(weight) ? Math.min(Math.max(weight, 0), 1) : 0
      } else {
        params.set(name, value)
      }
    }
    entries.push({ type: type.toLowerCase(), params, q })
  }
  return entries
}

/** Why a CAR variant cannot be sent, or undefined when it can. */
function unsupportedCarParam (params: { version?: string, order?: string, dups?: string }): string | undefined {
  for (const name of ['version', 'order', 'dups'] as const) {
    const value = params[name]
    if (value !== undefined && !(CAR_SUPPORTED[name] as readonly string[]).includes(value)) return `${name}=${value}`
  }
  return undefined
}

/** The response this gateway sends, as a CAR Content-Type lists it. */
export const CAR_VARIANT = 'version=1; order=dfs; dups=n'

export interface Negotiated {
  format: GatewayFormat
  /**
   * The URL (path and query) of this representation with `format` in its query, when the
   * format was not (only) named by `?format=`: the path gateway spec's Content-Location, so
   * HTTP caches keep block and CAR responses apart.
   */
  contentLocation?: string
}

/**
 * The format to answer with. `?format=` wins (the spec: it takes precedence); else the
 * Accept entry with the highest q that this gateway can satisfy (a CAR entry asking for a
 * version, order or dups it cannot send does not count). The CAR parameters come from
 * `car-version`/`car-order`/`car-dups` when given, else from the CAR entries in Accept.
 *
 * @throws GatewayRequestError 400 with no Accept and no `?format=` (the spec's strict
 *   trustless mode), or for a `car-*` query parameter this gateway cannot satisfy; 406
 *   when no Accept entry can be satisfied
 */
export function negotiate (query: GatewayQuery, accept: string | undefined, url: string): Negotiated {
  const entries = parseAccept(accept ?? '').filter((entry) => entry.q > 0)
  const carEntries = entries.filter((entry) => entry.type === CAR)
  let acceptBest: { format: GatewayFormat, q: number } | undefined
  for (const entry of entries) {
    const format = entry.type === RAW ? 'raw' : entry.type === CAR && unsupportedCarParam(Object.fromEntries(entry.params)) === undefined ? 'car' : undefined
    if (format !== undefined && entry.q > (acceptBest?.q ?? 0)) acceptBest = { format, q: entry.q }
  }

  const carQuery = { version: query['car-version'], order: query['car-order'], dups: query['car-dups'] }
  const carQueryGiven = Object.values(carQuery).some((value) => value !== undefined)
  let format: GatewayFormat
  if (query.format === 'raw' || query.format === 'car') {
    format = query.format
    // ?format=car with Accept naming only CAR variants this gateway cannot send: the client
    // said what it can read, and it is not what would be sent.
    if (format === 'car' && !carQueryGiven && carEntries.length > 0 && acceptBest?.format !== 'car') {
      throw new GatewayRequestError('notAcceptable', `Accept asks for ${describe(carEntries[0])}; this gateway sends ${CAR}; ${CAR_VARIANT}`)
    }
  } else if (query.format !== undefined) {
    throw new GatewayRequestError('badRequest', `format=${query.format} is not served here: format=raw or format=car`)
  } else if (acceptBest !== undefined) {
    format = acceptBest.format
  } else if (entries.length === 0 && (accept ?? '').trim() === '') {
    throw new GatewayRequestError('badRequest', `this is a trustless gateway: send Accept: ${RAW} or ${CAR} (or ?format=raw|car)`)
  } else {
    throw new GatewayRequestError('notAcceptable', `none of Accept can be served: this gateway sends ${RAW}, or ${CAR}; ${CAR_VARIANT} (or use ?format=raw|car)`)
  }

  if (format === 'car') {
    const unsupported = unsupportedCarParam(carQuery)
    if (unsupported !== undefined) throw new GatewayRequestError('badRequest', `car-${unsupported} is not supported: this gateway sends ${CAR}; ${CAR_VARIANT}`)
  }

  const fromAcceptOnly = query.format === undefined
  const disagrees = query.format !== undefined && acceptBest !== undefined && acceptBest.format !== format
  return fromAcceptOnly || disagrees ? { format, contentLocation: withFormat(url, format) } : { format }
}

function describe (entry: AcceptEntry | undefined): string {
  if (entry === undefined) return 'nothing'
  return [entry.type, ...[...entry.params].map(([name, value]) => `${name}=${value}`)].join('; ')
}

/** `url` (path and query) with `format=<format>` in its query, the other parameters kept as sent. */
function withFormat (url: string, format: GatewayFormat): string {
  const at = url.indexOf('?')
  const path = at === -1 ? url : url.slice(0, at)
  const params = new URLSearchParams(at === -1 ? '' : url.slice(at + 1))
  params.set('format', format)
  return `${path}?${params.toString()}`
}

/**
 * `entity-bytes=from:to` (inclusive offsets; negative from the end of the file; `to` may be
 * `*`), or undefined when absent.
 * @throws GatewayRequestError 400 for anything else, or a `from` after a `to` of the same sign
 */
export function parseEntityBytes (value: string | undefined): EntityBytes | undefined {
  if (value === undefined) return undefined
  const match = /^(-?\d{1,16}):(\*|-?\d{1,16})$/.exec(value)
  const bad = (why: string): GatewayRequestError => new GatewayRequestError('badRequest', `entity-bytes=${value} ${why}: give from:to, byte offsets (inclusive; negative counts from the end), to may be *`)
  if (match === null) throw bad('is malformed')
  const from = Number(match[1])
  const to = match[2] === '*' ? '*' : Number(match[2])
  if (!Number.isSafeInteger(from) || (to !== '*' && !Number.isSafeInteger(to))) throw bad('is out of range')
  if (to !== '*' && Math.sign(from || 1) === Math.sign(to || 1) && from > to) throw bad('ends before it starts')
  return { from, to }
}

/**
 * The `dag-scope` of a CAR request: as asked, or `entity` when `entity-bytes` is given (it
 * implies it), else `all`.
 * @throws GatewayRequestError 400 for `entity-bytes` with another scope
 */
export function carScope (query: GatewayQuery, entityBytes: EntityBytes | undefined): DagScope {
  const asked = query['dag-scope']
  if (asked !== undefined && asked !== 'block' && asked !== 'entity' && asked !== 'all') {
    throw new GatewayRequestError('badRequest', `dag-scope=${asked}: give block, entity or all`)
  }
  if (entityBytes !== undefined && asked !== undefined && asked !== 'entity') {
    throw new GatewayRequestError('badRequest', `entity-bytes implies dag-scope=entity, not dag-scope=${asked}`)
  }
  return asked ?? (entityBytes === undefined ? 'all' : 'entity')
}

/**
 * The strong ETag of a CAR response. The CAR is deterministic (the same DAG gives the same
 * bytes), so it names the root and what selects the blocks: the scope and, when given, the
 * path and `entity-bytes` (hashed into the tag; the spec asks the tag to change with them).
 */
export function carEtag (root: string, scope: DagScope, path: readonly string[], entityBytes: EntityBytes | undefined): string {
  if (path.length === 0 && entityBytes === undefined) return `"${root}.car.${scope}"`
  const selector = JSON.stringify({ path, entityBytes: entityBytes === undefined ? null : `${entityBytes.from}:${entityBytes.to}` })
  return `"${root}.car.${scope}.${createHash('sha256').update(selector).digest('hex').slice(0, 16)}"`
}

/**
 * Whether `If-None-Match` matches `etag` (RFC 9110 §13.1.2: weak comparison, `*` matches
 * any representation the gateway has).
 */
export function ifNoneMatchMatches (header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  const tags = header.split(',').map((tag) => tag.trim())
  const opaque = etag.replace(/^W\//, '')
  return tags.some((tag) => tag === '*' || tag.replace(/^W\//, '') === opaque)
}

/**
 * The path segments after `/ipfs/{cid}` in the raw request URL, each percent-decoded (so a
 * name may hold `/` as `%2F`). Empty segments (a trailing `/`, `//`) are dropped.
 * @throws GatewayRequestError 400 for bad percent-encoding or a `.`/`..` segment
 */
export function pathSegments (url: string): string[] {
  const path = url.split('?')[0] ?? ''
  const [, , , ...segments] = path.split('/') // '', 'ipfs', '{cid}', …
  const decoded: string[] = []
  for (const segment of segments) {
    if (segment === '') continue
    let name: string
    try {
      name = decodeURIComponent(segment)
    } catch {
      throw new GatewayRequestError('badRequest', `path segment ${JSON.stringify(segment)} is not valid percent-encoding`)
    }
    if (name === '.' || name === '..') throw new GatewayRequestError('badRequest', `path segment ${JSON.stringify(name)} is not allowed: content paths are resolved as given`)
    decoded.push(name)
  }
  return decoded
}
