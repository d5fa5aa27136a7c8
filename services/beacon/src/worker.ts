import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { AccountRegistry } from './accounts/account-registry.ts'
import type { Accounts } from './accounts/accounts.ts'
import { accountsDocumentReader, ExternalAccounts } from './accounts/external-accounts.ts'
import { loadRegistryKey } from './accounts/registry-key.ts'
import { RegistryJournal } from './accounts/registry-journal.ts'
import { RegistryService } from './accounts/registry-service.ts'
import { ConfigError } from './config/load.ts'
import { AUDIT_TOPIC, createAuditService } from './audit/audit-service.ts'
import type { AuditService } from './audit/audit-service.ts'
import { BanList } from './bans/ban-list.ts'
import type { Config } from './config/schema.ts'
import { Readiness } from './health.ts'
import { buildApp } from './http/app.ts'
import type { BeaconApp } from './http/app.ts'
import { overloadReadinessCheck, PressureMonitor, pressureLimits } from './http/pressure-monitor.ts'
import type { NodeView, PeerSummary } from './http/node-view.ts'
import type { Logger } from './logging/logger.ts'
import { allowListEntitlement } from './keys/entitlement.ts'
import type { ResealReport } from './keys/content-key-store.ts'
import { ContentKeySealer, generateSealingSecret, parseSealingKeys, SEALING_SECRET_FORMAT } from './keys/key-sealing.ts'
import { KEY_EXCHANGE_OFF } from './keys/key-exchange-service.ts'
import type { EntitlementCheck } from './keys/entitlement.ts'
import { createLogService } from './logs/log-service.ts'
import type { LogService } from './logs/log-service.ts'
import { LogStore } from './logs/log-store.ts'
import { createKeyExchangeMetrics } from './keys/key-exchange-metrics.ts'
import { createLimitMetrics } from './metrics/limit-metrics.ts'
import type { LimitMetrics } from './metrics/limit-metrics.ts'
import { createLogMetrics } from './logs/log-metrics.ts'
import type { LogMetrics } from './logs/log-metrics.ts'
import { createNetworkMetrics } from './p2p/network-metrics.ts'
import { createOverlayMetrics } from './p2p/overlay-metrics.ts'
import { createRegistry } from './metrics/registry.ts'
import { ADMISSION_LIMIT_KEYS, createBeaconNode, inboundAdmissionLimits } from './p2p/beacon-node.ts'
import { InboundAdmission } from './p2p/inbound-admission.ts'
import type { BeaconNode } from './p2p/beacon-node.ts'
import { loadPeerKey, workerNameOf, workerSigner } from './p2p/identity.ts'
import { watchFileDescriptors } from './p2p/accept-errors.ts'
import { DialPolicy, ownRanges } from './p2p/dial-policy.ts'
import { RelayReservationPolicy } from './p2p/relay-reservation-policy.ts'
import { ReceiptIssuer } from './receipts/receipt-issuer.ts'
import { WebEntries } from './logs/web-entries.ts'
import { createStorageService } from './pinning/storage-service.ts'
import type { StorageService } from './pinning/storage-service.ts'
import { hostOf, transportOf } from './p2p/multiaddr-parts.ts'
import { Lifecycle } from './lifecycle.ts'
import { migrate } from './storage/migrate.ts'
import { openPglite } from './storage/pglite-client.ts'
import { openPostgres } from './storage/pg-client.ts'
import { readOrCreateSecret } from './storage/data-dir-secret.ts'
import { startFleetState, startInProcessFleetState } from './fleet/index.ts'
import type { FleetState, WorkerRecord, WorkerRecordFields } from './fleet/index.ts'
import { startEventLoopDelayMetrics } from './metrics/event-loop-metrics.ts'
import { createFleetMetrics } from './fleet/fleet-metrics.ts'
import { createHealthMetrics } from './health-metrics.ts'
import { auditValidator } from '@pharos/net/overlay/gossip-validators.ts'
import { holdSingleWorkerLock } from './storage/single-worker-lock.ts'
import { lockDataDir } from './storage/data-dir-lock.ts'
import { portInUse } from './net/port-in-use.ts'
import type { SqlClient } from './storage/sql.ts'

