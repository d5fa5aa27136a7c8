/**
 * One worker per message, across the fleet (the seen-set in Redis, or this process alone):
 * the worker whose claim wins stores a message; the others keep it (`deferred`) and take it
 * over if the claimer's claim lapses before it is done (it died, or lost Postgres). A
 * message is settled fleet-wide (`complete`, and relayed to the other workers, which
 * broadcast it to their own peers) only after its commit.
 *
 * Content messages are batched: they wait here (at most CONTENT_BATCH_MAX, at most
 * CONTENT_BATCH_WAIT_MS) and go to the ingest queue as one task, claimed with one `claimMany`
 * and stored with one `ingestEnvelopes`. The claim is made once; only the storing is retried
 * while Postgres is away, so a retry never finds its own claims `seen`.
 */
import type { AcceptedPayloads } from '@pharos/net/overlay/gossip-validators.ts'
import type { Logger } from '../logging/logger.ts'
import type { IngestQueue } from './ingest-queue.ts'
import type { EnvelopeCheck, IngestResult } from './log-ingest.ts'
import type { LogMetrics } from './log-metrics.ts'

/**
 * What the log service needs from the fleet. `claim` answers `claimed` to exactly one
 * worker per message ID (or to everyone while Redis is away: Postgres' unique keys still
 * keep storage exactly-once); `relay` hands an accepted message to the other workers, which
 * broadcast it to their own peers.
 */
export interface FleetGossip {
  claim: (messageId: string) => Promise<'claimed' | 'seen'>
  /** `claim` for a batch, answered in order, in one round trip to Redis. */
  claimMany: (messageIds: readonly string[]) => Promise<Array<'claimed' | 'seen'>>
  complete: (messageId: string) => void
  states: (messageIds: readonly string[]) => Promise<Map<string, 'done' | 'claimed' | 'absent'>>
  relay: (topic: string, messageId: string, payload: Uint8Array) => void
}

/** An envelope the overlay's validator accepted: its checks, kept for the task that stores it. */
export type CheckedEnvelope = Extract<EnvelopeCheck, { verdict: 'accept' }>

/**
 * What a topic other than `content` does with a message this worker claimed. The answer
 * says whether the message ID is settled fleet-wide.
 */
export type ClaimedHandler = (messageId: string, payload: Uint8Array, from: string) => Promise<boolean>

export interface FleetClaimsInit {
  fleet: FleetGossip
  queue: IngestQueue
  /** Stores content envelopes (LogIngest.ingestEnvelopes), one result per envelope, in order. */
  ingestEnvelopes: (items: ReadonlyArray<{ payload: Uint8Array, from: string, checked?: CheckedEnvelope }>) => Promise<IngestResult[]>
  /** Envelopes the overlay's validator already checked, so the claimer does not check them again. */
  checked: AcceptedPayloads<CheckedEnvelope>
  /** Topics other than `content` handled once per fleet. */
  handlers: ReadonlyMap<string, ClaimedHandler>
  /** Broadcasts to our own peers what another worker relayed. */
  broadcast: (topic: string, messageId: string, payload: Uint8Array) => void
  /** How long another worker's claim on a message is trusted before this one takes it over. */
  claimTtlMs: number
  metrics: Pick<LogMetrics, 'deferred' | 'takenOver'>
  log: Logger
}

/** A message another worker claimed: kept until that worker is done with it, or its claim lapses. */
interface Deferred {
  topic: string
  payload: Uint8Array
  from: string
  since: number
}

/**
 * Content messages stored together: one claim round trip, one admission read, one insert
 * and one pin transaction per batch (guess: large enough that the per-batch round trips
 * vanish, small enough that one author lock set is held briefly).
 */
const CONTENT_BATCH_MAX = 64
/**
 * How long the first message of a batch waits for others (guess: a burst fills a batch
 * within this; a lone entry is delayed by no more than this).
 */
const CONTENT_BATCH_WAIT_MS = 5
/** Messages claimed by other workers kept for a takeover; the oldest go first beyond this (guess). */
const DEFERRED_MAX = 20_000

export class FleetClaims {
  private readonly init: FleetClaimsInit
  /** In arrival order (a Map keeps insertion order): the oldest first. */
  private readonly deferred = new Map<string, Deferred>()
  private contentBatch: Array<{ messageId: string, payload: Uint8Array, from: string }> = []
  private contentTimer: NodeJS.Timeout | undefined

  constructor (init: FleetClaimsInit) {
    this.init = init
  }

