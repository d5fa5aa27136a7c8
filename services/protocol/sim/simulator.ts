/**
 * Deterministic discrete-event simulator of many overlay nodes in one process.
 *
 * Each node is a real {@link OverlayNode} (one topic), the code the libp2p driver runs. The
 * simulator plays the driver: it carries out the actions (`send` becomes a delivery event after
 * the link's latency, `timer` a timer event, `connect`/`disconnect` open and close links,
 * `rejoin` is counted) and feeds the results back as events, with a `tick` every second, so the
 * node's own rejoin rule acts.
 * Everything random (latency, loss, detection delays, scenario choices, each node's own RNG) is
 * drawn from streams derived from one seed, and events run in (time, seq) order, so a seed
 * always gives the same run, down to the byte.
 *
 * The network model (docs/overlay.md has the reasons):
 * - one-way latency of a link = access delay of each end (drawn per node) + a fixed per-pair
 *   term (hashed from the pair); constant per link, so links are FIFO like the streams they model;
 * - loss: each Plumtree message (payload and control) is dropped with probability
 *   `plumtreeLossRate`; HyParView messages are not, since on a real stream a message is only lost
 *   with its link, and link loss is modelled as failure;
 * - failure detection: a node hears `linkDown` for a peer after a delay drawn from
 *   `failureDetectionMs` when the peer dies while they share a link (the stream resets or the
 *   keep-alive times out), when a partition cuts the link, and when it sends to or dials a peer
 *   that is dead or on the other side of a partition. At most one report per pair is in flight.
 */
import { assertNever, countsByType } from '../src/overlay/messages.ts'
import type { Message, MessageType, Timer } from '../src/overlay/messages.ts'
import { protocolOf } from '../src/overlay/messages.ts'
import { createRng, deriveSeed, pickRandom, randomFloat, randomInt } from '../src/overlay/rng.ts'
import type { Rng } from '../src/overlay/rng.ts'
import { createOverlayNode } from '../src/overlay/overlay-node.ts'
import type { OverlayNode, OverlayNodeAction, OverlayNodeEvent } from '../src/overlay/overlay-node.ts'
import type { Topic, TopicConfig } from '../src/overlay/topic.ts'
import { EventQueue } from './event-queue.ts'

/** How the simulated network behaves. */
export interface NetworkModel {
  /**
   * One-way delay of each node's access link, drawn uniformly per node (ms).
   * @default [5, 40] (guess: home broadband to a nearby region)
   */
  accessDelayMs: readonly [number, number]
  /**
   * Largest extra one-way delay of a pair of nodes, fixed per pair (ms): the wide-area part.
   * @default 20 (guess)
   */
  pairJitterMs: number
  /**
   * Delay before a failed link or dial is reported as `linkDown`, drawn uniformly (ms).
   * @default [500, 3000] (guess: a reset is seen within a round trip, a dead host after keep-alive timeouts)
   */
  failureDetectionMs: readonly [number, number]
  /**
   * Probability that a Plumtree message is dropped.
   * @default 0
   */
  plumtreeLossRate: number
}

export const DEFAULT_NETWORK_MODEL: Readonly<NetworkModel> = Object.freeze({
  accessDelayMs: [5, 40] as const,
  pairJitterMs: 20,
  failureDetectionMs: [500, 3000] as const,
  plumtreeLossRate: 0
})

export interface SimulationOptions {
  seed: number
  /** N given to every node (registered accounts). */
  networkSize: number
  /** @default DEFAULT_NETWORK_MODEL */
  network?: Partial<NetworkModel>
  /** @default {} */
  topic?: TopicConfig
  /**
   * The node's `rejoinIntervalMs`: a node whose active view stayed empty this long joins again;
   * its bootstrap list is one random live node that has neighbours (a real driver gives its
   * beacons). @default 10000 (guess)
   */
  rejoinAfterMs?: number
  /**
   * A node counts towards reliability only once it has been a member this long.
   * @default 5000 (guess: a join completes in a few round trips)
   */
  settleMs?: number
}

export interface SimNode {
  readonly index: number
  readonly key: string
  /** The node's code, as the libp2p driver runs it. */
  readonly node: OverlayNode
  /** Its one topic (read it; events go through `node`). */
  readonly topic: Topic
  /** One-way access delay (ms). */
  readonly access: number
  alive: boolean
  readonly joinedAt: number
  diedAt: number
  /** Partition side. */
  side: number
  /** Links this node holds (connect without disconnect), by node index. */
  readonly held: Set<number>
  /** Nodes holding a link to this one. */
  readonly heldBy: Set<number>
  /** Peers with a linkDown report in flight to this node. */
  readonly pendingLinkDown: Set<number>
}

