/**
 * Fetches the missing ancestors of an orphan entry (DESIGN.md §4) from the peers that sent
 * it, over the sync protocol's `entries` request: blocks walking back along `prev` from the
 * missing CID, 256 at a time, until a stored entry or genesis is reached, or a bound is hit
 * (PHAROS_ORPHAN_FETCH_MAX_ENTRIES, PHAROS_ORPHAN_FETCH_TIMEOUT_MS). Each batch is checked
 * link by link (every block must hash to the CID asked for), then ingested oldest first
 * through the same pipeline as gossip. One fetch per missing CID at a time.
 */
import { setMaxListeners } from 'node:events'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import {
  cborCid,
  decodeEntry,
  decodeSyncResponse,
  encodeSyncRequest,
  MAX_SYNC_FRAME_BYTES,
  SYNC_LIMITS,
  syncProtocolId
} from '../../../protocol/src/log/index.ts'
import type { Logger } from '../logging/logger.ts'
import type { LogMetrics } from '../metrics/log-metrics.ts'
import { request } from '../p2p/request-response.ts'
import { cidKey } from './log-store.ts'
import type { LogStore } from './log-store.ts'
import type { EntrySource, IngestResult } from './log-ingest.ts'

export interface AncestorFetcherDeps {
  node: Pick<Libp2p, 'dialProtocol'>
  network: string
  logs: Pick<LogStore, 'has'>
  ingest: (bytes: Uint8Array, source: EntrySource) => Promise<IngestResult>
  metrics: Pick<LogMetrics, 'orphansFetched' | 'orphanFetchFailures'>
  log: Logger
  maxEntries: number
  timeoutMs: number
}

/** A peer answered with something that is not the chain asked for. */
export class AncestryMismatchError extends Error {
  override readonly name = 'AncestryMismatchError'
}

export class AncestorFetcher {
  private readonly deps: AncestorFetcherDeps
  private readonly log: Logger
  private readonly inFlight = new Map<string, Promise<void>>()
  private readonly controller = new AbortController()

  constructor (deps: AncestorFetcherDeps) {
    this.deps = deps
    this.log = deps.log.child({ component: 'ancestor-fetcher' })
    setMaxListeners(Infinity, this.controller.signal)
  }

  /** Starts fetching `missing` and below from `peers` (tried in order), unless that is already under way. */
  request (missing: CID, peers: string[]): void {
    const key = missing.toString()
    if (this.inFlight.has(key) || this.controller.signal.aborted) return
    const run = this.fetch(missing, peers)
      .catch((err: unknown) => {
        this.deps.metrics.orphanFetchFailures.inc()
        this.log.info({ err, missing: key }, 'could not fetch the ancestors of an orphan')
      })
      .finally(() => { this.inFlight.delete(key) })
    this.inFlight.set(key, run)
  }

  /** Waits for every fetch under way (tests, shutdown). */
  async settled (): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()])
  }

  async stop (): Promise<void> {
    this.controller.abort(new Error('stopping'))
    await this.settled()
  }

  private async fetch (missing: CID, peers: string[]): Promise<void> {
    const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(this.deps.timeoutMs)])
    let lastError: unknown = new Error('no peer to ask')
    for (const peer of peers) {
      try {
        const fetched = await this.fetchFrom(peer, missing, signal)
        this.log.info({ peer, missing: missing.toString(), fetched }, 'fetched the ancestors of an orphan')
        return
      } catch (err) {
        lastError = err
        if (signal.aborted) break
      }
    }
    throw lastError
  }

  /** Walks back from `missing` asking `peer`; returns how many entries were ingested. */
  private async fetchFrom (peer: string, missing: CID, signal: AbortSignal): Promise<number> {
    const { deps } = this
    const source: EntrySource = { from: peer }
    let next: CID | null = missing
    let ingested = 0
    while (next !== null && ingested < deps.maxEntries) {
      const limit = Math.min(SYNC_LIMITS.entries, deps.maxEntries - ingested)
      const frame = await request(deps.node, peerIdFromString(peer), syncProtocolId(deps.network), encodeSyncRequest({ t: 'entries', from: next, limit }), {
        signal,
        maxResponseBytes: MAX_SYNC_FRAME_BYTES
      })
      const response = decodeSyncResponse(frame)
      if (!response.ok) throw new AncestryMismatchError(`malformed entries response: ${response.detail}`)
      if (response.value.t !== 'entries') throw new AncestryMismatchError(`asked for entries, got ${response.value.t}${response.value.t === 'error' ? `: ${response.value.message}` : ''}`)
      const blocks = response.value.blocks
      if (blocks.length === 0) throw new AncestryMismatchError(`${peer} does not have ${next.toString()}`)
      // Check the chain before ingesting any of it: block i must be the one block i-1 names.
      const batch: Uint8Array[] = []
      let expected: CID | null = next
      for (const block of blocks) {
        if (expected === null) break
        // decodeEntry hashes the block; one that does not decode is hashed here to be named.
        const decoded = await decodeEntry(block)
        const cid = decoded.ok ? decoded.value.cid : await cborCid(block)
        const asked = expected.toString()
        if (cid.toString() !== asked) throw new AncestryMismatchError(`${peer} answered ${cid.toString()} for ${asked}`)
        batch.push(block)
        expected = decoded.ok ? decoded.value.entry.prev : null
      }
      for (const block of batch.reverse()) {
        const result = await deps.ingest(block, source)
        if (result.result === 'accepted') {
          ingested++
          deps.metrics.orphansFetched.inc()
        }
      }
      next = expected
      if (next !== null && (await deps.logs.has([next.bytes])).has(cidKey(next.bytes))) break
      signal.throwIfAborted()
    }
    return ingested
  }
}

