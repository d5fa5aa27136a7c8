import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger'
import type { FastifySwaggerUiOptions } from '@fastify/swagger-ui'

/** Where the human API docs are served; the OpenAPI document is at `${DOCS_PREFIX}/json` and `/yaml`. */
export const DOCS_PREFIX = '/docs'

/**
 * `operationId`s of the operations whose routes do not name their own: stable names for
 * client generators. The Pinning Service API's routes carry the upstream spec's names
 * (getPins, addPin, …) in their own schemas. An operation in neither gets a name made from
 * its method and path (`completeOperations`), so the document is always complete.
 */
const OPERATION_IDS: Readonly<Record<string, string>> = {
  'GET /healthz': 'getLiveness',
  'GET /readyz': 'getReadiness',
  'GET /metrics': 'getMetrics',
  'GET /v1/node': 'getNode',
  'GET /v1/workers': 'listWorkers',
  'GET /v1/peers': 'listPeers',
  'GET /v1/accounts': 'listAccounts',
  'POST /v1/accounts': 'registerAccount',
  'DELETE /v1/accounts': 'removeAccountByBody',
  'DELETE /v1/accounts/{peerId}': 'removeAccount',
  'POST /v1/gc': 'runGarbageCollection',
  'GET /v1/storage': 'getStorageUsage',
  'GET /v1/overlay': 'getOverlay',
  'GET /v1/authors/{id}': 'getAuthor',
  'GET /v1/authors/{id}/entries': 'listAuthorEntries',
  'GET /v1/bans': 'listBans',
  'POST /v1/bans': 'banPeer',
  'GET /v1/bans/{peer}': 'getBan',
  'DELETE /v1/bans/{peer}': 'unbanPeer',
  'GET /v1/audits': 'listAudits',
  'GET /v1/heads': 'getHeads',
  'POST /v1/entries': 'publishEntry',
  'GET /v1/entries/{cid}/receipt': 'getEntryReceipt',
  'GET /v1/registry': 'getRegistry',
  'GET /ipfs/{cid}': 'getIpfsContent',
  'HEAD /ipfs/{cid}': 'headIpfsContent'
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const

interface Operation {
  operationId?: string
  security?: unknown[]
  responses?: Record<string, unknown>
  [key: string]: unknown
}

/** The 401 every operation that needs a token can answer (the token check runs before the route). */
const UNAUTHORIZED = {
  description: 'No valid bearer token',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Failure' } } }
}

/** `getV1AuthorsIdEntries` for GET /v1/authors/{id}/entries: a fallback, unique per method and path. */
function derivedOperationId (method: string, path: string): string {
  const words = path.split(/[^A-Za-z0-9]+/).filter((word) => word.length > 0)
  return method + words.map((word) => word[0]?.toUpperCase() + word.slice(1)).join('')
}

/**
 * The generated document, completed (@fastify/swagger's `transformObject`):
 * - every operation has an `operationId`: its route's own, the table's, or one derived from
 *   method and path. A route serving GET and HEAD gives both one shared operation object;
 *   each gets its own copy, so the two ids stay distinct;
 * - an operation that declares no `security` is public and says so (`security: []`), so a
 *   reader or generator never has to guess whether a token is needed; one that needs a
 *   token lists the 401 it answers without one.
 */
export function completeOperations<T extends { paths?: unknown }> (document: T): T {
  const paths = (document.paths ?? {}) as Record<string, Record<string, unknown>>
  for (const [path, item] of Object.entries(paths)) {
    const seen = new Set<unknown>()
    for (const method of METHODS) {
      const shared = item[method] as Operation | undefined
      if (shared === undefined) continue
      // The route's own name goes to its first method (GET before HEAD); another method the
      // same route serves needs a name of its own.
      const own = seen.has(shared) ? undefined : shared.operationId
      seen.add(shared)
      const security = shared.security ?? []
      item[method] = {
        ...shared,
        operationId: own ?? OPERATION_IDS[`${method.toUpperCase()} ${path}`] ?? derivedOperationId(method, path),
        security,
        ...(security.length > 0 && shared.responses?.['401'] === undefined ? { responses: { ...shared.responses, 401: UNAUTHORIZED } } : {})
      }
    }
  }
  return document
}

/**
 * @fastify/swagger's options: the document's info, servers, tags and security schemes.
 * Registered before the routes, whose schemas it collects.
 */
export function swaggerOptions (): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      info: {
        title: 'Pharos beacon worker',
        version: '0.1.0',
        description: 'Admin API (/v1), IPFS Pinning Service API (/pins) and trustless gateway (/ipfs) of one Pharos worker. Every worker of a fleet serves the same API over the same state.',
        license: { name: 'MIT', url: 'https://opensource.org/license/mit' }
      },
      // Relative: the worker that served this document (any worker of the fleet, or the
      // load balancer in front of them), so the docs page's "Try it out" calls it.
      servers: [{ url: '/', description: 'The worker (or load balancer) that served this document' }],
      tags: [
        { name: 'pins', description: 'IPFS Pinning Service API 1.0.0; a pinning token (PHAROS_PIN_TOKENS) in Authorization: Bearer' },
        { name: 'gateway', description: 'Trustless HTTP gateway: blocks and CARs of what this service holds; public' },
        { name: 'audits', description: 'Signed storage audit reports; public' },
        { name: 'logs', description: 'Signed content logs: best heads; public' },
        { name: 'registry', description: 'The registered accounts, signed by the fleet\'s registry key, for peers to gate their views; public' },
        { name: 'admin', description: 'Operator API; an admin token (PHAROS_ADMIN_TOKENS) in Authorization: Bearer' },
        { name: 'operations', description: 'Liveness, readiness and Prometheus metrics; public' }
      ],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } }
    },
    // Shared schemas (Failure) by their $id in components.schemas, not as def-N.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` },
    transformObject: (document) => 'openapiObject' in document ? completeOperations(document.openapiObject) : document.swaggerObject
  }
}

/**
 * @fastify/swagger-ui's options: the human docs at /docs, Swagger UI served from the
 * package's own files in node_modules (no CDN), under a Content-Security-Policy that lets
 * the page load nothing from any other host.
 */
export const swaggerUiOptions: FastifySwaggerUiOptions = {
  routePrefix: DOCS_PREFIX,
  // Swagger UI styles some elements inline; scripts and everything else come from here.
  staticCSP: "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'",
  uiConfig: { deepLinking: true }
}
