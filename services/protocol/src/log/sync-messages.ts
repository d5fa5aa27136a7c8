/**
 * The sync protocol, `/<network>/sync/1.0.0`: one request and one response per stream, each
 * a length-prefixed canonical dag-cbor map with a type tag `t`.
 *
 * - `heads`: the best heads of the listed authors. The asker may add the heads it knows
 *   (`known`), so the answerer can fetch what it lacks (sync on connect).
 * - `changes`: heads that changed after a cursor, and the cursor to ask with next.
 * - `entries`: entry blocks walking back along `prev` from `from` (inclusive).
 * - `status`: for each CID, whether the answerer holds it, stored or fully pinned.
 * - `receipt`: a signed receipt (receipt.ts) for an author's log (its best head, or the head
 *   named) or for a pinned DAG, or `not-held` saying why none can be given. Added after the
 *   first four: a beacon that predates it finds an unknown request type and aborts the
 *   stream, which the asker sees as that beacon failing, so older peers and beacons keep
 *   working with newer ones.
 *
 * Every list is bounded on decode; anything else is a malformed frame.
 */
import { CID } from 'multiformats/cid'
import { publicKeyFromPeerId } from './author-key.ts'
import { decodeCanonical, encodeCbor, hasKeys, isMap, isUint, listOf } from './cbor.ts'
import { MAX_ENTRY_BYTES } from './entry.ts'

export const SYNC_LIMITS = {
  /** Authors per heads request. */
  authors: 1024,
  /** Entry blocks per entries response (256 × 16 KiB = 4 MiB). */
  entries: 256,
  /** Heads per changes response. */
  changes: 1024,
  /** CIDs per status request. */
  cids: 1024
} as const
/** Largest sync frame: a full entries response plus framing. */
export const MAX_SYNC_FRAME_BYTES = SYNC_LIMITS.entries * (MAX_ENTRY_BYTES + 16) + 1024

export interface HeadInfo {
  author: string
  cid: CID
  seq: number
  /** Tips other than the best head. */
  forks: number
  /** Entries the answerer holds for the author. */
  entries: number
}

export interface KnownHead {
  author: string
  cid: CID
  seq: number
}

export type EntryStatus = 'unknown' | 'stored' | 'pinned'

/** What a receipt is asked for: an author's log (up to `head`, else its best head), or a DAG. */
export type ReceiptSubject = { author: string, head?: CID } | { cid: CID }

/** Why no receipt was given: nothing stored, a chain with gaps (or blocks missing), a DAG not (yet) pinned. */
export type NotHeldReason = 'unknown' | 'incomplete' | 'not-pinned'

export type SyncRequest =
  | { t: 'heads', authors: string[], known: KnownHead[] }
  | { t: 'changes', cursor: string, limit: number }
  | { t: 'entries', from: CID, limit: number }
  | { t: 'status', cids: CID[] }
  | ({ t: 'receipt' } & ReceiptSubject)

export type SyncErrorCode = 'bad-request' | 'unavailable'

export type SyncResponse =
  | { t: 'heads', heads: HeadInfo[] }
  | { t: 'changes', heads: HeadInfo[], cursor: string }
  | { t: 'entries', blocks: Uint8Array[] }
  | { t: 'status', statuses: EntryStatus[] }
  | { t: 'receipt', statement: Uint8Array }
  | { t: 'not-held', reason: NotHeldReason, message: string }
  | { t: 'error', code: SyncErrorCode, message: string }

export type SyncDecodeResult<T> = { ok: true, value: T } | { ok: false, detail: string }

const isAuthor = (value: unknown): value is string => typeof value === 'string' && publicKeyFromPeerId(value) !== undefined
const isCursor = (value: unknown): value is string => typeof value === 'string' && /^[0-9]{1,20}(\.[0-9]{1,20})?$/.test(value)
const asCid = (value: unknown): CID | null => CID.asCID(value)

