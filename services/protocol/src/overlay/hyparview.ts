/**
 * HyParView membership (Leitão, Pereira, Rodrigues: "HyParView: a membership protocol for
 * reliable gossip-based broadcast", DSN 2007), one instance per topic, IO-free.
 *
 * Each node keeps a small symmetric *active view* (the peers it holds links to and gossips with)
 * and a larger *passive view* (known peers, the reserve used to repair the active view). Section
 * numbers in the comments refer to the paper.
 *
 * Departures from the paper, each needed by something the paper leaves to TCP:
 * - NEIGHBOR (and JOIN) get an explicit NEIGHBORREPLY. A request is only complete when the reply
 *   arrives, so a refused low-priority request moves on to another passive peer (§4.3).
 * - The node at the end of a FORWARDJOIN walk asks the joiner with a high-priority NEIGHBOR instead
 *   of silently adding it, so an unreachable joiner never sits in an active view.
 * - A node whose active view is below {@link HyParViewConfig.highPriorityFraction} of its capacity
 *   asks with high priority (the paper: only when the view is empty), and only for as many requests
 *   as bring it to that level. Low-priority requests are refused by full nodes, and nearly every
 *   node is full, so with the paper's rule a few evicted nodes settle with two to four neighbours,
 *   where a lost payload has few other paths (measured: docs/overlay.md).
 * - A refused low-priority request is retried at the next shuffle round, not at once: the paper
 *   retries until one succeeds, which in a full overlay means asking the whole passive view every
 *   round (measured: four times the NEIGHBOR traffic of a settled overlay, for the same views). A
 *   failed request (dial failure, timeout) is still retried at once, as in the paper.
 * - Active links lost to a failure (`linkDown`, not DISCONNECT) are retried for
 *   {@link HyParViewConfig.reconnectWindowMs}, one per shuffle round, with high priority, until one
 *   comes back. After a partition each side refills its active views from its own side, and the
 *   paper adds a link to a full view only for a joiner or an empty view; the sides then only meet
 *   where two nodes with a free slot happen to know each other. Measured (docs/overlay.md, six
 *   seeds each at 200 and 1,000 nodes): without the retry the halves merged 1–59 s after the heal;
 *   with it, within 1 s every time.
 * - The passive view holds members only, and no neighbour fills more than a bounded share of it
 *   (§4.4 merges whatever sample arrives, and §4.2 whatever joiner a FORWARDJOIN names). A
 *   SHUFFLE, SHUFFLEREPLY or FORWARDJOIN is unauthenticated hearsay about other peers: one
 *   registered peer filled all 30 passive slots of a beacon with made-up IDs in one SHUFFLE
 *   (issue 18). Peers the injected `isMember` predicate refuses are never kept (nor is a
 *   FORWARDJOIN for one passed on), and entries one neighbour named are capped at
 *   {@link HyParViewConfig.maxPassiveShare} of the passive view: past it, what that neighbour
 *   names replaces its own earlier entries, never other peers'.
 * - Bridges ({@link HyParViewConfig.bridges}). A node whose low-priority requests were all refused
 *   during a shuffle round, and which still has a free slot, asks one passive peer with priority
 *   `bridge` at the next round: the least recently heard-of one, since shuffles only circulate
 *   peers of the asker's own component and a peer of another component is never heard of again.
 *   A full node takes a bridge into one spare slot above its capacity, without evicting anyone.
 *   The paper (§4.3) has a full view refuse every low-priority request, so an island whose nodes
 *   are full, or whose only free slots face full nodes, stays apart until a link fails: a burst of
 *   joins left one (measured: docs/overlay.md, scenario `burst-join`). An eviction would not do: the
 *   evicted node's free slot would wander from node to node, cutting one tree link per round.
 */
import {
  ACTIVE_RANDOM_WALK_LENGTH,
  HIGH_PRIORITY_FRACTION,
  MAX_PASSIVE_SHARE,
  NEIGHBOR_REQUEST_TIMEOUT_MS,
  PASSIVE_RANDOM_WALK_LENGTH,
  PASSIVE_VIEW_FACTOR,
  RECONNECT_WINDOW_MS,
  SHUFFLE_ACTIVE_COUNT,
  SHUFFLE_INTERVAL_MS,
  SHUFFLE_PASSIVE_COUNT,
  SHUFFLE_TTL
} from './constants.ts'
import { OverlayConfigError, requireInteger, SelfContactError } from './errors.ts'
import { assertNever } from './messages.ts'
import type { Action, HyParViewMessage, PeerKey, Priority } from './messages.ts'
import { PassiveView } from './passive-view.ts'
import { PeerSet } from './peer-set.ts'
import { pickRandom, randomInt, sampleRandom } from './rng.ts'
import type { Rng } from './rng.ts'