export interface Delivery {
  readonly time: number
  readonly round: number
}

/**
 * First deliveries of one broadcast, by node index: typed arrays for the nodes that existed when
 * it was sent (a concurrent scenario keeps 6,000 broadcasts × 1,000 nodes), a map for later ones.
 */
export class DeliveryLog {
  readonly #times: Int32Array
  readonly #rounds: Uint16Array
  readonly #later = new Map<number, Delivery>()
  #size = 0
  #maxRound = 0

  constructor(nodes: number) {
    this.#times = new Int32Array(nodes).fill(-1)
    this.#rounds = new Uint16Array(nodes)
  }

  /** Nodes that delivered it. */
  get size(): number {
    return this.#size
  }

  /** The most hops of any delivery. */
  get maxRound(): number {
    return this.#maxRound
  }

  has(index: number): boolean {
    return index < this.#times.length ? (this.#times[index] as number) >= 0 : this.#later.has(index)
  }

  /** When node `index` delivered it, or undefined. */
  timeOf(index: number): number | undefined {
    if (index >= this.#times.length) return this.#later.get(index)?.time
    const time = this.#times[index] as number
    return time < 0 ? undefined : time
  }

  /** Records a first delivery (times are whole milliseconds); a second one for a node is ignored. */
  add(index: number, time: number, round: number): void {
    if (this.has(index)) return
    if (index < this.#times.length) {
      this.#times[index] = time
      this.#rounds[index] = round
    } else {
      this.#later.set(index, { time, round })
    }
    this.#size++
    this.#maxRound = Math.max(this.#maxRound, round)
  }
}

export interface BroadcastRecord {
  readonly id: string
  readonly origin: number
  readonly at: number
  /** Counted in the scenario's figures (warm-up broadcasts are not). */
  readonly measured: boolean
  /** Nodes alive and settled when it was sent. */
  readonly eligible: Int32Array
  /** First delivery per node; the origin is recorded at round 0. */
  readonly deliveries: DeliveryLog
  /** Payload (GOSSIP) messages received by live nodes for it, duplicates included. */
  payloadReceived: number
}

/** The shape of the active-view graph at one moment. */
export interface OverlayShape {
  readonly alive: number
  /** Connected components of the (undirected) active graph among live nodes. */
  readonly components: number
  /** Live nodes with no live active neighbour or outside the largest component. */
  readonly isolated: number
  /** Pairs (a, b) of live nodes with b in a's active view but not a in b's. */
  readonly symmetryViolations: number
  /** Active-view entries naming dead nodes. */
  readonly staleActiveEntries: number
  /** The fewest live active neighbours any live node has. */
  readonly minActiveDegree: number
}

type SimEvent =
  | { readonly time: number, readonly seq: number, readonly kind: 'message', readonly from: number, readonly to: number, readonly topic: string, readonly message: Message }
  | { readonly time: number, readonly seq: number, readonly kind: 'timer', readonly node: number, readonly topic: string, readonly timer: Timer }
  | { readonly time: number, readonly seq: number, readonly kind: 'linkDown', readonly node: number, readonly peer: number }
  | { readonly time: number, readonly seq: number, readonly kind: 'call', readonly fn: () => void }

const PAYLOAD = new Uint8Array(64).fill(7)
const MAINTENANCE_INTERVAL_MS = 1_000
/** The one topic every node takes part in. */
const SIM_TOPIC = '/sim/topic'

export class Simulation {
  now = 0
  /** Events processed so far. */
  events = 0
  /** Joins the nodes' rejoin rule made. */
  rejoins = 0
  /** Messages dropped by the loss model. */
  dropped = 0
  readonly nodes: SimNode[] = []
  readonly broadcasts: BroadcastRecord[] = []
  /** Messages sent, by type. */
  readonly sent: Record<MessageType, number>
  /** Messages sent, by type, up to the first measured broadcast (undefined until it goes out). */
  sentBeforeMeasurement: Readonly<Record<MessageType, number>> | undefined
  /** Scenario choices (which node, when); separate from the network's stream. */
  readonly rng: Rng
  readonly #seed: number
  readonly #networkSize: number
  readonly #network: Readonly<NetworkModel>
  readonly #topicConfig: TopicConfig
  readonly #rejoinAfterMs: number
  readonly #settleMs: number
  readonly #netRng: Rng
  readonly #byKey = new Map<string, SimNode>()
  readonly #byId = new Map<string, BroadcastRecord>()
  readonly #queue = new EventQueue<SimEvent>()
  #seq = 0
  #partitioned = false
  #lossRate: number

