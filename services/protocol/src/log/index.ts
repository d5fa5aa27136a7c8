/**
 * Signed profile logs, shared by the beacon and the peer SDK, with no I/O: the entry format
 * and its strict verification, fork choice, the content-topic envelope, and the sync and
 * key-exchange wire messages. See docs/logs.md.
 */
export { checkPoint, checkSignatureEncoding, ed25519Signer, verifyEd25519 } from './ed25519.ts'
export type { Ed25519Signer, SignatureCheck } from './ed25519.ts'
export { peerIdFromPublicKey, publicKeyFromPeerId } from './author-key.ts'
export { cborCid, decodeCanonical, encodeCbor } from './cbor.ts'
export {
  contentLinks,
  decodeEntry,
  ENTRY_VERSION,
  FEED_POST_ACTION,
  InvalidEntryError,
  MAX_ENTRY_BYTES,
  signEntry,
  signingBytes,
  verifyEntry
} from './entry.ts'
export type { Entry, EntryBlock, EntryDecodeResult, EntryErrorCode, EntrySignatureError, EntryVerifyResult, ParamValue, UnsignedEntry } from './entry.ts'
export { bestHead, compareBytes, compareHeads } from './fork-choice.ts'
export type { HeadCandidate } from './fork-choice.ts'
export { MAX_ENVELOPE_BYTES, openEnvelope, PUBLISH_DOMAIN, sealEnvelope } from './envelope.ts'
export { CONTENT_TOPIC, messageIdOf } from './message-id.ts'
export { HEAD_REQUEST_DOMAIN, HEAD_REQUEST_LIMITS, newerHeads, openHeadRequest, signHeadRequest } from './head-request.ts'
export type { HeadRequest, HeadRequestErrorCode, HeadRequestResult, HeadWant } from './head-request.ts'
export type { EnvelopeErrorCode, EnvelopeResult, PublishEnvelope } from './envelope.ts'
export { decodeStatement, MAX_STATEMENT_BYTES, openStatement, signStatement, statementDomain } from './statement.ts'
export type { SignedStatement, StatementErrorCode, StatementResult } from './statement.ts'
export { checkSyncRequest, decodeSyncRequest, decodeSyncResponse, encodeSyncRequest, encodeSyncResponse, MAX_SYNC_FRAME_BYTES, SYNC_LIMITS } from './sync-messages.ts'
export type { EntryStatus, HeadInfo, KnownHead, NotHeldReason, ReceiptSubject, SyncDecodeResult, SyncErrorCode, SyncRequest, SyncResponse } from './sync-messages.ts'
export { LOG_RECEIPT_KIND, openLogReceipt, openPinReceipt, PIN_RECEIPT_KIND, signLogReceipt, signPinReceipt } from './receipt.ts'
export type {
  LogReceipt,
  LogReceiptBody,
  LogReceiptExpectation,
  PinReceipt,
  PinReceiptBody,
  PinReceiptExpectation,
  PinReceiptScope,
  Receipt,
  ReceiptErrorCode,
  ReceiptResult
} from './receipt.ts'
export {
  decodeKeyExchange,
  decodeKeyHashParam,
  encodeKeyExchange,
  encodeKeyHashParam,
  KEY_BYTES,
  KEY_DENIAL_CODES,
  keyHashOf,
  MAX_ALLOW_LIST_PEERS,
  MAX_KEY_EXCHANGE_FRAME_BYTES,
  openAllowList,
  signAllowList
} from './key-exchange.ts'
export type { AllowList, Decoded, KeyDenialCode, KeyExchangeMessage } from './key-exchange.ts'
export { allowListEntitlement, NOT_ON_ALLOW_LIST } from './entitlement.ts'
export type { EntitledKey, EntitlementCheck, EntitlementDecision, EntitlementRequest } from './entitlement.ts'

/** Protocol IDs of the direct-stream protocols, under the network namespace. */
export const syncProtocolId = (network: string): string => `/${network}/sync/1.0.0`
export const keyExchangeProtocolId = (network: string): string => `/${network}/keyexchange/1.0.0`
