/**
 * The libp2p driver of the overlay: a thin adapter that decodes frames, feeds the IO-free
 * multi-topic node of services/protocol (overlay-node.ts: the topics, routing, the rejoin
 * rule, the address-lookup back-off, the departing record), and carries out its actions
 * (STYLE.md rule 2). The beacon runs it as a libp2p service; services/peer runs it unchanged;
 * the simulator runs the same node. It is made of parts that share one DriverContext:
 * - links.ts: our outbound link per neighbour and protocol, its bounded send queue, and
 *   the connections the overlay dialled (released again when nothing needs them);
 * - inbound.ts: the streams others opened to us, their preamble and the read loop;
 * - gossip-validation.ts: validate, then forward (the application's validators, bounded);
 * - address-lookup.ts: asking for, and answering about, addresses of peers known by key;
 * - drain.ts: drain notices, sent when this node stops and taken from trusted nodes.
 * - neighbour-rules.ts: budgets, scores and back-offs of neighbours, and who is kept out;
 * - actions.ts: each of the node's actions handed to the part that carries it out.
 * This file holds what ties them together: start and stop, and the public API.
 */
import type { PeerId, Startable, StreamHandler } from '@libp2p/interface'
import {
  createOverlayNode,
  DEFAULT_WIRE_LIMITS,
  overlayProtocolId
} from '@pharos/protocol/overlay/index.ts'
import type {
  OverlayNode,
  OverlayNodeAction,
  OverlayNodeEvent,
  PeerKey,
  TopicConfig,
  TopicCounters,
  TopicSnapshot
} from '@pharos/protocol/overlay/index.ts'
import { Listeners } from '@pharos/protocol/listeners.ts'
import { carryOut } from './actions.ts'
import type { ActionTargets } from './actions.ts'
import { AddressLookup } from './address-lookup.ts'
import { PROTOCOLS, resolveOverlayInit } from './driver-context.ts'
import type { DriverContext, ResolvedOverlayInit } from './driver-context.ts'
import { DrainNotices } from './drain.ts'
import { GossipValidation } from './gossip-validation.ts'
import { InboundStreams } from './inbound.ts'
import { OutboundLinks } from './links.ts'
import { NeighbourRules } from './neighbour-rules.ts'
import type { NeighbourBudget, NeighbourOffence, NeighbourScoring, NeighbourState } from './neighbour-budget.ts'
import { newDriverCounters, OverlayNotStartedError } from './overlay-api.ts'
import type { Delivery, DrainNotice, DriverCounters, GossipValidator, OverlayComponents, OverlayInit, OverlayRefusedError, PeerAddrs } from './overlay-api.ts'

export type { NeighbourBudget, NeighbourOffence, NeighbourScoring, NeighbourState } from './neighbour-budget.ts'
export { DEFAULT_NEIGHBOUR_BUDGET, DEFAULT_NEIGHBOUR_SCORING, NEIGHBOUR_OFFENCES } from './neighbour-budget.ts'
export type { AdmitDecision, Delivery, DrainNotice, DrainTrust, DriverCounters, GossipToValidate, GossipValidator, OverlayComponents, OverlayInit, PeerAddrs } from './overlay-api.ts'
export { DrainNoticeRefusedError, OverlayNotStartedError, OverlayRefusedError, ValidationTimeoutError } from './overlay-api.ts'

export class OverlayDriver implements Startable {
  private readonly components: OverlayComponents
  private readonly init: ResolvedOverlayInit
  private readonly rules: NeighbourRules
  private readonly topicConfig: TopicConfig | undefined
  private readonly seed: number
  private readonly self: PeerKey
  private readonly counters = newDriverCounters()
  private readonly protocolIds: DriverContext['protocolIds']
  private readonly validation: GossipValidation
  private readonly addresses: AddressLookup
  private readonly links: OutboundLinks
  private readonly inbound: InboundStreams
  private readonly drains: DrainNotices
  private readonly targets: ActionTargets
  /** Set by `drain`: new overlay streams are refused with `draining`. */
  private draining = false
  /**
   * Every topic, routing, the rejoin rule, the address-lookup back-off and the departing
   * record (services/protocol's OverlayNode); set while started.
   */
  private node?: OverlayNode
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly deliveries = new Listeners<Delivery>((err) => { this.log.error('delivery listener failed - %e', err) })
  private readonly log: DriverContext['log']

  private started = false
  private maintenance?: NodeJS.Timeout
  private ticker?: NodeJS.Timeout
  private readonly onPeerDisconnect = (event: Event): void => {
    const key = (event as CustomEvent<PeerId>).detail.toString()
    // Only a peer we are linked to has failed: a connection we or it closed because nothing
    // used it any more (connection-release.ts) says nothing about a passive peer.
    if (this.node?.isLinked(key) === true) this.links.linkDown(key)
  }