  constructor(options: SimulationOptions) {
    this.#seed = options.seed >>> 0
    this.#networkSize = options.networkSize
    this.#network = { ...DEFAULT_NETWORK_MODEL, ...options.network }
    this.#topicConfig = options.topic ?? {}
    this.#rejoinAfterMs = options.rejoinAfterMs ?? 10_000
    this.#settleMs = options.settleMs ?? 5_000
    this.#lossRate = this.#network.plumtreeLossRate
    this.#netRng = createRng(deriveSeed(this.#seed, 0x7fff_fff0))
    this.rng = createRng(deriveSeed(this.#seed, 0x7fff_fff1))
    this.sent = countsByType()
    this.sentBeforeMeasurement = undefined
    this.#schedule({ time: MAINTENANCE_INTERVAL_MS, seq: this.#seq++, kind: 'call', fn: () => { this.#maintain() } })
  }

  set lossRate(rate: number) {
    this.#lossRate = rate
  }

  /** Creates a node now; with a contact it joins through it. */
  addNode(contact?: SimNode): SimNode {
    const index = this.nodes.length
    const key = `n${index}`
    const [lo, hi] = this.#network.accessDelayMs
    const overlayNode = createOverlayNode({
      self: key,
      topics: [SIM_TOPIC],
      networkSize: this.#networkSize,
      // Its one topic draws from createRng(seed + 0): the stream a bare Topic had here.
      seed: deriveSeed(this.#seed, index),
      topicConfig: this.#topicConfig,
      config: { rejoinIntervalMs: this.#rejoinAfterMs },
      // Asked only when a rejoin is due, so the scenario stream is drawn from only then.
      bootstrap: () => {
        const contact = this.randomAlive((n) => n !== node && n.topic.activeSize > 0)
        return contact === undefined ? [] : [contact.key]
      }
    })
    const node: SimNode = {
      index,
      key,
      node: overlayNode,
      topic: overlayNode.topic(SIM_TOPIC) as Topic,
      access: lo + randomInt(this.#netRng, hi - lo + 1),
      alive: true,
      joinedAt: this.now,
      diedAt: Infinity,
      side: 0,
      held: new Set(),
      heldBy: new Set(),
      pendingLinkDown: new Set()
    }
    this.nodes.push(node)
    this.#byKey.set(key, node)
    this.#execute(node, overlayNode.start(this.now))
    if (contact !== undefined) this.#handle(node, { type: 'join', topic: SIM_TOPIC, contact: contact.key })
    return node
  }

  /** Silent failure: the process is gone; peers find out through their links. */
  kill(node: SimNode): void {
    if (!node.alive) return
    node.alive = false
    node.diedAt = this.now
    for (const set of [node.held, node.heldBy]) {
      for (const i of set) {
        const peer = this.nodes[i] as SimNode
        if (peer.alive) this.#scheduleLinkDown(peer, node)
      }
    }
  }

  /** Graceful departure: DISCONNECT to every neighbour, then the process exits. */
  leave(node: SimNode): void {
    if (!node.alive) return
    this.#handle(node, { type: 'leave' })
    this.kill(node)
  }

  /** Splits live nodes into sides; links across sides fail and messages across are lost. */
  partition(sideOf: (node: SimNode) => number): void {
    this.#partitioned = true
    for (const node of this.nodes) if (node.alive) node.side = sideOf(node)
    for (const node of this.nodes) {
      if (!node.alive) continue
      for (const set of [node.held, node.heldBy]) {
        for (const i of set) {
          const peer = this.nodes[i] as SimNode
          if (peer.alive && peer.side !== node.side) this.#scheduleLinkDown(node, peer)
        }
      }
    }
  }

  heal(): void {
    this.#partitioned = false
  }

  /** Broadcasts a fresh message from `origin` now. */
  broadcast(origin: SimNode, measured: boolean): BroadcastRecord {
    if (measured && this.sentBeforeMeasurement === undefined) this.sentBeforeMeasurement = { ...this.sent }
    const id = `m${this.broadcasts.length}`
    const eligible = Int32Array.from(this.nodes.filter((n) => this.isSettled(n)), (n) => n.index)
    const record: BroadcastRecord = { id, origin: origin.index, at: this.now, measured, eligible, deliveries: new DeliveryLog(this.nodes.length), payloadReceived: 0 }
    record.deliveries.add(origin.index, this.now, 0)
    this.broadcasts.push(record)
    this.#byId.set(id, record)
    this.#execute(origin, origin.node.broadcast(SIM_TOPIC, id, PAYLOAD, this.now))
    return record
  }

  /** Alive and a member for at least the settle time. */
  isSettled(node: SimNode): boolean {
    return node.alive && node.joinedAt <= this.now - this.#settleMs
  }

  /** Runs `fn` at simulated time `time`. */
  at(time: number, fn: () => void): void {
    this.#schedule({ time: Math.max(time, this.now), seq: this.#seq++, kind: 'call', fn })
  }

  /** Processes every event up to and including `time`, then sets the clock to it. */
  runUntil(time: number): void {
    while (this.#queue.peekTime() <= time) {
      const event = this.#queue.pop() as SimEvent
      this.now = event.time
      this.events++
      this.#dispatch(event)
    }
    this.now = Math.max(this.now, time)
  }

  alive(): SimNode[] {
    return this.nodes.filter((n) => n.alive)
  }

  /** A uniformly chosen live node passing `filter`, or undefined. */
  randomAlive(filter: (node: SimNode) => boolean = () => true): SimNode | undefined {
    return pickRandom(this.rng, this.nodes.filter((n) => n.alive && filter(n)))
  }

  /** Components, isolation and symmetry of the active graph now. */
  shape(): OverlayShape {
    const live = this.alive()
    const parent = new Map<number, number>()
    const find = (i: number): number => {
      let root = i
      while (parent.get(root) !== root) root = parent.get(root) as number
      let x = i
      while (x !== root) {
        const next = parent.get(x) as number
        parent.set(x, root)
        x = next
      }
      return root
    }
    for (const node of live) parent.set(node.index, node.index)
    const actives = new Map<number, Set<string>>()
    for (const node of live) actives.set(node.index, new Set(node.topic.snapshot().active))
    let symmetryViolations = 0
    let staleActiveEntries = 0
    const liveNeighbors = new Map<number, number>()
    for (const node of live) {
      let count = 0
      for (const key of actives.get(node.index) as Set<string>) {
        const peer = this.#byKey.get(key)
        if (peer === undefined || !peer.alive) {
          staleActiveEntries++
          continue
        }
        count++
        if (!(actives.get(peer.index) as Set<string>).has(node.key)) symmetryViolations++
        const a = find(node.index)
        const b = find(peer.index)
        if (a !== b) parent.set(a, b)
      }
      liveNeighbors.set(node.index, count)
    }
    const sizes = new Map<number, number>()
    for (const node of live) {
      const root = find(node.index)
      sizes.set(root, (sizes.get(root) ?? 0) + 1)
    }
    let largestRoot = -1
    let largest = 0
    for (const [root, size] of sizes) {
      if (size > largest) {
        largest = size
        largestRoot = root
      }
    }
    let isolated = 0
    let minActiveDegree = live.length === 0 ? 0 : Infinity
    for (const node of live) {
      minActiveDegree = Math.min(minActiveDegree, liveNeighbors.get(node.index) ?? 0)
      if (liveNeighbors.get(node.index) === 0 || find(node.index) !== largestRoot) isolated++
    }
    return { alive: live.length, components: sizes.size, isolated, symmetryViolations, staleActiveEntries, minActiveDegree }
  }

  // ---- the driver ----------------------------------------------------------------------------

  #handle(node: SimNode, event: OverlayNodeEvent): void {
    this.#execute(node, node.node.handle(event, this.now))
  }

  #schedule(event: SimEvent): void {
    this.#queue.push(event)
  }

  #dispatch(event: SimEvent): void {
    switch (event.kind) {
      case 'message': {
        const from = this.nodes[event.from] as SimNode
        const to = this.nodes[event.to] as SimNode
        if (!this.#reachable(from, to)) {
          // Died or cut off while the message was in flight.
          if (from.alive) this.#scheduleLinkDown(from, to)
          return
        }
        if (event.message.type === 'gossip') {
          const record = this.#byId.get(event.message.id)
          if (record !== undefined) record.payloadReceived++
        }
        this.#handle(to, { type: 'frame', topic: event.topic, from: from.key, message: event.message })
        return
      }
      case 'timer': {
        const node = this.nodes[event.node] as SimNode
        if (node.alive) this.#handle(node, { type: 'timer', topic: event.topic, timer: event.timer })
        return
      }
      case 'linkDown': {
        const node = this.nodes[event.node] as SimNode
        const peer = this.nodes[event.peer] as SimNode
        node.pendingLinkDown.delete(peer.index)
        node.held.delete(peer.index)
        peer.heldBy.delete(node.index)
        if (node.alive) this.#handle(node, { type: 'linkDown', peer: peer.key })
        return
      }
      case 'call':
        event.fn()
        return
      default:
        assertNever(event)
    }
  }

  #execute(node: SimNode, actions: readonly OverlayNodeAction[]): void {
    let validated: Array<{ topic: string, messageId: string }> | undefined
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          this.#send(node, this.#node(action.to), action.topic, action.message)
          break
        case 'connect': {
          const peer = this.#node(action.peer)
          node.held.add(peer.index)
          peer.heldBy.add(node.index)
          if (!this.#reachable(node, peer)) this.#scheduleLinkDown(node, peer)
          break
        }
        case 'disconnect': {
          const peer = this.#node(action.peer)
          node.held.delete(peer.index)
          peer.heldBy.delete(node.index)
          break
        }
        case 'timer':
          this.#schedule({ time: this.now + action.after, seq: this.#seq++, kind: 'timer', node: node.index, topic: action.topic, timer: action.timer })
          break
        case 'validate':
          // Every payload is valid here, and validation takes no time: accepted once this batch of actions is done.
          ;(validated ??= []).push({ topic: action.topic, messageId: action.messageId })
          break
        case 'rejected':
          break
        case 'deliver': {
          const record = this.#byId.get(action.messageId)
          record?.deliveries.add(node.index, this.now, action.round)
          break
        }
        case 'neighborUp':
        case 'neighborDown':
          break
        case 'rejoin':
          this.rejoins++
          break
        case 'unknownTopic':
        case 'lookup':
        case 'unreachable':
        case 'dropLinks':
          // Every node has the one topic, every address is known and nobody drains here.
          throw new Error(`simulator: unexpected ${action.type} action from ${node.key}`)
        default:
          assertNever(action)
      }
    }
    for (const { topic, messageId } of validated ?? []) this.#handle(node, { type: 'validated', topic, messageId, verdict: 'accept' })
  }

