/**
 * The beacon's side of `/<network>/sync/1.0.0` (DESIGN.md §4): every answer comes from
 * Postgres, so any worker answers the same. A `heads` request that carries the asker's own
 * known heads is also sync on connect from the other direction: a head we lack is fetched
 * from the asker, through the ancestor fetcher.
 *
 * Who gets what (docs/logs.md "Sync"): the read-only requests (`heads`, `changes`,
 * `entries`, `status`) are answered for any connected peer, like the public `GET /v1/heads`,
 * each bounded by the frame limits (SYNC_LIMITS). What costs more is for registered
 * accounts only, and the check comes before any query: a `known` head is looked up and
 * fetched only for a registered asker (the fetcher's caps apply), and a `receipt` is issued
 * only to a registered asker, within PHAROS_SYNC_RECEIPTS_PER_MINUTE per peer and
 * PHAROS_SYNC_RECEIPT_CHECKS_MAX at once per worker.
 */
import { CID } from 'multiformats/cid'
import { decodeSyncRequest, encodeSyncResponse } from '@pharos/protocol/log/index.ts'
import type { EntryStatus, HeadInfo, SyncRequest, SyncResponse } from '@pharos/protocol/log/index.ts'
import { collectBytes } from '../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import type { LogMetrics } from './log-metrics.ts'
import type { ReceiptIssuer } from '../receipts/receipt-issuer.ts'
import { cidKey, InvalidCursorError } from './log-store.ts'
import type { Head, LogStore } from './log-store.ts'
import { TokenBuckets } from './token-buckets.ts'

export interface SyncResponderDeps {
  logs: Pick<LogStore, 'heads' | 'changesSince' | 'ancestry' | 'has'>
  blockstore: Pick<PgBlockstore, 'get'>
  isRegistered: (peerId: string) => boolean
  /** Fetch `head` (an entry of `author`) and what lies below it from `peers`. */
  fetchAncestors: (head: CID, author: string, peers: string[]) => void
  /** Signs receipts for what this worker holds (`receipt` requests). */
  receipts: Pick<ReceiptIssuer, 'issue'>
  /** Receipt requests one registered peer may make per minute (PHAROS_SYNC_RECEIPTS_PER_MINUTE). */
  receiptsPerMinute: number
  /** Receipt checks running at once on this worker (PHAROS_SYNC_RECEIPT_CHECKS_MAX). */
  receiptChecksMax: number
  metrics: Pick<LogMetrics, 'orphanFetchesRefused' | 'receiptRequests'>
  limitMetrics: Pick<LimitMetrics, 'blocked'>
}

function headInfo (head: Head): HeadInfo {
  return { author: head.author, cid: CID.decode(head.cid), seq: head.seq, forks: head.forks, entries: head.entries }
}

export class SyncResponder {
  private readonly deps: SyncResponderDeps
  private readonly receiptRate: TokenBuckets
  private receiptChecks = 0

  constructor (deps: SyncResponderDeps) {
    this.deps = deps
    this.receiptRate = new TokenBuckets({ capacity: deps.receiptsPerMinute, perMinute: deps.receiptsPerMinute })
  }

  /** The response frame to a request frame from `peer`, or undefined for a malformed request. */
  async answer (frame: Uint8Array, peer: string, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const decoded = decodeSyncRequest(frame)
    if (!decoded.ok) return undefined
    return encodeSyncResponse(await this.respond(decoded.value, peer, signal))
  }