export interface Worker {
  readonly node: BeaconNode
  readonly app: BeaconApp
  readonly db: SqlClient
  /** Blockstore, Helia/Bitswap, pin queue and GC. */
  readonly storage: StorageService
  readonly readiness: Readiness
  readonly accounts: Accounts
  /** The signed registry of accounts served to peers (libp2p and GET /v1/registry). */
  readonly registryService: RegistryService
  /** Signed profile logs: entries, heads, orphans (Postgres). */
  readonly logs: LogStore
  /** Banned peers: refused by the gater, hung up on when banned. */
  readonly bans: BanList
  readonly logMetrics: LogMetrics
  /** `pharos_limit_blocked_total{limit}`: every configured limit counts what it refused here. */
  readonly limitMetrics: LimitMetrics
  /** Ingest of the content topic, ancestor fetches, the sync and key-exchange responders. */
  readonly logService: LogService
  /** Seen message IDs, membership, peer views, bans and the gossip bridge (Redis in a fleet). */
  readonly fleet: FleetState
  /** Storage audits: the audit loop, signed reports, storage-proof challenges. */
  readonly audits: AuditService
  /** Inbound admission: fair pending slots, the handshake governor, members' source addresses. */
  readonly admission: InboundAdmission
  /** This worker's name in the fleet (PHAROS_WORKER_NAME, or the host name). */
  readonly workerName: string
  /**
   * The pass at start that seals plaintext content keys and re-seals keys of older sealing-key
   * versions: resolves with what it did once done, undefined without the key-exchange role
   * (or if it failed: it is logged, and runs again at the next start).
   */
  readonly keysResealed: Promise<ResealReport | undefined>
  /** Where the HTTP server listens, e.g. http://127.0.0.1:8080 */
  readonly httpUrl: string
  readonly mode: 'embedded' | 'postgres' | 'fleet'
  /** The worker's parts in the order they came up (lifecycle.ts); `stop` stops them in reverse. */
  readonly parts: readonly string[]
  /**
   * Drains and stops: /readyz turns 503 and peers are told which sibling workers to move
   * to; once they left (or PHAROS_SHUTDOWN_DRAIN_MS passed) and the readiness delay is
   * over, libp2p stops accepting and closes its connections, then HTTP and storage close.
   */
  stop (): Promise<void>
}

const ADMIN_TOKEN_FILE = 'admin-token'
const KEY_SEALING_FILE = 'key-sealing-secret'

/**
 * The sealing keys of deposited content keys: PHAROS_KEY_SEALING_SECRET; in embedded mode
 * without it, one generated once into the data dir (as the peer key and admin token are), so
 * the README's one-command worker keeps its key-exchange role. With DATABASE_URL and no
 * secret: none, and the worker has no key-exchange role (a generated key on one worker's disk
 * would leave every other worker of the database unable to open what it sealed).
 */
async function contentKeySealing (config: Config, mode: 'embedded' | 'postgres' | 'fleet'): Promise<{ sealer: ContentKeySealer | undefined, source: string }> {
  if (config.keySealingSecret !== undefined) return { sealer: new ContentKeySealer(config.keySealingSecret), source: 'PHAROS_KEY_SEALING_SECRET' }
  if (mode !== 'embedded') return { sealer: undefined, source: 'none: key exchange off' }
  const stored = await readOrCreateSecret(config.dataDir, KEY_SEALING_FILE, async () => generateSealingSecret())
  const parsed = parseSealingKeys(stored.value)
  if (!parsed.ok) throw new ConfigError('PHAROS_KEY_SEALING_SECRET', undefined, `${SEALING_SECRET_FORMAT} (read from ${stored.file}, which an embedded worker generated: fix it, for without its keys the content keys they sealed cannot be opened)`)
  return { sealer: new ContentKeySealer(parsed.value), source: stored.file }
}

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

/** How often the worker evaluates its own readiness for the gauges and its fleet record. */
const READINESS_SAMPLE_MS = 5000
/** Peers of other workers learnt into the overlay's passive view at each membership refresh (guess: a passive view's size). */
const SEED_PEERS = 32

/**
 * This worker's part of the fleet state: its members — registered peers and sibling
 * workers — go into its peer view as they connect (addresses from identify once known),
 * bans made here are told to the fleet and bans made elsewhere take effect here at once.
 * Any other peer is kept out of the view (siblings would seed their overlays with it, at the
 * addresses it claims) and out of the peer store once it hangs up (the store expires
 * entries only when they are read, so strangers' identify records would pile up).
 */
