/**
 * The signed-log area of a worker, composed once (worker.ts calls this): ingest of the
 * `content` topic, HEAD requests on the `sync` topic, the ancestor fetcher, the sync
 * responder and key exchange, wired to the overlay, the libp2p node, storage and the pin queue.
 */
import { setMaxListeners } from 'node:events'
import type { Libp2p } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import { MAX_KEY_EXCHANGE_FRAME_BYTES, MAX_SYNC_FRAME_BYTES, keyExchangeProtocolId, syncProtocolId } from '../../../protocol/src/log/index.ts'
import type { BanList } from '../bans/ban-list.ts'
import type { Logger } from '../logging/logger.ts'
import type { KeyExchangeMetrics } from '../keys/key-exchange-metrics.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import type { LogMetrics } from './log-metrics.ts'
import { AcceptedPayloads, keyExchangeValidator, syncValidator } from '../../../net/src/overlay/gossip-validators.ts'
import type { GossipValidator, OverlayDriver } from '../../../net/src/overlay/overlay-driver.ts'
import { serveRequests } from '../../../net/src/request-response.ts'
import type { StorageService } from '../pinning/storage-service.ts'
import type { ReceiptIssuer } from '../receipts/receipt-issuer.ts'
import { ContentKeyStore } from '../keys/content-key-store.ts'
import type { EntitlementCheck } from '../keys/entitlement.ts'
import { KeyExchangeService } from '../keys/key-exchange-service.ts'
import { isStorageUnavailable } from '../storage/sql.ts'
import type { SqlClient } from '../storage/sql.ts'
import { AncestorFetcher } from './ancestor-fetcher.ts'
import { HeadRequests } from './head-requests.ts'
import { isTransactionConflict, LogIngest } from './log-ingest.ts'
import type { AuthorLimits, EnvelopeCheck } from './log-ingest.ts'
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

/**
 * What the log service needs from the fleet. `claim` answers `claimed` to exactly one
 * worker per message ID (or to everyone while Redis is away: Postgres' unique keys still
 * keep storage exactly-once); `relay` hands an accepted message to the other workers, which
 * broadcast it to their own peers.
 */
export interface FleetGossip {
  claim: (messageId: string) => Promise<'claimed' | 'seen'>
  /** `claim` for a batch, answered in order, in one round trip to Redis. */
  claimMany: (messageIds: readonly string[]) => Promise<Array<'claimed' | 'seen'>>
  complete: (messageId: string) => void
  states: (messageIds: readonly string[]) => Promise<Map<string, 'done' | 'claimed' | 'absent'>>
  relay: (topic: string, messageId: string, payload: Uint8Array) => void
}

/** A message another worker claimed: kept until that worker is done with it, or its claim lapses. */
interface Deferred {
  topic: string
  payload: Uint8Array
  from: string
  since: number
}

export interface LogService {
  readonly ingest: LogIngest
  readonly fetcher: AncestorFetcher
  /** The sync responder: also answers `GET /v1/heads`. */
  readonly sync: SyncResponder
  /** A message another worker accepted and relayed through the fleet: broadcast to our peers. */
  onRelayed: (topic: string, messageId: string, payload: Uint8Array) => void
  /** Registers the protocols and starts taking entries from the overlay. Call after libp2p started. */
  start: () => Promise<void>
  /** Stops taking entries, waits for the ones in hand, and stops fetches under way. */
  stop: () => Promise<void>
}

/** Entries being verified and stored at once (guess: enough to keep both cores and the pool busy). */
const INGEST_CONCURRENCY = 32
/** Entries waiting beyond that; more are dropped (Plumtree's IHAVE/GRAFT or sync brings them back). */
const INGEST_QUEUE_MAX = 10_000
/**
 * Content messages stored together: one claim round trip, one admission read, one insert
 * and one pin transaction per batch (guess: large enough that the per-batch round trips
 * vanish, small enough that one author lock set is held briefly).
 */
const CONTENT_BATCH_MAX = 64
/**
 * How long the first message of a batch waits for others (guess: a burst fills a batch
 * within this; a lone entry is delayed by no more than this).
 */
