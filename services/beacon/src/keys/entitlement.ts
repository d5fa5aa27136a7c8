/**
 * Who may receive a deposited content key (DESIGN.md §4: "an entitlement check
 * (pluggable)"). A check sees the requester (authenticated by Noise: the remote peer of the
 * stream) and the deposited record, and answers allowed or denied with a reason the
 * requester is told. Embedders pass their own to `startWorker` (e.g. "holds a token on
 * chain", as in the Solcial notes); the default is the author-signed allow-list.
 */
import { openAllowList } from '../../../protocol/src/log/index.ts'
import type { ContentKey } from './content-key-store.ts'

export type EntitlementDecision = { allowed: true } | { allowed: false, reason: string }

export interface EntitlementRequest {
  /** The peer asking, as authenticated by the connection. */
  requester: string
  record: ContentKey
}

export type EntitlementCheck = (request: EntitlementRequest, signal: AbortSignal) => Promise<EntitlementDecision>

/**
 * The default check: the author, and the peers the author's signed allow-list names. The rule
 * was verified when deposited; it is verified again here because the check must not trust
 * what storage returns more than what the wire did.
 */
export const allowListEntitlement: EntitlementCheck = async ({ requester, record }) => {
  if (requester === record.author) return { allowed: true }
  const list = await openAllowList(record.rule)
  if (!list.ok) return { allowed: false, reason: `the stored rule is invalid: ${list.detail}` }
  if (list.value.author !== record.author) return { allowed: false, reason: 'the rule is not signed by the key\'s author' }
  return list.value.peers.includes(requester) ? { allowed: true } : { allowed: false, reason: 'not on the author\'s allow-list' }
}
