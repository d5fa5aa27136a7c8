/**
 * The audit tables and queries: which pinned blocks a round samples, where a block's pins
 * say it came from, and the signed reports (migration 004_audit_reports.sql).
 */
import { openAuditReport } from '@pharos/protocol/audit/index.ts'
import type { SqlQueryable } from '../storage/sql.ts'
import { rowBytes } from '../storage/sql.ts'

/** A report whose statement does not verify as its worker's: it is never stored. */
export class UnverifiedReportError extends Error {
  override readonly name = 'UnverifiedReportError'
}

/**
 * A round samples pages of `pin_blocks` (TABLESAMPLE SYSTEM) sized to hold about this many
 * rows, then picks its blocks among them at random: the cost of a round stays bounded however
 * large the table grows (guess: ~100 heap pages, a few ms).
 */
const SAMPLED_ROWS = 10_000
/** Origins tried for one repair (guess: a pin lists a handful; entry pins list one). */
const MAX_ORIGINS = 20

export interface StoredReport {
  id: number
  reportCid: string
  worker: string
  roundAt: Date
  sampleSize: number
  checked: number
  failures: number
  repaired: number
  repairFailures: number
  statement: Uint8Array
  storedAt: Date
}

export interface ReportPage {
  reports: StoredReport[]
  /** Pass as `before` for the next (older) page; absent on the last page. */
  next?: number
}

export interface ReportFilter {
  limit: number
  /** Reports with an id below this (the `next` of the previous page). */
  before?: number
  worker?: string
  /** Rounds that started at or after this. */
  since?: Date
}

interface ReportRow {
  id: string
  report_cid: string
  worker: string
  round_at: Date
  sample_size: number
  checked: number
  failures: number
  repaired: number
  repair_failures: number
  statement: Uint8Array
  stored_at: Date
}

export class AuditStore {
  private readonly db: SqlQueryable

  constructor (db: SqlQueryable) {
    this.db = db
  }

  /**
   * Up to `size` distinct multihashes of blocks held by pins, chosen at random. Every worker
   * draws its own sample, so a fleet's workers check different blocks (docs/audits.md).
   */
  async sampleHeldBlocks (size: number): Promise<Uint8Array[]> {
    const { rows: estimate } = await this.db.query<{ rows: number }>(
      "SELECT reltuples::float8 AS rows FROM pg_class WHERE oid = 'pin_blocks'::regclass"
    )
    const rowsEstimate = estimate[0]?.rows ?? -1
    // reltuples is -1 (never analysed) or small: sample every page.
    const percent = rowsEstimate <= SAMPLED_ROWS ? 100 : Math.max(0.0001, 100 * Math.max(SAMPLED_ROWS, size * 4) / rowsEstimate)
    const { rows } = await this.db.query<{ multihash: Uint8Array }>(
      `SELECT multihash FROM (SELECT DISTINCT multihash FROM pin_blocks TABLESAMPLE SYSTEM ($1::float4)) sampled
       ORDER BY random() LIMIT $2`,
      [Math.min(100, percent), size]
    )
    return rows.map((row) => rowBytes(row.multihash))
  }

  /** The origins (multiaddrs) of the pins that hold a block: where a repair looks first. */
  async originsOf (multihash: Uint8Array): Promise<string[]> {
    const { rows } = await this.db.query<{ origin: string }>(
      `SELECT DISTINCT unnest(p.origins) AS origin FROM pins p JOIN pin_blocks pb ON pb.pin_id = p.id
       WHERE pb.multihash = $1 LIMIT $2`,
      [multihash, MAX_ORIGINS]
    )
    return rows.map((row) => row.origin)
  }

  /**
   * Stores a report once its statement verifies as `worker`'s, so every stored report is a
   * verified one and readers (GET /v1/audits) need not check signatures again. One check per
   * round, where reading it back for anyone cost one check per report per request.
   */
  async insert (report: Omit<StoredReport, 'id' | 'storedAt'>): Promise<void> {
    const opened = await openAuditReport(report.statement, report.worker)
    if (!opened.ok) throw new UnverifiedReportError(`audit report ${report.reportCid} does not verify as ${report.worker}'s: ${opened.code}: ${opened.detail}`)
    await this.db.query(
      `INSERT INTO audit_reports (report_cid, worker, round_at, sample_size, checked, failures, repaired, repair_failures, statement)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (report_cid) DO NOTHING`,
      [report.reportCid, report.worker, report.roundAt, report.sampleSize, report.checked, report.failures, report.repaired, report.repairFailures, report.statement]
    )
  }

  /** Deletes reports of rounds that started before `cutoff` (any worker's: retention is fleet-wide). */
  async pruneBefore (cutoff: Date): Promise<number> {
    return (await this.db.query('DELETE FROM audit_reports WHERE round_at < $1', [cutoff])).rowCount
  }

  /** Reports newest first, filtered by worker and round start. */
  async list (filter: ReportFilter): Promise<ReportPage> {
    const conditions: string[] = []
    const params: unknown[] = []
    const param = (value: unknown): string => {
      params.push(value)
      return `$${params.length}`
    }
    if (filter.before !== undefined) conditions.push(`id < ${param(filter.before)}`)
    if (filter.worker !== undefined) conditions.push(`worker = ${param(filter.worker)}`)
    if (filter.since !== undefined) conditions.push(`round_at >= ${param(filter.since)}`)
    const where = conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`
    const { rows } = await this.db.query<ReportRow>(
      `SELECT id::text, report_cid, worker, round_at, sample_size, checked, failures, repaired, repair_failures, statement, stored_at
       FROM audit_reports ${where} ORDER BY id DESC LIMIT ${param(filter.limit + 1)}`,
      params
    )
    const reports = rows.slice(0, filter.limit).map((row) => ({
      id: Number(row.id),
      reportCid: row.report_cid,
      worker: row.worker,
      roundAt: row.round_at,
      sampleSize: row.sample_size,
      checked: row.checked,
      failures: row.failures,
      repaired: row.repaired,
      repairFailures: row.repair_failures,
      statement: rowBytes(row.statement),
      storedAt: row.stored_at
    }))
    const last = reports.at(-1)
    return rows.length > filter.limit && last !== undefined ? { reports, next: last.id } : { reports }
  }
}
