/**
 * What both systems are run under: the node count, the connection graph, the publish load and
 * the phase lengths. Both runs derive everything random from one seed, so they get the same
 * peer IDs, the same dials and the same publishers in the same order.
 */
import { createRng, randomInt, sampleRandom } from '@pharos/protocol/overlay/index.ts'

export type SystemName = 'plumtree' | 'gossipsub'

export const SYSTEMS: readonly SystemName[] = ['plumtree', 'gossipsub']

export interface Scenario {
  /** Nodes in the network (the issue asks for 100). */
  nodes: number
  /** Nodes 0…bootstrapNodes−1 are the bootstrap contacts (beacons, in a Pharos deployment). */
  bootstrapNodes: number
  /**
   * Besides its bootstrap contact, each node dials this many other nodes chosen at random. With
   * the dials that reach it, a node ends up with about twice this many connections, enough for
   * gossipsub to fill a mesh of D = 6 (its default) and to keep Dlo = 4 after pruning.
   */
  randomDials: number
  /** Messages measured. */
  messages: number
  /** Messages published before the measurement, so both overlays settle (Plumtree prunes its tree). */
  warmupMessages: number
  /**
   * Rate of the warm-up messages. Slow enough that each one has reached every node before the
   * next: Plumtree's first broadcasts flood (every link starts eager), and floods that overlap
   * prune each other's tree links and leave a forest (measured at 2/s and 20/s).
   */
  warmupRatePerSecond: number
  /**
   * Publish rates, messages per second, from publishers drawn at random: one measurement window
   * of `messages` messages per rate, in this order, on the same network. The default is issue
   * 18's rates, 5/s first: each later rate's p99 is compared with the p99 at the first. 5/s is
   * about what this two-core machine carries for 100 gossipsub nodes before their event loops
   * queue (measured over 2 workers: 1.0–1.4 cores at 5/s, both cores at 20/s), so above it
   * gossipsub's latency measures the CPU queue too (the report says so). `--rates` picks others.
   */
  rates: number[]
  /** Payload size in bytes. */
  payloadBytes: number
  /** Wait after every node has a neighbour, before the warm-up messages (gossipsub heartbeat is 1 s). */
  settleMs: number
  /** Pause between the last warm-up message and the window, so the warm-up's own traffic (IHAVE batches, gossip) is not counted. */
  quietMs: number
  /** The measurement window stays open this long after the last publish, for late deliveries and their control traffic. */
  drainMs: number
  /** Seed of everything random (peer keys, dials, publishers, payloads). */
  seed: number
  /**
   * Processes the nodes are spread over. One process cannot carry 100 nodes' noise and yamux
   * work at this load (measured: gossipsub's nodes saturate one event loop at about 8
   * messages/s, and latency then measures the CPU queue, not the protocol); the machine has two
   * cores.
   */
  workers: number
  /**
   * Overrides of Pharos's Plumtree defaults, for diagnosis only (`--plumtree-optimization-threshold`);
   * the recorded results use none.
   */
  plumtreeOverrides?: { optimizationThreshold?: number }
}

/** The default run (about three minutes per system). */
export const DEFAULT_SCENARIO: Readonly<Scenario> = Object.freeze({
  nodes: 100,
  bootstrapNodes: 4,
  randomDials: 8,
  messages: 200,
  warmupMessages: 10,
  warmupRatePerSecond: 1,
  rates: [5, 20, 50, 100],
  payloadBytes: 1024,
  settleMs: 3000,
  quietMs: 2000,
  drainMs: 5000,
  seed: 1,
  workers: 2
})

/** `--quick`: the same network, fewer messages and shorter waits. */
export const QUICK_SCENARIO: Readonly<Scenario> = Object.freeze({
  ...DEFAULT_SCENARIO,
  messages: 30,
  warmupMessages: 2,
  settleMs: 1000,
  quietMs: 1000,
  drainMs: 2500
})

/** The dials, as [from, to] node indices; from dials to. The same list for both systems. */
export function dialPlan (scenario: Scenario): Array<[number, number]> {
  const rng = createRng(scenario.seed * 7919 + 1)
  const dials: Array<[number, number]> = []
  const seen = new Set<string>()
  const add = (from: number, to: number): void => {
    const key = from < to ? `${from}-${to}` : `${to}-${from}`
    if (from === to || seen.has(key)) return
    seen.add(key)
    dials.push([from, to])
  }
  for (let node = 1; node < scenario.nodes; node++) {
    add(node, bootstrapOf(scenario, node))
    const others = [...Array(scenario.nodes).keys()].filter((other) => other !== node)
    for (const other of sampleRandom(rng, others, scenario.randomDials)) add(node, other)
  }
  return dials
}

/** The bootstrap node a node joins through: bootstrap nodes join through node 0, others spread evenly. */
export function bootstrapOf (scenario: Scenario, node: number): number {
  return node < scenario.bootstrapNodes ? 0 : node % scenario.bootstrapNodes
}

/** Publisher of each message: warm-up messages first, then each window's. */
export function publishers (scenario: Scenario): number[] {
  const rng = createRng(scenario.seed * 7919 + 2)
  return Array.from({ length: scenario.warmupMessages + scenario.messages * scenario.rates.length }, () => randomInt(rng, scenario.nodes))
}

/** A 32-byte key seed for node `index`, so both runs have the same peer IDs. */
export function keySeed (scenario: Scenario, index: number): Uint8Array {
  const rng = createRng(scenario.seed * 7919 + 3 + index * 104_729)
  return Uint8Array.from({ length: 32 }, () => randomInt(rng, 256))
}

/**
 * Payload of message `seq`: its sequence number (4 bytes, big-endian), room for the publish time
 * (8 bytes, see {@link stampPayload}), then seeded filler. Every payload differs (gossipsub
 * derives its message ID from the bytes) and a receiver in any process can tell which message
 * it got and when it was sent without a side channel.
 */
export function payloadOf (scenario: Scenario, seq: number): Uint8Array {
  const payload = new Uint8Array(scenario.payloadBytes)
  const rng = createRng(scenario.seed * 7919 + 4 + seq * 15_485_863)
  for (let i = 12; i < payload.length; i++) payload[i] = randomInt(rng, 256)
  new DataView(payload.buffer).setUint32(0, seq)
  return payload
}

/** Writes the publish time (ms on the shared clock, {@link sharedNow}) into a payload. */
export function stampPayload (payload: Uint8Array, at: number): void {
  new DataView(payload.buffer, payload.byteOffset, payload.byteLength).setFloat64(4, at)
}

/** The sequence number and publish time a payload carries. */
export function readPayload (payload: Uint8Array): { seq: number, sentAt: number } {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  return { seq: view.getUint32(0), sentAt: view.getFloat64(4) }
}

/**
 * Milliseconds on a clock all the benchmark's processes share: each process's monotonic clock
 * from its own start (`performance.timeOrigin`, taken from the system clock). The coordinator
 * measures the residual skew of every worker and reports it.
 */
export function sharedNow (): number {
  return performance.timeOrigin + performance.now()
}

/** Nodes [from, to) live in worker `worker`. */
export function nodeRange (scenario: Scenario, worker: number): [number, number] {
  const per = Math.ceil(scenario.nodes / scenario.workers)
  return [Math.min(scenario.nodes, worker * per), Math.min(scenario.nodes, (worker + 1) * per)]
}

/** The worker hosting node `index`. */
export function workerOf (scenario: Scenario, index: number): number {
  return Math.floor(index / Math.ceil(scenario.nodes / scenario.workers))
}
