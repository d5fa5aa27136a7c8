/**
 * Who may receive a content key (DESIGN.md §4: "an entitlement check (pluggable)"), shared by
 * every holder that answers GETKEY: the beacon's key-exchange service and the peer SDK's key
 * holder (an author, or a reader the author pushed the key to). Pure: the holder looks the
 * key up and says whether its rule names the requester; the check decides.
 *
 * A check sees the requester (authenticated by Noise: the remote peer of the stream) and the
 * key's record, and answers allowed or denied with a reason the requester is told. Embedders
 * pass their own (e.g. "holds a token on chain", as in the Solcial notes); the default is the
 * author-signed allow-list.
 */

export type EntitlementDecision = { allowed: true } | { allowed: false, reason: string }

/** What a check needs to know of a held key: whose it is and which version of its rule holds. */
export interface EntitledKey {
  keyHash: Uint8Array
  author: string
  ruleVersion: number
}

export interface EntitlementRequest<Key extends EntitledKey = EntitledKey> {
  /** The peer asking, as authenticated by the connection. */
  requester: string
  /** The held key: its author and the version of its rule. */
  record: Key
  /**
   * Whether the author's allow-list names the requester. The list's signature was verified
   * once, when the key was deposited or pushed, so this is a lookup, not a signature check.
   */
  listed: boolean
  /** The rule's bytes (a signed allow-list), read on demand: a check that needs it pays for it. */
  rule: (signal: AbortSignal) => Promise<Uint8Array>
}

export type EntitlementCheck<Key extends EntitledKey = EntitledKey> = (request: EntitlementRequest<Key>, signal: AbortSignal) => Promise<EntitlementDecision>

/** The reason the default check gives; a holder sends it with the `not-entitled` code. */
export const NOT_ON_ALLOW_LIST = 'not on the author\'s allow-list'

/**
 * The default check: the author, and the peers the author's signed allow-list names.
 * Constant work per request: the list was verified when the key arrived (it is refused
 * otherwise), and the holder trusts that verification as it trusts the key itself.
 */
export const allowListEntitlement: EntitlementCheck = async ({ requester, record, listed }) => {
  if (requester === record.author || listed) return { allowed: true }
  return { allowed: false, reason: NOT_ON_ALLOW_LIST }
}