/** HyParView options. View sizes are not options: they follow the network size (seed). */
export interface HyParViewConfig {
  /**
   * Passive view size as a multiple of the active view size.
   * @default 6 (seed; paper §5 also uses 6×)
   */
  passiveViewFactor: number
  /**
   * Active random walk length (ARWL), the FORWARDJOIN TTL.
   * @default 3 (seed; the paper uses 6)
   */
  activeRandomWalkLength: number
  /**
   * Passive random walk length (PRWL): the hop whose TTL equals it adds the joiner to its
   * passive view. Must not exceed the ARWL.
   * @default 3 (paper)
   */
  passiveRandomWalkLength: number
  /**
   * Period of SHUFFLE and of the maintenance done with it.
   * @default 15000 (seed)
   */
  shuffleIntervalMs: number
  /**
   * SHUFFLE random-walk TTL.
   * @default 4 (seed)
   */
  shuffleTtl: number
  /**
   * Active peers in a SHUFFLE sample (ka).
   * @default 3 (paper)
   */
  shuffleActiveCount: number
  /**
   * Passive peers in a SHUFFLE sample (kp).
   * @default 4 (paper)
   */
  shufflePassiveCount: number
  /**
   * How long a NEIGHBOR or JOIN may go unanswered before the peer counts as failed.
   * @default 5000 (guess)
   */
  neighborRequestTimeoutMs: number
  /**
   * Repair asks with high priority (which cannot be refused) while the active view holds fewer
   * than max(1, ceil(fraction × capacity)) peers. 0 is the paper's rule: only when it is empty.
   * @default 0.5 (measurement: docs/overlay.md)
   */
  highPriorityFraction: number
  /**
   * How long an active link lost to a failure is retried (extension; see the module comment).
   * 0 turns the retries off.
   * @default 300000 (guess)
   */
  reconnectWindowMs: number
  /**
   * Most of the passive view the peers one neighbour named (in SHUFFLE, SHUFFLEREPLY or
   * FORWARDJOIN) may take: ceil(share × passive capacity) entries (extension; see the module
   * comment). 1 is the paper's rule: no bound.
   * @default 0.25 (guess: constants.ts MAX_PASSIVE_SHARE)
   */
  maxPassiveShare: number
  /**
   * Ask for a bridge (a spare slot above a full peer's capacity) after a round in which every
   * low-priority request was refused and a slot stayed free; take one bridge into our own spare
   * slot (extension; see the module comment). False is the paper's behaviour.
   * @default true (measurement: docs/overlay.md, scenario burst-join)
   */
  bridges: boolean
}

/**
 * A node asks for at most one bridge per this many shuffle rounds. Measurement (docs/overlay.md):
 * asking every round kept new links forming for minutes after a partition healed (p99 latency
 * 1.8 s in three of five seeds, against 0.4–0.5 s without bridges); once per four rounds still
 * joins every simulated burst within two rounds.
 */
const BRIDGE_INTERVAL_ROUNDS = 4

export const DEFAULT_HYPARVIEW_CONFIG: Readonly<HyParViewConfig> = Object.freeze({
  passiveViewFactor: PASSIVE_VIEW_FACTOR,
  activeRandomWalkLength: ACTIVE_RANDOM_WALK_LENGTH,
  passiveRandomWalkLength: PASSIVE_RANDOM_WALK_LENGTH,
  shuffleIntervalMs: SHUFFLE_INTERVAL_MS,
  shuffleTtl: SHUFFLE_TTL,
  shuffleActiveCount: SHUFFLE_ACTIVE_COUNT,
  shufflePassiveCount: SHUFFLE_PASSIVE_COUNT,
  neighborRequestTimeoutMs: NEIGHBOR_REQUEST_TIMEOUT_MS,
  highPriorityFraction: HIGH_PRIORITY_FRACTION,
  reconnectWindowMs: RECONNECT_WINDOW_MS,
  maxPassiveShare: MAX_PASSIVE_SHARE,
  bridges: true
})

/** Fills in defaults and checks ranges; throws {@link OverlayConfigError}. */
export function resolveHyParViewConfig(partial: Partial<HyParViewConfig> = {}): Readonly<HyParViewConfig> {
  const config: HyParViewConfig = { ...DEFAULT_HYPARVIEW_CONFIG, ...partial }
  const positive = ['passiveViewFactor', 'activeRandomWalkLength', 'passiveRandomWalkLength', 'shuffleIntervalMs', 'shuffleTtl', 'neighborRequestTimeoutMs'] as const
  for (const key of positive) requireInteger(`hyparview.${key}`, config[key], 1)
  for (const key of ['shuffleActiveCount', 'shufflePassiveCount', 'reconnectWindowMs'] as const) {
    requireInteger(`hyparview.${key}`, config[key], 0)
  }
  if (typeof config.bridges !== 'boolean') throw new OverlayConfigError('hyparview.bridges', config.bridges, 'true or false')
  if (!(config.highPriorityFraction >= 0 && config.highPriorityFraction <= 1)) {
    throw new OverlayConfigError('hyparview.highPriorityFraction', config.highPriorityFraction, 'a number from 0 to 1')
  }
  if (!(config.maxPassiveShare > 0 && config.maxPassiveShare <= 1)) {
    throw new OverlayConfigError('hyparview.maxPassiveShare', config.maxPassiveShare, 'a number above 0 and at most 1')
  }
  if (config.passiveRandomWalkLength > config.activeRandomWalkLength) {
    throw new OverlayConfigError('hyparview.passiveRandomWalkLength', config.passiveRandomWalkLength,
      `at most activeRandomWalkLength (${config.activeRandomWalkLength}), or no walk ever reaches it`)
  }
  return Object.freeze(config)
}

