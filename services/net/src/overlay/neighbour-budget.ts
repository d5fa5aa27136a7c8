/**
 * Budgets and scores of overlay neighbours (issue 18, item 3): what the driver lets one
 * neighbour make it do, and how it remembers a neighbour that tried for more.
 *
 * - **Budgets.** Each neighbour has a token bucket for data frames (GOSSIP payloads) and one
 *   for control frames (IHAVE, GRAFT, PRUNE and every HyParView message). A frame the bucket
 *   has no token for is dropped unread by any topic. An IHAVE also spends one data token per
 *   ID it announces (a message announced is a message offered, as a pushed payload is), comes
 *   at most once per IHAVE interval per topic (with a small burst) and carries at most one
 *   batch. A GRAFT must ask for an ID we announced to that neighbour, once; a GRAFT without an
 *   ID (Plumtree §3.8's tree repair) must follow an ID we announced, one per ID.
 * - **Score.** Every refused frame, and every offence the application reports (`penalize`:
 *   a payload it rejected), takes its weight off the neighbour's score; the score decays back
 *   towards 0 with a half-life, so an honest neighbour that once erred recovers. Below the
 *   threshold the neighbour is dropped and kept out for a back-off that doubles with each
 *   drop remembered. The driver's other reasons to drop a neighbour (a gossip ID that is not
 *   its payload's hash; a send queue over its bound) use the same back-off.
 *
 * The rule, its weights and where each value came from: docs/overlay-driver.md, "Budgets and
 * scores". Time is passed in (`now`, ms) so the rule can be tested without waiting.
 */
import type { IHaveEntry, Message, MessageId, PeerKey } from '@pharos/protocol/overlay/index.ts'
import { DEFAULT_NEIGHBOUR_BUDGET, DEFAULT_NEIGHBOUR_SCORING } from './neighbour-scoring.ts'
import type { NeighbourBudget, NeighbourLedgerCounters, NeighbourOffence, NeighbourScoring, NeighbourState } from './neighbour-scoring.ts'

export { DEFAULT_NEIGHBOUR_BUDGET, DEFAULT_NEIGHBOUR_SCORING, NEIGHBOUR_OFFENCES } from './neighbour-scoring.ts'
export type { NeighbourBudget, NeighbourLedgerCounters, NeighbourOffence, NeighbourScoring, NeighbourState } from './neighbour-scoring.ts'

/** IHAVE frames a neighbour may send at once per topic, beyond one per interval (guess: batches held up together behind a stalled send queue). */
const IHAVE_BURST = 8
/** Neighbours remembered at most (the oldest first go); only admitted peers ever get a record. */
const MAX_NEIGHBOURS = 10_000

export interface NeighbourLedgerOptions {
  budget?: Partial<NeighbourBudget>
  scoring?: Partial<NeighbourScoring>
  /** The IHAVE interval of our topics: a neighbour's IHAVEs on a topic come no faster. */
  ihaveIntervalMs: number
  /** The most IDs one IHAVE of ours carries: a neighbour's carry no more. */
  maxIHaveBatch: number
  /** IDs we announced to one neighbour, remembered to tell its GRAFTs apart (the payload cache's count). */
  announcedMax: number
  /** How long an announced ID is remembered (the payload cache's age: a later GRAFT could not be answered). */
  announcedTtlMs: number
}

class TokenBucket {
  private readonly capacity: number
  private readonly perMs: number
  private tokens: number
  private at: number
  constructor (capacity: number, perMs: number, now: number) {
    this.capacity = capacity
    this.perMs = perMs
    this.tokens = capacity
    this.at = now
  }

  /** Spends `n` tokens; false (and nothing spent) if there are not that many. */
  take (n: number, now: number): boolean {
    this.refill(now)
    if (this.tokens < n) return false
    this.tokens -= n
    return true
  }

  left (now: number): number {
    this.refill(now)
    return this.tokens
  }

  private refill (now: number): void {
    if (now > this.at) this.tokens = Math.min(this.capacity, this.tokens + (now - this.at) * this.perMs)
    this.at = Math.max(this.at, now)
  }
}

