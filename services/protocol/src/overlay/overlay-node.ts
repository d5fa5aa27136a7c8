/**
 * A node of the overlay: every topic it takes part in, behind one `handle(event, now) → actions`
 * entry point, as {@link Topic} is for one topic. What used to live in the libp2p driver and was
 * re-implemented by the simulator is here, so both run the same code:
 *
 * - routing: a frame goes to the topic it names; a frame for a topic we are not in is reported
 *   (`unknownTopic`) and goes nowhere;
 * - rejoin after loss: a topic whose active view has stayed empty for `rejoinIntervalMs` joins
 *   again through a contact the node picks from the bootstrap list the driver provides;
 * - address lookups: a peer we have no address for is looked up through whoever told us about
 *   it, then the bootstrap contacts; one nobody had an address for is not looked up (nor
 *   dialled) again for a while, longer after each miss;
 * - the departing record: a node that said it is draining is forgotten by every topic and no
 *   link to it is opened until a deadline.
 *
 * The driver keeps what needs I/O: links, streams, queues, budgets, running validators, the
 * drain notice on the wire. Nothing here does I/O: time comes in as `now` (ms), randomness from
 * a seeded RNG. Every map is bounded (oldest entry dropped).
 */
import { setNewest } from '../bounded-map.ts'
import { OverlayConfigError, UnknownTopicError } from './errors.ts'
import { assertNever } from './messages.ts'
import type { Action, Message, MessageId, PeerKey, Timer, TopicEvent, Verdict } from './messages.ts'
import { createRng, deriveSeed, pickRandom } from './rng.ts'
import type { Rng } from './rng.ts'
import { createTopic } from './topic.ts'
import type { Topic, TopicConfig, TopicCounters, TopicSnapshot } from './topic.ts'

/** Rules of the node itself (the topics' own are {@link TopicConfig}). */
export interface OverlayNodeConfig {
  /**
   * A topic whose active view was seen empty at every tick for this long joins again through a
   * bootstrap contact (and again after as long, while it stays empty). The view is sampled at
   * `tick` events, so the rejoin comes at the first tick at least this long after the first
   * tick that saw it empty. @default 5000 (guess)
   */
  rejoinIntervalMs: number
  /**
   * A node that said it is draining is not linked to again for this long (guess: well past any
   * drain deadline, PHAROS_SHUTDOWN_DRAIN_MS, and short enough that a worker restarted under
   * the same peer ID is back in the views within a minute). @default 60000
   */
  departingMs: number
  /**
   * After a lookup found no address for a peer, it is not looked up (nor dialled) again for
   * this long, `unreachableGrowth` times longer on each further miss, up to `unreachableMaxMs`.
   * Short because a miss right after a peer joined may be only a race with identify at the
   * peer asked (with 60 s, a 20-peer overlay in overlay-libp2p.test.ts once stayed split for
   * over a minute); a dial-out-only peer stays that way, and the growth, not the first wait,
   * bounds the lookups it costs (2, 8, 32, 128, 512 s, then 30 min). @default 2000 (guess)
   */
  unreachableFirstMs: number
  /** @default 4 (guess) */
  unreachableGrowth: number
  /** @default 1800000 (30 min, guess) */
  unreachableMaxMs: number
  /**
   * Entries kept in each of the node's peer maps (who told us about a peer, peers without an
   * address, departing nodes); past it the oldest is dropped. @default 10000 (guess)
   */
  peerMapCap: number
}

export const DEFAULT_OVERLAY_NODE_CONFIG: Readonly<OverlayNodeConfig> = Object.freeze({
  rejoinIntervalMs: 5000,
  departingMs: 60_000,
  unreachableFirstMs: 2000,
  unreachableGrowth: 4,
  unreachableMaxMs: 30 * 60_000,
  peerMapCap: 10_000
})

