/**
 * The answering side of `/<network>/sync/1.0.0` on a peer. A beacon that receives an entry
 * whose `prev` it lacks (an orphan) fetches the missing ancestors from the peer that sent it
 * (DESIGN.md §4), so a peer answers from what it holds:
 *
 * - `entries`: its blocks walking back along `prev` from `from`, until `limit` or a missing one;
 * - `heads`: the head it holds for each asked author (its own log, and those it follows);
 *   `forks` is always 0: a peer keeps one chain per author;
 * - `status`: `stored` for a block it holds, `unknown` otherwise (a peer never pins);
 * - anything else (`changes`, `receipt`, or a malformed frame): an `error` frame.
 */
import { serveRequests } from '@pharos/net/request-response.ts'
import { decodeSyncRequest, encodeSyncResponse, MAX_SYNC_FRAME_BYTES, syncProtocolId } from '@pharos/protocol/log/index.ts'
import type { EntryStatus, HeadInfo, KnownHead, SyncResponse } from '@pharos/protocol/log/index.ts'
import { SYNC_MAX_INBOUND_STREAMS } from './constants.ts'
import type { LocalLog } from './local-log.ts'
import type { AbortOptions, Libp2p, Logger, PeerId } from '@libp2p/interface'

/** The sync protocol's largest request frame: a heads request is the biggest kind. */
export const MAX_SYNC_REQUEST_BYTES = MAX_SYNC_FRAME_BYTES

/**
 * The answer to one request frame. `onKnown` hears the heads the asker says it holds, so
 * the peer can fetch what it lacks from it (sync on connect, both ways).
 */
export async function answerSync (bytes: Uint8Array, log: LocalLog, onKnown?: (known: KnownHead[]) => void, options: AbortOptions = {}): Promise<SyncResponse> {
  const decoded = decodeSyncRequest(bytes)
  if (!decoded.ok) return { t: 'error', code: 'bad-request', message: decoded.detail }
  const request = decoded.value
  switch (request.t) {
    case 'entries': {
      const blocks: Uint8Array[] = []
      let next = await log.get(request.from, options)
      while (next !== undefined && blocks.length < request.limit) {
        blocks.push(next.bytes)
        next = next.entry.prev === null ? undefined : await log.get(next.entry.prev, options)
      }
      return { t: 'entries', blocks }
    }
    case 'heads': {
      if (request.known.length > 0) onKnown?.(request.known)
      const heads: HeadInfo[] = []
      for (const author of request.authors) {
        const head = log.head(author)
        if (head !== undefined) heads.push({ author, cid: head.cid, seq: head.entry.seq, forks: 0, entries: log.count(author) })
      }
      return { t: 'heads', heads }
    }
    case 'status': {
      const statuses: EntryStatus[] = []
      for (const cid of request.cids) statuses.push(await log.hasBlock(cid, options) ? 'stored' : 'unknown')
      return { t: 'status', statuses }
    }
    case 'changes':
      return { t: 'error', code: 'bad-request', message: 'a peer does not serve changes; ask a beacon' }
    case 'receipt':
      return { t: 'error', code: 'bad-request', message: 'a peer issues no receipts; ask a beacon' }
    default: {
      const unhandled: never = request
      return { t: 'error', code: 'bad-request', message: `unknown request ${String((unhandled as { t?: unknown }).t)}` }
    }
  }
}

/** `answerSync` as bytes on the wire. */
export async function answerSyncFrame (bytes: Uint8Array, log: LocalLog, onKnown?: (known: KnownHead[]) => void, options: AbortOptions = {}): Promise<Uint8Array> {
  return encodeSyncResponse(await answerSync(bytes, log, onKnown, options))
}

/**
 * Serves the sync protocol on `node` from `log` (until the node unhandles it); `onKnown`
 * hears, with the asker, the heads an asker says it holds.
 */
export async function serveSync (node: Pick<Libp2p, 'handle'>, network: string, log: LocalLog, onKnown: (from: PeerId, known: KnownHead[]) => void, options: { timeoutMs: number, logger: Logger }): Promise<void> {
  await serveRequests(node, syncProtocolId(network), async (frame, connection) => await answerSyncFrame(frame, log, (known) => { onKnown(connection.remotePeer, known) }), {
    maxRequestBytes: MAX_SYNC_REQUEST_BYTES,
    timeoutMs: options.timeoutMs,
    maxInboundStreams: SYNC_MAX_INBOUND_STREAMS,
    onRejected: (connection, err) => { options.logger('sync request from %p failed - %e', connection.remotePeer, err) }
  })
}
