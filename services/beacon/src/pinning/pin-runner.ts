import { setMaxListeners } from 'node:events'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import type { ConfigKey } from '../config/schema.ts'
import type { Logger } from '../logging/logger.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import type { PinAttemptOutcome, StorageMetrics } from './storage-metrics.ts'
import { linksOf, MalformedBlockError, TooManyLinksError, UnsupportedCodecError } from '../storage/dag-links.ts'
import { isSupportedHash, UnsupportedHashError } from '../storage/hashers.ts'
import { BlockHashMismatchError } from '../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'
import { isStorageUnavailable } from '../storage/sql.ts'
import { PinLimitError, walkDag } from './dag-walk.ts'
import { entryPinLinks, isAuthorOwner, LOG_ENTRY_KIND } from './log-entry-pins.ts'
import type { DagSize, LoadedBlock } from './dag-walk.ts'
import type { PinJob, PinStore } from './pin-store.ts'

export interface PinRunnerOptions {
  /** This worker's name in leases (its peer ID), so operators can see who holds a job. */
  worker: string
  /** Jobs run at once; 0 runs none. */
  concurrency: number
  /** Block loads in flight per job. */
  fetchConcurrency: number
  leaseMs: number
  pollIntervalMs: number
  /** Attempts of an ordinary pin (PHAROS_PIN_MAX_ATTEMPTS). */
  maxAttempts: number
  /** Attempts of a log entry's pin (PHAROS_ENTRY_PIN_MAX_ATTEMPTS): more, since its author may be offline. */
  entryMaxAttempts: number
  retryBaseMs: number
  retryMaxMs: number
  timeoutMs: number
  /**
   * An attempt with no block for this long is given up and retried (a want nobody answers:
   * the origin was unreachable when it was dialled, or Bitswap lost the want).
   */
  stallTimeoutMs: number
  maxBytes: number
  maxBlocks: number
  maxDepth: number
  /** Links one block may hold (PHAROS_DAG_MAX_LINKS_PER_BLOCK); a block with more fails the pin. */
  maxLinksPerBlock: number
  ownerQuotaBytes: number
  /** The quota of an author's log (`author:<peer id>` owners) instead of ownerQuotaBytes. */
  authorQuotaBytes: number
}

/** A block fetched from peers, and whom it came from: the pin's origins alone, or anyone connected. */
export interface FetchedBlock {
  bytes: Uint8Array
  from: 'origin' | 'any'
}

export interface PinRunnerDeps {
  store: PinStore
  blockstore: Pick<PgBlockstore, 'getAndTouch'>
  /** Fetches a block over Bitswap, verified and stored (Helia's blockstore): from `origins` first. */
  fetch: (cid: CID, signal: AbortSignal, origins: readonly PeerId[]) => Promise<FetchedBlock>
  /** Dials one of a pin's origins. A failed dial is logged and never fails the pin. */
  dial: (multiaddr: string, signal: AbortSignal) => Promise<void>
  log: Logger
  metrics: StorageMetrics
  /** Told after a job is settled as pinned (the log ingest marks its entry pinned). */
  onPinned?: (job: PinJob) => void
  /** `pharos_limit_blocked_total`: a pin failed by a limit (attempts, size, quota) counts under its key. */
  limits?: Pick<LimitMetrics, 'blocked'>
}

/** Why a job's signal was aborted, other than a limit or an error of its own. */
class Stop {
  readonly why: 'shutdown' | 'lease-lost' | 'timeout' | 'stalled'
  constructor (why: Stop['why']) { this.why = why }
}

/**
 * Attempts a job gets, and the key that sets them. A log entry's pin is more patient than an
 * ordinary one: its content comes from its author, who may be offline for hours. It still
 * runs out (PHAROS_ENTRY_PIN_MAX_ATTEMPTS), because every attempt on content nobody serves
 * holds a pin slot until it stalls, and an author could otherwise queue entries whose
 * content never comes and keep slots busy for good. Limits (size, quota, codec) fail any
 * pin at once. The kind comes from the `kind` column, which only the log ingest sets.
 */
function attemptsOf (job: PinJob, options: PinRunnerOptions): { key: 'pinMaxAttempts' | 'entryPinMaxAttempts', env: string, max: number } {
  return job.kind === LOG_ENTRY_KIND
    ? { key: 'entryPinMaxAttempts', env: 'PHAROS_ENTRY_PIN_MAX_ATTEMPTS', max: options.entryMaxAttempts }
    : { key: 'pinMaxAttempts', env: 'PHAROS_PIN_MAX_ATTEMPTS', max: options.maxAttempts }
}

