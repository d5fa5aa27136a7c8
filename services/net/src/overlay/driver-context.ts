/**
 * What the overlay driver's parts share (links.ts, inbound.ts, address-lookup.ts, drain.ts,
 * gossip-validation.ts): the driver builds one context when it is constructed and hands it to
 * each part, so a part reaches the running node, the counters and the neighbour rules
 * through it and never through another part's internals.
 */
import type { Logger } from '@libp2p/interface'
import { messageIdOf as contentHashIdOf } from '@pharos/protocol/log/message-id.ts'
import type { OverlayNode, OverlayNodeEvent, OverlayProtocol, PeerKey, WireLimits } from '@pharos/protocol/overlay/index.ts'
import type { DriverCounters, OverlayComponents, OverlayInit } from './overlay-api.ts'
import type { NeighbourLedger, NeighbourOffence } from './neighbour-budget.ts'

/** OverlayInit with its defaults filled in. */
export type ResolvedOverlayInit =
  Required<Omit<OverlayInit, 'admit' | 'bootstrap' | 'wireLimits' | 'topicConfig' | 'seed' | 'neighbourBudget' | 'neighbourScoring' | 'unbudgeted' | 'validators'>> &
  Pick<OverlayInit, 'admit' | 'bootstrap' | 'unbudgeted'>

export interface DriverContext {
  readonly components: OverlayComponents
  readonly init: ResolvedOverlayInit
  readonly counters: Omit<DriverCounters, 'neighbours'>
  readonly limits: WireLimits
  /** Budgets, scores and back-offs of neighbours. */
  readonly ledger: NeighbourLedger
  readonly log: Logger
  readonly self: PeerKey
  readonly protocolIds: Readonly<Record<OverlayProtocol, string>>
  /** The running node; undefined before `start` and after `stop`. */
  node: () => OverlayNode | undefined
  /** Feeds the node an event and carries out the actions it answers with (nothing while stopped). */
  handle: (event: OverlayNodeEvent) => void
  started: () => boolean
  /** This node is draining: it links to no one and refuses new overlay streams. */
  draining: () => boolean
  /** `key` misbehaved and is kept out for its back-off. */
  isShunned: (key: PeerKey) => boolean
  /** `key` said it is draining, recently. */
  isDeparting: (key: PeerKey) => boolean
  /** Drops a misbehaving neighbour from every view and keeps it out (OverlayDriver.shun). */
  shun: (key: PeerKey, why: Error) => void
  /** Charges an offence to a neighbour's score (OverlayDriver.penalize). */
  penalize: (key: PeerKey, offence: NeighbourOffence) => void
  /** The short name (`content`) of a topic's wire name (`/<network>/content`). */
  shortName: (topic: string) => string
}

export const PROTOCOLS: readonly OverlayProtocol[] = ['hyparview', 'plumtree']

/** OverlayInit with every default filled in (the defaults are documented on OverlayInit). */
export function resolveOverlayInit (init: OverlayInit): ResolvedOverlayInit {
  return {
    network: init.network,
    topics: init.topics,
    networkSize: init.networkSize,
    admit: init.admit,
    bootstrap: init.bootstrap,
    unbudgeted: init.unbudgeted,
    drainTrust: init.drainTrust ?? (() => 'refused'),
    sendQueueFrames: init.sendQueueFrames ?? 1024,
    sendQueueBytes: init.sendQueueBytes ?? 4 * 1024 * 1024,
    messageIdOf: init.messageIdOf ?? contentHashIdOf,
    rejoinIntervalMs: init.rejoinIntervalMs ?? 5000,
    linkIdleMs: init.linkIdleMs ?? 15_000,
    linkOpenTimeoutMs: init.linkOpenTimeoutMs ?? 10_000,
    connectionGraceMs: init.connectionGraceMs ?? 30_000,
    validationsInFlight: init.validationsInFlight ?? 256,
    validationTimeoutMs: init.validationTimeoutMs ?? 5000
  }
}
