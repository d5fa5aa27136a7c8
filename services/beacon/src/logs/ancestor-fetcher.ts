/**
 * Fetches the missing ancestors of an orphan entry (DESIGN.md §4) from the peers that sent
 * it, over the sync protocol's `entries` request: blocks walking back along `prev` from the
 * missing CID, 256 at a time, until a stored entry or genesis is reached, or a bound is hit.
 * Each batch is checked link by link (every block must be an entry of the author the fetch
 * is for, hashing to the CID asked for), then ingested oldest first through the same
 * pipeline as gossip.
 *
 * What bounds it (docs/logs.md "Orphans"):
 * - only registered peers are asked (and so dialled): a fetch none of whose peers is a
 *   registered account is not started;
 * - one fetch per author at a time, and the entries it ingests never start fetches of their
 *   own (each batch's oldest entry is an orphan; the fetch walks on by itself), so a chain's
 *   fetches cannot cascade: PHAROS_ORPHAN_FETCH_MAX_ENTRIES blocks per fetch, counted as
 *   received, duplicates included;
 * - fetches in flight per peer (PHAROS_ORPHAN_FETCHES_PER_PEER, charged to the peer that
 *   caused it) and per worker (PHAROS_ORPHAN_FETCHES_MAX); a request over either is dropped
 *   and counted;
 * - ingest of fetched batches goes through per-author lanes served round-robin in slices
 *   that yield to the event loop (author-lanes.ts): one author's backlog never holds the
 *   event loop, nor keeps another author's entries waiting behind all of it;
 * - the author's orphan and entry caps: a fetched entry refused for a cap (or for anything
 *   but being a duplicate) ends the fetch;
 * - PHAROS_ORPHAN_FETCH_TIMEOUT_MS per fetch.
 */
import { setMaxListeners } from 'node:events'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import {
  decodeEntry,
  decodeSyncResponse,
  encodeSyncRequest,
  MAX_SYNC_FRAME_BYTES,
  SYNC_LIMITS,
  syncProtocolId
} from '@pharos/protocol/log/index.ts'
import type { Logger } from '../logging/logger.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import type { LogMetrics } from './log-metrics.ts'
import { request } from '@pharos/net/request-response.ts'
import { AuthorLanes } from './author-lanes.ts'
import type { AuthorLanesOptions } from './author-lanes.ts'
import { cidKey } from './log-store.ts'
import type { LogStore } from './log-store.ts'
import type { EntrySource, IngestResult } from './log-ingest.ts'

/**
 * Lanes of fetched entries ingested at once (guess: a few database connections, leaving the
 * pool to gossip and the API), and entries of one author per turn before the next author's
 * turn and a yield (guess: ~16 entry inserts, a few milliseconds of the event loop).
 */
export const FETCH_INGEST_LANES: AuthorLanesOptions = { concurrency: 4, slice: 16 }
/** Blocks of a batch checked (decoded and hashed) between yields to the event loop. */
const CHECK_SLICE = 32

export interface AncestorFetcherDeps {
  node: Pick<Libp2p, 'dialProtocol'>
  network: string
  logs: Pick<LogStore, 'has'>
  ingest: (bytes: Uint8Array, source: EntrySource) => Promise<IngestResult>
  /** Only registered peers are asked for ancestors. */
  isRegistered: (peerId: string) => boolean
  metrics: Pick<LogMetrics, 'orphansFetched' | 'orphanFetchFailures' | 'orphanFetchesRefused'>
  /** Counts fetches dropped by PHAROS_ORPHAN_FETCHES_PER_PEER and PHAROS_ORPHAN_FETCHES_MAX. */
  limitMetrics: Pick<LimitMetrics, 'blocked'>
  log: Logger
  /** Blocks one fetch takes at most (PHAROS_ORPHAN_FETCH_MAX_ENTRIES). */
  maxEntries: number
  timeoutMs: number
  /** Fetches in flight charged to one peer (PHAROS_ORPHAN_FETCHES_PER_PEER). */
  maxPerPeer: number
  /** Fetches in flight on this worker (PHAROS_ORPHAN_FETCHES_MAX). */
  maxInFlight: number
  /** How fetched entries are scheduled. @default FETCH_INGEST_LANES */
  lanes?: AuthorLanesOptions
}