/** The config key of a PinLimitError's env name, for the limit counter. */
const LIMIT_KEYS: Readonly<Record<string, ConfigKey>> = {
  PHAROS_PIN_MAX_BYTES: 'pinMaxBytes',
  PHAROS_PIN_MAX_BLOCKS: 'pinMaxBlocks',
  PHAROS_PIN_MAX_DEPTH: 'pinMaxDepth',
  PHAROS_PIN_OWNER_QUOTA_BYTES: 'pinOwnerQuotaBytes',
  PHAROS_AUTHOR_QUOTA_BYTES: 'authorQuotaBytes'
}

/** The peers pin origins name (`/p2p/<id>` at the end of a multiaddr, or alone); unparsable ones are skipped. */
function originPeerIds (origins: readonly string[]): PeerId[] {
  return origins.flatMap((origin) => {
    const match = /\/p2p\/([^/]+)$/.exec(origin)
    if (match?.[1] === undefined) return []
    try {
      return [peerIdFromString(match[1])]
    } catch {
      return []
    }
  })
}

/** Blocks recorded in one pin_blocks statement (guess: one round trip per 64 blocks). */
const RECORD_BATCH = 64
/**
 * Longest a loaded block waits to be recorded. It is protected from GC by its `touched_at`
 * until then, so this must stay far below PHAROS_GC_GRACE_MS (and it does: 1 s vs 1 h).
 */
const RECORD_INTERVAL_MS = 1000
/** How often a long pin logs its progress (guess). */
const PROGRESS_INTERVAL_MS = 10_000
/**
 * How often a running job writes its progress (blocks, bytes) to its pin row, where
 * `GET /pins/{requestid}` on any worker reads it (guess: "every few seconds", as the issue
 * asks, at one small UPDATE per running job per interval whatever the block rate).
 */
export const PROGRESS_WRITE_INTERVAL_MS = 2000
/** An origin that does not answer a dial within this is left to Bitswap's other peers (guess). */
const DIAL_TIMEOUT_MS = 10_000

/**
 * Runs the durable pin queue on one worker: claims due jobs from Postgres, holds each under
 * a renewed lease, fetches the DAG within the pin's limits and settles it. A job this
 * worker stops running (it died, or lost its lease) is claimed again by any worker once the
 * lease lapses; the blocks it had already stored are found in storage, not fetched again.
 */
export class PinRunner {
  private readonly options: PinRunnerOptions
  private readonly deps: PinRunnerDeps
  private readonly log: Logger
  private readonly jobs = new Map<string, AbortController>()
  private readonly running = new Set<Promise<void>>()
  private started = false
  private loop: Promise<void> | undefined
  private wakeUp: () => void = () => {}

  constructor (options: PinRunnerOptions, deps: PinRunnerDeps) {
    this.options = options
    this.deps = deps
    this.log = deps.log.child({ component: 'pin-runner' })
  }

  start (): void {
    if (this.started || this.options.concurrency === 0) return
    this.started = true
    this.loop = this.claimLoop()
  }

  /** A pin was just queued through this worker: look for work now, not at the next poll. */
  wake (): void {
    this.wakeUp()
  }

