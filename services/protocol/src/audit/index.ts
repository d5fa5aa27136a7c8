/**
 * Storage audits, shared by the beacon and the peer SDK, with no I/O: the signed audit report
 * and the storage-proof challenge protocol. See docs/audits.md.
 */
export {
  AUDIT_REPORT_LIMITS,
  AUDIT_STATEMENT_KIND,
  auditReportFromBody,
  decodeStoredAuditReport,
  openAuditReport,
  signAuditReport
} from './report.ts'
export type { AuditFailure, AuditFailureReason, AuditRepair, AuditRepairOutcome, AuditReport, AuditReportResult } from './report.ts'
export {
  CHALLENGE_NONCE_BYTES,
  challengeProof,
  decodeChallengeRequest,
  decodeChallengeResponse,
  encodeChallengeRequest,
  encodeChallengeResponse,
  judgeChallengeAnswer,
  MAX_CHALLENGE_CIDS,
  MAX_CHALLENGE_FRAME_BYTES,
  verifyChallengeProofs
} from './challenge.ts'
export type { ChallengeDecoded, ChallengeOutcome, ChallengeRefusal, ChallengeRequest, ChallengeResponse, ChallengeResult, ChallengeVerdict } from './challenge.ts'

/** Protocol ID of storage-proof challenges, under the network namespace. */
export const auditProtocolId = (network: string): string => `/${network}/audit/1.0.0`
