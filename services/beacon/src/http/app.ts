import cors from '@fastify/cors'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { fastify, LogController } from 'fastify'
import { Histogram } from 'prom-client'
import type { Registry } from 'prom-client'
import type { Config } from '../config/schema.ts'
import type { Readiness } from '../health.ts'
import type { Logger } from '../logging/logger.ts'
import { createGatewayMetrics } from './gateway-metrics.ts'
import { createHttpMetrics } from './http-metrics.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import { bearerAuth } from './admin-auth.ts'
import { swaggerOptions, swaggerUiOptions } from './api-docs.ts'
import { corsDelegator } from './cors.ts'
import { clientErrorHandler, errorHandler, FailureSchema, frameworkErrorHandler, sendFailure } from './errors.ts'
import { shedUnderPressure } from './load-shedding.ts'
import type { PressureMonitor } from './pressure-monitor.ts'
import type { NodeView } from './node-view.ts'
import { adminAccountRoutes } from './routes/admin-accounts.ts'
import type { AccountAdmin } from './routes/admin-accounts.ts'
import type { LogStore } from '../logs/log-store.ts'
import { adminAuthorRoutes } from './routes/admin-authors.ts'
import { adminBanRoutes } from './routes/admin-bans.ts'
import type { BanAdmin } from './routes/admin-bans.ts'
import { adminNodeRoutes } from './routes/admin-node.ts'
import { adminFleetRoutes } from './routes/admin-fleet.ts'
import type { FleetView } from './routes/admin-fleet.ts'
import { adminStorageRoutes } from './routes/admin-storage.ts'
import { auditRoutes } from './routes/audits.ts'
import type { AuditStore } from '../audit/audit-store.ts'
import { gatewayRoutes } from './routes/gateway.ts'
import { headRoutes } from './routes/heads.ts'
import { entryRoutes } from './routes/entries.ts'
import type { WebEntries } from '../logs/web-entries.ts'
import type { SyncResponder } from '../logs/sync-responder.ts'
import type { ReceiptIssuer } from '../receipts/receipt-issuer.ts'
import { pinRoutes } from './routes/pins.ts'
import type { StorageHttp } from '../pinning/storage-service.ts'
import { adminOverlayRoutes } from './routes/admin-overlay.ts'
import type { OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import { healthRoutes } from './routes/health.ts'
import { registryRoutes } from './routes/registry.ts'
import type { RegistryService } from '../accounts/registry-service.ts'
import { metricsRoutes } from './routes/metrics.ts'

export interface AppDeps {
  config: Config
  log: Logger
  registry: Registry
  /** The shared "blocked by a limit" counter (pharos_limit_blocked_total). */
  limitMetrics: Pick<LimitMetrics, 'blocked'>
  readiness: Readiness
  /** Whether the worker is overloaded: every route but /healthz, /readyz, /metrics and the admin API then answers 503. */
  pressure: Pick<PressureMonitor, 'overload'>
  node: NodeView
  accounts: AccountAdmin
  overlay: OverlayDriver
  /** Bearer tokens accepted on /v1 (config tokens, or the embedded generated one). */
  adminTokens: readonly string[]
  /** The pinning API (/pins), the trustless gateway (/ipfs) and /v1 storage routes. */
  storage?: StorageHttp
  /** Signed logs: /v1/authors routes, and which entries are stored (/v1/entries receipts). */
  logs?: Pick<LogStore, 'author' | 'entries' | 'has'>
  /** Banned peers: /v1/bans routes. */
  bans?: BanAdmin
  /** Workers and the fleet's peer views: /v1/workers and /v1/peers. */
  fleet: FleetView
  /** The sync protocol's responder: public GET /v1/heads. */
  sync?: Pick<SyncResponder, 'respond'>
  /** Signed pin receipts in GET /pins/{requestid} and GET /v1/entries/{cid}/receipt. */
  receipts?: Pick<ReceiptIssuer, 'forDag' | 'signer'>
  /** The web mirror's write path: POST /v1/entries (public, rate-limited). */
  webEntries?: Pick<WebEntries, 'submit'>
  /** Signed storage audit reports: /v1/audits (public). */
  audits?: Pick<AuditStore, 'list'>
  /** The signed registry of accounts: public GET /v1/registry. */
  registryPages?: Pick<RegistryService, 'page'>
}

/**
 * The HTTP surface as a Fastify instance that is not listening: tests call `inject`, and
 * `server.ts` listens. Plugins load external → app → routes.
 */
export async function buildApp (deps: AppDeps) {
  const app = fastify({
    loggerInstance: deps.log.child({ component: 'http' }),
    // Per-request lines go out at debug from the onResponse hook below, not at info.
    logController: new LogController({ disableRequestLogging: true }),
    // Pinning API bodies are small JSON; CARs are served, never accepted.
    bodyLimit: 1024 * 1024,
    // A CID is one path segment: a sha2-512 CIDv1 in base32 is ~113 characters and an identity
    // CID longer, past Fastify's default of 100. The gateway takes CIDs up to 512 characters.
    routerOptions: { maxParamLength: 512 },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    // Every error in the Failure shape, including those raised before any route or hook runs:
    // the router's (400 bad URL, 414 path segment too long) and Node's parser's (431, 400, 408).
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler
  }).withTypeProvider<TypeBoxTypeProvider>()

  await app.register(swagger, swaggerOptions())
  await app.register(swaggerUi, swaggerUiOptions)
  app.addSchema(FailureSchema)
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler((request, reply) => sendFailure(reply, 'notFound', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`))

  const duration = new Histogram({
    name: 'pharos_http_request_duration_seconds',
    help: 'HTTP request duration by route and status class',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [deps.registry]
  })
  const httpMetrics = createHttpMetrics(deps.registry)
  // Before shedding, so a browser app can read the 503 (and its Retry-After) it is shed with;
  // before the pin token check, so a preflight (which carries no token) is answered.
  await app.register(cors, { delegator: corsDelegator(deps.config.pinsCorsOrigins) })
  // First of the other onRequest hooks (admin auth, pin tokens come later): a shed request costs no more.
  app.addHook('onRequest', shedUnderPressure({ pressure: deps.pressure, metrics: httpMetrics, limitMetrics: deps.limitMetrics }))
  app.addHook('onSend', async (request, reply, payload) => {
    const route = request.routeOptions.url ?? 'unmatched'
    httpMetrics.responseStart.observe({ method: request.method, route, status: `${Math.floor(reply.statusCode / 100)}xx` }, reply.elapsedTime / 1000)
    return payload
  })
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL: labels stay a closed set.
    const route = request.routeOptions.url ?? 'unmatched'
    duration.observe({ method: request.method, route, status: `${Math.floor(reply.statusCode / 100)}xx` }, reply.elapsedTime / 1000)
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request')
  })

  await app.register(healthRoutes, { readiness: deps.readiness })
  await app.register(metricsRoutes, { registry: deps.registry })
  await app.register(async (admin) => {
    // Not shed under load: an operator banning the peers of an attack needs /v1 most then.
    // A request without a valid token still costs only the token check (401).
    admin.addHook('onRoute', (route) => { route.config = { ...route.config, shedUnderPressure: false } })
    admin.addHook('onRequest', bearerAuth(deps.adminTokens))
    await admin.register(adminNodeRoutes, { config: deps.config, node: deps.node })
    await admin.register(adminFleetRoutes, { fleet: deps.fleet, node: deps.node })
    await admin.register(adminAccountRoutes, { accounts: deps.accounts })
    if (deps.storage !== undefined) await admin.register(adminStorageRoutes, { gc: deps.storage.gc, pins: deps.storage.pins, blockstore: deps.storage.blockstore })
    await admin.register(adminOverlayRoutes, { overlay: deps.overlay })
    if (deps.logs !== undefined) await admin.register(adminAuthorRoutes, { logs: deps.logs })
    if (deps.bans !== undefined) await admin.register(adminBanRoutes, { bans: deps.bans })
  })

  if (deps.storage !== undefined) {
    const storage = deps.storage
    await app.register(pinRoutes, {
      store: storage.pins,
      tokens: storage.pinTokens,
      ownerQuotaBytes: storage.ownerQuotaBytes,
      delegates: () => deps.node.multiaddrs(),
      onQueued: storage.onPinQueued,
      ...(deps.receipts === undefined
        ? {}
        : {
            pinReceipt: async (pinId: string) => {
              const issued = await deps.receipts?.forDag({ pinId })
              return issued?.ok === true ? issued.statement : undefined
            }
          })
    })
    const { config } = deps
    await app.register(gatewayRoutes, {
      blockstore: storage.blockstore,
      // Unset gateway limits take the pin limits, so whatever could be pinned can be served.
      carLimits: {
        maxBlocks: config.gatewayCarMaxBlocks ?? config.pinMaxBlocks,
        maxBytes: config.gatewayCarMaxBytes ?? config.pinMaxBytes,
        maxDepth: config.gatewayCarMaxDepth ?? config.pinMaxDepth,
        maxLinksPerBlock: config.dagMaxLinksPerBlock
      },
      carTimeoutMs: config.gatewayCarTimeoutMs,
      carStreams: { maxStreams: config.gatewayCarMaxStreams, maxStreamsPerClient: config.gatewayCarMaxStreamsPerIp },
      limitMetrics: deps.limitMetrics,
      metrics: createGatewayMetrics(deps.registry)
    })
  }
  // Public, outside the admin plugin: reports are proofs meant for anyone (docs/audits.md).
  if (deps.audits !== undefined) await app.register(auditRoutes, { store: deps.audits })

  if (deps.sync !== undefined) await app.register(headRoutes, { sync: deps.sync })
  if (deps.webEntries !== undefined && deps.logs !== undefined && deps.receipts !== undefined) {
    await app.register(entryRoutes, {
      entries: deps.webEntries,
      logs: deps.logs,
      receipts: deps.receipts,
      maxBodyBytes: deps.config.entriesMaxBodyBytes,
      perMinutePerIp: deps.config.entriesPerMinutePerIp,
      limitMetrics: deps.limitMetrics
    })
  }
  // Public: peers gate their own views with it (docs/registry.md).
  if (deps.registryPages !== undefined) await app.register(registryRoutes, { registry: deps.registryPages })

  return app
}

export type BeaconApp = Awaited<ReturnType<typeof buildApp>>
