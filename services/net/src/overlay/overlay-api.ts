/**
 * What the overlay driver offers and takes: its init, its components, what it hands the
 * application (deliveries, drain notices), its counters and its errors. The driver itself
 * is overlay-driver.ts; the parts it is made of import their types from here.
 */
import type { ComponentLogger, PeerId, PeerStore } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import type { PeerKey, TopicConfig, Verdict, WireErrorCode, WireLimits } from '@pharos/protocol/overlay/index.ts'
import type { RefusalReason } from './driver-frames.ts'
import type { NeighbourBudget, NeighbourLedgerCounters, NeighbourScoring } from './neighbour-budget.ts'

export type AdmitDecision = { admitted: true } | { admitted: false, reason: RefusalReason }

/** A first receipt on a topic, for its validator. */
export interface GossipToValidate {
  /** The topic's short name (`content`, …). */
  topic: string
  /** Already checked to be the payload's content hash. */
  messageId: string
  payload: Uint8Array
  /** The neighbour that sent it (the authenticated remote peer), not the one that published it. */
  from: PeerKey
  /** The node that broadcast it, as the message says (not authenticated). */
  origin: PeerKey
}

/**
 * Decides whether a first receipt is forwarded: `accept` (delivered, forwarded, announced),
 * `reject` (dropped, and `from` penalised: invalid bytes no honest node forwards) or `ignore`
 * (dropped, nobody blamed). It must stop working when `signal` aborts (the timeout, or the
 * overlay stopping); a throw counts as `ignore`.
 */
export type GossipValidator = (message: GossipToValidate, signal: AbortSignal) => Verdict | Promise<Verdict>

/**
 * How far a drain notice from a node is believed:
 * - `siblings`: the node is leaving, and its list of siblings to move to is handed to the
 *   `onDrain` listeners (a fleet's own workers; the beacons a peer uses);
 * - `departure`: only that the node itself is leaving (listeners get no siblings): anyone
 *   may say that of itself, it could as well hang up;
 * - `refused`: not at all. The stream is reset unread and the refusal counted.
 */
export type DrainTrust = 'siblings' | 'departure' | 'refused'