  /** Stops claiming, hands running jobs back to the queue, and waits for them to settle. */
  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.wakeUp()
    for (const controller of this.jobs.values()) controller.abort(new Stop('shutdown'))
    await this.loop
    await Promise.allSettled([...this.running])
  }

  private async claimLoop (): Promise<void> {
    while (this.started) {
      while (this.started && this.running.size < this.options.concurrency) {
        let job: PinJob | undefined
        try {
          job = await this.deps.store.claim(this.options.worker, this.options.leaseMs)
        } catch (err) {
          this.log.warn({ err }, 'could not claim pin jobs; retrying at the next poll')
          break
        }
        if (job === undefined) break
        const run: Promise<void> = this.run(job).finally(() => {
          this.running.delete(run)
          this.wakeUp()
        })
        this.running.add(run)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.pollIntervalMs)
        this.wakeUp = () => { clearTimeout(timer); resolve() }
      })
    }
  }

  private async run (job: PinJob): Promise<void> {
    const { options, deps } = this
    const log = this.log.child({ pin: job.id, attempt: job.attempt })
    const started = performance.now()
    const controller = new AbortController()
    setMaxListeners(Infinity, controller.signal)
    this.jobs.set(job.id, controller)
    const timeout = setTimeout(() => { controller.abort(new Stop('timeout')) }, options.timeoutMs)
    const stall = setTimeout(() => { controller.abort(new Stop('stalled')) }, options.stallTimeoutMs)
    const progressed = (): void => { stall.refresh() }
    const renewal = setInterval(() => {
      deps.store.renew(job, options.leaseMs).then((held) => {
        if (!held) controller.abort(new Stop('lease-lost'))
      }, (err: unknown) => { log.warn({ err }, 'could not renew the pin lease') })
    }, Math.max(options.leaseMs / 3, 100))
    let outcome: PinAttemptOutcome
    try {
      outcome = await this.attempt(job, controller, progressed, log)
    } catch (err) {
      // Settling the attempt failed (Postgres went away between the fetch and the write):
      // nothing is recorded, and the job is taken again once its lease lapses.
      log.warn({ err }, 'could not settle the pin attempt; it runs again when its lease lapses')
      outcome = 'lease-lost'
    } finally {
      clearTimeout(timeout)
      clearTimeout(stall)
      clearInterval(renewal)
      this.jobs.delete(job.id)
    }
    deps.metrics.pinAttempts.inc({ outcome })
    deps.metrics.pinDuration.observe({ outcome }, (performance.now() - started) / 1000)
  }

  private async attempt (job: PinJob, controller: AbortController, progressed: () => void, log: Logger): Promise<PinAttemptOutcome> {
    const { options, deps } = this
    const signal = controller.signal
    const attempts = attemptsOf(job, options)
    if (job.attempt > attempts.max) {
      deps.limits?.blocked(attempts.key)
      return await this.settleFailed(job, `${attempts.env}: gave up after ${attempts.max} attempts; last: ${job.lastFailure ?? 'the worker running it stopped'}`, log)
    }
    const progress = { blocks: 0, bytes: 0 }
    const origins = originPeerIds(job.origins)
    const started = performance.now()
    let recorder: BlockRecorder | undefined
    const reporter = new ProgressReporter(job, deps.store, progress, log)
    try {
      const root = CID.parse(job.cid)
      log.info({ cid: job.cid, origins: job.origins.length }, 'pinning')
      const held = await deps.store.usage(job.owner, job.id)
      await this.dialOrigins(job, signal, log)
      const quota = isAuthorOwner(job.owner)
        ? { key: 'PHAROS_AUTHOR_QUOTA_BYTES', value: options.authorQuotaBytes }
        : { key: 'PHAROS_PIN_OWNER_QUOTA_BYTES', value: options.ownerQuotaBytes }
      const blocks = new BlockRecorder(job, deps.store, quota, (stop) => { controller.abort(stop) })
      recorder = blocks
      let lastProgress = performance.now()
      const dag: DagSize = await walkDag(root, {
        signal,
        concurrency: options.fetchConcurrency,
        limits: {
          maxBytes: { key: 'PHAROS_PIN_MAX_BYTES', value: options.maxBytes },
          maxBlocks: { key: 'PHAROS_PIN_MAX_BLOCKS', value: options.maxBlocks },
          maxDepth: { key: 'PHAROS_PIN_MAX_DEPTH', value: options.maxDepth },
          // An early stop only: usage was read at the start, and the owner's other pins may
          // grow meanwhile. The recorder's check, atomic per owner, is the one that holds.
          quotaBytes: { key: quota.key, value: Math.max(quota.value - held.bytes, 0) },
          maxLinksPerBlock: options.maxLinksPerBlock
        },
        ...(job.kind === LOG_ENTRY_KIND ? { links: (cid: CID, bytes: Uint8Array, depth: number, maxLinks: number) => depth === 0 ? entryPinLinks(bytes) : linksOf(cid, bytes, maxLinks) } : {}),
        load: async (cid, loadSignal) => {
          const loaded = await this.load(job, cid, origins, loadSignal)
          progressed()
          progress.blocks++
          progress.bytes += loaded.bytes.byteLength
          return loaded
        },
        onBlock: async (multihash) => {
          await blocks.add(multihash)
          if (performance.now() - lastProgress > PROGRESS_INTERVAL_MS) {
            lastProgress = performance.now()
            log.info(progress, 'pin progress')
          }
        }
      })
      await blocks.flush()
      if (!await deps.store.complete(job, dag)) return 'lease-lost'
      log.info({ ...dag, ms: Math.round(performance.now() - started) }, 'pinned')
      deps.onPinned?.(job)
      return 'pinned'
    } catch (err) {
      const stop = signal.reason instanceof Stop ? signal.reason : undefined
      if (stop?.why === 'shutdown') {
        await deps.store.release(job).catch((releaseErr: unknown) => { log.warn({ err: releaseErr }, 'could not hand the pin job back; its lease will lapse') })
        return 'released'
      }
      const limit = signal.reason instanceof PinLimitError ? signal.reason : err instanceof PinLimitError ? err : undefined
      if (limit !== undefined) {
        const key = LIMIT_KEYS[limit.key]
        if (key !== undefined) deps.limits?.blocked(key)
        return await this.settleFailed(job, limit.message, log)
      }
      if (stop?.why === 'lease-lost') {
        log.warn('the pin lease was lost (another worker took the job, or the pin was removed)')
        return 'lease-lost'
      }
      if (stop?.why === 'stalled') {
        return await this.retryOrFail(job, `PHAROS_PIN_STALL_TIMEOUT_MS: no block arrived for ${options.stallTimeoutMs} ms (${progress.blocks} blocks, ${progress.bytes} bytes so far)`, log)
      }
      if (stop?.why === 'timeout') {
        return await this.retryOrFail(job, `PHAROS_PIN_TIMEOUT_MS: the DAG did not arrive within ${options.timeoutMs} ms (${progress.blocks} blocks, ${progress.bytes} bytes so far)`, log)
      }
      if (isStorageUnavailable(err)) {
        // Postgres went away: not the pin's fault, so no attempt is spent. The job goes back
        // to the queue (or its lease lapses) and is taken again once storage answers.
        log.warn({ err }, 'storage unavailable mid-pin; the job goes back to the queue')
        await deps.store.release(job).catch(() => {})
        return 'released'
      }
      if (err instanceof TooManyLinksError) deps.limits?.blocked(TooManyLinksError.configKey)
      // A block that verified against its CID but does not parse never will: retrying
      // would fetch it again for nothing.
      if (err instanceof TooManyLinksError || err instanceof MalformedBlockError || err instanceof UnsupportedCodecError || err instanceof UnsupportedHashError) {
        return await this.settleFailed(job, err.message, log)
      }
      log.warn({ err }, 'pin attempt failed')
      return await this.retryOrFail(job, `${err instanceof Error ? err.name : 'Error'}: ${err instanceof Error ? err.message : String(err)}`, log)
    } finally {
      recorder?.close()
      reporter.close()
    }
  }

  /** A block from storage (refreshing it against GC), or from peers (`origins` first) when missing or corrupt. */
  private async load (job: PinJob, cid: CID, origins: readonly PeerId[], signal: AbortSignal): Promise<LoadedBlock> {
    const { deps } = this
    // Checked before any fetch: no peer can send a block we could verify, so the pin fails
    // at once naming the function, and no attempt is spent waiting on it (Helia's own
    // refusal, UnknownHashAlgorithmError, is not one the runner knows to be final).
    if (!isSupportedHash(cid.multihash.code)) throw new UnsupportedHashError(cid.multihash.code)
    let stored: Uint8Array | undefined
    try {
      stored = await deps.blockstore.getAndTouch(cid, { signal })
    } catch (err) {
      // Corrupt in storage: fetch it again; writing the verified bytes repairs the row.
      if (!(err instanceof BlockHashMismatchError)) throw err
    }
    if (stored !== undefined) {
      return { bytes: stored, newToOwner: !await deps.store.ownerHolds(job.owner, cid.multihash.bytes, job.id) }
    }
    const { bytes, from } = await deps.fetch(cid, signal, origins)
    deps.metrics.pinBlocksFetched.inc({ from })
    deps.metrics.pinBytesFetched.inc(bytes.byteLength)
    return { bytes, newToOwner: true }
  }

  private async dialOrigins (job: PinJob, signal: AbortSignal, log: Logger): Promise<void> {
    await Promise.all(job.origins.map(async (origin) => {
      try {
        await this.deps.dial(origin, AbortSignal.any([signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]))
      } catch (err) {
        log.info({ err, origin }, 'could not dial a pin origin; fetching from other peers')
      }
    }))
    signal.throwIfAborted()
  }

  private async retryOrFail (job: PinJob, reason: string, log: Logger): Promise<PinAttemptOutcome> {
    const { options } = this
    const attempts = attemptsOf(job, options)
    if (job.attempt >= attempts.max) {
      this.deps.limits?.blocked(attempts.key)
      return await this.settleFailed(job, `${reason} (attempt ${job.attempt} of ${attempts.max}, ${attempts.env})`, log)
    }
    const delay = Math.min(options.retryMaxMs, options.retryBaseMs * 2 ** (job.attempt - 1))
    log.info({ reason, delayMs: delay }, 'pin attempt failed; retrying later')
    return await this.deps.store.retry(job, reason, delay) ? 'retry' : 'lease-lost'
  }

  private async settleFailed (job: PinJob, reason: string, log: Logger): Promise<PinAttemptOutcome> {
    log.info({ reason }, 'pin failed')
    return await this.deps.store.fail(job, reason) ? 'failed' : 'lease-lost'
  }
}

