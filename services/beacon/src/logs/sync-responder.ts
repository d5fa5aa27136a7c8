/**
 * The beacon's side of `/<network>/sync/1.0.0` (DESIGN.md §4): every answer comes from
 * Postgres, so any worker answers the same. A `heads` request that carries the asker's own
 * known heads is also sync on connect from the other direction: a head we lack is fetched
 * from the asker, through the ancestor fetcher.
 */
import { CID } from 'multiformats/cid'
import { decodeSyncRequest, encodeSyncResponse } from '../../../protocol/src/log/index.ts'
import type { EntryStatus, HeadInfo, SyncRequest, SyncResponse } from '../../../protocol/src/log/index.ts'
import { collectBytes } from '../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'
import type { ReceiptIssuer } from '../receipts/receipt-issuer.ts'
import { cidKey, InvalidCursorError } from './log-store.ts'
import type { Head, LogStore } from './log-store.ts'

export interface SyncResponderDeps {
  logs: Pick<LogStore, 'heads' | 'changesSince' | 'ancestry' | 'has'>
  blockstore: Pick<PgBlockstore, 'get'>
  isRegistered: (peerId: string) => boolean
  /** Fetch `head` and what lies below it from `peer`. */
  fetchAncestors: (head: CID, peers: string[]) => void
  /** Signs receipts for what this worker holds (`receipt` requests). */
  receipts: Pick<ReceiptIssuer, 'issue'>
}

function headInfo (head: Head): HeadInfo {
  return { author: head.author, cid: CID.decode(head.cid), seq: head.seq, forks: head.forks, entries: head.entries }
}

export class SyncResponder {
  private readonly deps: SyncResponderDeps

  constructor (deps: SyncResponderDeps) {
    this.deps = deps
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
        const issued = await deps.receipts.issue(request)
        return issued.ok ? { t: 'receipt', statement: issued.statement } : { t: 'not-held', reason: issued.reason, message: issued.message }
      }
    }
  }

  /** The asker's heads that we do not store, of registered authors: fetch them from the asker. */
  private async fetchUnknownHeads (known: ReadonlyArray<{ author: string, cid: CID }>, peer: string): Promise<void> {
    const candidates = known.filter((head) => this.deps.isRegistered(head.author))
    if (candidates.length === 0) return
    const held = await this.deps.logs.has(candidates.map((head) => head.cid.bytes))
    for (const head of candidates) {
      if (!held.has(cidKey(head.cid.bytes))) this.deps.fetchAncestors(head.cid, [peer])
    }
  }
}