function wireFleet ({ fleet, node, bans, accounts, isMember, log }: { fleet: FleetState, node: BeaconNode, bans: BanList, accounts: Accounts, isMember: (peer: string) => boolean, log: Logger }): void {
  node.addEventListener('connection:open', ({ detail: connection }) => {
    if (node.getConnections(connection.remotePeer).length > 1 || !isMember(connection.remotePeer.toString())) return
    // Only an outbound connection's remote address can be dialled: an inbound one ends in
    // the peer's ephemeral source port. Identify fills in the listen addresses.
    const addrs = connection.direction === 'outbound' ? [connection.remoteAddr.toString()] : []
    fleet.peerViews.connected(connection.remotePeer.toString(), { addrs, transport: transportOf(connection.remoteAddr) })
  })
  node.addEventListener('peer:identify', ({ detail: result }) => {
    const connection = result.connection
    if (connection.status !== 'open' || result.listenAddrs.length === 0 || !isMember(result.peerId.toString())) return
    fleet.peerViews.connected(result.peerId.toString(), { addrs: result.listenAddrs.map((addr) => addr.toString()), transport: transportOf(connection.remoteAddr) })
  })
  node.addEventListener('peer:disconnect', ({ detail: peer }) => {
    const key = peer.toString()
    fleet.peerViews.disconnected(key)
    if (!isMember(key)) {
      node.peerStore.delete(peer).catch((err: unknown) => { log.debug({ err, peer: key }, 'forgetting a stranger\'s peer record failed') })
    }
  })
  bans.onBan((peer, { reason, origin }) => {
    if (origin === 'created') void fleet.bans.announce(peer, reason)
  })
  bans.onLift((peer) => { void fleet.bans.unannounce(peer) })
  fleet.bans.onRemoteBan((peer, reason) => { bans.learn(peer, reason) })
  fleet.bans.onRemoteUnban((peer) => {
    bans.forget(peer)
    log.info({ peer }, 'a ban lifted on another worker was lifted here')
  })
  // Accounts registered or removed through any worker are admitted or refused here at once;
  // the periodic reload (PHAROS_ACCOUNTS_REFRESH_MS) remains for changes made outside the API.
  accounts.onChange((change) => { void fleet.accounts.announce(change) })
  fleet.accounts.onRemoteChange((changed) => {
    const reloaded = changed === 'all' ? accounts.refresh() : accounts.reload(changed)
    reloaded.catch((err: unknown) => { log.warn({ err }, 'reloading accounts changed on another worker failed; the periodic reload will catch up') })
  })
}

/**
 * Reads the live workers from the fleet: they become the overlay's bootstrap contacts, and
 * they and a sample of the registered peers they hold are learnt into its passive view, so a new
 * worker takes part in the overlay before any peer joins through it. Returns the siblings.
 */
async function seedFromFleet (fleet: FleetState, node: BeaconNode, isRegistered: (peer: string) => boolean, onWorkers: (workers: readonly WorkerRecord[]) => void, log: Logger): Promise<PeerId[]> {
  const self = node.peerId.toString()
  const workers = (await fleet.membership.list()).filter((worker) => worker.peerId !== self && worker.multiaddrs.length > 0)
  // Before anything is learnt: the siblings' addresses are members' addresses, which the
  // peer store keeps and the dial policy always allows.
  onWorkers(workers)
  const view = node.services.overlay.snapshot().content
  const known = new Set([...view?.active ?? [], ...view?.passive ?? []])
  const fresh = workers.filter((worker) => !known.has(worker.peerId))
  if (fresh.length > 0) {
    // Siblings record only members, but a view written before that rule (or by an account
    // removed since) may still name others: only registered peers are learnt.
    const peers = (await fleet.peerViews.seedCandidates(SEED_PEERS, self)).filter((peer) => isRegistered(peer.peerId))
    await node.services.overlay.learn([
      ...fresh.map((worker) => ({ peerId: worker.peerId, multiaddrs: worker.multiaddrs })),
      ...peers.map((peer) => ({ peerId: peer.peerId, multiaddrs: peer.addrs }))
    ])
    // Debug, not info: a sibling that is in neither view is learnt again at every refresh
    // (measured in the fleet scenario: every second for ten minutes, 600 lines per worker).
    log.debug({ workers: fresh.map((worker) => worker.name), peers: peers.length }, 'learnt sibling workers and their peers from the fleet')
  }
  return workers.map((worker) => peerIdFromString(worker.peerId))
}

/** How often a drain checks whether the peers it told have left (guess: well under a dial). */
const DRAIN_POLL_MS = 100

/**
 * The graceful part of a stop (issue 9, docs/fleet.md "Drain"): leave the fleet, so no
 * sibling sends peers here; give back this worker's relay slots, so its relay clients can
 * reserve at a sibling; tell every connected peer (overlay neighbours, relay clients, peers
 * using it as beacon) which live siblings to move to; then wait until the peers that took
 * the notice have disconnected, or `drainMs` passes. Sibling workers are not told: they
 * hear the connections close and repair from their passive views.
 */
