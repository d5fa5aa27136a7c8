/**
 * The registry of accounts as beacons serve it to peers, `/<network>/registry/1.0.0` and
 * `GET /v1/registry` (DESIGN.md §3: only registered accounts may join the overlay; N, the
 * account count, sizes every node's views). One request and one response per stream, each a
 * length-prefixed canonical dag-cbor map:
 *
 *   request:  { t: "registry", cursor: <cursor> | null, after: <peer ID> | null, limit: 1..MAX_REGISTRY_PAGE }
 *   response: a signed statement (log/statement.ts) of kind "registry", signed by the
 *             fleet's registry key, with the body
 *             { network, kind: "snapshot" | "changes", cursor, count, accounts: [peer ID…],
 *               removed: [peer ID…], more: bool, issuedAt: <ms> }
 *
 * - No cursor: a snapshot page, the registered accounts in peer ID order after `after`.
 *   `more` says a next page exists (ask again with `after` = the page's last account).
 * - A cursor the beacon knows: the changes since it, each changed account once with its
 *   state now (`accounts` registered, `removed` not), and the cursor that follows them.
 *   `more` says more changes wait: ask again with the new cursor.
 * - A cursor it does not know (another worker's, one from before a restart, one too old for
 *   the beacon's journal): a fresh snapshot's first page, `kind: "snapshot"`.
 *
 * A snapshot taken in pages while accounts change is made whole by the changes since the
 * FIRST page's cursor (RegistryReplica): adds and removes are states, not deltas, so
 * applying one twice, or to a page that already had it, changes nothing.
 *
 * `network` is signed, so a registry of one network is never taken for another's; `count`
 * is N. No I/O here: the beacon serves, services/net asks, the peer keeps a RegistryReplica.
 */
import { isEd25519PeerId } from '../log/author-key.ts'
import { decodeCanonical, encodeCbor, hasKeys, isMap, isUint, listOf } from '../log/cbor.ts'
import type { Ed25519Signer } from '../log/ed25519.ts'
import { MAX_STATEMENT_BYTES, openStatement, signStatement } from '../log/statement.ts'
import type { StatementErrorCode } from '../log/statement.ts'

/** The statement kind of a registry page: its signature is good for nothing else. */
export const REGISTRY_STATEMENT_KIND = 'registry'

/** Protocol ID of the registry, under the network namespace. */
export const registryProtocolId = (network: string): string => `/${network}/registry/1.0.0`

/**
 * Accounts per page at most. A peer ID is ~54 bytes in CBOR, so 2,000 make ~110 KiB, well
 * inside a statement's 256 KiB (guess: a page a phone fetches in one round trip).
 */
export const MAX_REGISTRY_PAGE = 2000
/** Accounts per page when the asker does not say. @default 1000 (guess: half the maximum) */
export const DEFAULT_REGISTRY_PAGE = 1000
/** A request is a cursor, a peer ID and a number. */
export const MAX_REGISTRY_REQUEST_BYTES = 512
/** A response is one statement. */
export const MAX_REGISTRY_RESPONSE_BYTES = MAX_STATEMENT_BYTES

/**
 * A cursor: the serving journal's epoch (16 hex digits, new at each start of a worker) and
 * the sequence number of the last change it covers, e.g. `9f1c03aa5e7d2b40.1234`.
 */
const CURSOR = /^([0-9a-f]{16})\.(\d{1,15})$/

export function formatRegistryCursor (epoch: string, seq: number): string {
  return `${epoch}.${seq}`
}

/** The epoch and sequence number of a cursor, or undefined if `cursor` is not one. */
export function parseRegistryCursor (cursor: string): { epoch: string, seq: number } | undefined {
  const match = CURSOR.exec(cursor)
  if (match === null) return undefined
  return { epoch: match[1] ?? '', seq: Number(match[2]) }
}

export interface RegistryRequest {
  /** Changes since this cursor; null for a snapshot. */
  cursor: string | null
  /** A snapshot page's accounts come after this peer ID; null for the first page. */
  after: string | null
  /** Accounts (or changed accounts) per page, 1..MAX_REGISTRY_PAGE. */
  limit: number
}

export type RegistryPageKind = 'snapshot' | 'changes'

/** What a registry page says (the signed statement's body). */
export interface RegistryPageBody {
  network: string
  kind: RegistryPageKind
  /** Where the asker stands after this page: send it back for the changes since. */
  cursor: string
  /** N: the registered accounts when the page was made. */
  count: number
  /** Snapshot: the page's accounts, in order. Changes: the accounts registered now. */
  accounts: string[]
  /** Changes: the accounts removed (not registered now). Always empty in a snapshot. */
  removed: string[]
  /** A snapshot: another page follows. Changes: more changes wait. */
  more: boolean
  /** When the page was made, by the server's clock (ms since the epoch). */
  issuedAt: number
}

/** A verified page, with its signer (the fleet's registry key, as a peer ID). */
export interface RegistryPage extends RegistryPageBody {
  signer: string
}

export type RegistryDecoded<T> = { ok: true, value: T } | { ok: false, detail: string }