/**
 * Writes a running job's progress (blocks and bytes walked so far in this attempt) to its
 * pin row every PROGRESS_WRITE_INTERVAL_MS while it changes, one write at a time, so any
 * worker serving `GET /pins/{requestid}` shows it. The write is fenced by the lease like
 * every other; a failed one is only logged (progress is advice, not state).
 */
class ProgressReporter {
  private readonly job: PinJob
  private readonly store: Pick<PinStore, 'reportProgress'>
  private readonly progress: Readonly<{ blocks: number, bytes: number }>
  private readonly log: Logger
  private readonly timer: NodeJS.Timeout
  private written = { blocks: 0, bytes: 0 }
  private writing: Promise<void> | undefined

  constructor (job: PinJob, store: Pick<PinStore, 'reportProgress'>, progress: Readonly<{ blocks: number, bytes: number }>, log: Logger) {
    this.job = job
    this.store = store
    this.progress = progress
    this.log = log
    this.timer = setInterval(() => { this.write() }, PROGRESS_WRITE_INTERVAL_MS)
  }

  private write (): void {
    const { blocks, bytes } = this.progress
    if (this.writing !== undefined || (blocks === this.written.blocks && bytes === this.written.bytes)) return
    this.writing = this.store.reportProgress(this.job, { blocks, bytes }).then(() => {
      this.written = { blocks, bytes }
    }, (err: unknown) => {
      this.log.debug({ err }, 'could not write the pin\'s progress; the next interval tries again')
    }).finally(() => { this.writing = undefined })
  }

