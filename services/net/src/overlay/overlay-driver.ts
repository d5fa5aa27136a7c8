/**
 * The libp2p driver of the overlay: a thin adapter that decodes frames, feeds the IO-free
 * multi-topic node of services/protocol (overlay-node.ts: the topics, routing, the rejoin
 * rule, the address-lookup back-off, the departing record), and carries out its actions
 * (STYLE.md rule 2). It keeps links, streams, queues, the neighbour ledger, running
 * validators, drain notices on the wire and connection release. The beacon runs it as a
 * libp2p service; services/peer reuses it unchanged; the simulator runs the same node.
 *
 * Streams. Per neighbour and per protocol (`/<network>/hyparview/2.0.0`,
 * `/<network>/plumtree/2.0.0`) each side writes on one long-lived outbound stream it opened
 * and reads the one the other side opened (the gossipsub arrangement, so two peers that
 * connect at once never race over who owns a stream). Every topic's frames share those
 * streams; frames carry their topic. The acceptor of a stream first writes a preamble —
 * accepted, or refused with a reason — and a refused peer gets no state at all.
 *
 * Links. A link is up while its outbound stream is open. A stream or connection that closes,
 * a dial that fails, or a malformed or oversized frame, is a failed link: every topic gets
 * `linkDown` and HyParView repairs from its passive view.
 *
 * Validate, then forward. A first receipt is handed to the topic's validator (the application's
 * checks: signatures, registration, sizes), asynchronously, with at most `validationsInFlight`
 * at once and each bounded by `validationTimeoutMs`; the topic forwards and announces it only
 * once the validator accepts it. Over the bound, past the timeout, or on a topic with no
 * validator, a message is ignored: not forwarded, nobody blamed. A rejected one is reported
 * by the topic, and its sender penalised (`penalize`, `invalid-payload`).
 *
 * Misbehaving neighbours. A gossip payload whose message ID is not its content hash
 * (`messageIdOf`, checked before any topic sees it), or a send queue past its frame or byte
 * bound (a neighbour that stopped reading), costs the neighbour its place: every topic
 * forgets it as if it had left, its streams are closed, and for a back-off (a minute, doubled
 * with each drop remembered) no link to it is opened and its overlay streams are refused
 * (`misbehaving`). Before that, a queue past half its byte bound makes the neighbour lazy
 * (`congested`): it gets IHAVEs, not payloads, until it reads again and GRAFTs.
 *
 * Budgets and scores. Every neighbour has token buckets for data and control frames; a frame
 * over its bucket, an IHAVE flood, an unsolicited GRAFT, and a payload the application rejects
 * (`penalize`) cost it score, and below a threshold it is dropped as above
 * (neighbour-budget.ts; docs/overlay-driver.md). Only peers we would admit, and that are not
 * kept out, enter any topic's views (`isMember`).
 *
 * Addresses. HyParView names peers by key (the peer ID string) only. A peer learned from a
 * FORWARDJOIN or SHUFFLE may be unknown to our peer store; we then ask the peer that told
 * us about it (`/<network>/peer-addrs/1.0.0`), which by induction knows it, and then our
 * bootstrap peers. A peer nobody had an address for (one that only dials out, as most
 * app peers do) is not asked about again for a while, longer each time (the node decides
 * whether to ask and whom; the driver asks over the wire): otherwise every
 * shuffle reply and promotion aimed at it costs the beacons a lookup that finds nothing.
 * See docs/overlay-driver.md.
 *
 * Connections. A connection the overlay dialled is closed again once, for a grace period, no
 * topic needs its peer and nothing else uses it (connection-release.ts says how that is read
 * from libp2p). One the remote opened, or another part of the node dialled, is never closed.
 *
 * Drain. A worker that is stopping tells its peers which sibling workers to move to
 * (`/<network>/drain/1.0.0`, one DrainNotice per stream). The driver on the other side takes
 * a notice only from a node `drainTrust` names (a beacon: its fleet's workers; the SDK: its
 * beacons), hands the siblings to `onDrain` listeners (the peer SDK dials them), and never
 * puts their addresses in the peer store: anyone else's notice is refused and counted.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { LengthPrefixedStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { ComponentLogger, Connection, Logger, PeerId, PeerStore, Startable, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { messageIdOf as contentHashIdOf } from '../../../protocol/src/log/message-id.ts'
import {
  createOverlayNode,
  decodeHyParView,
  DEFAULT_PLUMTREE_CONFIG,
  decodePlumtree,
  DEFAULT_WIRE_LIMITS,
  encodeHyParView,
  encodePlumtree,
  isHyParViewMessage,
  overlayProtocolId,
  protocolOf
} from '../../../protocol/src/overlay/index.ts'
import type {
  Message,
  OverlayNode,
  OverlayNodeAction,
  OverlayNodeEvent,
  OverlayProtocol,
  PeerKey,
  TopicAction,
  TopicConfig,
  TopicCounters,
  TopicSnapshot,
  Verdict,
  WireErrorCode,
  WireLimits
} from '../../../protocol/src/overlay/index.ts'
import {
  decodeAddrRequest,
  decodeAddrResponse,
  decodeDrainNotice,
  decodePreamble,
  encodeAddrRequest,
  encodeAddrResponse,
  encodeDrainNotice,
  encodePreamble,
  MAX_ADDRS_PER_PEER,
  MAX_LOOKUP_PEERS
} from './driver-frames.ts'
import type { AddrRecord, RefusalReason } from './driver-frames.ts'
import { NeighbourLedger } from './neighbour-budget.ts'
import type { NeighbourBudget, NeighbourLedgerCounters, NeighbourOffence, NeighbourScoring, NeighbourState } from './neighbour-budget.ts'

export type { NeighbourBudget, NeighbourOffence, NeighbourScoring, NeighbourState } from './neighbour-budget.ts'
export { DEFAULT_NEIGHBOUR_BUDGET, DEFAULT_NEIGHBOUR_SCORING, NEIGHBOUR_OFFENCES } from './neighbour-budget.ts'
import { ConnectionRelease } from './connection-release.ts'

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

interface OutboundLink {
  readonly key: PeerKey
  readonly protocol: OverlayProtocol
  state: 'opening' | 'open' | 'closed'
  queue: Uint8Array[]
  /** Bytes of the frames in `queue` and of the one being written. */
  queuedBytes: number
  /** The queue is past half its byte bound (cleared once it is back under). */
  congested: boolean
  pumping: boolean
  stream?: Stream
  lp?: LengthPrefixedStream<Stream>
  lastUsed: number
}

