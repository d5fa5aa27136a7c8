/**
 * The rule each overlay neighbour is held to (neighbour-budget.ts keeps the ledger that
 * applies it): the offences that cost score, the frame budgets, the scoring weights and
 * back-offs, their defaults, and what the admin API and the metrics show of a neighbour.
 * Reasoned in docs/overlay-driver.md, "Budgets and scores".
 */
import type { PeerKey } from '@pharos/protocol/overlay/index.ts'

/** Why a neighbour loses score. A closed set: it labels the offences metric. */
export type NeighbourOffence = 'invalid-payload' | 'unsolicited-graft' | 'ihave-flood' | 'control-flood' | 'data-flood'

export const NEIGHBOUR_OFFENCES = ['invalid-payload', 'unsolicited-graft', 'ihave-flood', 'control-flood', 'data-flood'] as const satisfies readonly NeighbourOffence[]

/** A neighbour's frame rates. */
export interface NeighbourBudget {
  /**
   * Data frames (GOSSIP payloads) and IHAVE-announced IDs per second, per neighbour.
   * @default 200 (guess: each message reaches us from a neighbour once, pushed or announced, plus a GRAFT answer; twice the 100 messages/s the issue-18 benchmarks go to)
   */
  dataFramesPerSecond: number
  /** Data frames a neighbour may send at once. @default 400 (guess: two seconds at the rate) */
  dataFramesBurst: number
  /**
   * Control frames (IHAVE, GRAFT, PRUNE, HyParView) per second, per neighbour.
   * @default 200 (guess: a GRAFT and a PRUNE per message at 100 messages/s while a tree settles; IHAVEs are 2/s per topic)
   */
  controlFramesPerSecond: number
  /**
   * Control frames a neighbour may send at once.
   * @default 2000 (guess: the FORWARDJOINs a contact beacon passes on, one per join per topic, for a burst of ~600 joins)
   */
  controlFramesBurst: number
}

/** The scoring rule. */
export interface NeighbourScoring {
  /** Score each offence costs. */
  weights: Readonly<Record<NeighbourOffence, number>>
  /** A neighbour whose score falls below this is dropped. @default -100 */
  threshold: number
  /** The score halves towards 0 in this long. @default 60000 */
  halfLifeMs: number
  /** The first back-off of a dropped neighbour. @default 60000 (issue 17's minute) */
  backOffMs: number
  /** Each further drop remembered doubles the back-off, up to this. @default 3600000 */
  backOffMaxMs: number
  /** A drop is remembered until this long after its back-off ended. @default 3600000 */
  backOffMemoryMs: number
}

export const DEFAULT_NEIGHBOUR_BUDGET: Readonly<NeighbourBudget> = Object.freeze({
  dataFramesPerSecond: 200,
  dataFramesBurst: 400,
  controlFramesPerSecond: 200,
  controlFramesBurst: 2000
})

/**
 * Weights against a threshold of -100 (guesses, reasoned in docs/overlay-driver.md): a frame
 * over a bucket costs 1, so a hundred of them in about a half-life drop a flooder while an
 * honest burst that overshoots by a few frames does not; a payload the application rejected
 * costs 25 (four in a minute), since honest neighbours can disagree with us (a registry
 * not yet refreshed); a GRAFT or IHAVE that no honest Plumtree sends costs 10.
 */
export const DEFAULT_NEIGHBOUR_SCORING: Readonly<NeighbourScoring> = Object.freeze({
  weights: Object.freeze({ 'invalid-payload': 25, 'unsolicited-graft': 10, 'ihave-flood': 10, 'control-flood': 1, 'data-flood': 1 }),
  threshold: -100,
  halfLifeMs: 60_000,
  backOffMs: 60_000,
  backOffMaxMs: 3_600_000,
  backOffMemoryMs: 3_600_000
})

/** One neighbour's state, as `GET /v1/overlay` shows it. */
export interface NeighbourState {
  peer: PeerKey
  /** 0 is clean; below the threshold the neighbour is dropped. */
  score: number
  /** Tokens left now. */
  dataTokens: number
  controlTokens: number
  /** Offences so far, by kind. */
  offences: Record<NeighbourOffence, number>
  /** Times it was dropped (remembered drops: they set the back-off). */
  drops: number
  /** Until when it is kept out (ms since the epoch), if it is. */
  backOffUntil: number | null
  /** The length of its last back-off. */
  lastBackOffMs: number | null
}

/** Counters for metrics; keys are closed sets. */
export interface NeighbourLedgerCounters {
  offences: Record<NeighbourOffence, number>
  /** Data frames (and IHAVE frames whose IDs) the data bucket refused. */
  dataFramesRefused: number
  /** Control frames the control bucket refused. */
  controlFramesRefused: number
  /** Neighbours dropped because their score fell below the threshold. */
  scoreDrops: number
}