/** A peer answered with something that is not the chain asked for. */
export class AncestryMismatchError extends Error {
  override readonly name = 'AncestryMismatchError'
}

/** Why a fetch ended before reaching a stored entry or genesis, when no error did it. */
type StopReason = 'refused'

const yieldToEventLoop = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

export class AncestorFetcher {
  private readonly deps: AncestorFetcherDeps
  private readonly log: Logger
  /** Fetches under way, by the author they fetch for. */
  private readonly inFlight = new Map<string, Promise<void>>()
  /** Fetches under way, by the peer each is charged to. */
  private readonly perPeer = new Map<string, number>()
  private readonly lanes: AuthorLanes
  private readonly controller = new AbortController()

  constructor (deps: AncestorFetcherDeps) {
    this.deps = deps
    this.log = deps.log.child({ component: 'ancestor-fetcher' })
    this.lanes = new AuthorLanes(deps.lanes ?? FETCH_INGEST_LANES)
    setMaxListeners(Infinity, this.controller.signal)
  }

  /** Fetches under way. */
  get size (): number {
    return this.inFlight.size
  }

  /**
   * Starts fetching `missing` (an entry of `author`) and below from `peers`, tried in order,
   * unless a bound says no; the first registered peer is the one the fetch is charged to.
   * Returns whether a fetch started.
   */
  request (missing: CID, author: string, peers: readonly string[]): boolean {
    const { deps } = this
    if (this.controller.signal.aborted) return false
    const askable = [...new Set(peers)].filter((peer) => deps.isRegistered(peer))
    const charged = askable[0]
    if (charged === undefined) {
      deps.metrics.orphanFetchesRefused.inc({ reason: 'unregistered-peer' })
      return false
    }
    if (this.inFlight.has(author)) {
      deps.metrics.orphanFetchesRefused.inc({ reason: 'author-busy' })
      return false
    }
    const charges = this.perPeer.get(charged) ?? 0
    if (charges >= deps.maxPerPeer) {
      deps.limitMetrics.blocked('orphanFetchesPerPeer')
      return false
    }
    if (this.inFlight.size >= deps.maxInFlight) {
      deps.limitMetrics.blocked('orphanFetchesMax')
      return false
    }
    this.perPeer.set(charged, charges + 1)
    const run = this.fetch(missing, author, askable)
      .catch((err: unknown) => {
        deps.metrics.orphanFetchFailures.inc()
        this.log.info({ err, missing: missing.toString(), author }, 'could not fetch the ancestors of an orphan')
      })
      .finally(() => {
        this.inFlight.delete(author)
        const left = (this.perPeer.get(charged) ?? 1) - 1
        if (left > 0) this.perPeer.set(charged, left)
        else this.perPeer.delete(charged)
      })
    this.inFlight.set(author, run)
    return true
  }