  /** A message the overlay delivered: the claim's winner handles it, the others keep it for a takeover. */
  dispatch (topic: string, messageId: string, payload: Uint8Array, from: string): void {
    const { queue, fleet, checked } = this.init
    if (topic === 'content') {
      if (!queue.isOpen) return
      this.contentBatch.push({ messageId, payload, from })
      if (this.contentBatch.length >= CONTENT_BATCH_MAX) this.sendContentBatch()
      else this.contentTimer ??= setTimeout(() => { this.sendContentBatch() }, CONTENT_BATCH_WAIT_MS)
      return
    }
    const handle = this.init.handlers.get(topic)
    if (handle === undefined) return
    queue.offerRetried(async () => {
      if (await fleet.claim(messageId) === 'seen') {
        checked.forget(messageId)
        this.defer(messageId, topic, payload, from)
        return
      }
      if (await handle(messageId, payload, from)) fleet.complete(messageId)
    })
  }

  /**
   * Messages another worker claimed more than a claim's lifetime ago: done ones are
   * forgotten; the rest (the claimer died, or lost Postgres) are claimed again here.
   */
  async takeOver (): Promise<void> {
    const cutoff = Date.now() - this.init.claimTtlMs
    const due: string[] = []
    for (const [messageId, entry] of this.deferred) {
      if (entry.since > cutoff) break // insertion order is arrival order
      due.push(messageId)
    }
    if (due.length === 0) return
    const states = await this.init.fleet.states(due)
    for (const messageId of due) {
      const entry = this.deferred.get(messageId)
      if (entry === undefined) continue
      const state = states.get(messageId) ?? 'absent'
      if (state === 'done') {
        this.deferred.delete(messageId)
      } else if (state === 'absent') {
        this.deferred.delete(messageId)
        this.init.metrics.takenOver.inc()
        this.dispatch(entry.topic, messageId, entry.payload, entry.from)
      } else {
        // Still claimed: the claim was renewed or is about to lapse; look again next round.
        entry.since = Date.now()
        this.deferred.delete(messageId)
        this.deferred.set(messageId, entry)
      }
    }
  }

  /** An accepted message relayed by another worker: it is done, and goes on to our peers. */
  onRelayed (topic: string, messageId: string, payload: Uint8Array): void {
    this.deferred.delete(messageId)
    try {
      this.init.broadcast(topic, messageId, payload)
    } catch (err) {
      this.init.log.debug({ err, messageId }, 'a relayed message could not be broadcast')
    }
  }

  /** Forgets the batch being gathered and the deferred messages (the service is stopping). */
  clear (): void {
    clearTimeout(this.contentTimer)
    this.contentTimer = undefined
    this.contentBatch = []
    this.deferred.clear()
  }

  private defer (messageId: string, topic: string, payload: Uint8Array, from: string): void {
    this.init.metrics.deferred.inc()
    this.deferred.delete(messageId)
    this.deferred.set(messageId, { topic, payload, from, since: Date.now() })
    for (const oldest of this.deferred.keys()) {
      if (this.deferred.size <= DEFERRED_MAX) break
      this.deferred.delete(oldest)
    }
  }

  /**
   * Each message of the batch is settled (completed fleet-wide, relayed) only after the
   * batch's commits, exactly as a single one is.
   */
  private sendContentBatch (): void {
    clearTimeout(this.contentTimer)
    this.contentTimer = undefined
    const batch = this.contentBatch
    this.contentBatch = []
    if (batch.length === 0) return
    const { queue, fleet, checked } = this.init
    queue.offer(async () => {
      const claims = await fleet.claimMany(batch.map((message) => message.messageId))
      const mine = batch.filter((message, i) => {
        if (claims[i] === 'claimed') return true
        checked.forget(message.messageId)
        this.defer(message.messageId, 'content', message.payload, message.from)
        return false
      })
      if (mine.length === 0) return
      const items = mine.map((message) => {
        const pre = checked.take(message.messageId, message.payload)
        return pre === undefined ? { payload: message.payload, from: message.from } : { payload: message.payload, from: message.from, checked: pre }
      })
      const results = await queue.untilStorageAnswers(async () => await this.init.ingestEnvelopes(items))
      for (const [i, { messageId, payload }] of mine.entries()) {
        const result = results[i]
        // As a single handler: only an entry whose CID is the message ID settles it (a
        // squatter's payload under that ID leaves it open, and the real entry is taken over
        // later). One that failed to store is left unsettled: once the claim lapses, a worker
        // that deferred it (or a later delivery) tries again.
        if (result === undefined || result.cid?.toString() !== messageId) continue
        if (result.result === 'rejected' && result.reason === 'storage-error') continue
        if (result.result !== 'rejected') fleet.relay('content', messageId, payload)
        fleet.complete(messageId)
      }
    }, batch.length)
  }
}