export interface OverlayNodeOptions {
  /** Our own peer key. */
  self: PeerKey
  /** Topic names, as frames carry them (the libp2p driver: `/<network>/<topic>`). */
  topics: readonly string[]
  /** Number of registered accounts (N); change it with `setNetworkSize`. */
  networkSize: number
  /**
   * Seed of the topics' RNGs: topic i (in `topics` order) draws from `createRng(seed + i)`;
   * the node's own choices (a rejoin contact) from a stream derived from it.
   */
  seed: number
  /** @default {} (constants.ts) */
  topicConfig?: TopicConfig
  /** @default DEFAULT_OVERLAY_NODE_CONFIG */
  config?: Partial<OverlayNodeConfig>
  /** Whether a peer may be kept in the views (see TopicOptions.isMember). @default everyone */
  isMember?: (peer: PeerKey) => boolean
  /**
   * Contacts to rejoin through and to ask for addresses: asked only when one is needed, so a
   * driver may compute it then. @default none
   */
  bootstrap?: () => readonly PeerKey[]
}

/** What the driver feeds into the node. */
export type OverlayNodeEvent =
  /** A decoded frame from `from` (the authenticated remote peer), for the topic it names. */
  | { readonly type: 'frame', readonly topic: string, readonly from: PeerKey, readonly message: Message }
  /** A timer a topic's `timer` action asked for fired. */
  | { readonly type: 'timer', readonly topic: string, readonly timer: Timer }
  /** The application's verdict on a topic's `validate` action. */
  | { readonly type: 'validated', readonly topic: string, readonly messageId: MessageId, readonly verdict: Verdict }
  /** Join a topic through a contact. */
  | { readonly type: 'join', readonly topic: string, readonly contact: PeerKey }
  /** Leave every topic gracefully. */
  | { readonly type: 'leave' }
  /** The link to `peer` failed: every topic hears of it. */
  | { readonly type: 'linkDown', readonly peer: PeerKey }
  /** `peer` is gone for good (dropped for misbehaving): every topic forgets it. */
  | { readonly type: 'departed', readonly peer: PeerKey }
  /**
   * `peer` said it is draining (a drain notice, or a link refused as `draining`): every topic
   * forgets it, and no link to it is opened for `departingMs`.
   */
  | { readonly type: 'draining', readonly peer: PeerKey }
  /** Sending to `peer` cannot keep up: every topic stops pushing payloads to it. */
  | { readonly type: 'congested', readonly peer: PeerKey }
  /** Peers learnt out of band, for every topic's passive view. */
  | { readonly type: 'learn', readonly peers: readonly PeerKey[] }
  /** Periodic upkeep: the rejoin rule, expired departing records. The simulator ticks every second. */
  | { readonly type: 'tick' }
  /** The driver would dial `peer` but knows no address for it: `lookup` or `unreachable` comes back. */
  | { readonly type: 'addressesNeeded', readonly peer: PeerKey }
  /** The outcome of a `lookup` action: whether some asked peer gave addresses. */
  | { readonly type: 'lookupDone', readonly peer: PeerKey, readonly found: boolean }

/** A topic's action, tagged with the topic (timers come back with it). */
export type TopicAction = Action & { readonly topic: string }

/** What the node asks the driver to do, in order. */
export type OverlayNodeAction =
  | TopicAction
  /** A frame named a topic we are not in; it was dropped. Count it. */
  | { readonly type: 'unknownTopic', readonly topic: string, readonly from: PeerKey }
  /** A topic's active view stayed empty: it is rejoining through `contact` (its `join` actions follow). */
  | { readonly type: 'rejoin', readonly topic: string, readonly contact: PeerKey }
  /** Ask `ask`, in order, for `peer`'s addresses; answer with `lookupDone`. */
  | { readonly type: 'lookup', readonly peer: PeerKey, readonly ask: readonly PeerKey[] }
  /** No address for `peer` was found recently: do not dial it before `until`. */
  | { readonly type: 'unreachable', readonly peer: PeerKey, readonly until: number }
  /** `peer` is draining: close every link to it now, dropping what is queued. */
  | { readonly type: 'dropLinks', readonly peer: PeerKey }

/** Counters of the node itself (each topic has its own). Totals since creation. */
export interface OverlayNodeCounters {
  /** Frames for a topic we are not in. */
  unknownTopic: number
  /** Rejoins the rule made. */
  rejoins: number
  /** `lookup` actions given. */
  lookups: number
  /** Lookups not made because the peer was found unreachable recently. */
  lookupsSkipped: number
  /** Connects and sends a topic aimed at a departing node, turned into a failed link. */
  departingRefused: number
}

