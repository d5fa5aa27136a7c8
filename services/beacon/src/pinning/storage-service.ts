import { multiaddr } from '@multiformats/multiaddr'
import type { Config } from '../config/schema.ts'
import type { Logger } from '../logging/logger.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import { createStorageMetrics } from './storage-metrics.ts'
import type { StorageMetrics } from './storage-metrics.ts'
import { createBeaconHelia } from '../storage/beacon-helia.ts'
import type { BeaconHelia } from '../storage/beacon-helia.ts'
import { BitswapSendBudget } from '../storage/bitswap-send-budget.ts'
import { BitswapBlockstoreView } from '../storage/bitswap-view.ts'
import { collectBytes, PgBlockstore } from '../storage/pg-blockstore.ts'
import type { SqlClient } from '../storage/sql.ts'
import { GarbageCollector } from './garbage-collector.ts'
import { PinRunner } from './pin-runner.ts'
import { PinStore } from './pin-store.ts'
import type { FetchedBlock } from './pin-runner.ts'
import type { PinJob } from './pin-store.ts'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import type { Registry } from 'prom-client'

export interface StorageServiceDeps {
  config: Config
  db: SqlClient
  /** The worker's libp2p node (started before `start()`). */
  node: Libp2p
  log: Logger
  registry: Registry
  /** Accepted on /pins, as owner "admin", when PHAROS_PIN_TOKENS is empty. */
  adminTokens: readonly string[]
  /**
   * Addresses of a peer known only by ID (`/p2p/<id>` origins, as entry pins have): the
   * fleet's peer view knows where another worker saw it. @default none
   */
  locatePeer?: (peerId: string) => Promise<string[] | undefined>
  /** `pharos_limit_blocked_total`: pins failed by a limit, and what the Bitswap send budget made wait. @default not counted */
  limits?: Pick<LimitMetrics, 'blocked'>
}

/** What the HTTP surface needs of storage: the pinning API, the gateway and /v1 storage routes. */
export interface StorageHttp {
  pins: PinStore
  blockstore: PgBlockstore
  gc: GarbageCollector
  pinTokens: ReadonlyArray<{ token: string, owner: string }>
  ownerQuotaBytes: number
  onPinQueued: () => void
}

export interface StorageService {
  readonly blockstore: PgBlockstore
  /** What serving blocks over Bitswap holds, per peer and in all. */
  readonly sendBudget: BitswapSendBudget
  readonly helia: BeaconHelia
  readonly pins: PinStore
  readonly runner: PinRunner
  readonly gc: GarbageCollector
  readonly metrics: StorageMetrics
  readonly http: StorageHttp
  /** Calls `listener` whenever this worker settles a pin as pinned; returns the unsubscribe. */
  onPinned: (listener: (job: PinJob) => void) => () => void
  /** Fetches one block from every connected peer over Bitswap, verified and stored, retrying until `signal` aborts. */
  fetchBlock: (cid: CID, signal: AbortSignal) => Promise<Uint8Array>
  /** Dials a pin origin (a multiaddr, or a bare `/p2p/<id>` the fleet's peer views locate). */
  dialOrigin: (address: string, signal: AbortSignal) => Promise<void>
  /** Starts Bitswap on the (started) node, the pin queue and scheduled GC. */
  start: () => Promise<void>
  /** Hands running pin jobs back to the queue, stops GC and Bitswap; leaves libp2p running. */
  stop: () => Promise<void>
}

/**
 * A want not answered within this long is withdrawn and made again (guess: longer than
 * @helia/bitswap's 5 s do-not-resend window). Helia 7's Bitswap never sends cancels, so a
 * peer that sent us a block in the last 5 s ignores a new want for it (it still counts it
 * as sent); a fresh want after the window is served.
 */
const REWANT_AFTER_MS = 6000

/**
 * How long a want sent only to a block's origins may go unanswered before it goes to every
 * connected peer (guess: a connected origin answers within a few round trips).
 */
const ORIGIN_WANT_MS = 5000

/**
 * Fetches one block through Helia's blockstore: asked for over Bitswap, verified against its
 * CID and written to Postgres before it is returned. Retries the want until `signal` aborts.
 *
 * A plain want goes to every connected peer, and each answers: at thousands of connections
 * one block costs thousands of messages each way, and the sends queue behind one another
 * (a pin of a post then waits on messages to peers that never had it). So when the block's
 * origins (the pin's, e.g. the entry's publisher) are connected, a session asks only them
 * first; the broadcast is the fallback.
 */
async function fetchBlock (helia: BeaconHelia, cid: CID, signal: AbortSignal, origins: readonly PeerId[] = []): Promise<FetchedBlock> {
  const connected = origins.filter((peer) => helia.libp2p.getConnections(peer).some((connection) => connection.status === 'open'))
  if (connected.length > 0) {
    try {
      // Providers by peer ID as a CID: Bitswap sessions take no other form.
      const session = helia.blockstore.createSession(cid, { providers: connected.map((peer) => peer.toCID()), signal })
      return { bytes: await collectBytes(session.get(cid, { signal: AbortSignal.any([signal, AbortSignal.timeout(ORIGIN_WANT_MS)]) })), from: 'origin' }
    } catch (err) {
      if (signal.aborted) throw err
      // The origins did not have it or did not answer in time: ask everyone.
    }
  }
  for (;;) {
    const rewant = AbortSignal.timeout(REWANT_AFTER_MS)
    try {
      return { bytes: await collectBytes(helia.blockstore.get(cid, { signal: AbortSignal.any([signal, rewant]) })), from: 'any' }
    } catch (err) {
      if (signal.aborted || !rewant.aborted) throw err
    }
  }
}

