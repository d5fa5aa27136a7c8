/**
 * Who may receive a deposited content key (DESIGN.md §4: "an entitlement check
 * (pluggable)"). A check sees the requester (authenticated by Noise: the remote peer of the
 * stream; always a registered account, the service refuses others before any check) and the
 * deposit, and answers allowed or denied with a reason the requester is told. Embedders
 * pass their own to `startWorker` (e.g. "holds a token on chain", as in the Solcial notes);
 * the default is the author-signed allow-list.
 */
import type { ContentKeyRecord } from './content-key-store.ts'

export type EntitlementDecision = { allowed: true } | { allowed: false, reason: string }

export interface EntitlementRequest {
  /** The peer asking, as authenticated by the connection; a registered account. */
  requester: string
  /** The deposit: the key, its author and the version of its rule. */
  record: ContentKeyRecord
  /**
   * Whether the author's allow-list names the requester. The list's signature was verified
   * once, when it was deposited, and its peers were written to an index then: this is one
   * index probe, not a signature check and a scan of up to 10,000 peers per request.
   */
  listed: boolean
  /** The deposited rule's bytes (a signed allow-list), read from storage on demand. Up to ~560 KB: a check that needs it pays for it. */
  rule: (signal: AbortSignal) => Promise<Uint8Array>
}

export type EntitlementCheck = (request: EntitlementRequest, signal: AbortSignal) => Promise<EntitlementDecision>

/**
 * The default check: the author, and the peers the author's signed allow-list names. Constant
 * work per request: the list was verified when deposited (it is refused otherwise) and its
 * readers indexed in the same transaction, so this check trusts that index as it trusts the
 * key itself, which comes from the same database.
 */
export const allowListEntitlement: EntitlementCheck = async ({ requester, record, listed }) => {
  if (requester === record.author || listed) return { allowed: true }
  return { allowed: false, reason: 'not on the author\'s allow-list' }
}
