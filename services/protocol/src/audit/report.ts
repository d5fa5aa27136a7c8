/**
 * Storage audit reports (DESIGN.md §5, after the 4EVERLAND storage-proof reports): after each
 * round a worker signs what it re-read and re-hashed, what failed and what it repaired, as a
 * signed statement of kind `audit` (see ../log/statement.ts). Anyone holding the worker's
 * peer ID checks the signature; `openAuditReport` also checks the body's shape.
 *
 *   body: { worker, at, durationMs, sampleSize, checked: [CID…],
 *           failures: [{ cid, reason: "missing" | "corrupt" }],
 *           repairs:  [{ cid, outcome: "repaired" | "failed", detail }] }
 *
 * `at` is the worker's clock (ms since the epoch) when the round started: a claim, like every
 * field, that the worker signs, not a timestamp anyone vouches for.
 */
import { CID } from 'multiformats/cid'
import { publicKeyFromPeerId } from '../log/author-key.ts'
import { hasKeys, isMap, isUint, listOf } from '../log/cbor.ts'
import type { Ed25519Signer } from '../log/ed25519.ts'
import { decodeStatement, openStatement, signStatement } from '../log/statement.ts'
import type { StatementErrorCode } from '../log/statement.ts'

export const AUDIT_STATEMENT_KIND = 'audit'

/** Bounds on one report, so its statement stays far below MAX_STATEMENT_BYTES (1,024 CIDs ≈ 40 KiB). */
export const AUDIT_REPORT_LIMITS = {
  /** Blocks checked in one round. */
  checked: 1024,
  /** Characters of a repair's detail. */
  detail: 200
} as const

export type AuditFailureReason = 'missing' | 'corrupt'
export type AuditRepairOutcome = 'repaired' | 'failed'

export interface AuditFailure {
  cid: CID
  reason: AuditFailureReason
}

export interface AuditRepair {
  cid: CID
  outcome: AuditRepairOutcome
  /** Why a repair failed, or where the bytes came from; free text, bounded. */
  detail: string
}

export interface AuditReport {
  /** Peer ID of the worker that ran the round (and signed the report). */
  worker: string
  /** When the round started, ms since the epoch (the worker's clock). */
  at: number
  durationMs: number
  /** Blocks the round set out to check (the configured sample; fewer if fewer are held). */
  sampleSize: number
  checked: CID[]
  failures: AuditFailure[]
  repairs: AuditRepair[]
}

export type AuditReportResult =
  | { ok: true, report: AuditReport, sig: Uint8Array }
  | { ok: false, code: StatementErrorCode | 'bad-report', detail: string }

const FAILURE_REASONS: readonly AuditFailureReason[] = ['missing', 'corrupt']
const REPAIR_OUTCOMES: readonly AuditRepairOutcome[] = ['repaired', 'failed']

/** Signs `report` with the worker's key; returns the statement's canonical bytes. */
export async function signAuditReport (report: AuditReport, signer: Ed25519Signer): Promise<Uint8Array> {
  if (report.worker !== signer.peerId) throw new RangeError(`a report of ${report.worker} cannot be signed by ${signer.peerId}`)
  if (report.checked.length > AUDIT_REPORT_LIMITS.checked) throw new RangeError(`a report checks at most ${AUDIT_REPORT_LIMITS.checked} blocks`)
  const body = {
    worker: report.worker,
    at: report.at,
    durationMs: report.durationMs,
    sampleSize: report.sampleSize,
    checked: report.checked,
    failures: report.failures.map(({ cid, reason }) => ({ cid, reason })),
    repairs: report.repairs.map(({ cid, outcome, detail }) => ({ cid, outcome, detail: detail.slice(0, AUDIT_REPORT_LIMITS.detail) }))
  }
  return await signStatement(AUDIT_STATEMENT_KIND, body, signer)
}

const asCid = (value: unknown): CID | undefined => CID.asCID(value) ?? undefined