async function movePeers ({ node, fleet, drainMs, log }: { node: BeaconNode, fleet: FleetState, drainMs: number, log: Logger }): Promise<void> {
  const started = Date.now()
  const self = node.peerId.toString()
  const workers = await fleet.membership.list()
  await fleet.membership.leave()
  await fleet.relaySlots.releaseAll()
  const siblings = workers.filter((worker) => worker.peerId !== self && worker.ready && worker.multiaddrs.length > 0)
  const fleetIds = new Set(workers.map((worker) => worker.peerId))
  const targets = [...new Map(node.getConnections().map((connection) => [connection.remotePeer.toString(), connection.remotePeer])).values()]
    .filter((peer) => !fleetIds.has(peer.toString()))
  if (siblings.length === 0) {
    log.info({ peers: targets.length }, 'drain: no live sibling worker to move peers to; they reconnect through their bootstrap lists')
    return
  }
  const told = await node.services.overlay.drain(siblings.map((worker) => ({ peerId: worker.peerId, multiaddrs: worker.multiaddrs })), targets, { signal: AbortSignal.timeout(Math.max(drainMs, 1)) })
  const deadline = started + drainMs
  const remaining = (): PeerId[] => told.filter((peer) => node.getConnections(peer).length > 0)
  while (remaining().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS))
  const stayed = remaining().length
  log.info({ siblings: siblings.map((worker) => worker.name), peers: targets.length, told: told.length, moved: told.length - stayed, stayed, ms: Date.now() - started }, 'drain: peers moved to sibling workers')
}

/** Builds and starts one worker from validated config. main.ts is its only production caller. */
/** What an embedder may plug into a worker (DESIGN.md: "the check is pluggable"). */
export interface WorkerExtensions {
  /** Who may receive a deposited content key. @default the author-signed allow-list */
  entitlement?: EntitlementCheck
}