/**
 * Active view size for a network of `networkSize` registered accounts: floor(log2(N)) + 1
 * (seed: "log2(N)+1"; paper §4.1: log(n) + c).
 */
export function activeViewCapacity(networkSize: number): number {
  requireInteger('networkSize', networkSize, 1)
  // 31 − clz32 is floor(log2) exactly for N < 2^32; Math.log2 can round across a power of two.
  return networkSize >= 0x1_0000_0000 ? 33 : 32 - Math.clz32(networkSize)
}

/** Told when the active view changes; Plumtree listens (the topic wires it). */
export interface NeighborListener {
  neighborUp(peer: PeerKey): void
  neighborDown(peer: PeerKey): void
}

interface PendingRequest {
  /** Tells this request's timeout from that of a later request to the same peer. */
  readonly id: number
  readonly priority: Priority
  /** A retry of an active link lost to a failure. */
  readonly reconnect: boolean
}

/** Read-only view of the membership state, for an admin API. */
export interface HyParViewSnapshot {
  readonly activeCapacity: number
  readonly passiveCapacity: number
  readonly active: readonly PeerKey[]
  readonly passive: readonly PeerKey[]
  /** Peers we sent a NEIGHBOR/JOIN to and await the reply of. */
  readonly pending: readonly PeerKey[]
  /** Failed active peers still being retried. */
  readonly reconnecting: readonly PeerKey[]
}

/** Counters kept by the membership layer (message counts are kept by the topic). */
export interface HyParViewStats {
  /** Active peers dropped to make room for a new one (§4.3). */
  evictions: number
  /** Active links reported down by the driver. */
  linkFailures: number
  /** NEIGHBOR/JOIN requests that failed (link down or timeout). */
  requestFailures: number
  /** NEIGHBOR requests refused by the peer. */
  requestsRefused: number
  /** Failed active links re-established (extension). */
  reconnects: number
  /** Peers named to us (passive candidates, FORWARDJOIN joiners) that `isMember` refused. */
  nonMembers: number
  /** Passive entries that replaced an earlier entry of the same neighbour, which had its share. */
  passiveShareReplacements: number
  /** Bridge requests sent after a round of refusals (extension). */
  bridgesAsked: number
  /** Bridges taken into our spare slot above capacity (extension). */
  bridgesTaken: number
}

export class HyParView {
  readonly #self: PeerKey
  readonly #rng: Rng
  readonly #config: Readonly<HyParViewConfig>
  readonly #listener: NeighborListener
  readonly #isMember: (peer: PeerKey) => boolean
  #activeCapacity = 1
  #passiveCapacity = 1
  readonly #active = new PeerSet()
  readonly #passive = new PassiveView()
  readonly #pending = new Map<PeerKey, PendingRequest>()
  #nextRequestId = 1
  /** Peers we hold a link to (pending or active); pairs every `connect` with one `disconnect`. */
  readonly #links = new Set<PeerKey>()
  /** Passive peers that refused or failed a request this shuffle round; not asked again until the next. */
  readonly #tried = new Set<PeerKey>()
  /** Active peers lost to a failure, with when (insertion order = time order). */
  readonly #lost = new Map<PeerKey, number>()
  /** The sample of our outstanding SHUFFLE; a SHUFFLEREPLY is only taken while one is out. */
  #shuffleSent: readonly PeerKey[] | null = null
  #left = false
  /**
   * The passive view in the order we last heard of each peer through others (a FORWARDJOIN, a
   * shuffle or its reply), least recent first: a bridge goes to the first of these. Hearing
   * from a peer itself (its refusal, its request) does not count: that says nothing about
   * whether our own component still passes it around.
   */
  readonly #heard = new Map<PeerKey, true>()
  /** The node we last joined through (a beacon, for an app's peer): the first choice for a bridge. */
  #contact: PeerKey | undefined
  /** A request of ours was refused since the last shuffle round. */
  #refusedThisRound = false
  /** Set at a shuffle round that follows a round of refusals: the next low-priority request is a bridge. */
  #bridgeDue = false
  /** No bridge is asked for before this time (one per BRIDGE_ROUNDS shuffle rounds). */
  #nextBridgeAt = 0
  readonly stats: HyParViewStats = { evictions: 0, linkFailures: 0, requestFailures: 0, requestsRefused: 0, reconnects: 0, nonMembers: 0, passiveShareReplacements: 0, bridgesAsked: 0, bridgesTaken: 0 }

