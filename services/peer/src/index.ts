/**
 * The Pharos peer SDK: `createPharosPeer` and what its API takes and returns, the key-file
 * helpers, and the error catalogue. See README "Peer SDK and pharos-peer".
 */
export { createPharosPeer, PharosPeer } from './pharos-peer.ts'
export type {
  KeyDeposit,
  KeyDistribution,
  KeyDistributionReport,
  LogReceiptOptions,
  PinReceiptOptions,
  PharosPeerInit,
  PharosPeerNode,
  PharosPeerServices,
  PeerBan,
  Post,
  PostInput,
  PublishedEntry,
  RegistryStatus,
  SyncReport,
  WaitUntilHeldOptions
} from './pharos-peer.ts'
export type { AttachmentInput, AttachmentLink, PostBody } from './post.ts'
export type {
  FetchLogOptions,
  FetchLogProgress,
  FetchLogProgressEvents,
  FetchPostOptions,
  FetchPostProgress,
  FetchPostProgressEvents,
  PublishPostOptions,
  PublishPostProgress,
  PublishPostProgressEvents,
  WaitUntilHeldProgressEvents
} from './progress.ts'
export { decodePostBody, decodePrivatePostBlock, encodePostBody } from './post.ts'
export type { PrivatePostBlock } from './post.ts'
// Private posts (docs/private-posts.md): the sealed-object format, and the entitlement check every key holder runs.
export { newContentKey, open as openSealed, seal, SEALED_OVERHEAD, SEALED_VERSION } from './content-cipher.ts'
export type { SealedKind } from './content-cipher.ts'
export { allowListEntitlement } from '@pharos/protocol/log/index.ts'
export type { EntitlementCheck, EntitlementDecision, EntitlementRequest } from '@pharos/protocol/log/index.ts'
export { decodeKeyFile, encodeKeyFile, generateKey, loadKeyFile, saveKeyFile, signerFor } from './keys.ts'
export type { KeyFile } from './keys.ts'
export { checkLogEntry, verifyLog, walkLog } from './log-verify.ts'
export { verifyLogReceipt, verifyPinReceipt } from './receipts.ts'
export type { LogReceipt, PinReceipt, PinReceiptScope, Receipt } from './receipts.ts'
export { DEFAULT_NETWORK, DEFAULT_NETWORK_SIZE, DEFAULT_REGISTRY_REFRESH_MS, DEFAULT_TIMEOUTS } from './constants.ts'
export type { RegistryGate } from './peer-registry.ts'
export { MemoryStateStore } from './state-store.ts'
export type { PeerStateStore } from './state-store.ts'
export { fileStateStore } from './file-state-store.ts'
export { BanStoreError } from './peer-bans.ts'
export type { PeerTimeouts } from './constants.ts'
export * from './errors.ts'
// What `PharosPeer.challenge` resolves with, and the report format it can check (docs/audits.md).
export type { AuditReport, ChallengeOutcome, ChallengeResult } from '@pharos/protocol/audit/index.ts'
export { openAuditReport } from '@pharos/protocol/audit/index.ts'
// Refusals by a beacon's overlay (e.g. "not-registered") come from the shared driver.
export { DEFAULT_NEIGHBOUR_BUDGET, DEFAULT_NEIGHBOUR_SCORING, OverlayRefusedError } from '@pharos/net/overlay/overlay-driver.ts'
export type { NeighbourBudget, NeighbourOffence, NeighbourScoring } from '@pharos/net/overlay/overlay-driver.ts'
