/**
 * The signed-log area of a worker, composed once (worker.ts calls this): ingest of the
 * `content` topic, the ancestor fetcher, the sync responder and key exchange, wired to the
 * overlay, the libp2p node, storage and the pin queue.
 */
import type { Libp2p } from '@libp2p/interface'
import { MAX_KEY_EXCHANGE_FRAME_BYTES, MAX_SYNC_FRAME_BYTES, keyExchangeProtocolId, syncProtocolId } from '../../../protocol/src/log/index.ts'
import type { BanList } from '../bans/ban-list.ts'
import type { Logger } from '../logging/logger.ts'
import type { KeyExchangeMetrics } from '../metrics/key-exchange-metrics.ts'
import type { LogMetrics } from '../metrics/log-metrics.ts'
import type { OverlayDriver } from '../overlay/overlay-driver.ts'
import { serveRequests } from '../p2p/request-response.ts'
import type { StorageService } from '../pinning/storage-service.ts'
import { ContentKeyStore } from '../keys/content-key-store.ts'
import type { EntitlementCheck } from '../keys/entitlement.ts'
import { KeyExchangeService } from '../keys/key-exchange-service.ts'
import type { SqlClient } from '../storage/sql.ts'
import { AncestorFetcher } from './ancestor-fetcher.ts'
import { LogIngest } from './log-ingest.ts'
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
  entitlement: EntitlementCheck
  orphanFetchMaxEntries: number
  orphanFetchTimeoutMs: number
  log: Logger
}

export interface LogService {
  readonly ingest: LogIngest
  readonly fetcher: AncestorFetcher
  /** Registers the protocols and starts taking entries from the overlay. Call after libp2p started. */
  start: () => Promise<void>
  /** Stops taking entries, waits for the ones in hand, and stops fetches under way. */
  stop: () => Promise<void>
}

/** Entries being verified and stored at once (guess: enough to keep both cores and the pool busy). */
const INGEST_CONCURRENCY = 32
/** Entries waiting beyond that; more are dropped (Plumtree's IHAVE/GRAFT or sync brings them back). */
const INGEST_QUEUE_MAX = 10_000
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
    metrics: deps.metrics,
    log,
    maxEntries: deps.orphanFetchMaxEntries,
    timeoutMs: deps.orphanFetchTimeoutMs
  })
  const ingest: LogIngest = new LogIngest({
    logs: deps.logs,
    bans: deps.bans,
    isRegistered: deps.isRegistered,
    blockstore: deps.storage.blockstore,
    pins: deps.storage.pins,
    onPinQueued: () => { deps.storage.runner.wake() },
    fetchAncestors: (missing, peers) => { fetcher.request(missing, peers) },
    metrics: deps.metrics,
    log,
    worker
  })
  const sync = new SyncResponder({
    logs: deps.logs,
    blockstore: deps.storage.blockstore,
    isRegistered: deps.isRegistered,
    fetchAncestors: (head, peers) => { fetcher.request(head, peers) }
  })
  const keyExchange = new KeyExchangeService({
    keys: new ContentKeyStore(deps.db),
    entitlement: deps.entitlement,
    isRegistered: deps.isRegistered,
    node: deps.node,
    network: deps.network,
    log,
    onOutcome: (outcome) => { deps.keyExchangeMetrics.requests.inc({ outcome }) }
  })

  // A bounded queue in front of ingest: gossip arrives in bursts, verification is async.
  const waiting: Array<() => Promise<unknown>> = []
  const running = new Set<Promise<unknown>>()
  let accepting = false
  const pump = (): void => {
    while (running.size < INGEST_CONCURRENCY && waiting.length > 0) {
      const task = waiting.shift()
      if (task === undefined) break
      const run: Promise<unknown> = task()
        .catch((err: unknown) => { log.warn({ err }, 'ingest of an entry failed; it was not stored') })
        .finally(() => { running.delete(run); pump() })
      running.add(run)
    }
  }
  const enqueue = (task: () => Promise<unknown>): void => {
    if (!accepting) return
    if (waiting.length >= INGEST_QUEUE_MAX) {
      deps.metrics.entries.inc({ result: 'rejected', reason: 'overloaded' })
      return
    }
    waiting.push(task)
    pump()
  }

  const unsubscribers: Array<() => void> = []
  return {
    ingest,
    fetcher,
    async start () {
      accepting = true
      unsubscribers.push(deps.overlay.onDeliver((delivery) => {
        if (delivery.topic === 'content') enqueue(async () => await ingest.ingestEnvelope(delivery.payload, delivery.from))
        else if (delivery.topic === 'keyexchange') enqueue(async () => { await keyExchange.onTopicRequest(delivery.payload) })
      }))
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
      await serveRequests(deps.node, keyExchangeProtocolId(deps.network), async (frame, connection, signal) => await keyExchange.answer(frame, connection.remotePeer.toString(), signal), {
        maxRequestBytes: MAX_KEY_EXCHANGE_FRAME_BYTES,
        timeoutMs: REQUEST_TIMEOUT_MS,
        maxInboundStreams: 4,
        onRejected: rejected('keyexchange')
      })
    },
    async stop () {
      accepting = false
      for (const unsubscribe of unsubscribers.splice(0)) unsubscribe()
      waiting.length = 0
      await Promise.allSettled([...running])
      await fetcher.stop()
      await deps.node.unhandle([syncProtocolId(deps.network), keyExchangeProtocolId(deps.network)]).catch(() => {})
    }
  }
}
