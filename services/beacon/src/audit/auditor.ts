/**
 * The audit loop (DESIGN.md §5): every interval, re-read and re-hash a random sample of the
 * blocks pins hold, repair the missing and corrupt ones from peers, and sign, store and
 * publish a report of the round. See docs/audits.md.
 *
 * It never starves live work: one block is read at a time (one pooled Postgres connection),
 * reads are throttled to a byte rate, the loop yields to the event loop between blocks, and a
 * round that finds Postgres unreachable stops and signs nothing.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { NotFoundError } from 'interface-store'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as Digest from 'multiformats/hashes/digest'
import { signAuditReport } from '@pharos/protocol/audit/index.ts'
import type { AuditFailure, AuditRepair, AuditReport } from '@pharos/protocol/audit/index.ts'
import { cborCid } from '@pharos/protocol/log/index.ts'
import type { Ed25519Signer } from '@pharos/protocol/log/index.ts'
import type { Logger } from '../logging/logger.ts'
import type { AuditMetrics } from './audit-metrics.ts'
import { BlockHashMismatchError } from '../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'
import { isStorageUnavailable } from '../storage/sql.ts'
import type { AuditStore } from './audit-store.ts'

export interface AuditorOptions {
  /** Between the end of one round and the start of the next; 0 runs rounds only on demand. */
  intervalMs: number
  sampleSize: number
  /** Block bytes read per second, at most. */
  maxBytesPerSecond: number
  /** Longest wait for one block to arrive from peers. */
  repairTimeoutMs: number
}

export interface AuditorDeps {
  signer: Ed25519Signer
  store: Pick<AuditStore, 'sampleHeldBlocks' | 'originsOf' | 'insert' | 'pruneBefore'>
  blockstore: Pick<PgBlockstore, 'getBytes'>
  /** Fetches `cid` from peers (the origins first) over Bitswap; the verified bytes are stored. */
  refetch: (cid: CID, origins: string[], signal: AbortSignal) => Promise<void>
  /** Hands a signed report to the overlay's `audit` topic (and the fleet's other workers). */
  publish: (reportCid: string, statement: Uint8Array) => void
  metrics: AuditMetrics
  log: Logger
}

/** What one round did; `report` is absent when nothing was held (there was nothing to sign). */
export interface RoundResult {
  report?: AuditReport
  reportCid?: string
  statement?: Uint8Array
}

/** Reports older than this are deleted by the rounds of any worker (guess: a month of proofs). */
export const REPORT_RETENTION_MS = 30 * 86_400_000

/** A block the sample named is read as a raw CIDv1 of its multihash: blocks are keyed by multihash. */
export function blockCid (multihash: Uint8Array): CID {
  return CID.createV1(raw.code, Digest.decode(multihash))
}

export class Auditor {
  private readonly options: AuditorOptions
  private readonly deps: AuditorDeps
  private readonly log: Logger
  private timer: NodeJS.Timeout | undefined
  private running: Promise<RoundResult> | undefined
  private controller = new AbortController()

  constructor (options: AuditorOptions, deps: AuditorDeps) {
    this.options = options
    this.deps = deps
    this.log = deps.log.child({ component: 'audit' })
  }

  /** Schedules rounds every `intervalMs` (none when it is 0). */
  start (): void {
    this.controller = new AbortController()
    if (this.options.intervalMs > 0) this.schedule()
  }