  constructor (components: OverlayComponents, init: OverlayInit) {
    this.components = components
    this.init = resolveOverlayInit(init)
    this.topicConfig = init.topicConfig
    this.seed = init.seed ?? Math.floor(Math.random() * 2 ** 32)
    this.log = components.logger.forComponent('pharos:overlay')
    this.self = components.peerId.toString()
    this.rules = new NeighbourRules(init, this.self, this.log, this.counters, (key, why) => {
      this.links.closePeer(key, why)
      this.inbound.abortPeer(key, why)
      this.handle({ type: 'departed', peer: key })
    })
    this.protocolIds = {
      hyparview: overlayProtocolId(init.network, 'hyparview'),
      plumtree: overlayProtocolId(init.network, 'plumtree')
    }
    const context: DriverContext = {
      components,
      init: this.init,
      counters: this.counters,
      limits: { ...DEFAULT_WIRE_LIMITS, ...init.wireLimits },
      ledger: this.rules.ledger,
      log: this.log,
      self: this.self,
      protocolIds: this.protocolIds,
      node: () => this.node,
      handle: (event) => { this.handle(event) },
      started: () => this.started,
      draining: () => this.draining,
      isShunned: (key) => this.rules.isShunned(key),
      isDeparting: (key) => this.isDeparting(key),
      shun: (key, why) => { this.rules.shun(key, why) },
      penalize: (key, offence) => { this.rules.penalize(key, offence) },
      shortName: (topic) => this.shortName(topic)
    }
    this.validation = new GossipValidation(context, init.validators ?? {})
    this.addresses = new AddressLookup(context)
    this.links = new OutboundLinks(context, this.addresses)
    this.inbound = new InboundStreams(context, this.links)
    this.drains = new DrainNotices(context)
    this.targets = {
      links: this.links,
      validation: this.validation,
      rules: this.rules,
      counters: this.counters,
      log: this.log,
      schedule: (after, event) => { this.schedule(after, event) },
      deliver: (delivery) => { this.deliveries.notify(delivery) },
      shortName: (topic) => this.shortName(topic)
    }
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
      isMember: (key) => this.rules.mayKeep(key),
      bootstrap: () => this.init.bootstrap?.().map((contact) => contact.toString()) ?? [],
      ...(this.topicConfig === undefined ? {} : { topicConfig: this.topicConfig })
    })
    this.node = node
    this.run(node.start(Date.now()))
    for (const [protocol, handler, streams] of this.served()) {
      await this.components.registrar.handle(protocol, handler, { maxInboundStreams: streams, maxOutboundStreams: streams })
    }
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
    this.validation.abortAll(new Error('overlay stopped'))
    clearInterval(this.maintenance)
    clearInterval(this.ticker)
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    this.components.events.removeEventListener('peer:disconnect', this.onPeerDisconnect)
    for (const [protocol] of this.served()) await this.components.registrar.unhandle(protocol)
    const stopped = new Error('overlay stopped')
    this.links.closeAll(stopped)
    this.inbound.abortAll(stopped)
    this.node = undefined
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
    const keys = await this.addresses.remember(peers)
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
    return this.validation.set(topic, validator)
  }

  /** Called with every broadcast its topic's validator accepted (first receipts, not our own). */
  onDeliver (listener: (delivery: Delivery) => void): () => void {
    return this.deliveries.add(listener)
  }

  /** Called when a connected node that is draining tells us which of its siblings to move to. */
  onDrain (listener: (notice: DrainNotice) => void): () => void {
    return this.drains.onDrain(listener)
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
    return await this.drains.send(siblings, targets, options)
  }

  /**
   * Whether `key` said it is draining (a drain notice, or a link refused as `draining`) within
   * DEPARTING_MS: the overlay links to it no more, and an application should not dial it either.
   */
  isDeparting (key: PeerKey): boolean {
    return this.node?.isDeparting(key, Date.now()) ?? false
  }

  onRefused (listener: (error: OverlayRefusedError) => void): () => void {
    return this.links.onRefused(listener)
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
    const { adopted, released } = this.links.connections.counts
    return { ...structuredClone(this.counters), neighbours: this.rules.ledger.stats(), connectionsOpened: adopted, connectionsReleased: released }
  }

  /**
   * `peer` sent something the application rejected (`invalid-payload`), or broke a rule the
   * driver checks itself: its score drops by the offence's weight, and below the threshold
   * it is dropped from every view and kept out for a back-off that grows with each repeat.
   * Unknown peers get a record too (the offence may come after its link closed).
   */
  penalize (peer: PeerKey, offence: NeighbourOffence): void {
    this.rules.penalize(peer, offence)
  }

  /** Every neighbour's score, buckets, offences and back-off, lowest score first (admin API). */
  neighbours (): NeighbourState[] {
    return this.rules.snapshot()
  }

  /** The per-neighbour budget and scoring rule in force (admin API). */
  neighbourRules (): { budget: Readonly<NeighbourBudget>, scoring: Readonly<NeighbourScoring> } {
    return this.rules.rules()
  }

  /** Connections open now that the overlay dialled itself. */
  heldConnections (): number {
    return this.links.connections.held
  }

  /** Bytes queued on every link now (frames waiting, and the one being written). */
  queuedBytes (): number {
    return this.links.queuedBytes()
  }

  // ---- carrying out actions ---------------------------------------------------------------

  private run (actions: readonly OverlayNodeAction[]): void {
    carryOut(actions, this.targets)
  }

  private shortName (topic: string): string {
    return topic.slice(this.init.network.length + 2)
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

  /** The protocols the overlay answers: each with its handler and its stream limit (in and out, per connection). */
  private served (): Array<[protocol: string, handler: StreamHandler, streams: number]> {
    return [
      ...PROTOCOLS.map((name): [string, StreamHandler, number] => [this.protocolIds[name], (stream, connection) => { this.inbound.accept(name, stream, connection) }, 4]),
      [this.addresses.protocol, (stream, connection) => { void this.addresses.answer(stream, connection) }, 4],
      [this.drains.protocol, (stream, connection) => { void this.drains.read(stream, connection) }, 2]
    ]
  }

  private maintain (): void {
    const now = Date.now()
    this.links.sweep(now)
    this.rules.ledger.forgetIdle(now, (key) => this.inbound.has(key) || this.links.has(key))
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