interface TopicState {
  readonly topic: Topic
  /** Since when the view has been seen empty at ticks (−1: it was not at the last tick). */
  emptySince: number
}

function resolveConfig(partial: Partial<OverlayNodeConfig> | undefined): OverlayNodeConfig {
  const config = { ...DEFAULT_OVERLAY_NODE_CONFIG, ...partial }
  for (const key of ['rejoinIntervalMs', 'departingMs', 'unreachableFirstMs', 'unreachableMaxMs', 'peerMapCap'] as const) {
    if (!Number.isFinite(config[key]) || config[key] < 1) throw new OverlayConfigError(key, config[key], 'a number ≥ 1')
  }
  if (!Number.isFinite(config.unreachableGrowth) || config.unreachableGrowth < 1) throw new OverlayConfigError('unreachableGrowth', config.unreachableGrowth, 'a number ≥ 1')
  return config
}

export class OverlayNode {
  readonly #self: PeerKey
  readonly #config: OverlayNodeConfig
  readonly #topics = new Map<string, TopicState>()
  readonly #rng: Rng
  readonly #bootstrap: () => readonly PeerKey[]
  /** Who told us about a peer we may not have addresses for. */
  readonly #mentionedBy = new Map<PeerKey, PeerKey>()
  /** Peers no lookup found an address for: when to ask again, and the wait after the next miss. */
  readonly #unreachable = new Map<PeerKey, { until: number, nextWaitMs: number }>()
  /** Nodes that said they are draining, until when no link to them is opened. */
  readonly #departing = new Map<PeerKey, number>()
  readonly #counters: OverlayNodeCounters = { unknownTopic: 0, rejoins: 0, lookups: 0, lookupsSkipped: 0, departingRefused: 0 }
  #started = false

