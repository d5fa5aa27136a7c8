/**
 * The rules a neighbour lives by, over the neighbour ledger (neighbour-budget.ts).
 *
 * Misbehaving neighbours. A gossip payload whose message ID is not its content hash, or a
 * send queue past its frame or byte bound (a neighbour that stopped reading), costs the
 * neighbour its place: every topic forgets it as if it had left, its streams are closed, and
 * for a back-off (a minute, doubled with each drop remembered) no link to it is opened and its
 * overlay streams are refused (`misbehaving`).
 *
 * Budgets and scores. Every neighbour has token buckets for data and control frames; a frame
 * over its bucket, an IHAVE flood, an unsolicited GRAFT, and a payload the application rejects
 * (`penalize`) cost it score, and below a threshold it is dropped as above
 * (docs/overlay-driver.md). Only peers we would admit, and that are not kept out, enter any
 * topic's views (`mayKeep`, the node's `isMember`).
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from '@libp2p/interface'
import { DEFAULT_PLUMTREE_CONFIG } from '@pharos/protocol/overlay/index.ts'
import type { PeerKey } from '@pharos/protocol/overlay/index.ts'
import { NeighbourLedger } from './neighbour-budget.ts'
import type { NeighbourBudget, NeighbourOffence, NeighbourScoring, NeighbourState } from './neighbour-budget.ts'
import type { DriverCounters, OverlayInit } from './overlay-api.ts'

export class NeighbourRules {
  /** Budgets, scores and back-offs of neighbours. */
  readonly ledger: NeighbourLedger
  private readonly init: OverlayInit
  private readonly self: PeerKey
  private readonly log: Logger
  private readonly counters: Omit<DriverCounters, 'neighbours'>
  private readonly dropped: (key: PeerKey, why: Error) => void

  /** `dropped` closes a shunned neighbour's links and streams and tells every topic it left. */
  constructor (init: OverlayInit, self: PeerKey, log: Logger, counters: Omit<DriverCounters, 'neighbours'>, dropped: (key: PeerKey, why: Error) => void) {
    this.init = init
    this.self = self
    this.log = log
    this.counters = counters
    this.dropped = dropped
    const plumtree = { ...DEFAULT_PLUMTREE_CONFIG, ...init.topicConfig?.plumtree }
    this.ledger = new NeighbourLedger({
      ...(init.neighbourBudget === undefined ? {} : { budget: init.neighbourBudget }),
      ...(init.neighbourScoring === undefined ? {} : { scoring: init.neighbourScoring }),
      ihaveIntervalMs: plumtree.ihaveIntervalMs,
      maxIHaveBatch: plumtree.maxIHaveBatch,
      announcedMax: plumtree.messageCacheMaxEntries,
      announcedTtlMs: plumtree.messageCacheTtlMs
    })
  }

  /**
   * `peer` sent something the application rejected (`invalid-payload`), or broke a rule the
   * driver checks itself: its score drops by the offence's weight, and below the threshold
   * it is dropped from every view and kept out for a back-off that grows with each repeat.
   * Unknown peers get a record too (the offence may come after its link closed).
   */
  penalize (peer: PeerKey, offence: NeighbourOffence): void {
    if (peer === this.self) return
    if (this.ledger.penalize(peer, offence, Date.now())) {
      this.log('neighbour %s dropped: its score fell below %d (last offence %s)', peer, this.ledger.scoring.threshold, offence)
      this.shun(peer, new Error(`neighbour score below the threshold (last offence: ${offence})`))
    }
  }

  /**
   * A neighbour that misbehaved (a gossip ID that is not its payload's hash; a send queue
   * over its bound; a score below the threshold) leaves every view as if it had left — its
   * lost link is not retried — its streams close, and for its back-off no link to it is
   * opened and its overlay streams are refused (`misbehaving`).
   */
  shun (key: PeerKey, why: Error): void {
    this.counters.neighboursShunned++
    this.ledger.backOff(key, Date.now())
    this.dropped(key, why)
  }

  isShunned (key: PeerKey): boolean {
    return this.ledger.isBackedOff(key, Date.now())
  }

  /**
   * Whether a topic may keep `key` in its views: a peer we would admit (a beacon: a registered
   * account; the SDK admits everyone, having no registry) that is not kept out. Keys that are
   * not peer IDs are made up.
   */
  mayKeep (key: PeerKey): boolean {
    if (this.isShunned(key)) return false
    if (this.init.admit === undefined) return true
    try {
      return this.init.admit(peerIdFromString(key)).admitted
    } catch {
      return false
    }
  }

  /** Every neighbour's score, buckets, offences and back-off, lowest score first (admin API). */
  snapshot (): NeighbourState[] {
    return this.ledger.snapshot(Date.now())
  }

  /** The per-neighbour budget and scoring rule in force (admin API). */
  rules (): { budget: Readonly<NeighbourBudget>, scoring: Readonly<NeighbourScoring> } {
    return { budget: this.ledger.budget, scoring: this.ledger.scoring }
  }
}