  /**
   * `isMember` says whether a peer may be kept at all (the account registry, through the
   * driver); it is asked of every peer someone names to us, and again before a passive peer
   * is asked to be a neighbour, since the registry changes.
   */
  constructor(self: PeerKey, networkSize: number, rng: Rng, config: Readonly<HyParViewConfig>, listener: NeighborListener,
    isMember: (peer: PeerKey) => boolean = () => true) {
    this.#self = self
    this.#rng = rng
    this.#config = config
    this.#listener = listener
    this.#isMember = isMember
    this.#resize(networkSize)
  }

  get activeSize(): number {
    return this.#active.size
  }

  isActive(peer: PeerKey): boolean {
    return this.#active.has(peer)
  }

  /** The first shuffle fires at a random point of the first interval, so nodes do not beat in step. */
  start(out: Action[]): void {
    const after = 1 + randomInt(this.#rng, this.#config.shuffleIntervalMs)
    out.push({ type: 'timer', after, timer: { type: 'shuffle' } })
  }

  handleMessage(from: PeerKey, message: HyParViewMessage, out: Action[]): void {
    if (this.#left || from === this.#self) return
    switch (message.type) {
      case 'join': this.#onJoin(from, out); return
      case 'forwardJoin': this.#onForwardJoin(from, message.peer, message.ttl, out); return
      case 'neighbor': this.#onNeighbor(from, message.priority, out); return
      case 'neighborReply': this.#onNeighborReply(from, message.accepted, out); return
      case 'disconnect': this.#onDisconnect(from, message.alive, out); return
      case 'shuffle': this.#onShuffle(from, message.origin, message.ttl, message.peers, out); return
      case 'shuffleReply': this.#onShuffleReply(from, message.peers, out); return
      default: assertNever(message)
    }
  }

  /** Asks `contact` to take us in (§4.2). The driver picks the contact (a bootstrap node). */
  join(contact: PeerKey, out: Action[]): void {
    if (contact === this.#self) throw new SelfContactError()
    this.#left = false
    this.#contact = contact
    if (this.#pending.has(contact)) return
    this.#request(contact, 'high', false, out, 'join')
  }

  /** Leaves: DISCONNECT (alive = false) to every active peer, then forgets everything. */
  leave(out: Action[]): void {
    if (this.#left) return
    for (const peer of this.#active.values().slice()) {
      this.#send(peer, { type: 'disconnect', alive: false }, out)
      this.#removeActive(peer, out)
    }
    this.#pending.clear()
    for (const peer of [...this.#links]) this.#release(peer, out)
    this.#passive.clear()
    this.#heard.clear()
    this.#lost.clear()
    this.#tried.clear()
    this.#shuffleSent = null
    this.#refusedThisRound = false
    this.#bridgeDue = false
    this.#left = true
  }

  /**
   * The number of registered accounts changed: resize both views. A shrinking active view drops
   * random peers into the passive view (with DISCONNECT, alive = true); a growing one refills.
   */
  /** Out-of-band peers (TopicEvent `learn`): into the passive view, then repair the active one. */
  learn(peers: readonly PeerKey[], out: Action[]): void {
    if (this.#left) return
    this.#integrate(peers, [], undefined)
    this.#refill(out)
  }

  setNetworkSize(networkSize: number, out: Action[]): void {
    this.#resize(networkSize)
    while (this.#active.size > this.#activeCapacity) this.#dropRandomActive(undefined, out)
    while (this.#passive.size > this.#passiveCapacity) {
      const victim = this.#passive.random(this.#rng)
      if (victim === undefined) break
      this.#dropPassive(victim)
    }
    this.#refill(out)
  }

  /**
   * The driver lost the link to `peer` or could not open it: the failure detector of §4.3.
   * A failed active peer is replaced from the passive view; a peer we could not reach is dropped
   * from the passive view ("considered failed").
   */
  onLinkDown(peer: PeerKey, now: number, out: Action[]): void {
    if (this.#left) return
    const request = this.#pending.get(peer)
    let lostSlot = false
    if (request !== undefined) {
      this.#failRequest(peer, request)
      lostSlot = true
    }
    if (this.#active.has(peer)) {
      this.#removeActive(peer, out)
      this.stats.linkFailures++
      this.#rememberLost(peer, now)
      lostSlot = true
    } else if (request === undefined) {
      // A send to a passive peer (a SHUFFLEREPLY) failed: it is gone.
      this.#dropPassive(peer)
    }
    this.#release(peer, out)
    if (lostSlot) this.#refill(out)
  }

  /** `peer` is going away, said out of band (a drain notice): as its DISCONNECT, alive = false. */
  onDeparted(peer: PeerKey, out: Action[]): void {
    if (this.#left) return
    this.#onDisconnect(peer, false, out)
  }

  /** A NEIGHBOR/JOIN went unanswered: treat the peer as failed, like a dial failure (§4.3). */
  onNeighborTimeout(peer: PeerKey, requestId: number, out: Action[]): void {
    const request = this.#pending.get(peer)
    if (request === undefined || request.id !== requestId) return
    this.#failRequest(peer, request)
    this.#release(peer, out)
    this.#refill(out)
  }

  /**
   * Periodic work (§4.4): SHUFFLE with a random active peer; retry one failed link (extension);
   * ask passive peers again for any free active slot.
   */
  onShuffleTimer(now: number, out: Action[]): void {
    out.push({ type: 'timer', after: this.#config.shuffleIntervalMs, timer: { type: 'shuffle' } })
    if (this.#left) return
    this.#tried.clear()
    this.#shuffleSent = null
    this.#bridgeDue = this.#config.bridges && this.#refusedThisRound && now >= this.#nextBridgeAt
    this.#refusedThisRound = false
    const target = this.#active.random(this.#rng)
    if (target !== undefined) {
      const others = this.#active.values().filter((peer) => peer !== target)
      const sample = [
        ...sampleRandom(this.#rng, others, this.#config.shuffleActiveCount),
        ...sampleRandom(this.#rng, this.#passive.values(), this.#config.shufflePassiveCount)
      ]
      this.#shuffleSent = sample
      this.#send(target, { type: 'shuffle', origin: this.#self, ttl: this.#config.shuffleTtl, peers: sample }, out)
    }
    this.#retryLost(now, out)
    const bridgesBefore = this.stats.bridgesAsked
    this.#refill(out)
    if (this.stats.bridgesAsked > bridgesBefore) this.#nextBridgeAt = now + BRIDGE_INTERVAL_ROUNDS * this.#config.shuffleIntervalMs
    // Only a round that asked and was refused earns a bridge; a view that filled meanwhile needs none.
    this.#bridgeDue = false
  }

  snapshot(): HyParViewSnapshot {
    return {
      activeCapacity: this.#activeCapacity,
      passiveCapacity: this.#passiveCapacity,
      active: this.#active.values().slice(),
      passive: this.#passive.values().slice(),
      pending: [...this.#pending.keys()],
      reconnecting: [...this.#lost.keys()]
    }
  }

  // ---- message handlers ----------------------------------------------------------------------

  /**
   * §4.2, contact node: add the joiner even if a random member must go, then start a FORWARDJOIN
   * walk of length ARWL through every other active peer.
   */
  #onJoin(joiner: PeerKey, out: Action[]): void {
    this.#addActive(joiner, out)
    this.#send(joiner, { type: 'neighborReply', accepted: true }, out)
    for (const peer of this.#active.values()) {
      if (peer !== joiner) {
        this.#send(peer, { type: 'forwardJoin', peer: joiner, ttl: this.#config.activeRandomWalkLength }, out)
      }
    }
  }

  /**
   * §4.2, a walk hop: at TTL 0 (or with a single active peer) take the joiner as a neighbour; at
   * TTL = PRWL remember it in the passive view; otherwise pass the walk on to a random active peer
   * other than the one it came from.
   */
  #onForwardJoin(from: PeerKey, joiner: PeerKey, ttl: number, out: Action[]): void {
    if (joiner === this.#self || this.#active.has(joiner) || this.#pending.has(joiner)) return
    if (!this.#isMember(joiner)) {
      // Extension: a walk for a peer that may not join would only make others dial it.
      this.stats.nonMembers++
      return
    }
    const hopsLeft = Math.min(ttl, this.#config.activeRandomWalkLength)
    if (hopsLeft <= 0 || this.#active.size <= 1) {
      this.#request(joiner, 'high', false, out, 'neighbor')
      return
    }
    if (hopsLeft === this.#config.passiveRandomWalkLength) this.#addPassive(joiner, from, { heardOf: true })
    const next = this.#active.random(this.#rng, from, joiner)
    if (next === undefined) {
      this.#request(joiner, 'high', false, out, 'neighbor')
      return
    }
    this.#send(next, { type: 'forwardJoin', peer: joiner, ttl: hopsLeft - 1 }, out)
  }

  /**
   * §4.3: a high-priority NEIGHBOR is always accepted, dropping a random member if the view is
   * full; a low-priority one only if there is a free slot. A refused peer is still a live peer,
   * so it goes into the passive view.
   */
  #onNeighbor(from: PeerKey, priority: Priority, out: Action[]): void {
    if (this.#active.has(from)) {
      this.#send(from, { type: 'neighborReply', accepted: true }, out)
      return
    }
    if (priority === 'high' || this.#active.size < this.#activeCapacity) {
      this.#addActive(from, out)
      this.#send(from, { type: 'neighborReply', accepted: true }, out)
      return
    }
    if (priority === 'bridge' && this.#config.bridges && this.#active.size === this.#activeCapacity) {
      // Extension (module comment): the spare slot above capacity, taken without evicting.
      this.stats.bridgesTaken++
      this.#addActive(from, out, { spare: true })
      this.#send(from, { type: 'neighborReply', accepted: true }, out)
      return
    }
    this.#send(from, { type: 'neighborReply', accepted: false }, out)
    this.#addPassive(from)
  }

  /** The answer to our NEIGHBOR or JOIN (§4.3). */
  #onNeighborReply(from: PeerKey, accepted: boolean, out: Action[]): void {
    const request = this.#pending.get(from)
    if (request === undefined) {
      // We gave up on the request (timeout) or took the peer in through its own request. An
      // acceptance we no longer want is undone, so the peer does not keep a one-sided link.
      if (accepted && !this.#active.has(from)) this.#send(from, { type: 'disconnect', alive: true }, out)
      return
    }
    this.#pending.delete(from)
    if (!accepted) {
      // Not retried at once: the next shuffle round asks another passive peer (module comment).
      this.stats.requestsRefused++
      this.#refusedThisRound = true
      this.#tried.add(from)
      this.#release(from, out)
      return
    }
    if (request.priority !== 'high' && this.#active.size >= this.#activeCapacity) {
      // Other peers filled the view while we waited; a low-priority request or a bridge never evicts.
      this.#send(from, { type: 'disconnect', alive: true }, out)
      this.#release(from, out)
      return
    }
    this.#addActive(from, out)
    if (request.reconnect) {
      this.stats.reconnects++
      // One re-established link per failure episode is enough to rejoin the overlay; retrying
      // the rest would only churn views that have since been refilled.
      this.#lost.clear()
    }
  }

  /**
   * §4.3: the sender drops us from its active view. If it stays online (it evicted us) it goes to
   * our passive view; if it is leaving it is forgotten. Either way we try to refill the slot.
   */
  #onDisconnect(from: PeerKey, alive: boolean, out: Action[]): void {
    const wasPending = this.#pending.delete(from)
    const wasActive = this.#active.has(from)
    this.#lost.delete(from)
    if (wasActive) this.#removeActive(from, out)
    if (alive) {
      // It just chose to drop us; asking it back this round would only be refused.
      this.#tried.add(from)
      if (wasActive) this.#addPassive(from)
    } else {
      this.#dropPassive(from)
    }
    this.#release(from, out)
    if (wasActive || wasPending) this.#refill(out)
  }

  /**
   * §4.4: decrease the TTL; while it is above zero and we have another active peer, pass the
   * shuffle on. Otherwise accept it: reply to the origin with as many passive peers as it sent
   * (its own identifier included) and merge its sample into our passive view, evicting first the
   * peers we just sent.
   */
  #onShuffle(from: PeerKey, origin: PeerKey, ttl: number, peers: readonly PeerKey[], out: Action[]): void {
    if (origin === this.#self) return
    const hopsLeft = Math.min(ttl, this.#config.shuffleTtl) - 1
    if (hopsLeft > 0 && this.#active.size > 1) {
      const next = this.#active.random(this.#rng, from, origin)
      if (next !== undefined) {
        this.#send(next, { type: 'shuffle', origin, ttl: hopsLeft, peers }, out)
        return
      }
    }
    const reply = sampleRandom(this.#rng, this.#passive.values(), peers.length + 1)
    this.#send(origin, { type: 'shuffleReply', peers: reply }, out)
    // The sample is counted against `from`, the neighbour that handed it to us: the origin
    // is a field of the message, which anyone can write.
    this.#integrate([origin, ...peers], reply, from)
  }

  /** §4.4: merge the reply, evicting first the peers our shuffle carried away. */
  #onShuffleReply(from: PeerKey, peers: readonly PeerKey[], out: Action[]): void {
    const sent = this.#shuffleSent
    if (sent === null) return // unsolicited: no shuffle of ours is out
    this.#shuffleSent = null
    this.#integrate(peers, sent, from)
    this.#refill(out)
  }

  // ---- view operations -----------------------------------------------------------------------

  #resize(networkSize: number): void {
    this.#activeCapacity = activeViewCapacity(networkSize)
    this.#passiveCapacity = this.#activeCapacity * this.#config.passiveViewFactor
  }

  #send(to: PeerKey, message: HyParViewMessage, out: Action[]): void {
    out.push({ type: 'send', to, message })
  }

  #hold(peer: PeerKey, out: Action[]): void {
    if (this.#links.has(peer)) return
    this.#links.add(peer)
    out.push({ type: 'connect', peer })
  }

  #release(peer: PeerKey, out: Action[]): void {
    if (!this.#links.has(peer) || this.#active.has(peer) || this.#pending.has(peer)) return
    this.#links.delete(peer)
    out.push({ type: 'disconnect', peer })
  }

  #request(peer: PeerKey, priority: Priority, reconnect: boolean, out: Action[], kind: 'join' | 'neighbor'): void {
    const id = this.#nextRequestId++
    this.#pending.set(peer, { id, priority, reconnect })
    this.#hold(peer, out)
    this.#send(peer, kind === 'join' ? { type: 'join' } : { type: 'neighbor', priority }, out)
    out.push({ type: 'timer', after: this.#config.neighborRequestTimeoutMs, timer: { type: 'neighborTimeout', peer, request: id } })
  }

  /**
   * A request failed (dial failure, reset, timeout): "the node is considered failed and removed
   * from the passive view" (§4.3). A failed retry of a lost link stays in the retry list.
   */
  #failRequest(peer: PeerKey, request: PendingRequest): void {
    this.#pending.delete(peer)
    this.#tried.add(peer)
    this.stats.requestFailures++
    if (!request.reconnect) this.#dropPassive(peer)
    // A contact that cannot be reached is no bridge; the driver joins through another if need be.
    if (peer === this.#contact && request.priority === 'bridge') this.#contact = undefined
  }

  /**
   * Adds to the active view, dropping a random member first if it is full (§4.3); a bridge
   * (`spare`) takes the slot above capacity instead.
   */
  #addActive(peer: PeerKey, out: Action[], options: { spare?: boolean } = {}): void {
    if (this.#active.has(peer)) return
    if (options.spare !== true && this.#active.size >= this.#activeCapacity) this.#dropRandomActive(peer, out)
    this.#dropPassive(peer)
    this.#pending.delete(peer)
    this.#lost.delete(peer)
    this.#active.add(peer)
    this.#hold(peer, out)
    out.push({ type: 'neighborUp', peer })
    this.#listener.neighborUp(peer)
  }

  #removeActive(peer: PeerKey, out: Action[]): void {
    this.#active.delete(peer)
    out.push({ type: 'neighborDown', peer })
    this.#listener.neighborDown(peer)
  }

  /** "dropRandomElementFromActiveView" (§4.3): DISCONNECT a random member and keep it as passive. */
  #dropRandomActive(except: PeerKey | undefined, out: Action[]): void {
    const victim = this.#active.random(this.#rng, except)
    if (victim === undefined) return
    this.stats.evictions++
    this.#send(victim, { type: 'disconnect', alive: true }, out)
    this.#removeActive(victim, out)
    this.#release(victim, out)
    this.#addPassive(victim)
  }

  /**
   * Into the passive view, evicting a random member when it is full. `source` is the neighbour
   * that named `peer` (none: the peer vouched for itself). `heardOf`: others told us of it, so
   * a peer already kept moves to the back of the bridge order.
   */
  #addPassive(peer: PeerKey, source?: PeerKey, options: { heardOf?: boolean } = {}): void {
    if (peer === this.#self || this.#active.has(peer)) return
    if (this.#passive.has(peer)) {
      if (options.heardOf === true) this.#touchPassive(peer)
      return
    }
    if (!this.#admitsPassive(peer)) return
    if (source !== undefined && this.#replaceOwn(peer, source)) return
    if (this.#passive.size >= this.#passiveCapacity) {
      const victim = this.#passive.random(this.#rng)
      if (victim !== undefined) this.#dropPassive(victim)
    }
    this.#passive.add(peer, source)
    this.#heard.set(peer, true)
  }

  /** Others told us of a passive peer again: it moves to the back of the bridge order. */
  #touchPassive(peer: PeerKey): void {
    if (!this.#passive.has(peer)) return
    this.#heard.delete(peer)
    this.#heard.set(peer, true)
  }

  #dropPassive(peer: PeerKey): void {
    this.#passive.delete(peer)
    this.#heard.delete(peer)
  }

  /**
   * §4.4 merge: skip ourselves, known peers and non-members; when full, evict `evictFirst`
   * members, then random ones. `source` is the neighbour that named `peers` (none: learnt out
   * of band); once it has its share, each further peer replaces one of its own.
   */
  #integrate(peers: readonly PeerKey[], evictFirst: readonly PeerKey[], source: PeerKey | undefined): void {
    let next = 0
    for (const peer of peers) {
      if (this.#passive.has(peer)) this.#touchPassive(peer)
      if (peer === this.#self || this.#active.has(peer) || this.#passive.has(peer)) continue
      if (!this.#admitsPassive(peer)) continue
      if (source !== undefined && this.#replaceOwn(peer, source)) continue
      if (this.#passive.size >= this.#passiveCapacity) {
        let victim: PeerKey | undefined
        while (victim === undefined && next < evictFirst.length) {
          const candidate = evictFirst[next++] as PeerKey
          if (this.#passive.has(candidate)) victim = candidate
        }
        victim ??= this.#passive.random(this.#rng)
        if (victim === undefined) return // capacity 0 cannot happen; views are ≥ 1
        this.#dropPassive(victim)
      }
      this.#passive.add(peer, source)
      this.#heard.set(peer, true)
    }
  }

  #admitsPassive(peer: PeerKey): boolean {
    if (this.#isMember(peer)) return true
    this.stats.nonMembers++
    return false
  }

  /** Most passive entries one neighbour may have named. */
  #passiveShare(): number {
    // Less a rounding error: 0.2 × 30 is 6.000000000000001 in binary floating point.
    return Math.max(1, Math.ceil(this.#config.maxPassiveShare * this.#passiveCapacity - 1e-9))
  }

  /**
   * If `source` already named its share of the passive view, `peer` takes the place of a random
   * one of those entries (true); otherwise nothing happens (false).
   */
  #replaceOwn(peer: PeerKey, source: PeerKey): boolean {
    if (this.#passive.countFrom(source) < this.#passiveShare()) return false
    const victim = this.#passive.randomFrom(this.#rng, source)
    if (victim === undefined) return false
    this.#dropPassive(victim)
    this.#passive.add(peer, source)
    this.#heard.set(peer, true)
    this.stats.passiveShareReplacements++
    return true
  }

  /**
   * §4.3 repair: ask random passive peers to fill every free active slot. Requests that bring the
   * active view up to the high-priority level go at high priority (they cannot be refused); the
   * rest at low priority (the paper uses high only when the view is empty).
   */
  #refill(out: Action[]): void {
    if (this.#left) return
    const free = this.#activeCapacity - this.#active.size - this.#pending.size
    if (free <= 0) return
    // The registry changes: a peer that stopped being a member is dropped, not asked.
    for (const peer of this.#passive.values().filter((peer) => !this.#isMember(peer))) this.#dropPassive(peer)
    const candidates = this.#passive.values().filter((peer) => !this.#pending.has(peer) && !this.#tried.has(peer))
    let pendingHigh = 0
    for (const request of this.#pending.values()) if (request.priority === 'high') pendingHigh++
    let high = this.#highPriorityLevel() - this.#active.size - pendingHigh
    let asks = free
    if (this.#bridgeDue && high < free) {
      // One bridge instead of a low-priority request: to the node we joined through, else to the
      // passive peer we heard of least recently.
      this.#bridgeDue = false
      const eligible = (peer: PeerKey): boolean => !this.#active.has(peer) && !this.#pending.has(peer) && !this.#tried.has(peer)
      const bridge = this.#contact !== undefined && eligible(this.#contact) ? this.#contact : this.#leastRecentlyHeard(eligible)
      if (bridge !== undefined) {
        this.stats.bridgesAsked++
        this.#request(bridge, 'bridge', false, out, 'neighbor')
        const index = candidates.indexOf(bridge)
        if (index >= 0) candidates.splice(index, 1)
        asks--
      }
    }
    for (const peer of sampleRandom(this.#rng, candidates, asks)) {
      this.#request(peer, high > 0 ? 'high' : 'low', false, out, 'neighbor')
      high--
    }
  }

  /** The passive peer passing `filter` we heard of least recently. */
  #leastRecentlyHeard(filter: (peer: PeerKey) => boolean): PeerKey | undefined {
    for (const peer of this.#heard.keys()) if (filter(peer)) return peer
    return undefined
  }

  /** Below this many active peers, repair asks with high priority. */
  #highPriorityLevel(): number {
    return Math.max(1, Math.ceil(this.#config.highPriorityFraction * this.#activeCapacity))
  }

  #rememberLost(peer: PeerKey, now: number): void {
    if (this.#config.reconnectWindowMs === 0) return
    this.#lost.delete(peer)
    if (this.#lost.size >= this.#activeCapacity) {
      const oldest = this.#lost.keys().next()
      if (oldest.done !== true) this.#lost.delete(oldest.value)
    }
    this.#lost.set(peer, now)
  }

  /** Extension: retry one failed active link per round while it is within the window. */
  #retryLost(now: number, out: Action[]): void {
    for (const [peer, at] of this.#lost) {
      if (now - at < this.#config.reconnectWindowMs) break
      this.#lost.delete(peer)
    }
    const candidates = [...this.#lost.keys()].filter((peer) => !this.#active.has(peer) && !this.#pending.has(peer))
    const peer = pickRandom(this.#rng, candidates)
    if (peer !== undefined) this.#request(peer, 'high', true, out, 'neighbor')
  }
}
