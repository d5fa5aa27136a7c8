/**
 * One overlay topic: HyParView membership and Plumtree dissemination behind a single
 * `handle(event, now) → actions` entry point (the shape of iroh-gossip's `proto::topic`).
 *
 * HyParView owns the active view; every change to it is passed to Plumtree (neighbour up →
 * eager, neighbour down → forgotten) and reported to the driver as a `neighborUp`/`neighborDown`
 * action. Nothing here does I/O: time comes in as `now` (ms), randomness from the injected RNG.
 */
import { TopicNotStartedError } from './errors.ts'
import { HyParView, resolveHyParViewConfig } from './hyparview.ts'
import type { HyParViewConfig, HyParViewSnapshot, HyParViewStats } from './hyparview.ts'
import { assertNever, countsByType, isHyParViewMessage } from './messages.ts'
import type { Action, MessageId, MessageType, PeerKey, TopicEvent } from './messages.ts'
import { Plumtree, resolvePlumtreeConfig } from './plumtree.ts'
import type { PlumtreeConfig, PlumtreeSnapshot, PlumtreeStats } from './plumtree.ts'
import type { Rng } from './rng.ts'

/** Options of a topic; every field is optional and defaults to constants.ts. */
export interface TopicConfig {
  /** Membership options. */
  hyparview?: Partial<HyParViewConfig>
  /** Dissemination options. */
  plumtree?: Partial<PlumtreeConfig>
}

export interface TopicOptions {
  /** Our own peer key. */
  self: PeerKey
  /** Number of registered accounts (N); sizes the views. Change it with `setNetworkSize`. */
  networkSize: number
  /** Seeded random source; the topic draws every random choice from it. */
  rng: Rng
  /** @default {} (all defaults from constants.ts) */
  config?: TopicConfig
  /**
   * Whether a peer may be kept in the views at all: a beacon passes its account registry. Asked
   * of every peer named to us (SHUFFLE samples, FORWARDJOIN joiners) and before a passive peer
   * is asked to be a neighbour. Who may open a link is still the driver's check.
   * @default every peer is a member (the simulator; a peer SDK that has no registry)
   */
  isMember?: (peer: PeerKey) => boolean
}

/** Everything an admin API shows about a topic. */
export interface TopicSnapshot extends HyParViewSnapshot, PlumtreeSnapshot {
  readonly self: PeerKey
  readonly networkSize: number
}

/** Counters for metrics. All are totals since the topic was created. */
export interface TopicCounters {
  /** Messages sent, by type. */
  readonly sent: Readonly<Record<MessageType, number>>
  /** Messages received, by type. */
  readonly received: Readonly<Record<MessageType, number>>
  /** IHAVE messages sent, the IDs they carried, and the largest batch. */
  readonly ihaveBatches: { readonly count: number, readonly entries: number, readonly max: number }
  readonly membership: Readonly<HyParViewStats>
  readonly dissemination: Readonly<PlumtreeStats>
}

export class Topic {
  readonly #self: PeerKey
  #networkSize: number
  readonly #hyparview: HyParView
  readonly #plumtree: Plumtree
  #started = false
  readonly #sent = countsByType()
  readonly #received = countsByType()
  readonly #ihave = { count: 0, entries: 0, max: 0 }

