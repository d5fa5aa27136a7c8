/**
 * Messages, events, timers and actions of one overlay topic.
 *
 * Peers and messages are named by opaque strings: the libp2p driver uses peer ID strings and the
 * application content hashes. The sender of a message is never taken from the message: it is the
 * authenticated remote end of the stream the driver read it from (`from` in {@link TopicEvent}).
 */

/** Opaque peer identity (the libp2p driver uses the peer ID string). */
export type PeerKey = string

/** Opaque broadcast identity supplied by the application (a content hash). */
export type MessageId = string

/**
 * NEIGHBOR priority (HyParView §4.3): a high-priority request is never refused (a full view
 * drops a random member for it); a low-priority one only fills a free slot. `bridge` is ours,
 * not the paper's: it is taken into a free slot or, in a full view, into the one spare slot
 * above capacity, and never evicts. A node sends it when its low-priority requests found no
 * free slot for a whole shuffle round (hyparview.ts, "Bridges").
 */
export type Priority = 'high' | 'low' | 'bridge'

// ---- HyParView (membership) ------------------------------------------------------------------

/** Ask a contact (bootstrap) node to take us in (HyParView §4.2). */
export interface JoinMessage { readonly type: 'join' }

/** Random walk introducing a joiner (HyParView §4.2). */
export interface ForwardJoinMessage {
  readonly type: 'forwardJoin'
  /** The peer that joined. */
  readonly peer: PeerKey
  /** Remaining hops; 0 means "take the joiner into your active view". */
  readonly ttl: number
}

/** Ask to become active neighbours (HyParView §4.3). */
export interface NeighborMessage {
  readonly type: 'neighbor'
  readonly priority: Priority
}

/**
 * Answer to NEIGHBOR or JOIN. The paper leaves the answer to TCP connection semantics; an explicit
 * reply is what lets a low-priority request be refused and the requester try another peer.
 */
export interface NeighborReplyMessage {
  readonly type: 'neighborReply'
  readonly accepted: boolean
}

/** Leave the receiver's active view (HyParView §4.3). */
export interface DisconnectMessage {
  readonly type: 'disconnect'
  /** True when the sender stays online (it evicted us), so we keep it in our passive view. */
  readonly alive: boolean
}

/** Passive-view exchange, travelling as a random walk (HyParView §4.4). */
export interface ShuffleMessage {
  readonly type: 'shuffle'
  /** The node that started the shuffle; the reply goes to it directly. */
  readonly origin: PeerKey
  /** Remaining hops. */
  readonly ttl: number
  /** ka active and kp passive peers of the origin (the origin itself is `origin`). */
  readonly peers: readonly PeerKey[]
}

/** Answer to a SHUFFLE: peers from the receiver's passive view (HyParView §4.4). */
export interface ShuffleReplyMessage {
  readonly type: 'shuffleReply'
  readonly peers: readonly PeerKey[]
}

export type HyParViewMessage =
  | JoinMessage
  | ForwardJoinMessage
  | NeighborMessage
  | NeighborReplyMessage
  | DisconnectMessage
  | ShuffleMessage
  | ShuffleReplyMessage

// ---- Plumtree (dissemination) ----------------------------------------------------------------

/** A broadcast payload (Plumtree §3.3 GOSSIP). */
export interface GossipMessage {
  readonly type: 'gossip'
  readonly id: MessageId
  /** Hops this copy has travelled on arrival (the origin sends 1). */
  readonly round: number
  /**
   * The node that broadcast it: the root of the tree it travels (one tree per origin, as in
   * Partisan's plumtree). Forwarders copy it unchanged. It is not authenticated: it only
   * chooses which of the receiver's trees the copy counts in.
   */
  readonly origin: PeerKey
  readonly payload: Uint8Array
  /**
   * This copy, or one upstream of it, was fetched by GRAFT: how late it comes says nothing about
   * how slow the eager path is, so the receiver's GRAFT timeout does not adapt to it. Absent: false.
   */
  readonly repaired?: boolean
}

/** One announced message ID in an IHAVE batch. */
export interface IHaveEntry {
  readonly id: MessageId
  /** Hops the payload would have travelled had it come through the announcer. */
  readonly round: number
}

/** Lazy push: a batch of message IDs the sender has (Plumtree §3.3 IHAVE, batched per the seed). */
export interface IHaveMessage {
  readonly type: 'ihave'
  readonly entries: readonly IHaveEntry[]
}