  #send(from: SimNode, to: SimNode, topic: string, message: Message): void {
    this.sent[message.type]++
    if (!this.#reachable(from, to)) {
      this.#scheduleLinkDown(from, to)
      return
    }
    if (this.#lossRate > 0 && protocolOf(message) === 'plumtree' && randomFloat(this.#netRng) < this.#lossRate) {
      this.dropped++
      return
    }
    this.#schedule({ time: this.now + this.#latency(from, to), seq: this.#seq++, kind: 'message', from: from.index, to: to.index, topic, message })
  }

  #node(key: string): SimNode {
    const node = this.#byKey.get(key)
    if (node === undefined) throw new Error(`simulator: action names unknown peer ${key}`)
    return node
  }

  #reachable(from: SimNode, to: SimNode): boolean {
    return to.alive && (!this.#partitioned || from.side === to.side)
  }

  #latency(a: SimNode, b: SimNode): number {
    const lo = Math.min(a.index, b.index)
    const hi = Math.max(a.index, b.index)
    const pair = deriveSeed(deriveSeed(this.#seed, lo), hi) % (this.#network.pairJitterMs + 1)
    return a.access + b.access + pair
  }

  #scheduleLinkDown(node: SimNode, peer: SimNode): void {
    if (node.pendingLinkDown.has(peer.index)) return
    node.pendingLinkDown.add(peer.index)
    const [lo, hi] = this.#network.failureDetectionMs
    const delay = lo + randomInt(this.#netRng, hi - lo + 1)
    this.#schedule({ time: this.now + delay, seq: this.#seq++, kind: 'linkDown', node: node.index, peer: peer.index })
  }

  /** Every live node's periodic tick: its own rule rejoins a node whose view stayed empty. */
  #maintain(): void {
    for (const node of this.nodes) if (node.alive) this.#handle(node, { type: 'tick' })
    this.#schedule({ time: this.now + MAINTENANCE_INTERVAL_MS, seq: this.#seq++, kind: 'call', fn: () => { this.#maintain() } })
  }
}