  /** Stops scheduling; a round under way is aborted (it signs nothing) and awaited. */
  async stop (): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    this.controller.abort()
    await this.running?.catch(() => {})
  }

  /** Runs one round now (or joins the one under way). */
  async runRound (): Promise<RoundResult> {
    this.running ??= this.round().finally(() => { this.running = undefined })
    return await this.running
  }

  private schedule (): void {
    this.timer = setTimeout(() => {
      this.runRound().catch((err: unknown) => {
        if (this.controller.signal.aborted) return
        if (isStorageUnavailable(err)) {
          this.deps.metrics.rounds.inc({ outcome: 'storage-unavailable' })
          this.log.warn({ err }, 'storage unavailable: audit round stopped; the next one starts on schedule')
        } else {
          this.deps.metrics.rounds.inc({ outcome: 'failed' })
          this.log.error({ err }, 'audit round failed')
        }
      }).finally(() => {
        if (!this.controller.signal.aborted) this.schedule()
      })
    }, this.options.intervalMs)
    this.timer.unref()
  }

  private async round (): Promise<RoundResult> {
    const { deps, options } = this
    const signal = this.controller.signal
    const started = Date.now()
    const multihashes = await deps.store.sampleHeldBlocks(options.sampleSize)
    if (multihashes.length === 0) return {}

    const checked: CID[] = []
    const failures: AuditFailure[] = []
    let bytesRead = 0
    for (const multihash of multihashes) {
      signal.throwIfAborted()
      const cid = blockCid(multihash)
      checked.push(cid)
      try {
        const bytes = await deps.blockstore.getBytes(cid, { signal })
        bytesRead += bytes.byteLength
        deps.metrics.bytesChecked.inc(bytes.byteLength)
      } catch (err) {
        if (err instanceof BlockHashMismatchError) failures.push({ cid, reason: 'corrupt' })
        else if (err instanceof NotFoundError) failures.push({ cid, reason: 'missing' })
        else throw err
      }
      deps.metrics.blocksChecked.inc()
      await this.throttle(started, bytesRead, signal)
    }
    for (const failure of failures) deps.metrics.failures.inc({ reason: failure.reason })
    if (failures.length > 0) this.log.warn({ failures: failures.map(({ cid, reason }) => ({ cid: cid.toString(), reason })) }, 'audit found bad blocks; repairing from peers')

    const repairs: AuditRepair[] = []
    for (const failure of failures) repairs.push(await this.repair(failure.cid, signal))

    const report: AuditReport = {
      worker: deps.signer.peerId,
      at: started,
      durationMs: Date.now() - started,
      sampleSize: options.sampleSize,
      checked,
      failures,
      repairs
    }
    const statement = await signAuditReport(report, deps.signer)
    const reportCid = (await cborCid(statement)).toString()
    const repaired = repairs.filter((repair) => repair.outcome === 'repaired').length
    await deps.store.insert({
      reportCid,
      worker: report.worker,
      roundAt: new Date(report.at),
      sampleSize: report.sampleSize,
      checked: checked.length,
      failures: failures.length,
      repaired,
      repairFailures: repairs.length - repaired,
      statement
    })
    await deps.store.pruneBefore(new Date(started - REPORT_RETENTION_MS))
    deps.publish(reportCid, statement)
    deps.metrics.rounds.inc({ outcome: 'completed' })
    deps.metrics.roundDuration.observe((Date.now() - started) / 1000)
    this.log.info({ reportCid, checked: checked.length, failures: failures.length, repaired, ms: Date.now() - started }, 'audit round signed')
    return { report, reportCid, statement }
  }

  /**
   * Sleeps long enough to keep reads under `maxBytesPerSecond` since the round started, and
   * in any case yields to the event loop, so a round never holds it across blocks.
   */
  private async throttle (started: number, bytesRead: number, signal: AbortSignal): Promise<void> {
    const due = started + bytesRead * 1000 / this.options.maxBytesPerSecond
    const wait = Math.max(0, Math.ceil(due - Date.now()))
    await sleep(wait, undefined, { signal })
  }

  /** Fetches a bad block from peers, then reads it back verified from Postgres. */
  private async repair (cid: CID, signal: AbortSignal): Promise<AuditRepair> {
    const { deps } = this
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(this.options.repairTimeoutMs)])
    try {
      const origins = await deps.store.originsOf(cid.multihash.bytes)
      await deps.refetch(cid, origins, timeout)
      await deps.blockstore.getBytes(cid, { signal })
      deps.metrics.repairs.inc({ outcome: 'repaired' })
      this.log.info({ cid: cid.toString(), origins: origins.length }, 'audit repaired a block from peers')
      return { cid, outcome: 'repaired', detail: `fetched over Bitswap (${origins.length} pin origins dialled), verified, stored` }
    } catch (err) {
      if (signal.aborted || isStorageUnavailable(err)) throw err
      deps.metrics.repairs.inc({ outcome: 'failed' })
      const detail = timeout.aborted ? `no peer sent it within ${this.options.repairTimeoutMs} ms` : err instanceof Error ? err.message : String(err)
      this.log.warn({ err, cid: cid.toString() }, 'audit could not repair a block')
      return { cid, outcome: 'failed', detail: detail.slice(0, 200) }
    }
  }
}