  /** Waits for every fetch under way (tests, shutdown). */
  async settled (): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()])
  }

  async stop (): Promise<void> {
    this.controller.abort(new Error('stopping'))
    await this.settled()
  }

  private async fetch (missing: CID, author: string, peers: string[]): Promise<void> {
    const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(this.deps.timeoutMs)])
    // One budget for the whole fetch, whichever peers it takes to fill it.
    const budget = { left: this.deps.maxEntries }
    let lastError: unknown = new Error('no peer to ask')
    for (const peer of peers) {
      try {
        const fetched = await this.fetchFrom(peer, missing, author, budget, signal)
        this.log.info({ peer, missing: missing.toString(), author, ...fetched }, 'fetched the ancestors of an orphan')
        return
      } catch (err) {
        lastError = err
        if (signal.aborted || budget.left <= 0) break
      }
    }
    throw lastError
  }

  /** Walks back from `missing` asking `peer`, within `budget`; says how many entries were ingested, and why it stopped early. */
  private async fetchFrom (peer: string, missing: CID, author: string, budget: { left: number }, signal: AbortSignal): Promise<{ ingested: number, stopped?: StopReason }> {
    const { deps } = this
    const source: EntrySource = { from: peer, fetched: true }
    let next: CID | null = missing
    let ingested = 0
    // Stored meanwhile (gossip, another peer's fetch): nothing to walk.
    if ((await deps.logs.has([missing.bytes])).has(cidKey(missing.bytes))) return { ingested }
    while (next !== null && budget.left > 0) {
      const limit = Math.min(SYNC_LIMITS.entries, budget.left)
      const frame = await request(deps.node, peerIdFromString(peer), syncProtocolId(deps.network), encodeSyncRequest({ t: 'entries', from: next, limit }), {
        signal,
        maxResponseBytes: MAX_SYNC_FRAME_BYTES
      })
      const response = decodeSyncResponse(frame)
      if (!response.ok) throw new AncestryMismatchError(`malformed entries response: ${response.detail}`)
      if (response.value.t !== 'entries') throw new AncestryMismatchError(`asked for entries, got ${response.value.t}${response.value.t === 'error' ? `: ${response.value.message}` : ''}`)
      // What was received counts against the budget, whatever becomes of it; a peer that
      // sends more than it was asked for is only read up to the limit.
      const blocks = response.value.blocks.slice(0, limit)
      if (blocks.length === 0) throw new AncestryMismatchError(`${peer} does not have ${next.toString()}`)
      budget.left -= blocks.length
      const checked = await this.checkChain(peer, blocks, next, author, signal)
      const results = await this.ingestOldestFirst(author, checked.batch, source, signal)
      ingested += results.ingested
      if (results.refused) return { ingested, stopped: 'refused' }
      next = checked.below
      if (next !== null && (await deps.logs.has([next.bytes])).has(cidKey(next.bytes))) break
      signal.throwIfAborted()
    }
    return { ingested }
  }

  /**
   * Checks a batch before any of it is ingested: block i must be an entry of `author` that
   * hashes to the CID block i-1 names as prev. Hashing and decoding are CPU, so it yields to
   * the event loop every CHECK_SLICE blocks. Returns the batch and the CID below it.
   */
  private async checkChain (peer: string, blocks: Uint8Array[], from: CID, author: string, signal: AbortSignal): Promise<{ batch: Uint8Array[], below: CID | null }> {
    const batch: Uint8Array[] = []
    let expected: CID | null = from
    for (const block of blocks) {
      if (expected === null) break
      if (batch.length > 0 && batch.length % CHECK_SLICE === 0) {
        await yieldToEventLoop()
        signal.throwIfAborted()
      }
      const decoded = await decodeEntry(block)
      const asked = expected.toString()
      if (!decoded.ok) throw new AncestryMismatchError(`${peer} answered a block that is not an entry for ${asked}: ${decoded.detail}`)
      if (decoded.value.cid.toString() !== asked) throw new AncestryMismatchError(`${peer} answered ${decoded.value.cid.toString()} for ${asked}`)
      if (decoded.value.entry.author !== author) throw new AncestryMismatchError(`${peer} answered an entry of ${decoded.value.entry.author} in a chain of ${author}`)
      batch.push(block)
      expected = decoded.value.entry.prev
    }
    return { batch, below: expected }
  }

  /**
   * Ingests a checked batch oldest first in `author`'s lane. A refusal (the author's caps,
   * a bad seq; anything but a duplicate) ends the walk: everything above it in the chain
   * would be refused or left an orphan too.
   */
  private async ingestOldestFirst (author: string, batch: Uint8Array[], source: EntrySource, signal: AbortSignal): Promise<{ ingested: number, refused: boolean }> {
    let ingested = 0
    let refused = false
    const turns = batch.reverse().map(async (block) => await this.lanes.run(author, async () => {
      // Turns queued behind a refusal, a failure or a stop are skipped, not run.
      if (refused || signal.aborted) return
      try {
        const result = await this.deps.ingest(block, source)
        if (result.result === 'accepted') {
          ingested++
          this.deps.metrics.orphansFetched.inc()
        } else if (result.result === 'rejected') {
          refused = true
        }
      } catch (err) {
        refused = true
        throw err
      }
    }))
    await Promise.all(turns)
    return { ingested, refused }
  }
}