/**
 * Ask for a payload, or join a tree (Plumtree §3.6 GRAFT). With an `id` the receiver sends that
 * payload (a repair: the link stays lazy); with an `origin` it pushes that origin's payloads
 * over the link from then on (`SHARED_TREE`: the link joins the shared tree). At least one.
 */
export interface GraftMessage {
  readonly type: 'graft'
  readonly id: MessageId | null
  readonly origin: PeerKey | null
}

/**
 * How PRUNE and GRAFT name the shared tree (the one a new origin's tree starts from), where they
 * would name an origin. No peer key is `*`.
 */
export const SHARED_TREE = '*'

/**
 * Make the link lazy in these origins' trees: the sender got duplicates of their messages over
 * it (Plumtree §3.3 PRUNE). One PRUNE per neighbour per IHAVE interval carries every origin
 * pruned in it.
 */
export interface PruneMessage {
  readonly type: 'prune'
  readonly origins: readonly PeerKey[]
}

export type PlumtreeMessage = GossipMessage | IHaveMessage | GraftMessage | PruneMessage

/** Any message of a topic. The `type` names are unique across both protocols. */
export type Message = HyParViewMessage | PlumtreeMessage

/** Every message type, for counters. */
export const MESSAGE_TYPES = [
  'join', 'forwardJoin', 'neighbor', 'neighborReply', 'disconnect', 'shuffle', 'shuffleReply',
  'gossip', 'ihave', 'graft', 'prune'
] as const satisfies ReadonlyArray<Message['type']>

export type MessageType = (typeof MESSAGE_TYPES)[number]

/** Which wire protocol (and so which libp2p stream) carries a message. */
export type OverlayProtocol = 'hyparview' | 'plumtree'

/** A zero count per message type, for counters. */
export function countsByType(): Record<MessageType, number> {
  const counts = {} as Record<MessageType, number>
  for (const type of MESSAGE_TYPES) counts[type] = 0
  return counts
}

/** Whether HyParView (rather than Plumtree) carries a message. */
export function isHyParViewMessage(message: Message): message is HyParViewMessage {
  return protocolOf(message) === 'hyparview'
}

/** The wire protocol of a message. */
export function protocolOf(message: Message): OverlayProtocol {
  switch (message.type) {
    case 'join':
    case 'forwardJoin':
    case 'neighbor':
    case 'neighborReply':
    case 'disconnect':
    case 'shuffle':
    case 'shuffleReply':
      return 'hyparview'
    case 'gossip':
    case 'ihave':
    case 'graft':
    case 'prune':
      return 'plumtree'
    default:
      return assertNever(message)
  }
}

// ---- Timers, events, actions -----------------------------------------------------------------

/** Timers are data: the driver schedules them and hands them back as a `timer` event. */
export type Timer =
  /** Periodic SHUFFLE and view maintenance (HyParView §4.4). */
  | { readonly type: 'shuffle' }
  /** A NEIGHBOR/JOIN request went unanswered; `request` tells it from a later request to the same peer. */
  | { readonly type: 'neighborTimeout', readonly peer: PeerKey, readonly request: number }
  /** Send the queued lazy-push IHAVE batches (seed: every 500 ms). */
  | { readonly type: 'ihaveFlush' }
  /** An announced message did not arrive: GRAFT it (Plumtree §3.6). */
  | { readonly type: 'graft', readonly messageId: MessageId }
  /**
   * The oldest cached payload (or remembered ID) reaches its age bound: drop what expired.
   * Without it they expire only when the next message arrives, so a quiet topic would hold
   * its last burst for ever.
   */
  | { readonly type: 'cacheExpiry' }

