import type { Logger } from '../logging/logger.ts'
import type { StorageMetrics } from './storage-metrics.ts'
import type { SqlClient, SqlQueryable } from '../storage/sql.ts'

/** Another GC holds the fleet-wide lock (or is running in this process). */
export class GcAlreadyRunningError extends Error {
  override readonly name = 'GcAlreadyRunningError'
  constructor () {
    super('a garbage collection is already running in the fleet')
  }
}

export interface GcResult {
  /** Blocks removed. */
  blocks: number
  /** Bytes of block data removed. */
  bytes: number
  ms: number
}

export interface GarbageCollectorInit {
  db: SqlClient
  /** Blocks written or touched within this window are kept. */
  graceMs: number
  /** Scheduled runs; 0 runs only on demand. */
  intervalMs: number
  log: Logger
  metrics: Pick<StorageMetrics, 'gcRuns' | 'gcFreedBlocks' | 'gcFreedBytes'>
}

/** Any constant works; it only has to be the same on every worker. */
const GC_LOCK_KEY = 0x50484743 // "PHGC"
/** Blocks deleted per statement, so no statement holds many row locks for long (guess). */
const GC_BATCH = 1000
const PROGRESS_INTERVAL_MS = 10_000

/**
 * Removes blocks that no pin holds and that nobody wrote or relied on within the grace
 * period. One GC runs at a time across the fleet: a session advisory lock on Postgres, and
 * an in-process flag as well, because PGlite has a single session in which advisory locks
 * are re-entrant.
 *
 * Why a pinned block is never removed, even while another worker is pinning:
 * - a pin job writes each block it fetches (`touched_at` = now) or touches each block it
 *   finds stored before relying on it, and records it in pin_blocks within seconds;
 * - GC selects only blocks older than the grace period that no pin_blocks row references,
 *   locks them (`FOR UPDATE SKIP LOCKED`) and re-checks both conditions as it deletes; a
 *   touch racing with GC either lands first (the row is re-checked and kept) or finds the
 *   row gone (the job fetches the block again);
 * - the pin_blocks foreign key refuses any delete that would orphan a pin.
 */
export class GarbageCollector {
  private readonly init: GarbageCollectorInit
  private readonly log: Logger
  private running = false
  private timer: NodeJS.Timeout | undefined

  constructor (init: GarbageCollectorInit) {
    this.init = init
    this.log = init.log.child({ component: 'gc' })
  }

  start (): void {
    if (this.init.intervalMs === 0 || this.timer !== undefined) return
    this.timer = setInterval(() => {
      this.run().catch((err: unknown) => {
        if (err instanceof GcAlreadyRunningError) this.log.debug('scheduled GC skipped: another worker is collecting')
        else this.log.error({ err }, 'scheduled GC failed')
      })
    }, this.init.intervalMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Runs one collection now; throws GcAlreadyRunningError if one is running anywhere. */
  async run (): Promise<GcResult> {
    const { db, metrics } = this.init
    if (this.running) {
      metrics.gcRuns.inc({ outcome: 'skipped-locked' })
      throw new GcAlreadyRunningError()
    }
    this.running = true
    try {
      return await db.withSession(async (session) => {
        const { rows } = await session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [GC_LOCK_KEY])
        if (rows[0]?.locked !== true) {
          metrics.gcRuns.inc({ outcome: 'skipped-locked' })
          throw new GcAlreadyRunningError()
        }
        try {
          const result = await this.collect(session)
          metrics.gcRuns.inc({ outcome: 'completed' })
          return result
        } catch (err) {
          metrics.gcRuns.inc({ outcome: 'failed' })
          throw err
        } finally {
          await session.query('SELECT pg_advisory_unlock($1)', [GC_LOCK_KEY])
        }
      })
    } finally {
      this.running = false
    }
  }

  private async collect (session: SqlQueryable): Promise<GcResult> {
    const { graceMs, metrics } = this.init
    const started = performance.now()
    let lastProgress = started
    let blocks = 0
    let bytes = 0
    this.log.info({ graceMs }, 'GC started')
    for (;;) {
      const { rows } = await session.query<{ size: number }>(
        `WITH doomed AS (
           SELECT multihash FROM blocks b
           WHERE touched_at < now() - $1::float8 * interval '1 millisecond'
             AND NOT EXISTS (SELECT 1 FROM pin_blocks pb WHERE pb.multihash = b.multihash)
           LIMIT $2
           FOR UPDATE SKIP LOCKED)
         DELETE FROM blocks b USING doomed d
         WHERE b.multihash = d.multihash
           AND b.touched_at < now() - $1::float8 * interval '1 millisecond'
           AND NOT EXISTS (SELECT 1 FROM pin_blocks pb WHERE pb.multihash = b.multihash)
         RETURNING b.size`,
        [graceMs, GC_BATCH]
      )
      const freed = rows.reduce((sum, row) => sum + row.size, 0)
      blocks += rows.length
      bytes += freed
      metrics.gcFreedBlocks.inc(rows.length)
      metrics.gcFreedBytes.inc(freed)
      if (rows.length < GC_BATCH) break
      if (performance.now() - lastProgress > PROGRESS_INTERVAL_MS) {
        lastProgress = performance.now()
        this.log.info({ blocks, bytes }, 'GC progress')
      }
    }
    const ms = Math.round(performance.now() - started)
    this.log.info({ blocks, bytes, ms }, 'GC finished')
    return { blocks, bytes, ms }
  }
}