export interface OverlayInit {
  /** Network id: prefixes protocol IDs and topic names. */
  network: string
  /** Short topic names this node takes part in, e.g. `content`; on the wire `/<network>/content`. */
  topics: readonly string[]
  /** N, the number of registered accounts; change it with `setNetworkSize`. */
  networkSize: number
  /** Who may use the overlay through us. @default everyone */
  admit?: (peer: PeerId) => AdmitDecision
  /** Contacts to (re)join through when a topic's active view is empty. @default none */
  bootstrap?: () => PeerId[]
  /** Whose drain notices are taken, and how far (see DrainTrust). @default nobody's (`refused`) */
  drainTrust?: (peer: PeerId) => DrainTrust
  /** Frames queued per link before the neighbour is dropped (STYLE.md rule 2). @default 1024 (guess) */
  sendQueueFrames?: number
  /**
   * Bytes queued per link before the neighbour is dropped; past half of it the neighbour is
   * made lazy. A single frame is always taken by an empty queue, so a value below the frame
   * bound still lets every frame through, one at a time.
   * @default 4194304 (guess: four frames of the 1 MiB payload maximum, or ~250 content envelopes)
   */
  sendQueueBytes?: number
  /**
   * The message ID a payload must carry on a topic (short name): its content hash, or
   * undefined if it can have none. A gossip frame whose ID differs is dropped before any topic
   * sees it, and its sender treated as misbehaving.
   * @default services/protocol's messageIdOf (content: the entry's CID; others: cborCid(payload))
   */
  messageIdOf?: (topic: string, payload: Uint8Array) => Promise<string | undefined>
  /**
   * Validators by topic (short name); more can be set later with `setValidator`. A topic with
   * no validator forwards nothing it receives (every first receipt is ignored); our own
   * broadcasts still go out. @default none
   */
  validators?: Readonly<Record<string, GossipValidator>>
  /**
   * First receipts being validated at once, over every topic (a validator that answers at once,
   * without a promise, is never in flight); past it a new one is ignored (not forwarded).
   * @default 256 (guess: a few seconds of a busy content topic's first receipts)
   */
  validationsInFlight?: number
  /**
   * A validation that takes longer is abandoned and its message ignored (not forwarded).
   * @default 5000 (guess: signature checks take milliseconds; this only catches a stuck validator)
   */
  validationTimeoutMs?: number
  /** Wire bounds, enforced on decode. @default DEFAULT_WIRE_LIMITS of services/protocol */
  wireLimits?: Partial<WireLimits>
  /** Frame rates allowed per neighbour. @default DEFAULT_NEIGHBOUR_BUDGET (neighbour-budget.ts) */
  neighbourBudget?: Partial<NeighbourBudget>
  /** What offences cost, the threshold, decay and back-off. @default DEFAULT_NEIGHBOUR_SCORING (neighbour-budget.ts) */
  neighbourScoring?: Partial<NeighbourScoring>
  /**
   * Neighbours whose frames spend no tokens (the IHAVE and GRAFT rules still hold): a peer's
   * own beacons, which as the contact of every join pass on a FORWARDJOIN per join per topic,
   * far more control frames than an app peer sends. @default none
   */
  unbudgeted?: (peer: PeerId) => boolean
  /** Protocol parameters (HyParView, Plumtree). @default services/protocol constants */
  topicConfig?: TopicConfig
  /** Seed of the RNG the topics draw from. @default random */
  seed?: number
  /**
   * A topic whose active view stayed empty this long rejoins through a bootstrap contact (the
   * rule is services/protocol's OverlayNode; the driver ticks it every fifth of this).
   * @default 5000 (guess)
   */
  rejoinIntervalMs?: number
  /** A link no topic uses is closed after this long idle. @default 15000 (one shuffle period) */
  linkIdleMs?: number
  /** Dial + stream open + preamble must finish within this. @default 10000 (guess) */
  linkOpenTimeoutMs?: number
  /**
   * A connection the overlay dialled is closed once it has gone this long with no topic needing
   * its peer, no stream open on it and no peer-store tag on its peer (connection-release.ts).
   * @default 30000 (guess: two shuffle rounds, since a peer met in one round, by a shuffle
   * reply or a refused request, is often asked again in the next; a redial costs a handshake)
   */
  connectionGraceMs?: number
}

export interface OverlayComponents {
  peerId: PeerId
  registrar: Registrar
  connectionManager: ConnectionManager
  peerStore: PeerStore
  logger: ComponentLogger
  events: EventTarget
}

/** A broadcast its topic's validator accepted (first receipt only). */
export interface Delivery {
  topic: string
  messageId: string
  payload: Uint8Array
  from: PeerKey
  round: number
}

/** A peer's address record, as the fleet and the drain notice carry it. */
export interface PeerAddrs {
  peerId: string
  multiaddrs: readonly string[]
}

/** A draining node (a worker being stopped) told us to move to one of `siblings`, in this order. */
export interface DrainNotice {
  from: PeerId
  siblings: PeerAddrs[]
}