/** What the driver feeds into a topic. */
export type TopicEvent =
  /** A decoded message arrived from `from` (the authenticated remote peer). */
  | { readonly type: 'message', readonly from: PeerKey, readonly message: Message }
  /** A timer returned by an earlier `timer` action fired. */
  | { readonly type: 'timer', readonly timer: Timer }
  /**
   * The link to `peer` closed or could not be opened (dial failure, stream reset, keep-alive
   * timeout). The driver reports it once per failure; it is HyParView's failure detector (§4.3).
   */
  | { readonly type: 'linkDown', readonly peer: PeerKey }
  /**
   * `peer` said out of band that it is going away (a worker's drain notice): forget it as if
   * it had sent DISCONNECT with alive = false, so its link is not retried (§4.3).
   */
  | { readonly type: 'departed', readonly peer: PeerKey }
  /** Join the overlay through a contact (bootstrap) node (HyParView §4.2). */
  | { readonly type: 'join', readonly contact: PeerKey }
  /** Leave gracefully: tell every active neighbour we are going (DISCONNECT, alive = false). */
  | { readonly type: 'leave' }
  /**
   * The driver cannot keep up sending to `peer` (its send queue passed half its byte bound):
   * stop pushing payloads to it (Plumtree makes the link lazy, without a PRUNE, which would
   * only queue behind the rest). IHAVEs still tell it what it misses, and its GRAFT, once it
   * reads again, makes the link eager again (§3.6).
   */
  | { readonly type: 'congested', readonly peer: PeerKey }
  /**
   * Peers learnt out of band (a fleet's shared view of who is connected where): merged into
   * the passive view as a shuffle sample is (§4.4), then free active slots are refilled from
   * it. A new beacon seeds its views this way instead of waiting for joins and shuffles.
   */
  | { readonly type: 'learn', readonly peers: readonly PeerKey[] }
  /**
   * The application's verdict on a message handed to it by a `validate` action. `accept`: it is
   * delivered, forwarded and announced, and served to GRAFTs. `reject`: it goes nowhere, the
   * neighbour that sent it is reported (`rejected`), and its ID is forgotten, so a valid copy
   * under the same ID may still come (on `content` an ID names the entry, not its envelope).
   * `ignore`: it goes nowhere and nobody is blamed (a timeout, an overloaded validator); its ID
   * stays seen. A verdict for a message not held (already judged, or superseded by our own
   * broadcast of it) does nothing.
   */
  | { readonly type: 'validated', readonly messageId: MessageId, readonly verdict: Verdict }

/** The application's judgement of a first receipt (see the `validated` event). */
export type Verdict = 'accept' | 'reject' | 'ignore'

/** What a topic asks the driver to do. Carried out in order. */
export type Action =
  /**
   * Send a message. If no link to `to` is held (a SHUFFLEREPLY to a shuffle's origin), the
   * driver opens a short-lived one. A send that cannot be done is reported as `linkDown`.
   */
  | { readonly type: 'send', readonly to: PeerKey, readonly message: Message }
  /** Hold a long-lived link to `peer` for this topic (dial if needed). Idempotent. */
  | { readonly type: 'connect', readonly peer: PeerKey }
  /** This topic no longer needs the link to `peer`; close it after flushing earlier sends. */
  | { readonly type: 'disconnect', readonly peer: PeerKey }
  /** Hand `timer` back as a `timer` event after `after` milliseconds. Timers are never cancelled. */
  | { readonly type: 'timer', readonly after: number, readonly timer: Timer }
  /**
   * A first receipt, held until the application judges it: answer with a `validated` event.
   * Until then it is neither forwarded nor announced, and GRAFTs for it go unanswered.
   */
  | {
    readonly type: 'validate'
    readonly messageId: MessageId
    readonly payload: Uint8Array
    /** The neighbour it came from (not the original broadcaster). */
    readonly from: PeerKey
    /** The node that broadcast it, as the message says (not authenticated). */
    readonly origin: PeerKey
    /** Hops it travelled. */
    readonly round: number
  }
  /** A broadcast the application accepted: it has been forwarded and announced (first receipt only). */
  | {
    readonly type: 'deliver'
    readonly messageId: MessageId
    readonly payload: Uint8Array
    /** The neighbour it came from (not the original broadcaster). */
    readonly from: PeerKey
    /** Hops it travelled. */
    readonly round: number
  }
  /**
   * The application rejected a message `from` sent us: nothing was forwarded, announced or
   * cached. The application may penalise `from`.
   */
  | { readonly type: 'rejected', readonly messageId: MessageId, readonly from: PeerKey }
  /** `peer` joined the active view. */
  | { readonly type: 'neighborUp', readonly peer: PeerKey }
  /** `peer` left the active view. */
  | { readonly type: 'neighborDown', readonly peer: PeerKey }

/** Exhaustiveness check for `switch` over discriminated unions. */
export function assertNever(value: never): never {
  throw new TypeError(`unhandled variant: ${JSON.stringify(value)}`)
}
