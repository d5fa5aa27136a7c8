/**
 * A bounded queue in front of ingest: gossip arrives in bursts, verification is async. While
 * Postgres is unreachable a task holds its slot and retries (`untilStorageAnswers`): the slots
 * fill, then the queue, and only then are entries refused (`overloaded`) — backpressure, not
 * loss. A task whose transaction Postgres rolled back for a deadlock or a serialization
 * failure is tried again a few times, as Postgres asks.
 */
import type { Logger } from '../logging/logger.ts'
import { isStorageUnavailable } from '../storage/sql.ts'
import { isTransactionConflict } from './log-ingest.ts'
import type { LogMetrics } from './log-metrics.ts'

/** Entries being verified and stored at once (guess: enough to keep both cores and the pool busy). */
const INGEST_CONCURRENCY = 32
/** Entries waiting beyond that; more are dropped (Plumtree's IHAVE/GRAFT or sync brings them back). */
const INGEST_QUEUE_MAX = 10_000
/** Longest wait between retries of an entry while Postgres is unreachable. */
const STORAGE_RETRY_MAX_MS = 2000
/** Tries of a task whose transaction Postgres rolled back for a deadlock or serialization failure (guess). */
const CONFLICT_RETRIES = 5

export class IngestQueue {
  private readonly log: Logger
  private readonly metrics: Pick<LogMetrics, 'entries'>
  private readonly waiting: Array<() => Promise<unknown>> = []
  private readonly running = new Set<Promise<unknown>>()
  /** Entries in `waiting` (a batch task holds several). */
  private waitingEntries = 0
  private accepting = false
  private storageDownSince: number | undefined

  constructor (log: Logger, metrics: Pick<LogMetrics, 'entries'>) {
    this.log = log
    this.metrics = metrics
  }

  /** Whether tasks are taken (between `open` and `close`). */
  get isOpen (): boolean {
    return this.accepting
  }

  open (): void {
    this.accepting = true
  }

  /** Takes no more tasks, drops the waiting ones, and waits for the running ones. */
  async close (): Promise<void> {
    this.accepting = false
    this.waiting.length = 0
    this.waitingEntries = 0
    await Promise.allSettled([...this.running])
  }

  /** Queues a task of `entries` entries; false (each counted as overloaded) when the queue is full or closed. */
  offer (task: () => Promise<unknown>, entries = 1): boolean {
    if (!this.accepting) return false
    if (this.waitingEntries + entries > INGEST_QUEUE_MAX) {
      this.metrics.entries.inc({ result: 'rejected', reason: 'overloaded' }, entries)
      return false
    }
    this.waitingEntries += entries
    this.waiting.push(async () => { this.waitingEntries -= entries; return await task() })
    this.pump()
    return true
  }

  /** Queues a task of one entry that is retried while storage does not answer. */
  offerRetried (task: () => Promise<unknown>): void {
    this.offer(async () => await this.untilStorageAnswers(task))
  }

  /**
   * Runs `task` until storage answers: retried (backing off) while Postgres is unreachable,
   * and a few times after a transaction conflict; any other failure is thrown.
   */
  async untilStorageAnswers<T> (task: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await task()
        if (this.storageDownSince !== undefined) {
          this.log.info({ downMs: Date.now() - this.storageDownSince }, 'storage answers again; ingest resumed')
          this.storageDownSince = undefined
        }
        return result
      } catch (err) {
        // A deadlock or serialization failure rolled the transaction back: nothing of it was
        // stored or acknowledged, and trying again is what Postgres asks for (a few times).
        if (this.accepting && isTransactionConflict(err) && attempt < CONFLICT_RETRIES) {
          await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt))
          continue
        }
        if (!this.accepting || !isStorageUnavailable(err)) throw err
        if (this.storageDownSince === undefined) {
          this.storageDownSince = Date.now()
          this.log.warn({ err }, 'storage unavailable; entries wait (and the ingest queue fills) until it answers')
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, STORAGE_RETRY_MAX_MS)))
      }
    }
  }

  private pump (): void {
    while (this.running.size < INGEST_CONCURRENCY && this.waiting.length > 0) {
      const task = this.waiting.shift()
      if (task === undefined) break
      const run: Promise<unknown> = task()
        .catch((err: unknown) => { this.log.warn({ err }, 'ingest of an entry failed; it was not stored') })
        .finally(() => { this.running.delete(run); this.pump() })
      this.running.add(run)
    }
  }
}