export type RegistryErrorCode = StatementErrorCode | 'bad-body' | 'wrong-network'

export type RegistryPageResult = { ok: true, value: RegistryPage } | { ok: false, code: RegistryErrorCode, detail: string }

/** Why a request is refused, or undefined if it is a good one. */
export function checkRegistryRequest (request: RegistryRequest): string | undefined {
  if (request.cursor !== null && parseRegistryCursor(request.cursor) === undefined) return 'cursor must be a cursor a registry page gave (<16 hex digits>.<number>)'
  if (request.after !== null && !isEd25519PeerId(request.after)) return 'after must be an ed25519 peer ID (12D3KooW…)'
  if (request.cursor !== null && request.after !== null) return 'give cursor (changes) or after (the next snapshot page), not both'
  if (!Number.isSafeInteger(request.limit) || request.limit < 1 || request.limit > MAX_REGISTRY_PAGE) return `limit must be an integer from 1 to ${MAX_REGISTRY_PAGE}`
  return undefined
}

export function encodeRegistryRequest (request: RegistryRequest): Uint8Array {
  const refused = checkRegistryRequest(request)
  if (refused !== undefined) throw new RangeError(refused)
  return encodeCbor({ t: 'registry', cursor: request.cursor, after: request.after, limit: request.limit })
}

export function decodeRegistryRequest (bytes: Uint8Array): RegistryDecoded<RegistryRequest> {
  if (bytes.length > MAX_REGISTRY_REQUEST_BYTES) return { ok: false, detail: `request of ${bytes.length} bytes > ${MAX_REGISTRY_REQUEST_BYTES}` }
  const decoded = decodeCanonical(bytes)
  if (!decoded.ok) return { ok: false, detail: decoded.detail }
  const value = decoded.value
  if (!isMap(value) || value.t !== 'registry' || !hasKeys(value, ['t', 'cursor', 'after', 'limit']) ||
    (value.cursor !== null && typeof value.cursor !== 'string') || (value.after !== null && typeof value.after !== 'string') || !isUint(value.limit)) {
    return { ok: false, detail: 'a registry request is { t: "registry", cursor: string | null, after: string | null, limit: uint }' }
  }
  const request: RegistryRequest = { cursor: value.cursor, after: value.after, limit: value.limit }
  const refused = checkRegistryRequest(request)
  return refused === undefined ? { ok: true, value: request } : { ok: false, detail: refused }
}

/** Signs a page with the fleet's registry key; returns the statement's bytes. */
export async function signRegistryPage (page: RegistryPageBody, signer: Ed25519Signer): Promise<Uint8Array> {
  return await signStatement(REGISTRY_STATEMENT_KIND, { ...page }, signer)
}

const peerIdItem = (item: unknown): string | undefined => typeof item === 'string' && isEd25519PeerId(item) ? item : undefined

/**
 * Decodes a registry page and checks its signature, that it is of `network`, and (given
 * `signer`) that the fleet key `signer` signed it. Anything else is `{ ok: false }` with the
 * reason: a page whose bytes were changed after signing fails `bad-statement-signature`.
 */
export async function openRegistryPage (bytes: Uint8Array, expect: { network: string, signer?: string }): Promise<RegistryPageResult> {
  const opened = await openStatement(bytes, { kind: REGISTRY_STATEMENT_KIND, ...(expect.signer === undefined ? {} : { signer: expect.signer }) })
  if (!opened.ok) return opened
  const { body, signer } = opened.value
  if (!hasKeys(body, ['network', 'kind', 'cursor', 'count', 'accounts', 'removed', 'more', 'issuedAt']) ||
    typeof body.network !== 'string' || (body.kind !== 'snapshot' && body.kind !== 'changes') ||
    typeof body.cursor !== 'string' || parseRegistryCursor(body.cursor) === undefined ||
    !isUint(body.count) || typeof body.more !== 'boolean' || !isUint(body.issuedAt)) {
    return { ok: false, code: 'bad-body', detail: 'a registry page is { network, kind: "snapshot" | "changes", cursor, count, accounts, removed, more, issuedAt }' }
  }
  const accounts = listOf(body.accounts, MAX_REGISTRY_PAGE, peerIdItem)
  const removed = listOf(body.removed, MAX_REGISTRY_PAGE, peerIdItem)
  if (accounts === undefined || removed === undefined) return { ok: false, code: 'bad-body', detail: `accounts and removed must list at most ${MAX_REGISTRY_PAGE} ed25519 peer IDs` }
  if (body.kind === 'snapshot' && removed.length > 0) return { ok: false, code: 'bad-body', detail: 'a snapshot page removes nothing' }
  if (body.network !== expect.network) return { ok: false, code: 'wrong-network', detail: `a registry of network ${JSON.stringify(body.network)}, not ${JSON.stringify(expect.network)}` }
  return { ok: true, value: { network: body.network, kind: body.kind, cursor: body.cursor, count: body.count, accounts, removed, more: body.more, issuedAt: body.issuedAt, signer } }
}