/**
 * The storage area of a worker, composed once (worker.ts calls this): the Postgres
 * blockstore, Helia with Bitswap on the worker's node, the pin queue runner and GC, with
 * their metrics on the worker's registry.
 */
export function createStorageService ({ config, db, node, log, registry, adminTokens, locatePeer, limits }: StorageServiceDeps): StorageService {
  const metrics = createStorageMetrics(registry)
  const storageLog = log.child({ component: 'blockstore' })
  const blockstore = new PgBlockstore({
    db,
    onHashMismatch: (cid) => {
      metrics.hashMismatches.inc()
      storageLog.error({ cid: cid.toString() }, 'stored block failed hash verification; it is not served')
    }
  })
  const served = new BitswapBlockstoreView(blockstore)
  const sendBudget = new BitswapSendBudget({
    peerBytes: config.bitswapPeerBytesInFlight,
    totalBytes: config.bitswapBytesInFlight,
    sizeOf: async (cid, options) => await served.sizeOf(cid, options),
    limits
  })
  metrics.readSendBudgetFrom(() => sendBudget.snapshot())
  const helia = createBeaconHelia({
    libp2p: node,
    blockstore: served,
    log,
    metrics,
    maxWriteBufferBytes: config.bitswapMaxWriteBufferBytes,
    sendBudget,
    sendStallMs: config.bitswapSendStallMs,
    onSendStalled: () => { limits?.blocked('bitswapSendStallMs') }
  })
  const pins = new PinStore(db)
  const pinnedListeners = new Set<(job: PinJob) => void>()
  metrics.readSnapshotFrom(async () => ({ pins: await pins.countsByStatus(), ...await blockstore.totals() }))

  /**
   * Dials a pin origin; a bare /p2p/<id> with no connection is looked up in the fleet first
   * (the worker holding the peer knows its listen addresses; the peer store may hold only
   * stale ones).
   */
  const dialOrigin = async (address: string, signal: AbortSignal): Promise<void> => {
    const addr = multiaddr(address)
    const [only, ...rest] = addr.getComponents()
    if (only?.name === 'p2p' && only.value !== undefined && rest.length === 0 && locatePeer !== undefined) {
      const peer = peerIdFromString(only.value)
      if (node.getConnections(peer).length === 0) {
        const addrs = await locatePeer(only.value)
        if (addrs !== undefined) await node.peerStore.merge(peer, { multiaddrs: addrs.map((text) => multiaddr(text)) })
      }
      await node.dial(peer, { signal })
      return
    }
    await node.dial(addr, { signal })
  }

  const runner = new PinRunner({
    worker: node.peerId.toString(),
    concurrency: config.pinConcurrency,
    fetchConcurrency: config.pinFetchConcurrency,
    leaseMs: config.pinLeaseMs,
    pollIntervalMs: config.pinPollIntervalMs,
    maxAttempts: config.pinMaxAttempts,
    entryMaxAttempts: config.entryPinMaxAttempts,
    retryBaseMs: config.pinRetryBaseMs,
    retryMaxMs: config.pinRetryMaxMs,
    timeoutMs: config.pinTimeoutMs,
    stallTimeoutMs: config.pinStallTimeoutMs,
    maxBytes: config.pinMaxBytes,
    maxBlocks: config.pinMaxBlocks,
    maxDepth: config.pinMaxDepth,
    maxLinksPerBlock: config.dagMaxLinksPerBlock,
    ownerQuotaBytes: config.pinOwnerQuotaBytes,
    authorQuotaBytes: config.authorQuotaBytes
  }, {
    store: pins,
    blockstore,
    fetch: async (cid, signal, origins) => await fetchBlock(helia, cid, signal, origins),
    dial: dialOrigin,
    log,
    metrics,
    onPinned: (job) => { for (const listener of pinnedListeners) listener(job) },
    ...(limits === undefined ? {} : { limits })
  })
  const gc = new GarbageCollector({ db, graceMs: config.gcGraceMs, intervalMs: config.gcIntervalMs, log, metrics })

  return {
    blockstore,
    sendBudget,
    helia,
    pins,
    runner,
    gc,
    metrics,
    onPinned (listener) {
      pinnedListeners.add(listener)
      return () => { pinnedListeners.delete(listener) }
    },
    fetchBlock: async (cid, signal) => (await fetchBlock(helia, cid, signal)).bytes,
    dialOrigin,
    http: {
      pins,
      blockstore,
      gc,
      pinTokens: config.pinTokens.length > 0 ? config.pinTokens : adminTokens.map((token) => ({ token, owner: 'admin' })),
      ownerQuotaBytes: config.pinOwnerQuotaBytes,
      onPinQueued: () => { runner.wake() }
    },
    async start () {
      await helia.start()
      runner.start()
      gc.start()
    },
    async stop () {
      gc.stop()
      await runner.stop()
      await helia.stop()
    }
  }
}