  /**
   * Stops writing. A write still in flight is not awaited: settling must not wait on it
   * (storage may be the reason the attempt ended), and once the job settles or is handed
   * back its lease token no longer matches, so a late write changes nothing.
   */
  close (): void {
    clearInterval(this.timer)
  }
}

/**
 * Records the blocks a job loaded, in batches, one statement at a time: when a batch is
 * full, and on a timer, so a job waiting on a slow block does not leave the ones it has
 * unrecorded. Each batch is checked against the owner's quota as it is recorded (atomic per
 * owner: PinStore.recordBlocks). A batch the lease no longer covers, or that the quota
 * refuses, is not recorded, and the job is stopped with the reason.
 */
class BlockRecorder {
  private readonly job: PinJob
  private readonly store: PinStore
  private readonly quota: { key: string, value: number }
  private readonly stop: (reason: Stop | PinLimitError) => void
  private batch: Uint8Array[] = []
  private writing: Promise<void> = Promise.resolve()
  private readonly timer: NodeJS.Timeout

  constructor (job: PinJob, store: PinStore, quota: { key: string, value: number }, stop: (reason: Stop | PinLimitError) => void) {
    this.job = job
    this.store = store
    this.quota = quota
    this.stop = stop
    this.timer = setInterval(() => {
      if (this.batch.length > 0) this.flush().catch(() => {}) // a failure stops the job through `stop` or the next flush
    }, RECORD_INTERVAL_MS)
  }

  async add (multihash: Uint8Array): Promise<void> {
    this.batch.push(multihash)
    if (this.batch.length >= RECORD_BATCH) await this.flush()
  }

  /** Stops the timer; call once the job no longer records. */
  close (): void {
    clearInterval(this.timer)
  }

  async flush (): Promise<void> {
    const batch = this.batch
    this.batch = []
    this.writing = this.writing.then(async () => {
      const outcome = await this.store.recordBlocks(this.job, batch, this.quota.value)
      if (outcome === 'recorded') return
      const reason = outcome === 'over-quota'
        ? new PinLimitError(this.quota.key, this.quota.value, 'the pin would take its owner over the storage quota (its other pins grew meanwhile)')
        : new Stop('lease-lost')
      this.stop(reason)
      throw reason
    })
    await this.writing
  }
}