export async function startWorker (config: Config, log: Logger, extensions: WorkerExtensions = {}): Promise<Worker> {
  // Every part, in the order it comes up; the worker stops them in the reverse order.
  const lifecycle = new Lifecycle((part, err) => { log.warn({ err, part }, 'a part of the worker failed to stop') })

  try {
    const mode = config.databaseUrl === undefined ? 'embedded' : config.redisUrl === undefined ? 'postgres' : 'fleet'
    // First of all, before PGlite opens or a port is bound: a second worker on this data dir
    // stops here, naming the lock. A fleet worker keeps nothing there (its key and tokens come
    // from config), so fleet workers may share one.
    if (mode !== 'fleet') {
      const dataDirLock = await lockDataDir(config.dataDir)
      lifecycle.held('data-dir lock', dataDirLock.release)
      if (dataDirLock.tookOver !== undefined) log.warn({ lock: dataDirLock.file, why: dataDirLock.tookOver }, 'took over the data dir lock of a worker that did not release it')
    }
    if (mode === 'postgres' && config.databaseUrl !== undefined) {
      const lock = await holdSingleWorkerLock(config.databaseUrl)
      lifecycle.held('single-worker lock', lock.release)
    }

    // Before storage opens: a bad generated key file stops the start as bad config does.
    const sealing = await contentKeySealing(config, mode)

    const registry = createRegistry()
    const limitMetrics = createLimitMetrics(registry)
    const metrics = createNetworkMetrics(registry)
    metrics.relayReservationsLimit.set(config.relayMaxReservations)
    // Inbound connections are admitted fairly and shed while the event loop lags
    // (p2p/inbound-admission.ts): it takes every sample of the loop's delay.
    const admission = new InboundAdmission({
      limits: inboundAdmissionLimits(config),
      events: {
        onRefused: (reason, limit) => {
          metrics.connectionsRefused.inc({ reason })
          limitMetrics.blocked(ADMISSION_LIMIT_KEYS[limit])
        }
      }
    })
    admission.start()
    lifecycle.held('inbound admission', () => { admission.stop() })
    metrics.watchAdmission(admission)
    const eventLoopDelay = startEventLoopDelayMetrics(registry, (delayMs) => { admission.onLoopDelay(delayMs) })
    lifecycle.held('event-loop sampler', () => { eventLoopDelay.stop() })
    // libuv hides most failed accepts for want of a descriptor: warn before they start.
    const stopFdWatch = watchFileDescriptors({ log: log.child({ component: 'file-descriptors' }) })
    lifecycle.held('descriptor watch', stopFdWatch)
    const health = createHealthMetrics(registry, config.maxConnections)
    const db = config.databaseUrl === undefined
      ? await openPglite(join(config.dataDir, 'pglite'), {
        onThreadExit: (err) => { log.error({ err }, 'the PGlite thread died: storage is unavailable until the worker restarts') }
      })
      : await openPostgres(config.databaseUrl, {
        maxConnections: config.databasePoolSize,
        onError: (err) => log.warn({ err }, 'postgres connection error'),
        onUnavailable: (operation) => { health.postgresErrors.inc({ operation }) }
      })
    lifecycle.held('database', async () => { await db.close() })
    const applied = await migrate(db)
    log.info({ engine: db.engine, applied }, 'storage ready')

    const onInvalidIds = (ids: string[]): void => { log.warn({ ids: ids.slice(0, 20), count: ids.length, source: config.accountsSource === 'postgres' ? 'postgres' : 'external' }, 'accounts that are not ed25519 peer IDs are ignored; fix or delete them') }
    const accounts: Accounts = config.accountsSource === 'postgres'
      ? new AccountRegistry(db, { onInvalidIds })
      : new ExternalAccounts(accountsDocumentReader(config.accountsSource), { onInvalidIds })
    try {
      await accounts.refresh()
    } catch (err) {
      // A document the worker cannot read at start leaves it with no accounts at all: refuse.
      if (accounts.source === 'postgres') throw err
      throw new ConfigError('PHAROS_ACCOUNTS_SOURCE', config.accountsSource, `a readable JSON accounts document (reading it failed: ${(err as Error).message})`, true)
    }
    // An external feeder changes the table too, and fleet events can be lost while Redis is
    // away: reload on a timer (changes made through other workers arrive at once, wireFleet).
    const accountsTimer = setInterval(() => {
      accounts.refresh().catch((err: unknown) => { log.warn({ err }, 'account registry refresh failed') })
    }, config.accountsRefreshMs)
    accountsTimer.unref()
    lifecycle.held('accounts refresh', () => { clearInterval(accountsTimer) })

    const logs = new LogStore(db)
    // Bans made on other workers reach this one on refresh, on the accounts' schedule.
    const bans = new BanList(db, {
      refreshMs: config.accountsRefreshMs,
      onRefreshError: (err) => { log.warn({ err }, 'ban list refresh failed') }
    })
    await bans.start()
    lifecycle.held('ban list', () => { bans.stop() })

    const workerName = workerNameOf(config.workerName)
    const { key, source } = await loadPeerKey({ ...config, workerName })
    // The fleet's registry key signs what peers learn of the accounts (docs/registry.md).
    const registryKey = await loadRegistryKey(config)
    const registryJournal = new RegistryJournal(accounts, { network: config.network })
    lifecycle.held('registry journal', () => { registryJournal.close() })
    const registryService = new RegistryService(registryJournal, workerSigner(registryKey.key), config.network)
    const adminTokens = config.adminTokens.length > 0
      ? config.adminTokens
      : mode === 'embedded' ? [await embeddedAdminToken(config.dataDir)] : []
    if (adminTokens.length === 0) log.warn('PHAROS_ADMIN_TOKENS is empty: every /v1 request will get 401')

    // Sibling workers (from fleet membership): the overlay's contacts when its view empties,
    // and the only nodes whose drain notices it takes.
    let siblings: PeerId[] = []
    let siblingIds = new Set<string>()
    /** Members: registered accounts and sibling workers. Only they enter peer views and the peer store. */
    const isMember = (peer: string): boolean => accounts.isRegistered(peer) || siblingIds.has(peer)
    const reservationPolicy = new RelayReservationPolicy({
      limits: {
        maxReservations: config.relayMaxReservations,
        maxReservationsPerIp: config.relayMaxReservationsPerIp,
        maxReservationsPerPeer: config.relayMaxReservationsPerPeer,
        reservationTtlMs: config.relayReservationTtlMs
      },
      isRegistered: (peer) => accounts.isRegistered(peer.toString())
    })
    // Every dial is checked against this first (dial-policy.ts): peers name the addresses.
    const dialPolicy = new DialPolicy({
      allow: config.dialAllowCidrs,
      deny: config.dialDenyCidrs,
      own: ownRanges(config.p2pHost, config.announce),
      onRefused: (range) => { metrics.dialsDenied.inc({ range }) }
    })
    const node = await createBeaconNode({
      config,
      privateKey: key,
      log,
      registry,
      metrics,
      networkSize: accounts.count,
      admit: (peer) => accounts.isRegistered(peer.toString()) ? { admitted: true } : { admitted: false, reason: 'not-registered' },
      isBanned: (peer) => bans.isBanned(peer.toString()),
      bootstrap: () => siblings,
      drainTrust: (peer) => siblingIds.has(peer.toString()) ? 'siblings' : 'refused',
      dialPolicy,
      isMember: (peer) => isMember(peer.toString()),
      reservationPolicy,
      limits: limitMetrics,
      admission
    })
    accounts.onCountChange((count) => { node.services.overlay.setNetworkSize(Math.max(count, 1)) })
    // A member's source address keeps a lane through a strangers' handshake flood (inbound-admission.ts).
    node.addEventListener('connection:open', ({ detail: connection }) => {
      if (connection.direction !== 'inbound' || transportOf(connection.remoteAddr) === 'circuit') return
      const ip = hostOf(connection.remoteAddr)
      if (ip !== undefined && isMember(connection.remotePeer.toString())) admission.rememberMember(ip)
    })
    createOverlayMetrics(registry, node.services.overlay, limitMetrics)

    const logMetrics = createLogMetrics(registry)
    logMetrics.readSnapshotFrom(async () => ({ ...await logs.totals(), bans: await bans.count() }))
    bans.onBan((peer, { reason, origin }) => {
      // Counted once, by the worker that wrote the ban.
      if (origin === 'created') logMetrics.bans.inc({ reason })
      node.hangUp(peerIdFromString(peer)).catch((err: unknown) => { log.warn({ err, peer }, 'hanging up on a banned peer failed') })
    })

    // What the fleet learns of this worker at each heartbeat; filled in once HTTP listens.
    const record: WorkerRecordFields = { multiaddrs: [], httpUrl: null, connections: 0, ready: false }
    const fleetMetrics = createFleetMetrics(registry)
    const fleetOptions = {
      workerId: node.peerId.toString(),
      workerName,
      seenTtlMs: config.seenTtlMs,
      seenClaimTtlMs: config.seenClaimTtlMs,
      peerViewRetentionMs: config.peerViewRetentionMs,
      relaySlots: { slotsPerAccount: config.relaySlotsPerAccount, reservationTtlMs: config.relayReservationTtlMs },
      metrics: fleetMetrics,
      record: () => ({ ...record, connections: node.getConnections().length })
    }
    const fleet = config.redisUrl === undefined
      ? startInProcessFleetState(fleetOptions)
      : await startFleetState({
        ...fleetOptions,
        // Postgres decides which bans stand: a ban lifted while Redis was down stays in Redis,
        // and a resync must not bring it back.
        bansStanding: async (peers) => await bans.standing(peers),
        redis: { url: config.redisUrl, mode: config.redisMode },
        prefix: config.redisPrefix,
        heartbeatMs: config.fleetHeartbeatMs,
        log
      })
    lifecycle.held('fleet state', async () => { await fleet.stop() })
    wireFleet({ fleet, node, bans, accounts, isMember, log })
    reservationPolicy.useSlots(fleet.relaySlots)

    const storage = createStorageService({
      config,
      db,
      node,
      log,
      registry,
      adminTokens,
      locatePeer: async (peerId) => (await fleet.peerViews.locate(peerId))?.addrs,
      limits: limitMetrics
    })
    // One signer for every statement this worker makes: receipts and audit reports.
    const signer = workerSigner(key)
    const receipts = new ReceiptIssuer({ logs, pins: storage.pins, signer })
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
      limitMetrics,
      entitlement: extensions.entitlement ?? allowListEntitlement,
      sealer: sealing.sealer,
      orphanFetchMaxEntries: config.orphanFetchMaxEntries,
      orphanFetchTimeoutMs: config.orphanFetchTimeoutMs,
      orphanFetchesPerPeer: config.orphanFetchesPerPeer,
      orphanFetchesMax: config.orphanFetchesMax,
      authorLimits: {
        entriesPerMinute: config.authorEntriesPerMinute,
        entryBurst: config.authorEntryBurst,
        maxEntries: config.authorMaxEntries,
        maxOrphans: config.authorMaxOrphans,
        maxPendingPins: config.authorMaxPendingPins
      },
      syncReceiptsPerMinute: config.syncReceiptsPerMinute,
      syncReceiptChecksMax: config.syncReceiptChecksMax,
      syncHeadRequestsPerMinute: config.syncHeadRequestsPerMinute,
      syncHeadAnswersMax: config.syncHeadAnswersMax,
      fleet: {
        claim: async (messageId) => await fleet.seen.claim(messageId),
        claimMany: async (messageIds) => await fleet.seen.claimMany(messageIds),
        complete: (messageId) => { void fleet.seen.complete(messageId) },
        states: async (messageIds) => await fleet.seen.states(messageIds),
        relay: (topic, messageId, payload) => { void fleet.bridge.publish(topic, messageId, payload) }
      },
      claimTtlMs: config.seenClaimTtlMs,
      receipts,
      log
    })
    fleet.bridge.onMessage(({ topic, messageId, payload }) => { logService.onRelayed(topic, messageId, payload) })
    /**
     * A message this worker originates (not one it received): broadcast to its own peers, and
     * handed to the fleet's other workers, which broadcast it to theirs (log service: onRelayed).
     */
    const publishFromHere = (topic: string, messageId: string, payload: Uint8Array, what: string): void => {
      try {
        node.services.overlay.broadcast(topic, messageId, payload)
      } catch (err) {
        log.debug({ err, messageId }, `${what} could not be broadcast`)
      }
      void fleet.bridge.publish(topic, messageId, payload)
    }
    // POST /v1/entries: entries from clients that cannot run a peer, ingested as gossip is.
    const webEntries = new WebEntries({
      ingest: logService.ingest,
      blockstore: storage.blockstore,
      signer,
      broadcast: (messageId, envelope) => {
        // Stored: the fleet settles it, and every worker broadcasts it to its own peers.
        void fleet.seen.complete(messageId)
        publishFromHere('content', messageId, envelope, 'a posted entry')
      },
      limits: { maxBlocks: config.entriesMaxBlocks, maxLinksPerBlock: config.dagMaxLinksPerBlock, perMinutePerAuthor: config.entriesPerMinutePerAuthor }
    })

    // The audit topic carries signed reports; nothing else on it is forwarded (log service: the other topics).
    node.services.overlay.setValidator(AUDIT_TOPIC, auditValidator)
    const audits = createAuditService({
      config,
      db,
      node,
      storage,
      signer,
      publish: (topic, messageId, payload) => { publishFromHere(topic, messageId, payload, 'an audit report') },
      registry,
      log
    })

    // The answers are fixed reasons: /readyz is anonymous, and a driver's error names hosts
    // and users. The errors themselves are logged.
    const readiness = new Readiness({ log })
    readiness.addCheck('p2p', async () => {
      if (node.status !== 'started' || node.getMultiaddrs().length === 0) throw new Error('libp2p is not listening')
    }, { failure: 'not listening' })
    readiness.addCheck('storage', async () => { await db.query('SELECT 1') }, { failure: 'unreachable' })
    const redis = fleet.redis
    if (redis !== undefined) {
      // Without Redis the worker carries on from local state (DESIGN.md §6): degraded, not down.
      readiness.addCheck('redis', async () => { if (!redis.isUp()) throw new Error('Redis is unreachable') }, {
        severity: 'degrades',
        failure: 'unreachable: seen IDs, views and bans are local until it returns'
      })
    }
    // Overloaded (PHAROS_HTTP_PRESSURE_*): not ready, so new traffic goes elsewhere; HTTP sheds.
    const pressure = new PressureMonitor(pressureLimits(config), { log })
    lifecycle.held('pressure monitor', () => { pressure.stop() })
    readiness.addCheck('overload', overloadReadinessCheck(pressure))
    readiness.onReport((report) => {
      health.observe(report)
      record.ready = report.ready
    })

    const app = await buildApp({ config, log, registry, limitMetrics, readiness, pressure, node: nodeView(node), accounts, overlay: node.services.overlay, adminTokens, storage: storage.http, logs, bans, fleet, sync: logService.sync, receipts, audits: audits.store, webEntries, registryPages: registryService })
    let httpUrl = ''
    // Start order: HTTP first, so /metrics and /readyz answer through the whole start and the
    // whole stop; then libp2p; then what runs on it. Stopping goes the other way: the log
    // service takes no new entries and stores the ones in hand; a round of audits under way is
    // aborted and challenges are no longer answered; running pin jobs go back to the queue
    // and Bitswap unregisters; libp2p stops accepting and closes its connections; HTTP last.
    lifecycle.add({
      name: 'http',
      start: async () => {
        try {
          await app.listen({ host: config.httpHost, port: config.httpPort })
        } catch (err) {
          throw portInUse(err, config.httpHost, { PHAROS_HTTP_PORT: config.httpPort }) ?? err
        }
        httpUrl = listeningUrl(app, config)
      },
      stop: async () => { await app.close() }
    })
    lifecycle.add({
      name: 'libp2p',
      start: async () => {
        try {
          await node.start()
        } catch (err) {
          throw portInUse(err, config.p2pHost, { PHAROS_P2P_TCP_PORT: config.p2pTcpPort, PHAROS_P2P_WS_PORT: config.p2pWsPort }) ?? err
        }
      },
      stop: async () => { await node.stop() }
    })
    lifecycle.add({ name: 'storage', start: async () => { await storage.start() }, stop: async () => { await storage.stop() } })
    lifecycle.add({ name: 'audits', start: async () => { await audits.start() }, stop: async () => { await audits.stop() } })
    lifecycle.add({ name: 'log service', start: async () => { await logService.start() }, stop: async () => { await logService.stop() } })
    lifecycle.add({ name: 'registry', start: async () => { await registryService.serve(node, log) }, stop: async () => { await registryService.unserve(node) } })
    await lifecycle.startAll()
    record.httpUrl = httpUrl
    record.multiaddrs = node.getMultiaddrs().map((addr) => addr.toString())
    // Readiness gauges (and the ready flag siblings see) stay current without a prober.
    const readinessTimer = setInterval(() => { void readiness.report() }, READINESS_SAMPLE_MS)
    readinessTimer.unref()
    lifecycle.held('readiness sampler', () => { clearInterval(readinessTimer) })
    void readiness.report()
    const joinFleet = async (): Promise<void> => {
      siblings = await seedFromFleet(fleet, node, (peer) => accounts.isRegistered(peer), (workers) => {
        siblingIds = new Set(workers.map((worker) => worker.peerId))
        // Whatever range they are on, the fleet's own workers are always dialable.
        dialPolicy.setFleetAddresses(workers.flatMap((worker) => worker.multiaddrs))
      }, log)
    }
    await joinFleet().catch((err: unknown) => { log.warn({ err }, 'could not seed the overlay from the fleet; peers joining will fill it') })
    const siblingsTimer = setInterval(() => {
      joinFleet().catch((err: unknown) => { log.debug({ err }, 'fleet membership refresh failed') })
      // Slots of reservations that expired (or were never sent) go back to the fleet.
      reservationPolicy.reconcile().catch((err: unknown) => { log.debug({ err }, 'relay slot reconcile failed') })
    }, config.fleetHeartbeatMs)
    siblingsTimer.unref()
    lifecycle.held('fleet membership refresh', () => { clearInterval(siblingsTimer) })
    // From here on a held event loop is load, not the worker's own start.
    pressure.start()
    if (sealing.sealer === undefined) log.warn(`key exchange is off: ${KEY_EXCHANGE_OFF}. Everything else runs. To turn it on, set PHAROS_KEY_SEALING_SECRET (or PHAROS_KEY_SEALING_SECRET_FILE) on every worker: README "Keys sealed at rest"`)
    // In the background: GETKEY reads plaintext and old-version rows meanwhile.
    const resealing = new AbortController()
    lifecycle.held('content key re-sealing', () => { resealing.abort() })
    const keysResealed = logService.resealKeys(resealing.signal).then((report) => {
      if (report !== undefined && report.sealedPlaintext + report.resealed + report.versionMissing + report.corrupt > 0) {
        const unreadable = report.versionMissing + report.corrupt > 0
        const line = unreadable
          ? 'content keys sealed under a version PHAROS_KEY_SEALING_SECRET does not hold (missingVersions), or whose seal does not verify (corrupt), stay unreadable here; the others were re-sealed under the current sealing key'
          : 'content keys re-sealed under the current sealing key'
        log[unreadable ? 'warn' : 'info']({ ...report, current: sealing.sealer?.currentVersion }, line)
      }
      return report
    }, (err: unknown) => {
      if (!resealing.signal.aborted) log.warn({ err }, 'sealing stored content keys under the current sealing key failed; the next start tries again')
      return undefined
    })
    log.info({
      peerId: node.peerId.toString(),
      workerName,
      keySource: source,
      registryKey: registryService.signerId,
      registryKeySource: registryKey.source,
      accountsSource: accounts.source,
      mode,
      multiaddrs: node.getMultiaddrs().map((addr) => addr.toString()),
      adminUrl: `${httpUrl}/v1/node`,
      adminToken: config.adminTokens.length > 0 ? 'PHAROS_ADMIN_TOKENS' : mode === 'embedded' ? join(config.dataDir, ADMIN_TOKEN_FILE) : 'none',
      keySealing: sealing.source
    }, 'pharos beacon started')

    let stopping: Promise<void> | undefined
    return {
      node,
      app,
      db,
      storage,
      readiness,
      accounts,
      registryService,
      logs,
      bans,
      logMetrics,
      limitMetrics,
      logService,
      fleet,
      audits,
      admission,
      workerName,
      keysResealed,
      httpUrl,
      mode,
      parts: lifecycle.order(),
      async stop () {
        stopping ??= (async () => {
          readiness.startDraining()
          reservationPolicy.startDraining()
          log.info({ delayMs: config.shutdownReadinessDelayMs, drainMs: config.shutdownDrainMs }, 'draining: /readyz answers 503, peers are told where to move')
          await Promise.all([
            new Promise((resolve) => setTimeout(resolve, config.shutdownReadinessDelayMs)),
            movePeers({ node, fleet, drainMs: config.shutdownDrainMs, log }).catch((err: unknown) => { log.warn({ err }, 'moving peers to sibling workers failed; closing anyway') })
          ])
          await lifecycle.stopAll()
          log.info('stopped')
        })()
        await stopping
      }
    }
  } catch (err) {
    await lifecycle.stopAll()
    throw err
  }
}

/** The URL HTTP answers on, for the log and the fleet (a wildcard host is reached on loopback). */
function listeningUrl (app: Pick<BeaconApp, 'server'>, config: Config): string {
  const address = app.server.address()
  const httpPort = typeof address === 'object' && address !== null ? address.port : config.httpPort
  const httpHost = config.httpHost === '0.0.0.0' || config.httpHost === '::' ? '127.0.0.1' : config.httpHost
  return `http://${httpHost.includes(':') ? `[${httpHost}]` : httpHost}:${httpPort}`
}