function knownHead (value: unknown): KnownHead | undefined {
  if (!isMap(value) || !hasKeys(value, ['author', 'cid', 'seq'])) return undefined
  const cid = asCid(value.cid)
  if (!isAuthor(value.author) || cid === null || !isUint(value.seq)) return undefined
  return { author: value.author, cid, seq: value.seq }
}

function headInfo (value: unknown): HeadInfo | undefined {
  if (!isMap(value) || !hasKeys(value, ['author', 'cid', 'seq', 'forks', 'entries'])) return undefined
  const head = knownHead({ author: value.author, cid: value.cid, seq: value.seq })
  if (head === undefined || !isUint(value.forks) || !isUint(value.entries)) return undefined
  return { ...head, forks: value.forks, entries: value.entries }
}

function decodeMap (bytes: Uint8Array): Record<string, unknown> | string {
  if (bytes.length > MAX_SYNC_FRAME_BYTES) return `frame of ${bytes.length} bytes > ${MAX_SYNC_FRAME_BYTES}`
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) return decoded.detail
  if (!isMap(decoded.value) || typeof decoded.value.t !== 'string') return 'a sync frame is a map with a type tag t'
  return decoded.value
}

const bad = <T>(detail: string): SyncDecodeResult<T> => ({ ok: false, detail })

export function encodeSyncRequest (request: SyncRequest): Uint8Array {
  return encodeCbor(request)
}

export function encodeSyncResponse (response: SyncResponse): Uint8Array {
  return encodeCbor(response)
}

export function decodeSyncRequest (bytes: Uint8Array): SyncDecodeResult<SyncRequest> {
  const value = decodeMap(bytes)
  if (typeof value === 'string') return bad(value)
  return checkSyncRequest(value)
}

/**
 * The checks `decodeSyncRequest` applies to a decoded frame, for requests that arrive another
 * way (`GET /v1/heads` builds a `heads` or `changes` request from its query): the same
 * bounds, and the same reasons for refusing.
 */
export function checkSyncRequest (value: Record<string, unknown>): SyncDecodeResult<SyncRequest> {
  switch (value.t) {
    case 'heads': {
      if (!hasKeys(value, ['t', 'authors', 'known'])) return bad('heads takes authors and known')
      const authors = listOf(value.authors, SYNC_LIMITS.authors, (author) => isAuthor(author) ? author : undefined)
      const known = listOf(value.known, SYNC_LIMITS.authors, knownHead)
      if (authors === undefined || known === undefined) return bad(`heads: authors and known are lists of at most ${SYNC_LIMITS.authors} ed25519 peer IDs / heads`)
      return { ok: true, value: { t: 'heads', authors, known } }
    }
    case 'changes':
      if (!hasKeys(value, ['t', 'cursor', 'limit']) || !isCursor(value.cursor) || !isUint(value.limit) || value.limit === 0 || value.limit > SYNC_LIMITS.changes) {
        return bad(`changes takes a cursor ("0" or one a changes response gave) and a limit of 1..${SYNC_LIMITS.changes}`)
      }
      return { ok: true, value: { t: 'changes', cursor: value.cursor, limit: value.limit } }
    case 'entries': {
      const from = asCid(value.from)
      if (!hasKeys(value, ['t', 'from', 'limit']) || from === null || !isUint(value.limit) || value.limit === 0 || value.limit > SYNC_LIMITS.entries) {
        return bad(`entries takes a CID and a limit of 1..${SYNC_LIMITS.entries}`)
      }
      return { ok: true, value: { t: 'entries', from, limit: value.limit } }
    }
    case 'status': {
      const cids = hasKeys(value, ['t', 'cids']) ? listOf(value.cids, SYNC_LIMITS.cids, (cid) => asCid(cid) ?? undefined) : undefined
      if (cids === undefined) return bad(`status takes a list of at most ${SYNC_LIMITS.cids} CIDs`)
      return { ok: true, value: { t: 'status', cids } }
    }
    case 'receipt': {
      if (hasKeys(value, ['t', 'cid'])) {
        const cid = asCid(value.cid)
        return cid === null ? bad('receipt: cid must be a CID') : { ok: true, value: { t: 'receipt', cid } }
      }
      const head = value.head === undefined ? undefined : asCid(value.head)
      if (!hasKeys(value, ['t', 'author'], ['head']) || !isAuthor(value.author) || head === null) {
        return bad('receipt takes { author: ed25519 peer ID, head?: CID } or { cid: CID }')
      }
      return { ok: true, value: head === undefined ? { t: 'receipt', author: value.author } : { t: 'receipt', author: value.author, head } }
    }
    default:
      return bad('unknown request type')
  }
}