  constructor(options: OverlayNodeOptions) {
    this.#self = options.self
    this.#config = resolveConfig(options.config)
    this.#bootstrap = options.bootstrap ?? (() => [])
    let stream = 0
    for (const name of options.topics) {
      if (this.#topics.has(name)) continue
      const topic = createTopic({
        self: options.self,
        networkSize: options.networkSize,
        rng: createRng(options.seed + stream++),
        ...(options.isMember === undefined ? {} : { isMember: options.isMember }),
        ...(options.topicConfig === undefined ? {} : { config: options.topicConfig })
      })
      this.#topics.set(name, { topic, emptySince: -1 })
    }
    this.#rng = createRng(deriveSeed(options.seed, 0x6e6f_6465))
  }

  /** Our peer key. */
  get self(): PeerKey {
    return this.#self
  }

  /** The rules in force. */
  get config(): Readonly<OverlayNodeConfig> {
    return this.#config
  }

  /** Topic names, in the order given. */
  get topicNames(): string[] {
    return [...this.#topics.keys()]
  }

  hasTopic(name: string): boolean {
    return this.#topics.has(name)
  }

  /** A topic's state machine (read it; feed it only through the node). */
  topic(name: string): Topic | undefined {
    return this.#topics.get(name)?.topic
  }

  /** Whether some topic has `peer` as an active neighbour. */
  isNeighbor(peer: PeerKey): boolean {
    for (const { topic } of this.#topics.values()) if (topic.isNeighbor(peer)) return true
    return false
  }

  /** Whether some topic has `peer` as a neighbour or awaits its reply to a request. */
  isLinked(peer: PeerKey): boolean {
    for (const { topic } of this.#topics.values()) {
      if (topic.isNeighbor(peer) || topic.snapshot().pending.includes(peer)) return true
    }
    return false
  }

  /** Whether `peer` said it is draining less than `departingMs` ago. */
  isDeparting(peer: PeerKey, now: number): boolean {
    const until = this.#departing.get(peer)
    return until !== undefined && until > now
  }

  /** Arms every topic's timers. Call once, before anything else. */
  start(now: number): OverlayNodeAction[] {
    const out: OverlayNodeAction[] = []
    if (this.#started) return out
    this.#started = true
    for (const [name, state] of this.#topics) this.#run(name, state.topic.start(now), now, out)
    return out
  }

  /** Feeds one event in; returns what the driver must do, in order. */
  handle(event: OverlayNodeEvent, now: number): OverlayNodeAction[] {
    const out: OverlayNodeAction[] = []
    switch (event.type) {
      case 'frame': {
        const state = this.#topics.get(event.topic)
        if (state === undefined) {
          this.#counters.unknownTopic++
          out.push({ type: 'unknownTopic', topic: event.topic, from: event.from })
          break
        }
        this.#noteMentions(event.from, event.message)
        this.#feed(event.topic, { type: 'message', from: event.from, message: event.message }, now, out)
        break
      }
      case 'timer': this.#feed(event.topic, { type: 'timer', timer: event.timer }, now, out); break
      case 'validated': this.#feed(event.topic, { type: 'validated', messageId: event.messageId, verdict: event.verdict }, now, out); break
      case 'join': this.#feed(event.topic, { type: 'join', contact: event.contact }, now, out); break
      case 'leave': this.#feedAll({ type: 'leave' }, now, out); break
      case 'linkDown': this.#feedAll({ type: 'linkDown', peer: event.peer }, now, out); break
      case 'departed': this.#feedAll({ type: 'departed', peer: event.peer }, now, out); break
      case 'draining': {
        if (event.peer === this.#self || this.isDeparting(event.peer, now)) break
        setNewest(this.#departing, event.peer, now + this.#config.departingMs, this.#config.peerMapCap)
        out.push({ type: 'dropLinks', peer: event.peer })
        this.#feedAll({ type: 'departed', peer: event.peer }, now, out)
        break
      }
      case 'congested': this.#feedAll({ type: 'congested', peer: event.peer }, now, out); break
      case 'learn': this.#feedAll({ type: 'learn', peers: event.peers }, now, out); break
      case 'tick': this.#tick(now, out); break
      case 'addressesNeeded': this.#addressesNeeded(event.peer, now, out); break
      case 'lookupDone': this.#lookupDone(event.peer, event.found, now); break
      default: assertNever(event)
    }
    return out
  }

  /** Broadcasts `payload` on a topic (see Topic.broadcast). Throws for a topic we are not in. */
  broadcast(topic: string, messageId: MessageId, payload: Uint8Array, now: number): OverlayNodeAction[] {
    const out: OverlayNodeAction[] = []
    this.#run(topic, this.#require(topic).broadcast(messageId, payload, now), now, out)
    return out
  }

  /** N changed: every topic resizes its views. */
  setNetworkSize(networkSize: number, now: number): OverlayNodeAction[] {
    const out: OverlayNodeAction[] = []
    for (const [name, { topic }] of this.#topics) this.#run(name, topic.setNetworkSize(networkSize, now), now, out)
    return out
  }

  snapshot(): Record<string, TopicSnapshot> {
    const views: Record<string, TopicSnapshot> = {}
    for (const [name, { topic }] of this.#topics) views[name] = topic.snapshot()
    return views
  }

  topicCounters(): Record<string, TopicCounters> {
    const counters: Record<string, TopicCounters> = {}
    for (const [name, { topic }] of this.#topics) counters[name] = topic.counters()
    return counters
  }

  counters(): OverlayNodeCounters {
    return { ...this.#counters }
  }

  /** How many entries each bounded map holds now (tests, admin). */
  sizes(): { mentionedBy: number, unreachable: number, departing: number } {
    return { mentionedBy: this.#mentionedBy.size, unreachable: this.#unreachable.size, departing: this.#departing.size }
  }

  #require(name: string): Topic {
    const state = this.#topics.get(name)
    if (state === undefined) throw new UnknownTopicError(name)
    return state.topic
  }

  #feed(name: string, event: TopicEvent, now: number, out: OverlayNodeAction[]): void {
    this.#run(name, this.#require(name).handle(event, now), now, out)
  }

  #feedAll(event: TopicEvent, now: number, out: OverlayNodeAction[]): void {
    for (const [name, { topic }] of this.#topics) this.#run(name, topic.handle(event, now), now, out)
  }

  /**
   * Tags a topic's actions with it. A link to a departing node is not opened: a connect or
   * send aimed at one is dropped and the topic told at once that the link failed, as a dial
   * refused with `draining` would tell it later.
   */
  #run(name: string, actions: readonly Action[], now: number, out: OverlayNodeAction[]): void {
    let refused: Set<PeerKey> | undefined
    for (const action of actions) {
      if ((action.type === 'connect' || action.type === 'send') && this.#departing.size > 0) {
        const peer = action.type === 'connect' ? action.peer : action.to
        if (this.isDeparting(peer, now)) {
          this.#counters.departingRefused++
          ;(refused ??= new Set()).add(peer)
          continue
        }
      }
      out.push({ ...action, topic: name })
    }
    const topic = this.#topics.get(name)?.topic
    if (refused === undefined || topic === undefined) return
    for (const peer of refused) this.#run(name, topic.handle({ type: 'linkDown', peer }, now), now, out)
  }

  /** The rejoin rule, then expired departing records. */
  #tick(now: number, out: OverlayNodeAction[]): void {
    let contacts: PeerKey[] | undefined
    for (const [name, state] of this.#topics) {
      if (state.topic.activeSize > 0) {
        state.emptySince = -1
        continue
      }
      if (state.emptySince < 0) {
        state.emptySince = now
        continue
      }
      if (now - state.emptySince < this.#config.rejoinIntervalMs) continue
      contacts ??= this.#bootstrap().filter((peer) => peer !== this.#self && !this.isDeparting(peer, now))
      // A single contact is taken without a draw, so a driver that picks it keeps the node's stream.
      const contact = contacts.length === 1 ? contacts[0] : pickRandom(this.#rng, contacts)
      if (contact === undefined) continue
      this.#counters.rejoins++
      state.emptySince = now
      out.push({ type: 'rejoin', topic: name, contact })
      this.#feed(name, { type: 'join', contact }, now, out)
    }
    for (const [peer, until] of this.#departing) if (until <= now) this.#departing.delete(peer)
  }

  #noteMentions(from: PeerKey, message: Message): void {
    const mentioned: readonly PeerKey[] = message.type === 'forwardJoin'
      ? [message.peer]
      : message.type === 'shuffle'
        ? [message.origin, ...message.peers]
        : message.type === 'shuffleReply' ? message.peers : []
    for (const peer of mentioned) {
      if (peer !== this.#self) setNewest(this.#mentionedBy, peer, from, this.#config.peerMapCap)
    }
  }

  /** Whoever told us about `peer`, then the bootstrap contacts, unless a lookup missed it recently. */
  #addressesNeeded(peer: PeerKey, now: number, out: OverlayNodeAction[]): void {
    const missed = this.#unreachable.get(peer)
    if (missed !== undefined && missed.until > now) {
      this.#counters.lookupsSkipped++
      out.push({ type: 'unreachable', peer, until: missed.until })
      return
    }
    const ask = new Set([this.#mentionedBy.get(peer), ...this.#bootstrap()].filter((asker): asker is PeerKey => asker !== undefined && asker !== peer && asker !== this.#self))
    this.#counters.lookups++
    out.push({ type: 'lookup', peer, ask: [...ask] })
  }

  #lookupDone(peer: PeerKey, found: boolean, now: number): void {
    if (found) {
      this.#unreachable.delete(peer)
      return
    }
    const waitMs = this.#unreachable.get(peer)?.nextWaitMs ?? this.#config.unreachableFirstMs
    const next = Math.min(this.#config.unreachableGrowth * waitMs, this.#config.unreachableMaxMs)
    setNewest(this.#unreachable, peer, { until: now + waitMs, nextWaitMs: next }, this.#config.peerMapCap)
  }
}

/** Creates a multi-topic node. Call `start(now)` on it before anything else. */
export function createOverlayNode(options: OverlayNodeOptions): OverlayNode {
  return new OverlayNode(options)
}
