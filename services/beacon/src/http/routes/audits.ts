import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { peerIdFromString } from '@libp2p/peer-id'
import { Type } from 'typebox'
import { decodeStoredAuditReport } from '@pharos/protocol/audit/index.ts'
import type { AuditStore, StoredReport } from '../../audit/audit-store.ts'
import { FailureRef, HttpError } from '../errors.ts'

const CidList = Type.Array(Type.String())

const ReportSchema = Type.Object({
  id: Type.Integer({ description: 'Position in this fleet\'s report table (newest highest)' }),
  reportCid: Type.String({ description: 'CID (dag-cbor, sha2-256) of the signed statement' }),
  worker: Type.String({ description: 'Peer ID of the worker that ran the round and signed the report' }),
  at: Type.String({ format: 'date-time', description: 'When the round started, by the worker\'s clock (signed)' }),
  durationMs: Type.Integer(),
  sampleSize: Type.Integer({ description: 'Blocks the round set out to check (PHAROS_AUDIT_SAMPLE_SIZE)' }),
  checked: CidList,
  failures: Type.Array(Type.Object({ cid: Type.String(), reason: Type.Union([Type.Literal('missing'), Type.Literal('corrupt')]) })),
  repairs: Type.Array(Type.Object({ cid: Type.String(), outcome: Type.Union([Type.Literal('repaired'), Type.Literal('failed')]), detail: Type.String() })),
  storedAt: Type.String({ format: 'date-time' }),
  statement: Type.String({ description: 'The signed report, base64 (canonical dag-cbor): check it with the worker\'s peer ID alone' })
})

function reportView (row: StoredReport) {
  // Every stored statement was verified as its worker's before it was written (AuditStore.
  // insert): decoded here, not verified again, so an anonymous request for 100 reports costs
  // no signature check. The statement goes out as signed, and anyone who wants to checks it
  // with the worker's peer ID alone.
  const opened = decodeStoredAuditReport(row.statement, row.worker)
  if (!opened.ok) throw new Error(`stored audit report ${row.reportCid} does not decode: ${opened.detail}`)
  const { report } = opened
  return {
    id: row.id,
    reportCid: row.reportCid,
    worker: row.worker,
    at: new Date(report.at).toISOString(),
    durationMs: report.durationMs,
    sampleSize: report.sampleSize,
    checked: report.checked.map(String),
    failures: report.failures.map(({ cid, reason }) => ({ cid: cid.toString(), reason })),
    repairs: report.repairs.map(({ cid, outcome, detail }) => ({ cid: cid.toString(), outcome, detail })),
    storedAt: row.storedAt.toISOString(),
    statement: Buffer.from(row.statement).toString('base64')
  }
}

/**
 * Signed storage audit reports of every worker of the fleet. Public, like the gateway: a
 * report is a proof meant for anyone (it is also broadcast on the `audit` topic), and it says
 * which pinned blocks were checked, nothing about who pinned them. See docs/audits.md.
 */
export const auditRoutes: FastifyPluginAsyncTypebox<{ store: Pick<AuditStore, 'list'> }> = async (app, { store }) => {
  app.get('/v1/audits', {
    schema: {
      tags: ['audits'],
      summary: 'Signed storage audit reports, newest first; pass `next` as `before` for the following page',
      querystring: Type.Object({
        limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
        before: Type.Optional(Type.Integer({ minimum: 1, description: 'The `next` of the previous page' })),
        worker: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Only this worker\'s reports (peer ID)' })),
        since: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Only rounds that started at or after this (RFC 3339 date-time)' }))
      }),
      response: {
        200: Type.Object({ reports: Type.Array(ReportSchema), next: Type.Optional(Type.Integer()) }),
        400: FailureRef
      }
    }
  }, async (request) => {
    const { limit, before, worker, since } = request.query
    let workerId: string | undefined
    if (worker !== undefined) {
      try {
        workerId = peerIdFromString(worker).toString()
      } catch {
        throw new HttpError('badRequest', `worker: ${worker} is not a peer ID`)
      }
    }
    let sinceDate: Date | undefined
    if (since !== undefined) {
      // Date.parse takes more than RFC 3339 ("2024", "March 7"); insist on the date-time shape.
      sinceDate = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(since) ? new Date(since) : new Date(Number.NaN)
      if (Number.isNaN(sinceDate.getTime())) throw new HttpError('badRequest', `since: ${since} is not an RFC 3339 date-time such as 2025-01-31T12:00:00Z`)
    }
    const page = await store.list({ limit, before, worker: workerId, since: sinceDate })
    const reports = page.reports.map(reportView)
    return page.next === undefined ? { reports } : { reports, next: page.next }
  })
}
