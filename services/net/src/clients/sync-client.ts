/**
 * The asking side of `/<network>/sync/1.0.0`: typed `heads`, `entries`, `status` and
 * `receipt` requests. An `error` frame becomes a RemoteError, a frame of the wrong type or shape a
 * MalformedResponseError; lists longer than the protocol's bounds are split into requests.
 */
import type { CID } from 'multiformats/cid'
import {
  decodeSyncResponse,
  encodeSyncRequest,
  MAX_SYNC_FRAME_BYTES,
  SYNC_LIMITS,
  syncProtocolId
} from '@pharos/protocol/log/index.ts'
import type { EntryStatus, HeadInfo, KnownHead, NotHeldReason, ReceiptSubject, SyncRequest, SyncResponse } from '@pharos/protocol/log/index.ts'
import { MalformedResponseError, RemoteError } from '../errors.ts'
import { request } from '../request-response.ts'
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'

type ResponseOf<T extends SyncResponse['t']> = Extract<SyncResponse, { t: T }>

function chunks<T> (items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

export class SyncClient {
  private readonly node: Pick<Libp2p, 'dialProtocol'>
  private readonly protocol: string
  private readonly timeoutMs: number

  constructor (node: Pick<Libp2p, 'dialProtocol'>, network: string, timeoutMs: number) {
    this.node = node
    this.protocol = syncProtocolId(network)
    this.timeoutMs = timeoutMs
  }

  private async request<T extends SyncResponse['t']> (peer: PeerId, message: SyncRequest, expected: T | readonly T[], options: AbortOptions): Promise<ResponseOf<T>> {
    const bytes = await request(this.node, peer, this.protocol, encodeSyncRequest(message), { ...options, timeoutMs: this.timeoutMs, maxResponseBytes: MAX_SYNC_FRAME_BYTES, what: `sync ${message.t}` })
    const decoded = decodeSyncResponse(bytes)
    if (!decoded.ok) throw new MalformedResponseError(peer.toString(), this.protocol, decoded.detail)
    const response = decoded.value
    if (response.t === 'error') throw new RemoteError(peer.toString(), this.protocol, response.code, response.message)
    if (!(typeof expected === 'string' ? [expected] : expected).some((type) => type === response.t)) throw new MalformedResponseError(peer.toString(), this.protocol, `a ${response.t} frame answered a ${message.t} request`)
    return response as ResponseOf<T>
  }

  /**
   * The best heads `peer` holds for `authors` (authors it holds nothing for are absent).
   * `known` tells it the heads we hold, so it can fetch what it lacks from us.
   */
  async heads (peer: PeerId, authors: readonly string[], known: readonly KnownHead[], options: AbortOptions = {}): Promise<HeadInfo[]> {
    const out: HeadInfo[] = []
    const knownByAuthor = new Map(known.map((head) => [head.author, head]))
    for (const batch of chunks(authors, SYNC_LIMITS.authors)) {
      const batchKnown = batch.map((author) => knownByAuthor.get(author)).filter((head): head is KnownHead => head !== undefined)
      const response = await this.request(peer, { t: 'heads', authors: batch, known: batchKnown }, 'heads', options)
      const asked = new Set(batch)
      for (const head of response.heads) {
        if (!asked.has(head.author)) throw new MalformedResponseError(peer.toString(), this.protocol, `a head for ${head.author}, who was not asked for`)
        out.push(head)
      }
    }
    return out
  }

  /**
   * Tells `peer` heads we hold (`known`), asking for none: a `heads` request with no authors,
   * sync on connect's "fetch these from me". How a seeder answers a HEAD request on the sync topic.
   */
  async announce (peer: PeerId, known: readonly KnownHead[], options: AbortOptions = {}): Promise<void> {
    for (const batch of chunks(known, SYNC_LIMITS.authors)) {
      const response = await this.request(peer, { t: 'heads', authors: [], known: batch }, 'heads', options)
      if (response.heads.length > 0) throw new MalformedResponseError(peer.toString(), this.protocol, 'heads for authors nobody asked for')
    }
  }

  /** Entry blocks walking back along `prev` from `from` (inclusive), at most `limit`. */
  async entries (peer: PeerId, from: CID, limit: number = SYNC_LIMITS.entries, options: AbortOptions = {}): Promise<Uint8Array[]> {
    const response = await this.request(peer, { t: 'entries', from, limit }, 'entries', options)
    if (response.blocks.length > limit) throw new MalformedResponseError(peer.toString(), this.protocol, `${response.blocks.length} blocks where at most ${limit} were asked for`)
    return response.blocks
  }

  /**
   * The receipt `peer` signs for `subject` (still to be verified: receipt.ts `open*Receipt`),
   * or why it gives none.
   */
  async receipt (peer: PeerId, subject: ReceiptSubject, options: AbortOptions = {}): Promise<{ statement: Uint8Array } | { notHeld: NotHeldReason, message: string }> {
    // Spelled out: a CBOR map may not hold `head: undefined`.
    const request: SyncRequest = 'cid' in subject
      ? { t: 'receipt', cid: subject.cid }
      : subject.head === undefined ? { t: 'receipt', author: subject.author } : { t: 'receipt', author: subject.author, head: subject.head }
    const response = await this.request(peer, request, ['receipt', 'not-held'], options)
    return response.t === 'receipt' ? { statement: response.statement } : { notHeld: response.reason, message: response.message }
  }

  /** For each CID, whether `peer` holds it: unknown, stored, or pinned (with all it links to). */
  async status (peer: PeerId, cids: readonly CID[], options: AbortOptions = {}): Promise<EntryStatus[]> {
    const out: EntryStatus[] = []
    for (const batch of chunks(cids, SYNC_LIMITS.cids)) {
      const response = await this.request(peer, { t: 'status', cids: batch }, 'status', options)
      if (response.statuses.length !== batch.length) {
        throw new MalformedResponseError(peer.toString(), this.protocol, `${response.statuses.length} statuses for ${batch.length} CIDs`)
      }
      out.push(...response.statuses)
    }
    return out
  }
}
