import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { AccountRegistry } from './accounts/account-registry.ts'
import { BanList } from './bans/ban-list.ts'
import type { Config } from './config/schema.ts'
import { Readiness } from './health.ts'
import { buildApp } from './http/app.ts'
import type { BeaconApp } from './http/app.ts'
import type { NodeView, PeerSummary } from './http/node-view.ts'
import type { Logger } from './logging/logger.ts'
import { allowListEntitlement } from './keys/entitlement.ts'
import type { EntitlementCheck } from './keys/entitlement.ts'
import { createLogService } from './logs/log-service.ts'
import type { LogService } from './logs/log-service.ts'
import { LogStore } from './logs/log-store.ts'
import { createKeyExchangeMetrics } from './metrics/key-exchange-metrics.ts'
import { createLogMetrics } from './metrics/log-metrics.ts'
import type { LogMetrics } from './metrics/log-metrics.ts'
import { createNetworkMetrics } from './metrics/network-metrics.ts'
import { createOverlayMetrics } from './metrics/overlay-metrics.ts'
import { createRegistry } from './metrics/registry.ts'
import { createBeaconNode } from './p2p/beacon-node.ts'
import type { BeaconNode } from './p2p/beacon-node.ts'
import { loadPeerKey, workerNameOf } from './p2p/identity.ts'
import { createStorageService } from './pinning/storage-service.ts'
import type { StorageService } from './pinning/storage-service.ts'
import { transportOf } from './p2p/multiaddr-parts.ts'
import { migrate } from './storage/migrate.ts'
import { openPglite } from './storage/pglite-client.ts'
import { openPostgres } from './storage/pg-client.ts'
import { readOrCreateSecret } from './storage/data-dir-secret.ts'
import { holdSingleWorkerLock } from './storage/single-worker-lock.ts'
import type { SqlClient } from './storage/sql.ts'

export interface Worker {
  readonly node: BeaconNode
  readonly app: BeaconApp
  readonly db: SqlClient
  /** Blockstore, Helia/Bitswap, pin queue and GC. */
  readonly storage: StorageService
  readonly readiness: Readiness
  readonly accounts: AccountRegistry
  /** Signed profile logs: entries, heads, orphans (Postgres). */
  readonly logs: LogStore
  /** Banned peers: refused by the gater, hung up on when banned. */
  readonly bans: BanList
  readonly logMetrics: LogMetrics
  /** Ingest of the content topic, ancestor fetches, the sync and key-exchange responders. */
  readonly logService: LogService
  /** Where the HTTP server listens, e.g. http://127.0.0.1:8080 */
  readonly httpUrl: string
  readonly mode: 'embedded' | 'postgres' | 'fleet'
  /**
   * Drains and stops: /readyz turns 503, then after the readiness delay libp2p stops
   * accepting and closes its connections, then HTTP and storage close.
   */
  stop (): Promise<void>
}

const ADMIN_TOKEN_FILE = 'admin-token'

/** Embedded mode with no configured tokens: one token, generated once into the data dir. */
async function embeddedAdminToken (dataDir: string): Promise<string> {
  return (await readOrCreateSecret(dataDir, ADMIN_TOKEN_FILE, async () => randomBytes(24).toString('base64url'))).value
}

function nodeView (node: BeaconNode): NodeView {
  return {
    peerId: () => node.peerId.toString(),
    multiaddrs: () => node.getMultiaddrs().map((addr) => addr.toString()),
    peers (limit) {
      const byPeer = new Map<string, PeerSummary>()
      for (const connection of node.getConnections()) {
        const key = connection.remotePeer.toString()
        let summary = byPeer.get(key)
        if (summary === undefined) {
          summary = { peerId: key, connections: [] }
          byPeer.set(key, summary)
        }
        summary.connections.push({
          remoteAddr: connection.remoteAddr.toString(),
          transport: transportOf(connection.remoteAddr),
          direction: connection.direction,
          openedAt: new Date(connection.timeline.open).toISOString()
        })
      }
      return { total: byPeer.size, peers: [...byPeer.values()].slice(0, limit) }
    }
  }
}

/** Builds and starts one worker from validated config. main.ts is its only production caller. */
/** What an embedder may plug into a worker (DESIGN.md: "the check is pluggable"). */
export interface WorkerExtensions {
  /** Who may receive a deposited content key. @default the author-signed allow-list */
  entitlement?: EntitlementCheck
}