const PROTOCOLS: readonly OverlayProtocol[] = ['hyparview', 'plumtree']
const linkId = (key: PeerKey, protocol: OverlayProtocol): string => `${key}|${protocol}`
/** Drain notices written at once (guess: keeps a drain of thousands of peers to a few seconds without a burst of streams). */
const DRAIN_CONCURRENCY = 32
/** A drain notice is small (≤ 32 siblings × 8 addresses); anything past this is not one. */
const MAX_DRAIN_NOTICE_BYTES = 64 * 1024
/** Opening a stream and writing one notice, or reading one (guess). */
const DRAIN_NOTICE_TIMEOUT_MS = 5000
export class OverlayDriver implements Startable {
  private readonly components: OverlayComponents
  private readonly init: Required<Omit<OverlayInit, 'admit' | 'bootstrap' | 'wireLimits' | 'topicConfig' | 'seed' | 'neighbourBudget' | 'neighbourScoring' | 'unbudgeted' | 'validators'>> & Pick<OverlayInit, 'admit' | 'bootstrap' | 'unbudgeted'>
  /** Budgets, scores and back-offs of neighbours. */
  private readonly ledger: NeighbourLedger
  /** Validators by topic short name. */
  private readonly validators = new Map<string, GossipValidator>()
  /** Validations under way (asynchronous ones: a validator that answers at once is never in flight). */
  private validating = 0
  /** Their signals, aborted on stop. */
  private readonly validations = new Set<AbortController>()
  private readonly limits: WireLimits
  private readonly topicConfig: TopicConfig | undefined
  private readonly seed: number
  private readonly log: Logger
  private readonly self: PeerKey
  private readonly protocolIds: Record<OverlayProtocol, string>
  private readonly addrProtocol: string
  private readonly drainProtocol: string
  private readonly drainListeners = new Set<(notice: DrainNotice) => void>()
  /** Set by `drain`: new overlay streams are refused with `draining`. */
  private draining = false
  /**
   * Every topic, routing, the rejoin rule, the address-lookup back-off and the departing
   * record (services/protocol's OverlayNode); set while started.
   */
  private node?: OverlayNode
  private readonly links = new Map<string, OutboundLink>()
  private readonly inbound = new Map<PeerKey, Set<Stream>>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly deliveryListeners = new Set<(delivery: Delivery) => void>()
  private readonly refusalListeners = new Set<(error: OverlayRefusedError) => void>()
  private readonly counters: Omit<DriverCounters, 'neighbours'> = {
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
  private readonly connections: ConnectionRelease

  private started = false
  private maintenance?: NodeJS.Timeout
  private ticker?: NodeJS.Timeout
  private readonly onPeerDisconnect = (event: Event): void => {
    const key = (event as CustomEvent<PeerId>).detail.toString()
    // Only a peer we are linked to has failed: a connection we or it closed because nothing
    // used it any more (connection-release.ts) says nothing about a passive peer.
    if (this.linked(key)) this.linkDown(key)
  }

  constructor (components: OverlayComponents, init: OverlayInit) {
    this.components = components
    this.init = {
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
    for (const [topic, validator] of Object.entries(init.validators ?? {})) this.validators.set(topic, validator)
    this.limits = { ...DEFAULT_WIRE_LIMITS, ...init.wireLimits }
    this.topicConfig = init.topicConfig
    const plumtree = { ...DEFAULT_PLUMTREE_CONFIG, ...init.topicConfig?.plumtree }
    this.ledger = new NeighbourLedger({
      ...(init.neighbourBudget === undefined ? {} : { budget: init.neighbourBudget }),
      ...(init.neighbourScoring === undefined ? {} : { scoring: init.neighbourScoring }),
      ihaveIntervalMs: plumtree.ihaveIntervalMs,
      maxIHaveBatch: plumtree.maxIHaveBatch,
      announcedMax: plumtree.messageCacheMaxEntries,
      announcedTtlMs: plumtree.messageCacheTtlMs
    })
    this.seed = init.seed ?? Math.floor(Math.random() * 2 ** 32)
    this.log = components.logger.forComponent('pharos:overlay')
    this.self = components.peerId.toString()
    this.protocolIds = {
      hyparview: overlayProtocolId(init.network, 'hyparview'),
      plumtree: overlayProtocolId(init.network, 'plumtree')
    }
    this.connections = new ConnectionRelease({
      graceMs: this.init.connectionGraceMs,
      needed: (key) => this.needsPeer(key),
      peerStore: components.peerStore,
      log: this.log
    })
    this.addrProtocol = `/${init.network}/peer-addrs/1.0.0`
    this.drainProtocol = `/${init.network}/drain/1.0.0`
  }

  readonly [Symbol.toStringTag] = '@pharos/overlay'

  /** The wire name of a short topic name. */
  topicName (topic: string): string {
    return `/${this.init.network}/${topic}`
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    const node = createOverlayNode({
      self: this.self,
      topics: this.init.topics.map((topic) => this.topicName(topic)),
      networkSize: this.init.networkSize,
      seed: this.seed,
      config: { rejoinIntervalMs: this.init.rejoinIntervalMs },
      isMember: (key) => this.mayKeep(key),
      bootstrap: () => this.init.bootstrap?.().map((contact) => contact.toString()) ?? [],
      ...(this.topicConfig === undefined ? {} : { topicConfig: this.topicConfig })
    })
    this.node = node
    this.run(node.start(Date.now()))
    for (const protocol of PROTOCOLS) {
      await this.components.registrar.handle(this.protocolIds[protocol], (stream, connection) => {
        this.onInboundStream(protocol, stream, connection)
      }, { maxInboundStreams: 4, maxOutboundStreams: 4 })
    }
    await this.components.registrar.handle(this.addrProtocol, (stream, connection) => {
      void this.answerAddressLookup(stream, connection)
    }, { maxInboundStreams: 4, maxOutboundStreams: 4 })
    await this.components.registrar.handle(this.drainProtocol, (stream, connection) => {
      void this.readDrainNotice(stream, connection)
    }, { maxInboundStreams: 2, maxOutboundStreams: 2 })
    this.components.events.addEventListener('peer:disconnect', this.onPeerDisconnect)
    this.maintenance = setInterval(() => { this.maintain() }, Math.min(this.init.rejoinIntervalMs, this.init.linkIdleMs))
    this.maintenance.unref()
    // The node samples its views at ticks: ticking five times per interval rejoins within 1.2 of it.
    this.ticker = setInterval(() => { if (!this.draining) this.handle({ type: 'tick' }) }, Math.max(1, Math.ceil(this.init.rejoinIntervalMs / 5)))
    this.ticker.unref()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    for (const validation of this.validations) validation.abort(new Error('overlay stopped'))
    clearInterval(this.maintenance)
    clearInterval(this.ticker)
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    this.components.events.removeEventListener('peer:disconnect', this.onPeerDisconnect)
    for (const protocol of [...PROTOCOLS.map((name) => this.protocolIds[name]), this.addrProtocol, this.drainProtocol]) {
      await this.components.registrar.unhandle(protocol)
    }
    for (const link of [...this.links.values()]) this.closeLink(link, new Error('overlay stopped'))
    for (const streams of this.inbound.values()) for (const stream of streams) stream.abort(new Error('overlay stopped'))
    this.inbound.clear()
    this.node = undefined
    this.connections.clear()
  }

  /** Joins a topic through a contact (a beacon's peer ID, or any member's). */
  join (topic: string, contact: PeerId): void {
    this.run(this.requireNode().handle({ type: 'join', topic: this.topicName(topic), contact: contact.toString() }, Date.now()))
  }

  /**
   * Peers learnt out of band, with their addresses (a fleet's shared peer view): kept in
   * the peer store so they can be dialled, and merged into every topic's passive view, from
   * which free active slots are refilled. Malformed addresses are skipped.
   */
  async learn (peers: ReadonlyArray<{ peerId: string, multiaddrs: readonly string[] }>): Promise<void> {
    const keys: PeerKey[] = []
    for (const { peerId, multiaddrs } of peers) {
      if (peerId === this.self) continue
      let id: PeerId
      try {
        id = peerIdFromString(peerId)
      } catch {
        continue
      }
      const addrs = multiaddrs.slice(0, MAX_ADDRS_PER_PEER).flatMap((text) => {
        try { return [multiaddr(text)] } catch { return [] }
      })
      if (addrs.length === 0) continue
      await this.components.peerStore.merge(id, { multiaddrs: addrs })
      keys.push(peerId)
    }
    if (keys.length === 0 || !this.started) return
    this.handle({ type: 'learn', peers: keys })
  }

  /**
   * Broadcasts `payload` on a topic under `messageId` (a content hash); an ID the topic has
   * already seen is not sent again. Sends may be deferred (IHAVE batches), so there is no
   * useful answer to return.
   */
  broadcast (topic: string, messageId: string, payload: Uint8Array): void {
    this.run(this.requireNode().broadcast(this.topicName(topic), messageId, payload, Date.now()))
  }

  /** N changed (accounts were added or removed): every topic resizes its views. */
  setNetworkSize (networkSize: number): void {
    this.init.networkSize = networkSize
    if (this.node !== undefined) this.run(this.node.setNetworkSize(networkSize, Date.now()))
  }

  /**
   * Sets the validator of a topic (short name), replacing any; returns a function that removes
   * it again. Until a topic has one, it forwards nothing it receives.
   */
  setValidator (topic: string, validator: GossipValidator): () => void {
    this.validators.set(topic, validator)
    return () => { if (this.validators.get(topic) === validator) this.validators.delete(topic) }
  }

  /** Called with every broadcast its topic's validator accepted (first receipts, not our own). */
  onDeliver (listener: (delivery: Delivery) => void): () => void {
    this.deliveryListeners.add(listener)
    return () => { this.deliveryListeners.delete(listener) }
  }

  /** Called when a connected node that is draining tells us which of its siblings to move to. */
  onDrain (listener: (notice: DrainNotice) => void): () => void {
    this.drainListeners.add(listener)
    return () => { this.drainListeners.delete(listener) }
  }

  /**
   * This node is going away: from now on new overlay streams are refused (`draining`), and
   * each of `targets` that is connected is told to move to one of `siblings`. The sibling
   * list is rotated per peer, so the peers spread evenly over the siblings. Resolves with
   * the peers that took the notice (they speak the protocol, so they will move); a peer
   * that does not is left to notice the disconnect.
   */
  async drain (siblings: readonly PeerAddrs[], targets: readonly PeerId[], options: { signal?: AbortSignal } = {}): Promise<PeerId[]> {
    this.draining = true
    const records = siblings.slice(0, MAX_LOOKUP_PEERS).map((sibling) => ({
      peer: sibling.peerId,
      addrs: sibling.multiaddrs.slice(0, MAX_ADDRS_PER_PEER).flatMap((text) => {
        try { return [multiaddr(text).bytes] } catch { return [] }
      })
    })).filter((record) => record.addrs.length > 0)
    if (records.length === 0) return []
    const told: PeerId[] = []
    const queue = targets.map((peer, i) => ({ peer, first: i % records.length }))
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        if (options.signal?.aborted === true) return
        const order = [...records.slice(next.first), ...records.slice(0, next.first)].filter((record) => record.peer !== next?.peer.toString())
        if (order.length > 0 && await this.sendDrainNotice(next.peer, encodeDrainNotice(order), options.signal)) told.push(next.peer)
      }
    }
    await Promise.all(Array.from({ length: Math.min(DRAIN_CONCURRENCY, queue.length) }, worker))
    return told
  }