const CONTENT_BATCH_WAIT_MS = 5
/** Messages claimed by other workers kept for a takeover; the oldest go first beyond this (guess). */
const DEFERRED_MAX = 20_000
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
/** Longest wait between retries of an entry while Postgres is unreachable. */
const STORAGE_RETRY_MAX_MS = 2000
/** Tries of a task whose transaction Postgres rolled back for a deadlock or serialization failure (guess). */
const CONFLICT_RETRIES = 5

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
  // While Postgres is unreachable a task holds its slot and retries: the slots fill, then
  // the queue, and only then are entries refused ('overloaded') — backpressure, not loss.
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
  /** Entries in `waiting` (a batch task holds several). */
  let waitingEntries = 0
  /** Queues a task of `entries` entries; false (each counted as overloaded) when the queue is full. */
  const enqueueRaw = (task: () => Promise<unknown>, entries = 1): boolean => {
    if (!accepting) return false
    if (waitingEntries + entries > INGEST_QUEUE_MAX) {
      deps.metrics.entries.inc({ result: 'rejected', reason: 'overloaded' }, entries)
      return false
    }
    waitingEntries += entries
    waiting.push(async () => { waitingEntries -= entries; return await task() })
    pump()
    return true
  }
  const enqueue = (task: () => Promise<unknown>): void => {
    enqueueRaw(async () => await untilStorageAnswers(task))
  }
  let storageDownSince: number | undefined
  const untilStorageAnswers = async <T>(task: () => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await task()
        if (storageDownSince !== undefined) {
          log.info({ downMs: Date.now() - storageDownSince }, 'storage answers again; ingest resumed')
          storageDownSince = undefined
        }
        return result
      } catch (err) {
        // A deadlock or serialization failure rolled the transaction back: nothing of it was
        // stored or acknowledged, and trying again is what Postgres asks for (a few times).
        if (accepting && isTransactionConflict(err) && attempt < CONFLICT_RETRIES) {
          await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt))
          continue
        }
        if (!accepting || !isStorageUnavailable(err)) throw err
        if (storageDownSince === undefined) {
          storageDownSince = Date.now()
          log.warn({ err }, 'storage unavailable; entries wait (and the ingest queue fills) until it answers')
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, STORAGE_RETRY_MAX_MS)))
      }
    }
  }

  // ---- validate, then forward ------------------------------------------------------------
  //
  // Every worker that receives a gossip message checks it, in memory, before the overlay
  // forwards it (LogIngest stages 1–4: envelope, signatures, registered author); storing it
  // (stages 5–7, Postgres) is left to the one worker that claims it below. So forwarding waits
  // on no storage, a worker that did not claim an entry still forwards it to its own peers, and
  // the claimer stores what its own validator checked without checking it again.

  const checked = new AcceptedPayloads<Extract<EnvelopeCheck, { verdict: 'accept' }>>(CHECKED_MAX)
  const validateContent: GossipValidator = async ({ messageId, payload, from }) => {
    const result = await ingest.checkEnvelope(payload, from)
    // An unregistered author is not forwarded, and not blamed on the neighbour: a peer that does
    // not know the registry forwards it in good faith, and an attacker could otherwise get honest
    // peers dropped by feeding them such entries (gossip-validators.ts, `registered`).
    if (result.verdict !== 'accept') return result.reason === 'unregistered-author' ? 'ignore' : 'reject'
    checked.keep(messageId, payload, result)
    return 'accept'
  }

  // ---- one worker per message (fleet seen-set) ------------------------------------------

  const deferred = new Map<string, Deferred>()
  /**
   * What each topic does with a message this worker claimed. The answer says whether the
   * message ID is settled fleet-wide: only an entry whose CID is the message ID settles it,
   * so a squatter's payload under that ID leaves it open and the real entry is taken over
   * later.
   */
  type Handler = (messageId: string, payload: Uint8Array, from: string) => Promise<boolean>
  // `content` is not here: its messages go through the batch below.
  const handlers = new Map<string, Handler>([
    ['keyexchange', async (_messageId, payload) => {
      await keyExchange.onTopicRequest(payload)
      return true
    }]
  ])
  const defer = (messageId: string, topic: string, payload: Uint8Array, from: string): void => {
    deps.metrics.deferred.inc()
    deferred.delete(messageId)
    deferred.set(messageId, { topic, payload, from, since: Date.now() })
    for (const oldest of deferred.keys()) {
      if (deferred.size <= DEFERRED_MAX) break
      deferred.delete(oldest)
    }
  }
  /**
   * Content messages wait here (at most CONTENT_BATCH_MAX, at most CONTENT_BATCH_WAIT_MS) and
   * go to the queue as one task: claimed with one `claimMany`, stored with one
   * `ingestEnvelopes`. The claim is made once; only the storing is retried while Postgres is
   * away, so a retry never finds its own claims `seen`. Each message is settled (completed
   * fleet-wide, relayed) only after the batch's commits, exactly as a single one is.
   */
  let contentBatch: Array<{ messageId: string, payload: Uint8Array, from: string }> = []
  let contentTimer: NodeJS.Timeout | undefined
  const sendContentBatch = (): void => {
    clearTimeout(contentTimer)
    contentTimer = undefined
    const batch = contentBatch
    contentBatch = []
    if (batch.length === 0) return
    enqueueRaw(async () => {
      const claims = await deps.fleet.claimMany(batch.map((message) => message.messageId))
      const mine = batch.filter((message, i) => {
        if (claims[i] === 'claimed') return true
        checked.forget(message.messageId)
        defer(message.messageId, 'content', message.payload, message.from)
        return false
      })
      if (mine.length === 0) return
      const items = mine.map((message) => {
        const pre = checked.take(message.messageId, message.payload)
        return pre === undefined ? { payload: message.payload, from: message.from } : { payload: message.payload, from: message.from, checked: pre }
      })
      const results = await untilStorageAnswers(async () => await ingest.ingestEnvelopes(items))
      for (const [i, { messageId, payload }] of mine.entries()) {
        const result = results[i]
        // As the single handler: only an entry whose CID is the message ID settles it. One
        // that failed to store is left unsettled: once the claim lapses, a worker that
        // deferred it (or a later delivery) tries again.
        if (result === undefined || result.cid?.toString() !== messageId) continue
        if (result.result === 'rejected' && result.reason === 'storage-error') continue
        if (result.result !== 'rejected') deps.fleet.relay('content', messageId, payload)
        deps.fleet.complete(messageId)
      }
    }, batch.length)
  }

  /** One worker per message: the claim's winner handles it, the others keep it for a takeover. */
  const dispatch = (topic: string, messageId: string, payload: Uint8Array, from: string): void => {
    if (topic === 'content') {
      if (!accepting) return
      contentBatch.push({ messageId, payload, from })
      if (contentBatch.length >= CONTENT_BATCH_MAX) sendContentBatch()
      else contentTimer ??= setTimeout(sendContentBatch, CONTENT_BATCH_WAIT_MS)
      return
    }
    const handle = handlers.get(topic)
    if (handle === undefined) return
    enqueue(async () => {
      if (await deps.fleet.claim(messageId) === 'seen') {
        checked.forget(messageId)
        defer(messageId, topic, payload, from)
        return
      }
      if (await handle(messageId, payload, from)) deps.fleet.complete(messageId)
    })
  }
  /**
   * Messages another worker claimed more than a claim's lifetime ago: done ones are
   * forgotten; the rest (the claimer died, or lost Postgres) are claimed again here.
   */
  const takeOver = async (): Promise<void> => {
    const cutoff = Date.now() - deps.claimTtlMs
    const due: string[] = []
    for (const [messageId, entry] of deferred) {
      if (entry.since > cutoff) break // insertion order is arrival order
      due.push(messageId)
    }
    if (due.length === 0) return
    const states = await deps.fleet.states(due)
    for (const messageId of due) {
      const entry = deferred.get(messageId)
      if (entry === undefined) continue
      const state = states.get(messageId) ?? 'absent'
      if (state === 'done') {
        deferred.delete(messageId)
      } else if (state === 'absent') {
        deferred.delete(messageId)
        deps.metrics.takenOver.inc()
        dispatch(entry.topic, messageId, entry.payload, entry.from)
      } else {
        // Still claimed: the claim was renewed or is about to lapse; look again next round.
        entry.since = Date.now()
        deferred.delete(messageId)
        deferred.set(messageId, entry)
      }
    }
  }
  /** An accepted message relayed by another worker: it is done, and goes on to our peers. */
  const onRelayed = (topic: string, messageId: string, payload: Uint8Array): void => {
    deferred.delete(messageId)
    try {
      deps.overlay.broadcast(topic, messageId, payload)
    } catch (err) {
      log.debug({ err, messageId }, 'a relayed message could not be broadcast')
    }
  }

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
    onRelayed,
    async start () {
      accepting = true
      unsubscribers.push(
        deps.overlay.setValidator('content', validateContent),
        deps.overlay.setValidator('keyexchange', keyExchangeValidator(deps.isRegistered)),
        deps.overlay.setValidator('sync', syncValidator(deps.isRegistered)),
        deps.overlay.onDeliver((delivery) => {
          // Not through the fleet claim: each worker answers the askers it holds a connection to.
          if (delivery.topic === 'sync') void headRequests.onDelivered(delivery.payload, lifetime.signal)
          else dispatch(delivery.topic, delivery.messageId, delivery.payload, delivery.from)
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
      every(Math.max(250, Math.floor(deps.claimTtlMs / 4)), 'taking over messages of other workers', takeOver)
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
      await serveRequests(deps.node, keyExchangeProtocolId(deps.network), async (frame, connection, signal) => await keyExchange.answer(frame, connection.remotePeer.toString(), signal), {
        maxRequestBytes: MAX_KEY_EXCHANGE_FRAME_BYTES,
        timeoutMs: REQUEST_TIMEOUT_MS,
        maxInboundStreams: 4,
        onRejected: rejected('keyexchange')
      })
    },
    async stop () {
      accepting = false
      clearTimeout(contentTimer)
      contentTimer = undefined
      contentBatch = []
      lifetime.abort()
      for (const timer of timers.splice(0)) clearInterval(timer)
      deferred.clear()
      checked.clear()
      for (const unsubscribe of unsubscribers.splice(0)) unsubscribe()
      waiting.length = 0
      waitingEntries = 0
      await Promise.allSettled([...running])
      await fetcher.stop()
      await deps.node.unhandle([syncProtocolId(deps.network), keyExchangeProtocolId(deps.network)]).catch(() => {})
    }
  }
}