interface NeighbourRecord {
  readonly data: TokenBucket
  readonly control: TokenBucket
  /** One IHAVE bucket per topic. */
  readonly ihave: Map<string, TokenBucket>
  score: number
  scoredAt: number
  readonly offences: Record<NeighbourOffence, number>
  /** `${topic} ${id}` of IDs we announced to it, with when (insertion order = time order). */
  readonly announced: Map<string, number>
  /**
   * GRAFTs without an ID it may still send, per topic: one per ID we announced to it (each
   * can make it swap its tree towards us, §3.8; one IHAVE batch can make it swap several
   * times), at most announcedMax.
   */
  readonly treeRepairs: Map<string, number>
  drops: number
  backOffUntil: number | null
  lastBackOffMs: number | null
  lastActive: number
}

const zeroOffences = (): Record<NeighbourOffence, number> =>
  ({ 'invalid-payload': 0, 'unsolicited-graft': 0, 'ihave-flood': 0, 'control-flood': 0, 'data-flood': 0 })

export class NeighbourLedger {
  readonly budget: Readonly<NeighbourBudget>
  readonly scoring: Readonly<NeighbourScoring>
  private readonly options: NeighbourLedgerOptions
  private readonly records = new Map<PeerKey, NeighbourRecord>()
  private readonly counters: NeighbourLedgerCounters = { offences: zeroOffences(), dataFramesRefused: 0, controlFramesRefused: 0, scoreDrops: 0 }