/** Driver-level counters, next to each topic's own. Keys are closed sets. */
export interface DriverCounters {
  /** Frames that closed their stream, by reason; `bad-message-id`: a gossip ID that is not its payload's content hash. */
  framesRejected: Record<WireErrorCode | 'unknown-topic' | 'bad-message-id', number>
  refusalsSent: Record<RefusalReason, number>
  refusalsReceived: number
  /** Neighbours dropped because their send queue reached sendQueueFrames. */
  queueOverflows: number
  /** Neighbours dropped because their send queue reached sendQueueBytes. */
  queueByteOverflows: number
  /** Times a link's queue passed half of sendQueueBytes and its neighbour was made lazy. */
  queueCongestions: number
  /** The most bytes one link's send queue has held (a high-water mark). */
  sendQueuePeakBytes: number
  /** Neighbours dropped for misbehaving (a bad message ID, a queue over a bound, a score below the threshold). */
  neighboursShunned: number
  linkFailures: number
  /** Lookups we sent (one per peer asked). */
  addressLookups: number
  /** Links not opened because no address was found for the peer recently. */
  addressLookupsSkipped: number
  /** Peer keys we were asked about, answered or not. */
  addressLookupsAnswered: number
  drainNoticesSent: number
  drainNoticesReceived: number
  /** Drain notices from nodes `drainTrust` refused: reset unread. */
  drainNoticesRefused: number
  /** Offences by kind, frames the buckets refused, and neighbours dropped for their score. */
  neighbours: NeighbourLedgerCounters
  /** Connections the overlay dialled itself. */
  connectionsOpened: number
  /** Of those, closed again because nothing needed them. */
  connectionsReleased: number
  /** First receipts validated, by verdict. */
  validations: Record<Verdict, number>
  /** First receipts ignored unvalidated because `validationsInFlight` were being validated. */
  validationOverflows: number
  /** Validations abandoned after `validationTimeoutMs` (ignored). */
  validationTimeouts: number
  /** Validations that threw (ignored). */
  validationErrors: number
  /** First receipts ignored because their topic has no validator. */
  unvalidatedTopic: number
}

/** A gossip validation took longer than `validationTimeoutMs`: its signal is aborted with this, and the message ignored. */
export class ValidationTimeoutError extends Error {
  override readonly name = 'ValidationTimeoutError'
  constructor (timeoutMs: number) {
    super(`gossip validation took longer than ${timeoutMs} ms`)
  }
}

/** A drain notice from a node whose drain we do not take (DrainTrust `refused`): its stream is reset with this. */
export class DrainNoticeRefusedError extends Error {
  override readonly name = 'DrainNoticeRefusedError'
  constructor () {
    super('drain notice refused: the sender is not a node whose drain is taken here')
  }
}

/** The overlay was used before `start` or after `stop`. */
export class OverlayNotStartedError extends Error {
  override readonly name = 'OverlayNotStartedError'
  constructor () {
    super('the overlay is not started')
  }
}

/** Our refusal by the remote side, surfaced to the application (e.g. "not-registered"). */
export class OverlayRefusedError extends Error {
  override readonly name = 'OverlayRefusedError'
  readonly peer: string
  readonly reason: string
  constructor (peer: string, reason: string) {
    super(`overlay refused by ${peer}: ${reason}`)
    this.peer = peer
    this.reason = reason
  }
}

/** The driver's own counters, all zero (the neighbour ledger keeps its own). */
export function newDriverCounters (): Omit<DriverCounters, 'neighbours'> {
  return {
    framesRejected: { malformed: 0, oversized: 0, 'too-many': 0, 'unknown-field': 0, 'missing-field': 0, 'unknown-topic': 0, 'bad-message-id': 0 },
    refusalsSent: { 'not-registered': 0, banned: 0, draining: 0, overloaded: 0, misbehaving: 0 },
    refusalsReceived: 0,
    queueOverflows: 0,
    queueByteOverflows: 0,
    queueCongestions: 0,
    sendQueuePeakBytes: 0,
    neighboursShunned: 0,
    linkFailures: 0,
    addressLookups: 0,
    addressLookupsSkipped: 0,
    addressLookupsAnswered: 0,
    drainNoticesSent: 0,
    drainNoticesReceived: 0,
    drainNoticesRefused: 0,
    connectionsOpened: 0,
    connectionsReleased: 0,
    validations: { accept: 0, reject: 0, ignore: 0 },
    validationOverflows: 0,
    validationTimeouts: 0,
    validationErrors: 0,
    unvalidatedTopic: 0
  }
}