  /**
   * The answer to a decoded request from `peer`. `GET /v1/heads` calls it too, with `heads`
   * (no `known`) and `changes` requests, so HTTP and libp2p answer alike.
   */
  async respond (request: SyncRequest, peer: string, signal: AbortSignal): Promise<SyncResponse> {
    const { deps } = this
    switch (request.t) {
      case 'heads': {
        const heads = await deps.logs.heads(request.authors)
        await this.fetchUnknownHeads(request.known, peer)
        return { t: 'heads', heads: heads.map(headInfo) }
      }
      case 'changes': {
        try {
          const page = await deps.logs.changesSince(request.cursor, request.limit)
          return { t: 'changes', heads: page.heads.map(headInfo), cursor: page.cursor }
        } catch (err) {
          if (err instanceof InvalidCursorError) return { t: 'error', code: 'bad-request', message: err.message }
          throw err
        }
      }
      case 'entries': {
        const cids = await deps.logs.ancestry(request.from.bytes, request.limit)
        const blocks: Uint8Array[] = []
        for (const cid of cids) blocks.push(await collectBytes(deps.blockstore.get(CID.decode(cid), { signal })))
        return { t: 'entries', blocks }
      }
      case 'status': {
        const held = await deps.logs.has(request.cids.map((cid) => cid.bytes))
        const statuses = request.cids.map((cid): EntryStatus => {
          const entry = held.get(cidKey(cid.bytes))
          return entry === undefined ? 'unknown' : entry.pinned ? 'pinned' : 'stored'
        })
        return { t: 'status', statuses }
      }
      case 'receipt': {
        // A receipt costs a walk of the log and a signature: registered askers only, at a
        // bounded rate, and both checks come before any query.
        if (!deps.isRegistered(peer)) {
          deps.metrics.receiptRequests.inc({ outcome: 'unregistered' })
          return { t: 'error', code: 'bad-request', message: 'receipts are issued to registered accounts only' }
        }
        if (!this.receiptRate.take(peer)) {
          deps.metrics.receiptRequests.inc({ outcome: 'rate-limited' })
          deps.limitMetrics.blocked('syncReceiptsPerMinute')
          return { t: 'error', code: 'unavailable', message: `more than ${deps.receiptsPerMinute} receipt requests a minute (PHAROS_SYNC_RECEIPTS_PER_MINUTE); ask again later` }
        }
        if (this.receiptChecks >= deps.receiptChecksMax) {
          deps.metrics.receiptRequests.inc({ outcome: 'busy' })
          deps.limitMetrics.blocked('syncReceiptChecksMax')
          return { t: 'error', code: 'unavailable', message: 'this worker is checking as many receipts as it may at once (PHAROS_SYNC_RECEIPT_CHECKS_MAX); ask again later, or another beacon' }
        }
        deps.metrics.receiptRequests.inc({ outcome: 'checked' })
        this.receiptChecks++
        try {
          const issued = await deps.receipts.issue(request)
          return issued.ok ? { t: 'receipt', statement: issued.statement } : { t: 'not-held', reason: issued.reason, message: issued.message }
        } finally {
          this.receiptChecks--
        }
      }
    }
  }

  /**
   * The asker's heads that we do not store, of registered authors: fetch them from the
   * asker. Only for a registered asker, checked before any query: anyone else's `known`
   * costs nothing and starts no fetch (nor a dial back). The first head we lack of each
   * author is fetched, as the fetcher runs one fetch per author anyway.
   */
  private async fetchUnknownHeads (known: ReadonlyArray<{ author: string, cid: CID }>, peer: string): Promise<void> {
    if (known.length === 0) return
    if (!this.deps.isRegistered(peer)) {
      this.deps.metrics.orphanFetchesRefused.inc({ reason: 'unregistered-peer' }, known.length)
      return
    }
    const candidates = known.filter((head) => this.deps.isRegistered(head.author))
    if (candidates.length === 0) return
    const held = await this.deps.logs.has(candidates.map((head) => head.cid.bytes))
    const lacking = new Map<string, CID>()
    for (const head of candidates) {
      if (!lacking.has(head.author) && !held.has(cidKey(head.cid.bytes))) lacking.set(head.author, head.cid)
    }
    for (const [author, cid] of lacking) this.deps.fetchAncestors(cid, author, [peer])
  }
}