  constructor (options: NeighbourLedgerOptions) {
    this.options = options
    this.budget = Object.freeze({ ...DEFAULT_NEIGHBOUR_BUDGET, ...options.budget })
    this.scoring = Object.freeze({ ...DEFAULT_NEIGHBOUR_SCORING, ...options.scoring })
    for (const [key, value] of Object.entries(this.budget)) {
      if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`neighbour budget ${key} must be a positive number, not ${value}`)
    }
    if (!(this.scoring.threshold < 0) || !(this.scoring.halfLifeMs > 0) || !(this.scoring.backOffMs > 0)) {
      throw new RangeError('neighbour scoring needs a negative threshold and a positive half-life and back-off')
    }
  }

  /**
   * Charges a frame from `peer` to its budget. Returns the offence if the frame must be dropped
   * unread (the caller then penalises it), or undefined if the topic may have it. An
   * `unbudgeted` neighbour spends no tokens; the IHAVE and GRAFT rules still hold for it.
   */
  charge (peer: PeerKey, topic: string, message: Message, now: number, unbudgeted = false): NeighbourOffence | undefined {
    const record = this.record(peer, now)
    record.lastActive = now
    if (message.type === 'gossip') {
      if (unbudgeted || record.data.take(1, now)) return undefined
      this.counters.dataFramesRefused++
      return 'data-flood'
    }
    if (!unbudgeted && !record.control.take(1, now)) {
      this.counters.controlFramesRefused++
      return 'control-flood'
    }
    switch (message.type) {
      case 'ihave': return this.chargeIHave(record, topic, message.entries, now, unbudgeted)
      case 'graft': return this.chargeGraft(record, topic, message.id)
      default: return undefined
    }
  }

  /** We announced `entries` to `peer` on `topic` (an IHAVE we are sending it). */
  announced (peer: PeerKey, topic: string, entries: readonly IHaveEntry[], now: number): void {
    const record = this.record(peer, now)
    record.treeRepairs.set(topic, Math.min((record.treeRepairs.get(topic) ?? 0) + entries.length, this.options.announcedMax))
    const { announced } = record
    for (const { id } of entries) {
      const key = `${topic} ${id}`
      announced.delete(key)
      announced.set(key, now)
    }
    for (const [key, at] of announced) {
      if (announced.size <= this.options.announcedMax && now - at < this.options.announcedTtlMs) break
      announced.delete(key)
    }
  }

  /**
   * Takes `offence`'s weight off `peer`'s score. True if that took it below the threshold and
   * it is not kept out already: the caller drops it (and calls `backOff`).
   */
  penalize (peer: PeerKey, offence: NeighbourOffence, now: number): boolean {
    const record = this.record(peer, now)
    this.counters.offences[offence]++
    record.offences[offence]++
    record.score = this.scoreOf(record, now) - this.scoring.weights[offence]
    record.scoredAt = now
    if (record.score >= this.scoring.threshold || this.isBackedOff(peer, now)) return false
    this.counters.scoreDrops++
    return true
  }

  /**
   * `peer` is being dropped (for its score or any other misbehaviour): it is kept out for the
   * back-off, which doubles with each drop still remembered. Returns until when.
   */
  backOff (peer: PeerKey, now: number): number {
    const record = this.record(peer, now)
    const { backOffMs, backOffMaxMs, backOffMemoryMs } = this.scoring
    if (record.backOffUntil !== null && now - record.backOffUntil > backOffMemoryMs) record.drops = 0
    const ms = Math.min(backOffMs * 2 ** record.drops, Math.max(backOffMaxMs, backOffMs))
    record.drops++
    record.lastBackOffMs = ms
    record.backOffUntil = now + ms
    return record.backOffUntil
  }

  isBackedOff (peer: PeerKey, now: number): boolean {
    const until = this.records.get(peer)?.backOffUntil
    return until !== undefined && until !== null && until > now
  }

  /**
   * Forgets neighbours with nothing worth keeping: not `linked`, quiet for a half-life, a score
   * back near 0, and no drop still remembered. A forgotten neighbour starts again with full
   * buckets, which it would have had by then anyway.
   */
  forgetIdle (now: number, linked: (peer: PeerKey) => boolean): void {
    for (const [peer, record] of this.records) {
      if (linked(peer) || now - record.lastActive < this.scoring.halfLifeMs || this.scoreOf(record, now) < -1) continue
      if (record.backOffUntil !== null && now - record.backOffUntil <= this.scoring.backOffMemoryMs) continue
      this.records.delete(peer)
    }
  }

  /** Every remembered neighbour, lowest score first. */
  snapshot (now: number): NeighbourState[] {
    const states: NeighbourState[] = []
    for (const [peer, record] of this.records) {
      states.push({
        peer,
        score: Math.round(this.scoreOf(record, now) * 100) / 100,
        dataTokens: Math.floor(record.data.left(now)),
        controlTokens: Math.floor(record.control.left(now)),
        offences: { ...record.offences },
        drops: record.drops,
        backOffUntil: record.backOffUntil !== null && record.backOffUntil > now ? record.backOffUntil : null,
        lastBackOffMs: record.lastBackOffMs
      })
    }
    return states.sort((a, b) => a.score - b.score)
  }

  stats (): NeighbourLedgerCounters {
    return structuredClone(this.counters)
  }

  private chargeIHave (record: NeighbourRecord, topic: string, entries: readonly IHaveEntry[], now: number, unbudgeted: boolean): NeighbourOffence | undefined {
    if (entries.length > this.options.maxIHaveBatch) return 'ihave-flood'
    let bucket = record.ihave.get(topic)
    if (bucket === undefined) {
      bucket = new TokenBucket(IHAVE_BURST, 1 / this.options.ihaveIntervalMs, now)
      record.ihave.set(topic, bucket)
    }
    if (!bucket.take(1, now)) return 'ihave-flood'
    if (!unbudgeted && !record.data.take(entries.length, now)) {
      this.counters.dataFramesRefused++
      return 'ihave-flood'
    }
    return undefined
  }

  /** Plumtree GRAFTs only an announcer (§3.6), once per ID, or, without an ID, one that announced (§3.8). */
  private chargeGraft (record: NeighbourRecord, topic: string, id: MessageId | null): NeighbourOffence | undefined {
    if (id !== null) return record.announced.delete(`${topic} ${id}`) ? undefined : 'unsolicited-graft'
    const repairs = record.treeRepairs.get(topic) ?? 0
    if (repairs === 0) return 'unsolicited-graft'
    record.treeRepairs.set(topic, repairs - 1)
    return undefined
  }

  private scoreOf (record: NeighbourRecord, now: number): number {
    if (record.score === 0 || now <= record.scoredAt) return record.score
    return record.score * 2 ** (-(now - record.scoredAt) / this.scoring.halfLifeMs)
  }

  private record (peer: PeerKey, now: number): NeighbourRecord {
    let record = this.records.get(peer)
    if (record === undefined) {
      const { dataFramesBurst, dataFramesPerSecond, controlFramesBurst, controlFramesPerSecond } = this.budget
      record = {
        data: new TokenBucket(dataFramesBurst, dataFramesPerSecond / 1000, now),
        control: new TokenBucket(controlFramesBurst, controlFramesPerSecond / 1000, now),
        ihave: new Map(),
        score: 0,
        scoredAt: now,
        offences: zeroOffences(),
        announced: new Map(),
        treeRepairs: new Map(),
        drops: 0,
        backOffUntil: null,
        lastBackOffMs: null,
        lastActive: now
      }
      this.records.set(peer, record)
      if (this.records.size > MAX_NEIGHBOURS) {
        const oldest = this.records.keys().next().value
        if (oldest !== undefined && oldest !== peer) this.records.delete(oldest)
      }
    }
    return record
  }
}
