/**
 * Who may receive a deposited content key: the check itself is shared with the peer SDK's
 * key holder and lives in services/protocol/src/log/entitlement.ts; here it is typed for the
 * beacon's records. A check sees the requester (always a registered account: the service
 * refuses others before any check). Embedders pass their own to `startWorker`.
 */
import { allowListEntitlement } from '@pharos/protocol/log/index.ts'
import type { EntitlementCheck as AnyEntitlementCheck, EntitlementRequest as AnyEntitlementRequest } from '@pharos/protocol/log/index.ts'
import type { ContentKeyRecord } from './content-key-store.ts'

export type { EntitlementDecision } from '@pharos/protocol/log/index.ts'
export type EntitlementRequest = AnyEntitlementRequest<ContentKeyRecord>
export type EntitlementCheck = AnyEntitlementCheck<ContentKeyRecord>

export { allowListEntitlement }