function failure (value: unknown): AuditFailure | undefined {
  if (!isMap(value) || !hasKeys(value, ['cid', 'reason'])) return undefined
  const cid = asCid(value.cid)
  const reason = FAILURE_REASONS.find((known) => known === value.reason)
  return cid === undefined || reason === undefined ? undefined : { cid, reason }
}

function repair (value: unknown): AuditRepair | undefined {
  if (!isMap(value) || !hasKeys(value, ['cid', 'outcome', 'detail'])) return undefined
  const cid = asCid(value.cid)
  const outcome = REPAIR_OUTCOMES.find((known) => known === value.outcome)
  if (cid === undefined || outcome === undefined || typeof value.detail !== 'string' || value.detail.length > AUDIT_REPORT_LIMITS.detail) return undefined
  return { cid, outcome, detail: value.detail }
}

/** The report in a statement body, or why the body is not one. */
export function auditReportFromBody (body: Record<string, unknown>, signer: string): AuditReport | string {
  if (!hasKeys(body, ['worker', 'at', 'durationMs', 'sampleSize', 'checked', 'failures', 'repairs'])) return 'a report has exactly worker, at, durationMs, sampleSize, checked, failures, repairs'
  if (typeof body.worker !== 'string' || publicKeyFromPeerId(body.worker) === undefined) return 'worker must be an ed25519 peer ID'
  if (body.worker !== signer) return `the report of ${body.worker} is signed by ${signer}`
  if (!isUint(body.at) || !isUint(body.durationMs) || !isUint(body.sampleSize)) return 'at, durationMs and sampleSize are unsigned integers'
  const checked = listOf(body.checked, AUDIT_REPORT_LIMITS.checked, asCid)
  const failures = listOf(body.failures, AUDIT_REPORT_LIMITS.checked, failure)
  const repairs = listOf(body.repairs, AUDIT_REPORT_LIMITS.checked, repair)
  if (checked === undefined) return `checked is a list of at most ${AUDIT_REPORT_LIMITS.checked} CIDs`
  if (failures === undefined) return 'failures is a list of { cid, reason: "missing" | "corrupt" }'
  if (repairs === undefined) return `repairs is a list of { cid, outcome: "repaired" | "failed", detail (≤ ${AUDIT_REPORT_LIMITS.detail} characters) }`
  return { worker: body.worker, at: body.at, durationMs: body.durationMs, sampleSize: body.sampleSize, checked, failures, repairs }
}

/**
 * Decodes a signed audit report and checks it: the statement's signature against the key in
 * its signer's peer ID (and, with `expectWorker`, that the signer is that worker), then the
 * body's shape.
 */
export async function openAuditReport (bytes: Uint8Array, expectWorker?: string): Promise<AuditReportResult> {
  const opened = await openStatement(bytes, expectWorker === undefined ? { kind: AUDIT_STATEMENT_KIND } : { kind: AUDIT_STATEMENT_KIND, signer: expectWorker })
  if (!opened.ok) return opened
  const report = auditReportFromBody(opened.value.body, opened.value.signer)
  if (typeof report === 'string') return { ok: false, code: 'bad-report', detail: report }
  return { ok: true, report, sig: opened.value.sig }
}

/**
 * The report in a statement whose signature was checked when it was stored (a worker's own
 * reports: AuditStore verifies each before writing it), without checking it again: the
 * shape, the kind and the signer only. `GET /v1/audits` reads up to 100 at a time for anyone,
 * and must not cost 100 signature checks per request.
 */
export function decodeStoredAuditReport (bytes: Uint8Array, expectWorker: string): AuditReportResult {
  const decoded = decodeStatement(bytes, { kind: AUDIT_STATEMENT_KIND, signer: expectWorker })
  if (!decoded.ok) return decoded
  const report = auditReportFromBody(decoded.value.body, decoded.value.signer)
  if (typeof report === 'string') return { ok: false, code: 'bad-report', detail: report }
  return { ok: true, report, sig: decoded.value.sig }
}