export async function startWorker (config: Config, log: Logger, extensions: WorkerExtensions = {}): Promise<Worker> {
  const cleanups: Array<() => Promise<void>> = []
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step().catch((err: unknown) => log.warn({ err }, 'cleanup step failed'))
  }

  try {
    const mode = config.databaseUrl === undefined ? 'embedded' : config.redisUrl === undefined ? 'postgres' : 'fleet'
    if (mode === 'postgres' && config.databaseUrl !== undefined) {
      const lock = await holdSingleWorkerLock(config.databaseUrl)
      cleanups.push(lock.release)
    }

    const db = config.databaseUrl === undefined
      ? await openPglite(join(config.dataDir, 'pglite'))
      : await openPostgres(config.databaseUrl, {
        maxConnections: config.databasePoolSize,
        onError: (err) => log.warn({ err }, 'postgres connection error')
      })
    cleanups.push(async () => { await db.close() })
    const applied = await migrate(db)
    log.info({ engine: db.engine, applied }, 'storage ready')

    const accounts = new AccountRegistry(db)
    await accounts.refresh()
    // Other workers (or an external feeder) change the table too; reload on a timer.
    const accountsTimer = setInterval(() => {
      accounts.refresh().catch((err: unknown) => { log.warn({ err }, 'account registry refresh failed') })
    }, config.accountsRefreshMs)
    accountsTimer.unref()
    cleanups.push(async () => { clearInterval(accountsTimer) })

    const logs = new LogStore(db)
    // Bans made on other workers reach this one on refresh, on the accounts' schedule.
    const bans = new BanList(db, {
      refreshMs: config.accountsRefreshMs,
      onRefreshError: (err) => { log.warn({ err }, 'ban list refresh failed') }
    })
    await bans.start()
    cleanups.push(async () => { bans.stop() })

    const workerName = workerNameOf(config.workerName)
    const { key, source } = await loadPeerKey({ ...config, workerName })
    const adminTokens = config.adminTokens.length > 0
      ? config.adminTokens
      : mode === 'embedded' ? [await embeddedAdminToken(config.dataDir)] : []
    if (adminTokens.length === 0) log.warn('PHAROS_ADMIN_TOKENS is empty: every /v1 request will get 401')

    const registry = createRegistry()
    const metrics = createNetworkMetrics(registry)
    const node = await createBeaconNode({
      config,
      privateKey: key,
      log,
      registry,
      metrics,
      networkSize: accounts.count,
      admit: (peer) => accounts.isRegistered(peer.toString()) ? { admitted: true } : { admitted: false, reason: 'not-registered' },
      isBanned: (peer) => bans.isBanned(peer.toString())
    })
    accounts.onCountChange((count) => { node.services.overlay.setNetworkSize(Math.max(count, 1)) })
    createOverlayMetrics(registry, node.services.overlay)

    const logMetrics = createLogMetrics(registry)
    logMetrics.readSnapshotFrom(async () => ({ ...await logs.totals(), bans: await bans.count() }))
    bans.onBan((peer, { reason, origin }) => {
      // Counted once, by the worker that wrote the ban.
      if (origin === 'created') logMetrics.bans.inc({ reason })
      node.hangUp(peerIdFromString(peer)).catch((err: unknown) => { log.warn({ err, peer }, 'hanging up on a banned peer failed') })
    })

    const storage = createStorageService({ config, db, node, log, registry, adminTokens })
    const logService = createLogService({
      db,
      node,
      overlay: node.services.overlay,
      network: config.network,
      logs,
      bans,
      isRegistered: (peer) => accounts.isRegistered(peer),
      storage,
      metrics: logMetrics,
      keyExchangeMetrics: createKeyExchangeMetrics(registry),
      entitlement: extensions.entitlement ?? allowListEntitlement,
      orphanFetchMaxEntries: config.orphanFetchMaxEntries,
      orphanFetchTimeoutMs: config.orphanFetchTimeoutMs,
      log
    })

    const readiness = new Readiness()
    readiness.addCheck('p2p', async () => {
      if (node.status !== 'started' || node.getMultiaddrs().length === 0) throw new Error('libp2p is not listening')
    })
    readiness.addCheck('storage', async () => { await db.query('SELECT 1') })

    const app = await buildApp({ config, log, registry, readiness, node: nodeView(node), accounts, overlay: node.services.overlay, adminTokens, storage: storage.http, logs, bans })
    cleanups.push(async () => { await app.close() })
    // Registered after HTTP so it runs first: libp2p stops accepting and closes its
    // connections while /metrics and /readyz still answer.
    cleanups.push(async () => { await node.stop() })
    // Runs before libp2p stops: running pin jobs go back to the queue, Bitswap unregisters.
    cleanups.push(async () => { await storage.stop() })
    // Runs first: no new entries are taken, the ones in hand are stored, fetches stop.
    cleanups.push(async () => { await logService.stop() })
    await app.listen({ host: config.httpHost, port: config.httpPort })
    const address = app.server.address()
    const httpPort = typeof address === 'object' && address !== null ? address.port : config.httpPort
    const httpHost = config.httpHost === '0.0.0.0' || config.httpHost === '::' ? '127.0.0.1' : config.httpHost
    const httpUrl = `http://${httpHost.includes(':') ? `[${httpHost}]` : httpHost}:${httpPort}`

    await node.start()
    await storage.start()
    await logService.start()
    log.info({
      peerId: node.peerId.toString(),
      keySource: source,
      mode,
      multiaddrs: node.getMultiaddrs().map((addr) => addr.toString()),
      adminUrl: `${httpUrl}/v1/node`,
      adminToken: config.adminTokens.length > 0 ? 'PHAROS_ADMIN_TOKENS' : mode === 'embedded' ? join(config.dataDir, ADMIN_TOKEN_FILE) : 'none'
    }, 'pharos beacon started')

    let stopping: Promise<void> | undefined
    return {
      node,
      app,
      db,
      storage,
      readiness,
      accounts,
      logs,
      bans,
      logMetrics,
      logService,
      httpUrl,
      mode,
      async stop () {
        stopping ??= (async () => {
          readiness.startDraining()
          log.info({ delayMs: config.shutdownReadinessDelayMs }, 'draining: /readyz answers 503')
          await new Promise((resolve) => setTimeout(resolve, config.shutdownReadinessDelayMs))
          await cleanup()
          log.info('stopped')
        })()
        await stopping
      }
    }
  } catch (err) {
    await cleanup()
    throw err
  }
}
