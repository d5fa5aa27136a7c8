/**
 * The signed-log area of a worker, composed once (worker.ts calls this): ingest of the
 * `content` topic, HEAD requests on the `sync` topic, the ancestor fetcher, the sync
 * responder and key exchange, wired to the overlay, the libp2p node, storage and the pin queue.
 */
import { setMaxListeners } from 'node:events'
import type { Libp2p } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import { MAX_KEY_EXCHANGE_FRAME_BYTES, MAX_SYNC_FRAME_BYTES, keyExchangeProtocolId, syncProtocolId } from '@pharos/protocol/log/index.ts'
import type { BanList } from '../bans/ban-list.ts'
import type { Logger } from '../logging/logger.ts'
import type { KeyExchangeMetrics } from '../keys/key-exchange-metrics.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import type { LogMetrics } from './log-metrics.ts'
import { AcceptedPayloads, keyExchangeValidator, syncValidator } from '@pharos/net/overlay/gossip-validators.ts'
import type { GossipValidator, OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import { serveRequests } from '@pharos/net/request-response.ts'
import type { StorageService } from '../pinning/storage-service.ts'
import type { ReceiptIssuer } from '../receipts/receipt-issuer.ts'
import { ContentKeyStore } from '../keys/content-key-store.ts'
import type { ResealReport } from '../keys/content-key-store.ts'
import type { EntitlementCheck } from '../keys/entitlement.ts'
import type { ContentKeySealer } from '../keys/key-sealing.ts'
import { KeyExchangeService, keyExchangeOffAnswer } from '../keys/key-exchange-service.ts'
import type { SqlClient } from '../storage/sql.ts'
import { AncestorFetcher } from './ancestor-fetcher.ts'
import { HeadRequests } from './head-requests.ts'
import { LogIngest } from './log-ingest.ts'
import type { AuthorLimits } from './log-ingest.ts'
import { FleetClaims } from './fleet-claims.ts'
import type { CheckedEnvelope, ClaimedHandler, FleetGossip } from './fleet-claims.ts'
import { IngestQueue } from './ingest-queue.ts'
import type { LogStore } from './log-store.ts'
import { SyncResponder } from './sync-responder.ts'

export interface LogServiceDeps {
  db: SqlClient
  node: Libp2p
  overlay: OverlayDriver
  network: string
  logs: LogStore
  bans: Pick<BanList, 'ban'>
  isRegistered: (peerId: string) => boolean
  storage: StorageService
  metrics: LogMetrics
  keyExchangeMetrics: KeyExchangeMetrics
  /** `pharos_limit_blocked_total`: what the limits below refused. */
  limitMetrics: Pick<LimitMetrics, 'blocked'>
  entitlement: EntitlementCheck
  /**
   * Seals content keys at rest (PHAROS_KEY_SEALING_SECRET). Undefined: this worker has no
   * key-exchange role; it refuses deposits and GETKEY with `unavailable` and leaves the
   * topic's requests to workers that have it.
   */
  sealer: ContentKeySealer | undefined
  orphanFetchMaxEntries: number
  orphanFetchTimeoutMs: number
  /** PHAROS_ORPHAN_FETCHES_PER_PEER and PHAROS_ORPHAN_FETCHES_MAX. */
  orphanFetchesPerPeer: number
  orphanFetchesMax: number
  /** PHAROS_AUTHOR_*: rate and caps per author. */
  authorLimits: AuthorLimits
  /** PHAROS_SYNC_RECEIPTS_PER_MINUTE and PHAROS_SYNC_RECEIPT_CHECKS_MAX. */
  syncReceiptsPerMinute: number
  syncReceiptChecksMax: number
  /** PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE and PHAROS_SYNC_HEAD_ANSWERS_MAX. */
  syncHeadRequestsPerMinute: number
  syncHeadAnswersMax: number
  /**
   * The fleet's shared view of which messages are being handled (Redis in fleet mode, this
   * process alone otherwise): one worker verifies, stores and pins each message.
   */
  fleet: FleetGossip
  /** How long another worker's claim on a message is trusted before this one takes it over. */
  claimTtlMs: number
  /** Signs receipts for the sync protocol's `receipt` requests. */
  receipts: Pick<ReceiptIssuer, 'issue'>
  log: Logger
}

export type { FleetGossip } from './fleet-claims.ts'

export interface LogService {
  readonly ingest: LogIngest
  readonly fetcher: AncestorFetcher
  /** The sync responder: also answers `GET /v1/heads`. */
  readonly sync: SyncResponder
  /** Whether this worker takes deposits and answers GETKEY: it was given a sealing key. */
  readonly keyExchangeRole: boolean
  /**
   * Seals the plaintext keys of rows from before sealing and re-seals keys of older sealing
   * key versions under the current one (ContentKeyStore.reseal); undefined without the role.
   */
  resealKeys: (signal?: AbortSignal) => Promise<ResealReport | undefined>
  /** A message another worker accepted and relayed through the fleet: broadcast to our peers. */
  onRelayed: (topic: string, messageId: string, payload: Uint8Array) => void
  /** Registers the protocols and starts taking entries from the overlay. Call after libp2p started. */
  start: () => Promise<void>
  /** Stops taking entries, waits for the ones in hand, and stops fetches under way. */
  stop: () => Promise<void>
}

/**
 * Envelopes the overlay's validator accepted, kept until the claiming task stores them, so an
 * entry's signatures are checked once per worker (guess: far more than are delivered between
 * a validation and its task; the oldest go first, and a task that finds none checks again).
 */
const CHECKED_MAX = 10_000
/** Stored entries left without a pin (a worker died in between) are looked for this often (guess). */
const UNPINNED_SWEEP_MS = 30_000
/** An entry counts as left without a pin after this long (well past a normal store → pin gap). */
const UNPINNED_AFTER_MS = 60_000
/** Sync and key-exchange requests must finish within this (guess). */
const REQUEST_TIMEOUT_MS = 30_000
/** Concurrent inbound sync streams per connection (guess: a peer syncing many authors at once). */
const MAX_INBOUND_SYNC_STREAMS = 16

export function createLogService (deps: LogServiceDeps): LogService {
  const log = deps.log.child({ component: 'logs' })
  const worker = deps.node.peerId.toString()
  // The fetcher ingests what it fetches, and ingest asks the fetcher for ancestors: each
  // only calls the other after both exist.
  const fetcher: AncestorFetcher = new AncestorFetcher({
    node: deps.node,
    network: deps.network,
    logs: deps.logs,
    ingest: async (bytes, source) => await ingest.ingestEntry(bytes, source),
    isRegistered: deps.isRegistered,
    metrics: deps.metrics,
    limitMetrics: deps.limitMetrics,
    log,
    maxEntries: deps.orphanFetchMaxEntries,
    timeoutMs: deps.orphanFetchTimeoutMs,
    maxPerPeer: deps.orphanFetchesPerPeer,
    maxInFlight: deps.orphanFetchesMax
  })
  const ingest: LogIngest = new LogIngest({
    logs: deps.logs,
    bans: deps.bans,
    isRegistered: deps.isRegistered,
    blockstore: deps.storage.blockstore,
    pins: deps.storage.pins,
    onPinQueued: () => { deps.storage.runner.wake() },
    fetchAncestors: (missing, author, peers) => { fetcher.request(missing, author, peers) },
    limits: deps.authorLimits,
    limitMetrics: deps.limitMetrics,
    metrics: deps.metrics,
    log,
    worker
  })
  const sync = new SyncResponder({
    logs: deps.logs,
    blockstore: deps.storage.blockstore,
    isRegistered: deps.isRegistered,
    fetchAncestors: (head, author, peers) => { fetcher.request(head, author, peers) },
    receipts: deps.receipts,
    receiptsPerMinute: deps.syncReceiptsPerMinute,
    receiptChecksMax: deps.syncReceiptChecksMax,
    metrics: deps.metrics,
    limitMetrics: deps.limitMetrics
  })
  const headRequests = new HeadRequests({
    node: deps.node,
    network: deps.network,
    logs: deps.logs,
    isRegistered: deps.isRegistered,
    requestsPerMinute: deps.syncHeadRequestsPerMinute,
    answersMax: deps.syncHeadAnswersMax,
    metrics: deps.metrics,
    limitMetrics: deps.limitMetrics,
    log
  })
  const lifetime = new AbortController()
  // Each answer in progress listens on it (AbortSignal.any with its own timeout).
  setMaxListeners(Infinity, lifetime.signal)
  const contentKeys = deps.sealer === undefined ? undefined : new ContentKeyStore(deps.db, deps.sealer)
  const keyExchange = contentKeys === undefined
    ? undefined
    : new KeyExchangeService({
      keys: contentKeys,
      entitlement: deps.entitlement,
      isRegistered: deps.isRegistered,
      node: deps.node,
      network: deps.network,
      log,
      onOutcome: (outcome) => { deps.keyExchangeMetrics.requests.inc({ outcome }) }
    })
  const answerKeyExchange = async (frame: Uint8Array, peer: string, signal: AbortSignal): Promise<Uint8Array | undefined> => {
    if (keyExchange !== undefined) return await keyExchange.answer(frame, peer, signal)
    deps.keyExchangeMetrics.requests.inc({ outcome: 'role-off' })
    return keyExchangeOffAnswer()
  }

  const queue = new IngestQueue(log, deps.metrics)

  // ---- validate, then forward ------------------------------------------------------------
  //
  // Every worker that receives a gossip message checks it, in memory, before the overlay
  // forwards it (LogIngest stages 1–4: envelope, signatures, registered author); storing it
  // (stages 5–7, Postgres) is left to the one worker that claims it (fleet-claims.ts). So
  // forwarding waits on no storage, a worker that did not claim an entry still forwards it to
  // its own peers, and the claimer stores what its own validator checked without checking it
  // again.

  const checked = new AcceptedPayloads<CheckedEnvelope>(CHECKED_MAX)
  const validateContent: GossipValidator = async ({ messageId, payload, from }) => {
    const result = await ingest.checkEnvelope(payload, from)
    // An unregistered author is not forwarded, and not blamed on the neighbour: a peer that does
    // not know the registry forwards it in good faith, and an attacker could otherwise get honest
    // peers dropped by feeding them such entries (gossip-validators.ts, `registered`).
    if (result.verdict !== 'accept') return result.reason === 'unregistered-author' ? 'ignore' : 'reject'
    checked.keep(messageId, payload, result)
    return 'accept'
  }

  const claims = new FleetClaims({
    fleet: deps.fleet,
    queue,
    ingestEnvelopes: async (items) => await ingest.ingestEnvelopes(items),
    checked,
    // `content` is not here: FleetClaims batches it. Without the key-exchange role the topic's
    // requests are not claimed here, so a sibling that has the role answers them.
    handlers: new Map<string, ClaimedHandler>(keyExchange === undefined
      ? []
      : [['keyexchange', async (_messageId: string, payload: Uint8Array) => {
          await keyExchange.onTopicRequest(payload)
          return true
        }]]),
    broadcast: (topic, messageId, payload) => { deps.overlay.broadcast(topic, messageId, payload) },
    claimTtlMs: deps.claimTtlMs,
    metrics: deps.metrics,
    log
  })

  /** Entries stored but never pinned (their worker died in between) get their pin. */
  const sweepUnpinned = async (): Promise<void> => {
    const entries = await deps.logs.unpinned(UNPINNED_AFTER_MS, 100)
    for (const { cid, author, seq } of entries) await ingest.pin(author, seq, CID.decode(cid), { from: author })
    if (entries.length > 0) log.info({ entries: entries.length }, 'pinned entries a worker had stored but not pinned')
  }
  const timers: NodeJS.Timeout[] = []

  const unsubscribers: Array<() => void> = []
  return {
    ingest,
    fetcher,
    sync,
    keyExchangeRole: keyExchange !== undefined,
    resealKeys: async (signal) => {
      if (contentKeys === undefined) return undefined
      const report = await contentKeys.reseal(signal)
      if (report.sealedPlaintext > 0) deps.keyExchangeMetrics.resealed.inc({ from: 'plaintext' }, report.sealedPlaintext)
      if (report.resealed > 0) deps.keyExchangeMetrics.resealed.inc({ from: 'old-version' }, report.resealed)
      deps.keyExchangeMetrics.unopenable.set(report.versionMissing)
      return report
    },
    onRelayed: (topic, messageId, payload) => { claims.onRelayed(topic, messageId, payload) },
    async start () {
      queue.open()
      unsubscribers.push(
        deps.overlay.setValidator('content', validateContent),
        deps.overlay.setValidator('keyexchange', keyExchangeValidator(deps.isRegistered)),
        deps.overlay.setValidator('sync', syncValidator(deps.isRegistered)),
        deps.overlay.onDeliver((delivery) => {
          // Not through the fleet claim: each worker answers the askers it holds a connection to.
          if (delivery.topic === 'sync') void headRequests.onDelivered(delivery.payload, lifetime.signal)
          else claims.dispatch(delivery.topic, delivery.messageId, delivery.payload, delivery.from)
        })
      )
      const every = (ms: number, what: string, run: () => Promise<void>): void => {
        let busy = false
        const timer = setInterval(() => {
          if (busy) return
          busy = true
          run().catch((err: unknown) => { log.warn({ err }, `${what} failed; trying again`) }).finally(() => { busy = false })
        }, ms)
        timer.unref()
        timers.push(timer)
      }
      every(Math.max(250, Math.floor(deps.claimTtlMs / 4)), 'taking over messages of other workers', async () => { await claims.takeOver() })
      every(UNPINNED_SWEEP_MS, 'looking for unpinned entries', sweepUnpinned)
      unsubscribers.push(deps.storage.onPinned((job) => {
        if (job.kind === null) return
        deps.logs.markPinned(job.id).then((entries) => {
          for (const entry of entries) deps.metrics.entryPinSeconds.observe(entry.seconds)
        }, (err: unknown) => { log.warn({ err, pin: job.id }, 'could not mark an entry pinned') })
      }))
      const rejected = (protocol: string) => (connection: { remotePeer: { toString: () => string } }, err: unknown): void => {
        log.debug({ err, peer: connection.remotePeer.toString(), protocol }, 'request rejected')
      }
      await serveRequests(deps.node, syncProtocolId(deps.network), async (frame, connection, signal) => await sync.answer(frame, connection.remotePeer.toString(), signal), {
        maxRequestBytes: MAX_SYNC_FRAME_BYTES,
        timeoutMs: REQUEST_TIMEOUT_MS,
        maxInboundStreams: MAX_INBOUND_SYNC_STREAMS,
        onRejected: rejected('sync')
      })
      await serveRequests(deps.node, keyExchangeProtocolId(deps.network), async (frame, connection, signal) => await answerKeyExchange(frame, connection.remotePeer.toString(), signal), {
        maxRequestBytes: MAX_KEY_EXCHANGE_FRAME_BYTES,
        timeoutMs: REQUEST_TIMEOUT_MS,
        maxInboundStreams: 4,
        onRejected: rejected('keyexchange')
      })
    },
    async stop () {
      const closing = queue.close()
      claims.clear()
      lifetime.abort()
      for (const timer of timers.splice(0)) clearInterval(timer)
      checked.clear()
      for (const unsubscribe of unsubscribers.splice(0)) unsubscribe()
      await closing
      await fetcher.stop()
      await deps.node.unhandle([syncProtocolId(deps.network), keyExchangeProtocolId(deps.network)]).catch(() => {})
    }
  }
}