const STATUSES: readonly EntryStatus[] = ['unknown', 'stored', 'pinned']
const NOT_HELD_REASONS: readonly NotHeldReason[] = ['unknown', 'incomplete', 'not-pinned']
/** A receipt is one small signed statement (a few hundred bytes); this bounds what an answer may carry. */
const MAX_RECEIPT_BYTES = 4096

export function decodeSyncResponse (bytes: Uint8Array): SyncDecodeResult<SyncResponse> {
  const value = decodeMap(bytes)
  if (typeof value === 'string') return bad(value)
  switch (value.t) {
    case 'heads': {
      const heads = hasKeys(value, ['t', 'heads']) ? listOf(value.heads, SYNC_LIMITS.authors, headInfo) : undefined
      return heads === undefined ? bad('heads: a list of heads') : { ok: true, value: { t: 'heads', heads } }
    }
    case 'changes': {
      const heads = hasKeys(value, ['t', 'heads', 'cursor']) ? listOf(value.heads, SYNC_LIMITS.changes, headInfo) : undefined
      if (heads === undefined || !isCursor(value.cursor)) return bad('changes: heads and a cursor')
      return { ok: true, value: { t: 'changes', heads, cursor: value.cursor } }
    }
    case 'entries': {
      const blocks = hasKeys(value, ['t', 'blocks'])
        ? listOf(value.blocks, SYNC_LIMITS.entries, (block) => block instanceof Uint8Array && block.length <= MAX_ENTRY_BYTES ? block : undefined)
        : undefined
      return blocks === undefined ? bad('entries: a list of entry blocks') : { ok: true, value: { t: 'entries', blocks } }
    }
    case 'status': {
      const statuses = hasKeys(value, ['t', 'statuses'])
        ? listOf(value.statuses, SYNC_LIMITS.cids, (status) => STATUSES.find((known) => known === status))
        : undefined
      return statuses === undefined ? bad('status: a list of statuses') : { ok: true, value: { t: 'status', statuses } }
    }
    case 'receipt':
      if (!hasKeys(value, ['t', 'statement']) || !(value.statement instanceof Uint8Array) || value.statement.length > MAX_RECEIPT_BYTES) {
        return bad(`receipt: a signed statement of at most ${MAX_RECEIPT_BYTES} bytes`)
      }
      return { ok: true, value: { t: 'receipt', statement: value.statement } }
    case 'not-held': {
      const reason = NOT_HELD_REASONS.find((known) => known === value.reason)
      if (!hasKeys(value, ['t', 'reason', 'message']) || reason === undefined || typeof value.message !== 'string') return bad('not-held: a reason and a message')
      return { ok: true, value: { t: 'not-held', reason, message: value.message.slice(0, 512) } }
    }
    case 'error':
      if (!hasKeys(value, ['t', 'code', 'message']) || (value.code !== 'bad-request' && value.code !== 'unavailable') || typeof value.message !== 'string') return bad('error: code and message')
      return { ok: true, value: { t: 'error', code: value.code, message: value.message.slice(0, 512) } }
    default:
      return bad('unknown response type')
  }
}