  private async sendDrainNotice (peer: PeerId, notice: Uint8Array, signal: AbortSignal | undefined): Promise<boolean> {
    const connection = this.components.connectionManager.getConnections(peer).find((c) => c.status === 'open')
    if (connection === undefined) return false
    const timeout = AbortSignal.timeout(DRAIN_NOTICE_TIMEOUT_MS)
    const bounded = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
    try {
      const stream = await connection.newStream(this.drainProtocol, { signal: bounded, runOnLimitedConnection: true })
      await lpStream(stream, { maxDataLength: MAX_DRAIN_NOTICE_BYTES }).write(notice, { signal: bounded })
      await stream.close({ signal: bounded })
      this.counters.drainNoticesSent++
      return true
    } catch (err) {
      this.log('drain notice to %p not delivered - %e', peer, err)
      return false
    }
  }

  /**
   * Whether `key` said it is draining (a drain notice, or a link refused as `draining`) within
   * DEPARTING_MS: the overlay links to it no more, and an application should not dial it either.
   */
  isDeparting (key: PeerKey): boolean {
    return this.node?.isDeparting(key, Date.now()) ?? false
  }

  /**
   * `key` is draining: the node closes our links to it (`dropLinks`), every topic forgets it as
   * if it had left (`departed`), so its lost link is not retried and its slot is refilled from
   * others, and no link to it is opened again for the node's `departingMs`. Hanging up is the
   * application's call (the SDK does, once it has moved).
   */
  private markDeparting (key: PeerKey): void {
    this.handle({ type: 'draining', peer: key })
  }