  constructor(options: TopicOptions) {
    const hyparviewConfig = resolveHyParViewConfig(options.config?.hyparview)
    const plumtreeConfig = resolvePlumtreeConfig(options.config?.plumtree)
    this.#self = options.self
    this.#networkSize = options.networkSize
    const hyparview = new HyParView(options.self, options.networkSize, options.rng, hyparviewConfig, {
      neighborUp: (peer) => { this.#plumtree.neighborUp(peer) },
      neighborDown: (peer) => { this.#plumtree.neighborDown(peer) }
    }, options.isMember)
    this.#hyparview = hyparview
    this.#plumtree = new Plumtree(options.self, plumtreeConfig)
  }

  /** Our peer key. */
  get self(): PeerKey {
    return this.#self
  }

  /** Size of the active view (cheap; for drivers deciding to rejoin). */
  get activeSize(): number {
    return this.#hyparview.activeSize
  }

  /** Whether `peer` is an active neighbour. */
  isNeighbor(peer: PeerKey): boolean {
    return this.#hyparview.isActive(peer)
  }

  /** Arms the periodic timers. Call once, before anything else. */
  start(_now: number): Action[] {
    const out: Action[] = []
    if (this.#started) return out
    this.#started = true
    this.#hyparview.start(out)
    return out
  }

  /** Feeds one event in; returns what the driver must do, in order. */
  handle(event: TopicEvent, now: number): Action[] {
    this.#requireStarted()
    const out: Action[] = []
    switch (event.type) {
      case 'message': {
        const { from, message } = event
        this.#received[message.type]++
        if (isHyParViewMessage(message)) this.#hyparview.handleMessage(from, message, out)
        else this.#plumtree.handleMessage(from, message, this.#hyparview.isActive(from), now, out)
        break
      }
      case 'timer': {
        const { timer } = event
        switch (timer.type) {
          case 'shuffle': this.#hyparview.onShuffleTimer(now, out); break
          case 'neighborTimeout': this.#hyparview.onNeighborTimeout(timer.peer, timer.request, out); break
          case 'ihaveFlush': this.#plumtree.onIHaveFlush(out); break
          case 'graft': this.#plumtree.onGraftTimer(timer.messageId, out); break
          case 'cacheExpiry': this.#plumtree.onCacheExpiry(now, out); break
          default: assertNever(timer)
        }
        break
      }
      case 'linkDown': this.#hyparview.onLinkDown(event.peer, now, out); break
      case 'departed': this.#hyparview.onDeparted(event.peer, out); break
      case 'join': this.#hyparview.join(event.contact, out); break
      case 'leave': this.#hyparview.leave(out); break
      case 'learn': this.#hyparview.learn(event.peers, out); break
      case 'congested': this.#plumtree.congested(event.peer); break
      case 'validated': this.#plumtree.validated(event.messageId, event.verdict, now, out); break
      default: assertNever(event)
    }
    this.#count(out)
    return out
  }

  /**
   * Broadcasts `payload` under the application's `messageId` (a content hash). Returns no
   * actions if the ID was already seen. The topic does not deliver its own broadcasts back.
   * Throws {@link PayloadTooLargeError} above `plumtree.maxPayloadBytes`.
   */
  broadcast(messageId: MessageId, payload: Uint8Array, now: number): Action[] {
    this.#requireStarted()
    const out: Action[] = []
    this.#plumtree.broadcast(messageId, payload, now, out)
    this.#count(out)
    return out
  }

  /** The number of registered accounts changed; the views resize (see HyParView.setNetworkSize). */
  setNetworkSize(networkSize: number, _now: number): Action[] {
    const out: Action[] = []
    this.#hyparview.setNetworkSize(networkSize, out)
    this.#networkSize = networkSize
    this.#count(out)
    return out
  }

  snapshot(): TopicSnapshot {
    return {
      self: this.#self,
      networkSize: this.#networkSize,
      ...this.#hyparview.snapshot(),
      ...this.#plumtree.snapshot()
    }
  }

  counters(): TopicCounters {
    return {
      sent: { ...this.#sent },
      received: { ...this.#received },
      ihaveBatches: { ...this.#ihave },
      membership: { ...this.#hyparview.stats },
      dissemination: this.#plumtree.stats
    }
  }

  #requireStarted(): void {
    if (!this.#started) throw new TopicNotStartedError()
  }

  #count(actions: readonly Action[]): void {
    for (const action of actions) {
      if (action.type !== 'send') continue
      const { message } = action
      this.#sent[message.type]++
      if (message.type === 'ihave') {
        const n = message.entries.length
        this.#ihave.count++
        this.#ihave.entries += n
        if (n > this.#ihave.max) this.#ihave.max = n
      }
    }
  }
}

/** Creates the state machine of one topic. Call `start(now)` on it before anything else. */
export function createTopic(options: TopicOptions): Topic {
  return new Topic(options)
}