  /**
   * A drain notice, taken as far as `drainTrust` says of its sender. The siblings' addresses go
   * to the listeners only, never into the peer store: the peer store answers address lookups
   * and feeds our own dials, and a notice is not a reason to vouch for, or dial, what it names.
   */
  private async readDrainNotice (stream: Stream, connection: Connection): Promise<void> {
    const trust = this.init.drainTrust(connection.remotePeer)
    if (trust === 'refused') {
      this.counters.drainNoticesRefused++
      this.log('drain notice from %p refused: not a node whose drain we take', connection.remotePeer)
      stream.abort(new DrainNoticeRefusedError())
      return
    }
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_DRAIN_NOTICE_BYTES })
      const records = decodeDrainNotice((await lp.read({ signal: AbortSignal.timeout(DRAIN_NOTICE_TIMEOUT_MS) })).subarray())
      if (records === undefined) {
        this.counters.framesRejected.malformed++
        stream.abort(new Error('malformed drain notice'))
        return
      }
      await stream.close().catch(() => {})
      const siblings: PeerAddrs[] = trust === 'siblings' ? this.siblingsOf(records, connection.remotePeer) : []
      this.counters.drainNoticesReceived++
      this.markDeparting(connection.remotePeer.toString())
      const notice = { from: connection.remotePeer, siblings }
      for (const listener of this.drainListeners) {
        try {
          listener(notice)
        } catch (err) {
          this.log.error('drain listener failed - %e', err)
        }
      }
    } catch (err) {
      this.log('drain notice from %p unreadable - %e', connection.remotePeer, err)
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  /** The well-formed sibling records of a notice from `sender` (not itself, not us), as text. */
  private siblingsOf (records: readonly AddrRecord[], sender: PeerId): PeerAddrs[] {
    const siblings: PeerAddrs[] = []
    for (const record of records) {
      try {
        if (peerIdFromString(record.peer).equals(sender) || record.peer === this.self) continue
      } catch {
        continue
      }
      const multiaddrs = record.addrs.flatMap((bytes) => {
        try { return [multiaddr(bytes).toString()] } catch { return [] }
      })
      if (multiaddrs.length > 0) siblings.push({ peerId: record.peer, multiaddrs })
    }
    return siblings
  }

  onRefused (listener: (error: OverlayRefusedError) => void): () => void {
    this.refusalListeners.add(listener)
    return () => { this.refusalListeners.delete(listener) }
  }

  /** Views, eager and lazy sets per topic (short names), for the admin API. */
  snapshot (): Record<string, TopicSnapshot> {
    return this.perTopic((machine) => machine.snapshot())
  }

  topicCounters (): Record<string, TopicCounters> {
    return this.perTopic((machine) => machine.counters())
  }

  private perTopic<T> (read: (machine: NonNullable<ReturnType<OverlayNode['topic']>>) => T): Record<string, T> {
    const out: Record<string, T> = {}
    for (const topic of this.init.topics) {
      const machine = this.node?.topic(this.topicName(topic))
      if (machine !== undefined) out[topic] = read(machine)
    }
    return out
  }

  driverCounters (): DriverCounters {
    const { adopted, released } = this.connections.counts
    return { ...structuredClone(this.counters), neighbours: this.ledger.stats(), connectionsOpened: adopted, connectionsReleased: released }
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

  /** Every neighbour's score, buckets, offences and back-off, lowest score first (admin API). */
  neighbours (): NeighbourState[] {
    return this.ledger.snapshot(Date.now())
  }

  /** The per-neighbour budget and scoring rule in force (admin API). */
  neighbourRules (): { budget: Readonly<NeighbourBudget>, scoring: Readonly<NeighbourScoring> } {
    return { budget: this.ledger.budget, scoring: this.ledger.scoring }
  }

  /** Connections open now that the overlay dialled itself. */
  heldConnections (): number {
    return this.connections.held
  }

  /** Bytes queued on every link now (frames waiting, and the one being written). */
  queuedBytes (): number {
    let bytes = 0
    for (const link of this.links.values()) bytes += link.queuedBytes
    return bytes
  }

  // ---- carrying out actions ---------------------------------------------------------------

  private run (actions: readonly OverlayNodeAction[]): void {
    for (const action of actions) {
      switch (action.type) {
        case 'send': this.send(action.topic, action.to, action.message); break
        case 'connect': this.link(action.peer, 'hyparview'); break
        case 'disconnect': this.maybeRelease(action.peer); break
        case 'timer': this.schedule(action.after, { type: 'timer', topic: action.topic, timer: action.timer }); break
        case 'validate': this.validate(action); break
        case 'rejected': this.penalize(action.from, 'invalid-payload'); break
        case 'unknownTopic': this.counters.framesRejected['unknown-topic']++; break
        case 'rejoin': this.log('rejoining %s through %s: its active view stayed empty', action.topic, action.contact); break
        // Asked for by the driver itself, inline (see connect): nothing to do here.
        case 'lookup': case 'unreachable': break
        case 'dropLinks': {
          for (const protocol of PROTOCOLS) {
            const link = this.links.get(linkId(action.peer, protocol))
            if (link !== undefined && link.state !== 'closed') this.closeLink(link, new Error('peer is draining'))
          }
          break
        }
        case 'deliver': {
          const delivery = { topic: this.shortName(action.topic), messageId: action.messageId, payload: action.payload, from: action.from, round: action.round }
          for (const listener of this.deliveryListeners) {
            try {
              listener(delivery)
            } catch (err) {
              this.log.error('delivery listener failed - %e', err)
            }
          }
          break
        }
        case 'neighborUp': break
        case 'neighborDown': this.maybeRelease(action.peer); break
        default: {
          const unhandled: never = action
          throw new TypeError(`unhandled overlay action ${JSON.stringify(unhandled)}`)
        }
      }
    }
  }

  private shortName (topic: string): string {
    return topic.slice(this.init.network.length + 2)
  }

  /**
   * Runs the topic's validator on a first receipt and feeds the verdict back. Bounded: at most
   * `validationsInFlight` at once, each `validationTimeoutMs`; over either, or with no
   * validator, or if it throws, the message is ignored (not forwarded, nobody penalised).
   */
  private validate (action: Extract<TopicAction, { type: 'validate' }>): void {
    const { messageId, topic } = action
    const verdict = (value: Verdict): void => {
      this.counters.validations[value]++
      this.handle({ type: 'validated', topic, messageId, verdict: value })
    }
    const short = this.shortName(topic)
    const validator = this.validators.get(short)
    if (validator === undefined) {
      this.counters.unvalidatedTopic++
      verdict('ignore')
      return
    }
    if (this.validating >= this.init.validationsInFlight) {
      this.counters.validationOverflows++
      verdict('ignore')
      return
    }
    const message: GossipToValidate = { topic: short, messageId, payload: action.payload, from: action.from, origin: action.origin }
    const controller = new AbortController()
    let judged: Verdict | Promise<Verdict>
    try {
      judged = validator(message, controller.signal)
    } catch (err) {
      this.counters.validationErrors++
      this.log.error('validator of %s failed - %e', short, err)
      verdict('ignore')
      return
    }
    // Judged at once (no I/O): no timer, no promise. The verdict is fed after the actions of
    // the current event, as an asynchronous one would be, never in the middle of them.
    if (typeof judged === 'string') {
      const value = judged
      queueMicrotask(() => { verdict(value) })
      return
    }
    this.validating++
    this.validations.add(controller)
    const timer = setTimeout(() => { controller.abort(new ValidationTimeoutError(this.init.validationTimeoutMs)) }, this.init.validationTimeoutMs)
    const aborted = new Promise<'aborted'>((resolve) => {
      controller.signal.addEventListener('abort', () => { resolve('aborted') }, { once: true })
    })
    Promise.race([judged, aborted]).then((result) => {
      if (result !== 'aborted') return result
      if (controller.signal.reason instanceof ValidationTimeoutError) this.counters.validationTimeouts++
      return 'ignore'
    }, (err: unknown) => {
      this.counters.validationErrors++
      this.log.error('validator of %s failed - %e', short, err)
      return 'ignore' as const
    }).then((result) => {
      clearTimeout(timer)
      this.validations.delete(controller)
      this.validating--
      verdict(result)
    }, () => {})
  }

  private handle (event: OverlayNodeEvent): void {
    if (this.node === undefined || !this.started) return
    this.run(this.node.handle(event, Date.now()))
  }

  private schedule (after: number, event: OverlayNodeEvent): void {
    if (!this.started) return
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      this.handle(event)
    }, after)
    this.timers.add(timer)
  }

  private send (topic: string, to: PeerKey, message: Message): void {
    if (this.isShunned(to)) return
    const frame = isHyParViewMessage(message) ? encodeHyParView({ topic, message }) : encodePlumtree({ topic, message })
    const link = this.link(to, protocolOf(message))
    if (link.state === 'closed') return
    // What we announce is what the neighbour may GRAFT (neighbour-budget.ts).
    if (message.type === 'ihave') this.ledger.announced(to, topic, message.entries, Date.now())
    // An empty queue takes any one frame, so every frame the wire allows can be sent.
    if (link.queue.length >= this.init.sendQueueFrames || (link.queue.length > 0 && link.queuedBytes + frame.length > this.init.sendQueueBytes)) {
      const byBytes = link.queue.length < this.init.sendQueueFrames
      if (byBytes) this.counters.queueByteOverflows++
      else this.counters.queueOverflows++
      this.log('send queue to %s passed its %s bound; dropping the neighbour', to, byBytes ? 'byte' : 'frame')
      this.shun(to, new Error(`send queue over its ${byBytes ? 'byte' : 'frame'} bound`))
      return
    }
    link.queue.push(frame)
    link.queuedBytes += frame.length
    if (link.queuedBytes > this.counters.sendQueuePeakBytes) this.counters.sendQueuePeakBytes = link.queuedBytes
    link.lastUsed = Date.now()
    if (message.type === 'gossip' && link.queuedBytes > this.init.sendQueueBytes / 2) {
      // It is not keeping up: payloads to it go lazy (IHAVE) until it reads and GRAFTs.
      if (!link.congested) this.counters.queueCongestions++
      link.congested = true
      this.handle({ type: 'congested', peer: to })
    }
    if (link.state === 'open') void this.pump(link)
  }

  /**
   * A neighbour that misbehaved (a gossip ID that is not its payload's hash; a send queue
   * over its bound; a score below the threshold) leaves every view as if it had left — its
   * lost link is not retried — its streams close, and for its back-off (a minute, doubled
   * with each drop remembered) no link to it is opened and its overlay streams are refused
   * (`misbehaving`).
   */
  private shun (key: PeerKey, why: Error): void {
    this.counters.neighboursShunned++
    this.ledger.backOff(key, Date.now())
    for (const protocol of PROTOCOLS) {
      const link = this.links.get(linkId(key, protocol))
      if (link !== undefined && link.state !== 'closed') this.closeLink(link, why)
    }
    for (const stream of this.inbound.get(key) ?? []) stream.abort(why)
    this.handle({ type: 'departed', peer: key })
  }

  private isShunned (key: PeerKey): boolean {
    return this.ledger.isBackedOff(key, Date.now())
  }

  /**
   * Whether a topic may keep `key` in its views: a peer we would admit (a beacon: a registered
   * account; the SDK admits everyone, having no registry) that is not kept out. Keys that are
   * not peer IDs are made up.
   */
  private mayKeep (key: PeerKey): boolean {
    if (this.isShunned(key)) return false
    if (this.init.admit === undefined) return true
    try {
      return this.init.admit(peerIdFromString(key)).admitted
    } catch {
      return false
    }
  }

  // ---- links ------------------------------------------------------------------------------

  private link (key: PeerKey, protocol: OverlayProtocol): OutboundLink {
    const id = linkId(key, protocol)
    const existing = this.links.get(id)
    if (existing !== undefined && existing.state !== 'closed') return existing
    const link: OutboundLink = { key, protocol, state: 'opening', queue: [], queuedBytes: 0, congested: false, pumping: false, lastUsed: Date.now() }
    this.links.set(id, link)
    void this.open(link)
    return link
  }

  private async open (link: OutboundLink): Promise<void> {
    const signal = AbortSignal.timeout(this.init.linkOpenTimeoutMs)
    try {
      // Dialling a node that is draining would hold it open past its deadline (the drainer
      // waits for its peers to leave), and the overlay stream would be refused anyway. A
      // draining node itself links to no one: it would call back the peers it sent away.
      if (this.isDeparting(link.key)) throw new Error('peer is draining')
      if (this.isShunned(link.key)) throw new Error('peer misbehaved recently')
      if (this.draining) throw new Error('this node is draining')
      const peer = peerIdFromString(link.key)
      const decision = this.init.admit?.(peer) ?? { admitted: true }
      if (!decision.admitted) throw new Error(`peer not admitted: ${decision.reason}`)
      const connection = await this.connect(peer, signal)
      const stream = await connection.newStream(this.protocolIds[link.protocol], { signal })
      const lp = lpStream(stream, { maxDataLength: this.limits.maxFrameBytes })
      const preamble = decodePreamble((await lp.read({ signal })).subarray())
      if (preamble === undefined) throw new Error('malformed preamble')
      if (!preamble.accepted) {
        this.counters.refusalsReceived++
        if (preamble.reason === 'draining') this.markDeparting(link.key)
        const refusal = new OverlayRefusedError(link.key, preamble.reason)
        for (const listener of this.refusalListeners) listener(refusal)
        throw refusal
      }
      if (link.state === 'closed') {
        stream.abort(new Error('link closed while opening'))
        return
      }
      link.stream = stream
      link.lp = lp
      link.state = 'open'
      stream.addEventListener('close', () => { this.fail(link, new Error('stream closed')) }, { once: true })
      void this.pump(link)
    } catch (err) {
      this.log('link to %s (%s) failed to open - %e', link.key, link.protocol, err)
      this.fail(link, err)
    }
  }

  private async connect (peer: PeerId, signal: AbortSignal): Promise<Connection> {
    const existing = this.components.connectionManager.getConnections(peer).find((connection) => connection.status === 'open' && connection.limits === undefined)
    if (existing !== undefined) return existing
    const known = await this.components.peerStore.get(peer).then((record) => record.addresses.length, () => 0)
    if (known === 0) {
      // The node decides whether to look the peer up, and whom to ask; the driver asks.
      const key = peer.toString()
      const decision = this.requireNode().handle({ type: 'addressesNeeded', peer: key }, Date.now())
        .find((action) => action.type === 'lookup' || action.type === 'unreachable')
      if (decision?.type === 'unreachable') {
        this.counters.addressLookupsSkipped++
        throw new Error('no address known for the peer (none found on the last lookup)')
      }
      if (decision?.type === 'lookup') {
        const found = await this.lookupAddresses(peer, decision.ask, signal)
        this.node?.handle({ type: 'lookupDone', peer: key, found }, Date.now())
      }
    }
    const before = new Set(this.components.connectionManager.getConnections(peer).map((connection) => connection.id))
    const connection = await this.components.connectionManager.openConnection(peer, { signal })
    this.connections.adopt(connection, before)
    return connection
  }

  /** Whether some topic has `key` as a neighbour or awaits its reply to a request. */
  private linked (key: PeerKey): boolean {
    return this.node?.isLinked(key) ?? false
  }

  /**
   * Whether the overlay needs `key`'s connection: a neighbour in some topic, a link of ours
   * opening or open (a pending request holds one), or a bootstrap contact.
   */
  private needsPeer (key: PeerKey): boolean {
    for (const protocol of PROTOCOLS) {
      const link = this.links.get(linkId(key, protocol))
      if (link !== undefined && link.state !== 'closed') return true
    }
    if (this.node?.isNeighbor(key) === true) return true
    return this.init.bootstrap?.().some((contact) => contact.toString() === key) ?? false
  }

  private async pump (link: OutboundLink): Promise<void> {
    if (link.pumping || link.lp === undefined) return
    link.pumping = true
    try {
      while (link.state === 'open' && link.queue.length > 0) {
        const frame = link.queue.shift()
        if (frame === undefined) continue
        // Counted as queued until written: a neighbour that does not read holds the write.
        await link.lp.write(frame)
        link.queuedBytes -= frame.length
        if (link.congested && link.queuedBytes <= this.init.sendQueueBytes / 2) link.congested = false
      }
    } catch (err) {
      this.fail(link, err)
    } finally {
      link.pumping = false
    }
  }

  private fail (link: OutboundLink, err: unknown): void {
    if (link.state === 'closed') return
    this.closeLink(link, err instanceof Error ? err : new Error(String(err)))
    this.counters.linkFailures++
    this.linkDown(link.key)
  }

  /** Every topic learns the link to `key` is gone; its other links close too. */
  private linkDown (key: PeerKey): void {
    for (const protocol of PROTOCOLS) {
      const link = this.links.get(linkId(key, protocol))
      if (link !== undefined && link.state !== 'closed') this.closeLink(link, new Error('link down'))
    }
    this.handle({ type: 'linkDown', peer: key })
  }

  /** Drops a link at once: its queued frames are discarded and its stream is aborted. */
  private closeLink (link: OutboundLink, reason: Error): void {
    link.state = 'closed'
    link.queue = []
    link.queuedBytes = 0
    link.stream?.abort(reason)
    this.links.delete(linkId(link.key, link.protocol))
  }

  /** Closes our links to a peer no topic has as a neighbour any more, once they drain. */
  private maybeRelease (key: PeerKey): void {
    if (this.node?.isNeighbor(key) === true) return
    for (const protocol of PROTOCOLS) {
      const link = this.links.get(linkId(key, protocol))
      if (link !== undefined) link.lastUsed = Math.min(link.lastUsed, Date.now() - this.init.linkIdleMs + 1000)
    }
  }

  private maintain (): void {
    const now = Date.now()
    for (const link of [...this.links.values()]) {
      if (link.state !== 'open' || link.queue.length > 0 || now - link.lastUsed < this.init.linkIdleMs) continue
      if (this.node?.isNeighbor(link.key) === true) continue
      // Idle and drained: close gracefully rather than abort.
      link.state = 'closed'
      this.links.delete(linkId(link.key, link.protocol))
      void link.stream?.close().catch(() => {})
    }
    void this.connections.sweep(now).catch((err: unknown) => { this.log.error('releasing unused connections failed - %e', err) })
    this.ledger.forgetIdle(now, (key) => this.inbound.has(key) || this.links.has(linkId(key, 'hyparview')) || this.links.has(linkId(key, 'plumtree')))
  }

  // ---- inbound ----------------------------------------------------------------------------

  private onInboundStream (protocol: OverlayProtocol, stream: Stream, connection: Connection): void {
    void this.readInbound(protocol, stream, connection).catch((err: unknown) => {
      this.log('inbound %s stream from %p ended - %e', protocol, connection.remotePeer, err)
    })
  }

  private async readInbound (protocol: OverlayProtocol, stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: this.limits.maxFrameBytes })
    const decision: AdmitDecision = this.draining
      ? { admitted: false, reason: 'draining' }
      : this.isShunned(from) ? { admitted: false, reason: 'misbehaving' } : this.init.admit?.(connection.remotePeer) ?? { admitted: true }
    if (!decision.admitted) {
      // A clear refusal, then nothing: no topic ever hears of this peer.
      this.counters.refusalsSent[decision.reason]++
      await lp.write(encodePreamble({ accepted: false, reason: decision.reason }))
      await stream.close().catch(() => {})
      return
    }
    await lp.write(encodePreamble({ accepted: true }))
    let streams = this.inbound.get(from)
    if (streams === undefined) {
      streams = new Set()
      this.inbound.set(from, streams)
    }
    streams.add(stream)
    const unbudgeted = this.init.unbudgeted?.(connection.remotePeer) ?? false
    try {
      for (;;) {
        let bytes: Uint8Array
        try {
          bytes = (await lp.read()).subarray()
        } catch (err) {
          // A length prefix over the frame bound is refused before the frame is buffered.
          const name = (err as Error).name
          if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError') {
            this.counters.framesRejected.oversized++
            stream.abort(new Error('oversized frame'))
          } else if (name === 'InvalidMessageLengthError') {
            this.counters.framesRejected.malformed++
            stream.abort(new Error('malformed length prefix'))
          }
          return
        }
        const decoded = protocol === 'hyparview' ? decodeHyParView(bytes, this.limits) : decodePlumtree(bytes, this.limits)
        if (!decoded.ok) {
          this.counters.framesRejected[decoded.code]++
          this.log('closing %s stream from %s: %s frame', protocol, from, decoded.code)
          stream.abort(new Error(`${decoded.code} frame`))
          return
        }
        const { topic, message } = decoded.value
        if (this.node?.hasTopic(topic) !== true) {
          // The node routes it nowhere and says so (`unknownTopic`); it costs no budget.
          this.handle({ type: 'frame', topic, from, message })
          continue
        }
        // Before anything costs us work (the hash of a payload, a topic's state): a frame over
        // the neighbour's budget, or one no honest node sends, is dropped and costs it score.
        const offence = this.ledger.charge(from, topic, message, Date.now(), unbudgeted)
        if (offence !== undefined) {
          this.penalize(from, offence)
          if (this.isShunned(from)) return
          continue
        }
        if (message.type === 'gossip' && message.id !== await this.init.messageIdOf(topic.slice(this.init.network.length + 2), message.payload)) {
          // Checked before any topic sees it: an ID not bound to its payload would let one
          // payload be cached and forwarded under any number of IDs, or squat another's ID.
          this.counters.framesRejected['bad-message-id']++
          this.log('closing %s stream from %s: gossip ID is not its payload\'s content hash', protocol, from)
          const why = new Error('gossip message ID is not the content hash of its payload')
          stream.abort(why)
          this.shun(from, why)
          return
        }
        this.handle({ type: 'frame', topic, from, message })
      }
    } finally {
      streams.delete(stream)
      if (streams.size === 0) this.inbound.delete(from)
      // Our end too: a stream is only released once both sides closed their writable end, and
      // a half-open one kept its connection in use (connection-release.ts).
      if (stream.status === 'open') void stream.close().catch(() => {})
      // The sender closed its link: a failure only if it was our neighbour or owed us a reply
      // (a former neighbour closing its idle link has not left the passive view).
      if (this.started && this.linked(from)) this.linkDown(from)
    }
  }

  // ---- address lookup ---------------------------------------------------------------------

  private async answerAddressLookup (stream: Stream, connection: Connection): Promise<void> {
    try {
      const lp = lpStream(stream, { maxDataLength: 4096 })
      const decision = this.init.admit?.(connection.remotePeer) ?? { admitted: true }
      const request = decodeAddrRequest((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray())
      if (request === undefined || !decision.admitted) {
        stream.abort(new Error(request === undefined ? 'malformed lookup' : 'not admitted'))
        return
      }
      const records = []
      this.counters.addressLookupsAnswered += request.length
      for (const key of request) {
        try {
          const record = await this.components.peerStore.get(peerIdFromString(key))
          const addrs = record.addresses.slice(0, MAX_ADDRS_PER_PEER).map((address) => address.multiaddr.bytes)
          if (addrs.length > 0) records.push({ peer: key, addrs })
        } catch {
          // unknown or unparsable peer: nothing to say about it
        }
      }
      await lp.write(encodeAddrResponse(records))
      await stream.close()
    } catch (err) {
      this.log('address lookup from %p failed - %e', connection.remotePeer, err)
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  /** Asks `askers` (the node's choice: whoever told us about `peer`, then our bootstrap peers), in order, for its addresses; true once one answered with some. */
  private async lookupAddresses (peer: PeerId, askers: readonly PeerKey[], signal: AbortSignal): Promise<boolean> {
    const key = peer.toString()
    for (const asker of askers) {
      this.counters.addressLookups++
      try {
        const connection = this.components.connectionManager.getConnections(peerIdFromString(asker)).find((c) => c.status === 'open')
        if (connection === undefined) continue
        const stream = await connection.newStream(this.addrProtocol, { signal })
        const lp = lpStream(stream, { maxDataLength: 64 * 1024 })
        await lp.write(encodeAddrRequest([key]))
        const records = decodeAddrResponse((await lp.read({ signal })).subarray())
        await stream.close().catch(() => {})
        const found = records?.find((record) => record.peer === key)
        if (found === undefined || found.addrs.length === 0) continue
        await this.components.peerStore.merge(peer, { multiaddrs: found.addrs.map((bytes) => multiaddr(bytes)) })
        return true
      } catch (err) {
        this.log('address lookup of %s via %s failed - %e', key, asker, err)
      }
    }
    return false
  }

  private requireNode (): OverlayNode {
    if (this.node === undefined) throw new OverlayNotStartedError()
    return this.node
  }
}

/** The overlay as a libp2p service: `services: { overlay: overlay({ network, topics, … }) }`. */
export function overlay (init: OverlayInit): (components: OverlayComponents) => OverlayDriver {
  return (components) => new OverlayDriver(components, init)
}
