/**
 * The simulator's scenarios. Each builds an overlay of `nodes` nodes the same way (one join every
 * 20 ms through a random member, then four shuffle rounds to settle), disturbs it, and measures
 * broadcasts sent once the disturbance is over (or during it, for churn). `burst-join` is the
 * exception: many small overlays, each formed by a burst of joins.
 */
import { SHUFFLE_INTERVAL_MS } from '../src/overlay/constants.ts'
import { deriveSeed, pickRandom, randomFloat, sampleRandom } from '../src/overlay/rng.ts'
import type { TopicConfig } from '../src/overlay/topic.ts'
import { summarize } from './report.ts'
import type { ScenarioReport } from './report.ts'
import { Simulation } from './simulator.ts'
import type { OverlayShape, SimNode } from './simulator.ts'

export interface ScenarioOptions {
  readonly nodes: number
  readonly seed: number
  /** Protocol options of every node, for comparisons (the baseline runs the defaults). @default {} */
  readonly topic?: TopicConfig
}

export interface Scenario {
  readonly name: string
  readonly description: string
  run(options: ScenarioOptions): ScenarioReport
}

const JOIN_SPACING_MS = 20
/** Four shuffle rounds. */
const SETTLE_MS = 60_000
const BROADCAST_INTERVAL_MS = 1_000
/** Deliveries later than this after a broadcast count as missed. */
const WINDOW_MS = 10_000
const TAIL_MS = 15_000
const WARM_UP_BROADCASTS = 20
const MEASURED_BROADCASTS = 30
/** How often recovery is checked after a disturbance. */
const RECOVERY_PROBE_MS = 1_000

/** Builds the overlay; returns the time at which it has settled. */
function bootstrap(sim: Simulation, nodes: number): number {
  const first = sim.addNode()
  for (let i = 1; i < nodes; i++) {
    sim.at(i * JOIN_SPACING_MS, () => { sim.addNode(sim.randomAlive() ?? first) })
  }
  const settled = nodes * JOIN_SPACING_MS + SETTLE_MS
  sim.runUntil(settled)
  return settled
}

/** Schedules `count` broadcasts from random settled nodes, one per `interval`; returns when the last goes. */
function broadcasts(sim: Simulation, start: number, count: number, interval: number, measured: boolean): number {
  for (let i = 0; i < count; i++) {
    sim.at(start + i * interval, () => {
      const origin = sim.randomAlive((n) => sim.isSettled(n))
      if (origin !== undefined) sim.broadcast(origin, measured)
    })
  }
  return start + (count - 1) * interval
}

/**
 * Probes the overlay every second after `from`; the returned getter gives the seconds until it was
 * whole again (one component, no isolated node, no active view naming a dead node), or null.
 */
function watchRecovery(sim: Simulation, from: number, until: number): () => number | null {
  let recovered: number | null = null
  for (let t = from + RECOVERY_PROBE_MS; t <= until; t += RECOVERY_PROBE_MS) {
    sim.at(t, () => {
      if (recovered !== null) return
      const shape = sim.shape()
      if (shape.components === 1 && shape.isolated === 0 && shape.staleActiveEntries === 0) recovered = (t - from) / 1000
    })
  }
  return () => recovered
}

/** Runs to `end` and summarises; `recovery` is read after the run. */
function finish(sim: Simulation, name: string, options: ScenarioOptions, end: number, recovery: () => number | null): ScenarioReport {
  sim.runUntil(end)
  return summarize(sim, { scenario: name, nodes: options.nodes, seed: options.seed, windowMs: WINDOW_MS, recoverySeconds: recovery(), shape: sim.shape() })
}

function newSimulation(options: ScenarioOptions): Simulation {
  return new Simulation({ seed: options.seed, networkSize: options.nodes, ...(options.topic === undefined ? {} : { topic: options.topic }) })
}

const stable: Scenario = {
  name: 'stable',
  description: 'no failures; 20 warm-up broadcasts let the tree settle, then 30 are measured',
  run(options) {
    const sim = newSimulation(options)
    const t0 = bootstrap(sim, options.nodes)
    const warm = broadcasts(sim, t0, WARM_UP_BROADCASTS, BROADCAST_INTERVAL_MS, false)
    const last = broadcasts(sim, warm + BROADCAST_INTERVAL_MS, MEASURED_BROADCASTS, BROADCAST_INTERVAL_MS, true)
    return finish(sim, this.name, options, last + TAIL_MS, () => null)
  }
}

/** Churn: 10% of N leave per minute (half silently, half gracefully) and as many join. */
const CHURN_PER_MINUTE = 0.1
const CHURN_DURATION_MS = 180_000
const CHURN_BROADCAST_INTERVAL_MS = 2_000

const churn: Scenario = {
  name: 'churn',
  description: '10% of nodes replaced per minute for 3 minutes (half crash, half leave gracefully; joiners use a random live contact); broadcasts every 2 s during it are measured',
  run(options) {
    const sim = newSimulation(options)
    const t0 = bootstrap(sim, options.nodes)
    const warm = broadcasts(sim, t0, WARM_UP_BROADCASTS, BROADCAST_INTERVAL_MS, false)
    const start = warm + BROADCAST_INTERVAL_MS
    const end = start + CHURN_DURATION_MS
    const perMinute = Math.max(1, Math.round(CHURN_PER_MINUTE * options.nodes))
    const spacing = 60_000 / perMinute
    for (let t = start; t < end; t += spacing) {
      sim.at(Math.round(t), () => {
        const leaving = sim.randomAlive()
        if (leaving !== undefined) {
          if (randomFloat(sim.rng) < 0.5) sim.kill(leaving)
          else sim.leave(leaving)
        }
        const contact = sim.randomAlive((n) => n.topic.activeSize > 0)
        if (contact !== undefined) sim.addNode(contact)
      })
    }
    const last = broadcasts(sim, start, Math.floor(CHURN_DURATION_MS / CHURN_BROADCAST_INTERVAL_MS), CHURN_BROADCAST_INTERVAL_MS, true)
    return finish(sim, this.name, options, last + TAIL_MS, () => null)
  }
}

/** Time allowed for the survivors to re-form one overlay before broadcasts are measured: four shuffle rounds. */
const RECOVERY_ALLOWANCE_MS = 60_000

function massFailure(fraction: number): Scenario {
  const pct = Math.round(fraction * 100)
  return {
    name: `failure-${pct}`,
    description: `${pct}% of nodes crash at once; after ${RECOVERY_ALLOWANCE_MS / 1000} s, 30 broadcasts are measured`,
    run(options) {
      const sim = newSimulation(options)
      const t0 = bootstrap(sim, options.nodes)
      const warm = broadcasts(sim, t0, 10, BROADCAST_INTERVAL_MS, false)
      const killAt = warm + 2_000
      sim.at(killAt, () => {
        const victims = sampleNodes(sim, Math.round(fraction * sim.alive().length))
        for (const node of victims) sim.kill(node)
      })
      const measureFrom = killAt + RECOVERY_ALLOWANCE_MS
      const recovery = watchRecovery(sim, killAt, measureFrom + 60_000)
      const last = broadcasts(sim, measureFrom, MEASURED_BROADCASTS, BROADCAST_INTERVAL_MS, true)
      return finish(sim, this.name, options, Math.max(last + TAIL_MS, measureFrom + 60_000), recovery)
    }
  }
}

const PARTITION_MS = 60_000
/** After the heal, two shuffle rounds before broadcasts are measured. */
const HEAL_ALLOWANCE_MS = 30_000

const partition: Scenario = {
  name: 'partition',
  description: 'the nodes split into two random halves that cannot reach each other for 60 s, then heal; after 30 s, 30 broadcasts are measured',
  run(options) {
    const sim = newSimulation(options)
    const t0 = bootstrap(sim, options.nodes)
    const warm = broadcasts(sim, t0, 10, BROADCAST_INTERVAL_MS, false)
    const splitAt = warm + 2_000
    const healAt = splitAt + PARTITION_MS
    sim.at(splitAt, () => {
      const sideB = new Set(sampleNodes(sim, Math.floor(sim.alive().length / 2)))
      sim.partition((node) => sideB.has(node) ? 1 : 0)
    })
    sim.at(healAt, () => { sim.heal() })
    const measureFrom = healAt + HEAL_ALLOWANCE_MS
    const recovery = watchRecovery(sim, healAt, measureFrom + 60_000)
    const last = broadcasts(sim, measureFrom, MEASURED_BROADCASTS, BROADCAST_INTERVAL_MS, true)
    return finish(sim, this.name, options, Math.max(last + TAIL_MS, measureFrom + 60_000), recovery)
  }
}

const LOSS_RATE = 0.05

const loss: Scenario = {
  name: 'loss',
  description: '5% of Plumtree messages (payload and control) are dropped; after 20 warm-up broadcasts, 30 are measured',
  run(options) {
    const sim = newSimulation(options)
    const t0 = bootstrap(sim, options.nodes)
    const warm = broadcasts(sim, t0, WARM_UP_BROADCASTS, BROADCAST_INTERVAL_MS, false)
    sim.at(warm + BROADCAST_INTERVAL_MS / 2, () => { sim.lossRate = LOSS_RATE })
    const last = broadcasts(sim, warm + BROADCAST_INTERVAL_MS, MEASURED_BROADCASTS, BROADCAST_INTERVAL_MS, true)
    return finish(sim, this.name, options, last + TAIL_MS, () => null)
  }
}

/** Peers in one burst, as in overlay-libp2p.test.ts. */
const BURST_PEERS = 20
/** Of them, the first this many join through the beacon; the rest through the first peer (as that test does). */
const BURST_THROUGH_BEACON = 5
const BURST_AT_MS = 1_000
/** The bound the burst must meet: one overlay within two shuffle periods of the burst. */
const BURST_DEADLINE_MS = 2 * SHUFFLE_INTERVAL_MS
/** How long the overlay is watched after the burst. */
const BURST_WATCH_MS = 4 * SHUFFLE_INTERVAL_MS
const BURST_PROBE_MS = 500
const BURST_BROADCASTS = 5
/**
 * One burst per this many of `--nodes`: an island is rare (about one burst in 200 under the
 * paper's rule, measured), so the figures are over many bursts (200 at the baseline's 1,000).
 */
const NODES_PER_BURST = 5

/**
 * Bursts of joins: `nodes / 5` independent overlays (each its own seeded simulation), each a
 * beacon and 20 peers (N = 20, so active views of 5) that all join at the same instant, the first
 * five through the beacon and the rest through the first peer. Joins that land together leave
 * islands: groups whose nodes are all full, or whose only free slots face full nodes. Measured:
 * the slowest burst's time to one overlay that stays whole (`recoverySeconds`, null if one is
 * still split after four shuffle periods), the worst burst's components and the isolated nodes
 * of all at the end, and 5 broadcasts per burst from two shuffle periods after the burst.
 */
const burstJoin: Scenario = {
  name: 'burst-join',
  description: `nodes / ${NODES_PER_BURST} overlays, each a beacon and ${BURST_PEERS} peers joining at one instant; time to one overlay, then ${BURST_BROADCASTS} broadcasts each from ${BURST_DEADLINE_MS / 1000} s after the burst`,
  run(options) {
    const bursts = Math.max(1, Math.floor(options.nodes / NODES_PER_BURST))
    const sims: Simulation[] = []
    const shapes: OverlayShape[] = []
    let slowest: number | null = 0
    for (let burst = 0; burst < bursts; burst++) {
      const sim = new Simulation({ seed: deriveSeed(options.seed, 0x4255_0000 + burst), networkSize: BURST_PEERS, ...(options.topic === undefined ? {} : { topic: options.topic }) })
      const beacon = sim.addNode()
      const peers: SimNode[] = []
      sim.at(BURST_AT_MS, () => {
        for (let i = 0; i < BURST_PEERS; i++) peers.push(sim.addNode(i < BURST_THROUGH_BEACON ? beacon : peers[0]))
      })
      // Whole since when (null: split at the last probe).
      let wholeSince: number | null = null
      for (let t = BURST_AT_MS + BURST_PROBE_MS; t <= BURST_AT_MS + BURST_WATCH_MS; t += BURST_PROBE_MS) {
        sim.at(t, () => {
          const shape = sim.shape()
          const whole = shape.components === 1 && shape.isolated === 0
          if (!whole) wholeSince = null
          else wholeSince ??= t
        })
      }
      const measureFrom = BURST_AT_MS + BURST_DEADLINE_MS
      for (let i = 0; i < BURST_BROADCASTS; i++) {
        sim.at(measureFrom + i * BROADCAST_INTERVAL_MS, () => {
          const origin = pickRandom(sim.rng, sim.alive())
          if (origin !== undefined) sim.broadcast(origin, true)
        })
      }
      sim.runUntil(Math.max(BURST_AT_MS + BURST_WATCH_MS, measureFrom + BURST_BROADCASTS * BROADCAST_INTERVAL_MS + TAIL_MS))
      const healedAt: number | null = wholeSince
      slowest = slowest === null || healedAt === null ? null : Math.max(slowest, (healedAt - BURST_AT_MS) / 1000)
      sims.push(sim)
      shapes.push(sim.shape())
    }
    const shape: OverlayShape = {
      alive: shapes.reduce((sum, s) => sum + s.alive, 0),
      components: Math.max(...shapes.map((s) => s.components)),
      isolated: shapes.reduce((sum, s) => sum + s.isolated, 0),
      symmetryViolations: shapes.reduce((sum, s) => sum + s.symmetryViolations, 0),
      staleActiveEntries: shapes.reduce((sum, s) => sum + s.staleActiveEntries, 0),
      minActiveDegree: Math.min(...shapes.map((s) => s.minActiveDegree))
    }
    return summarize(sims, { scenario: this.name, nodes: options.nodes, seed: options.seed, windowMs: WINDOW_MS, recoverySeconds: slowest, shape })
  }
}

/** The concurrent scenario (issue 18): many origins broadcasting at once, with loss. */
const CONCURRENT_ORIGINS = 100
const CONCURRENT_RATE_PER_SECOND = 100
const CONCURRENT_DURATION_MS = 60_000
/** Broadcasts of the first seconds build the origins' trees; the rest are measured ("once settled"). */
const CONCURRENT_SETTLE_MS = 10_000
const CONCURRENT_LOSS_RATE = 0.01

const concurrent: Scenario = {
  name: 'concurrent',
  description: `${CONCURRENT_RATE_PER_SECOND} broadcasts a second for ${CONCURRENT_DURATION_MS / 1000} s, each from one of ${CONCURRENT_ORIGINS} random origins, ${CONCURRENT_LOSS_RATE * 100}% of Plumtree messages lost; broadcasts after the first ${CONCURRENT_SETTLE_MS / 1000} s are measured`,
  run(options) {
    const sim = newSimulation(options)
    const t0 = bootstrap(sim, options.nodes)
    const origins = sampleNodes(sim, Math.min(CONCURRENT_ORIGINS, options.nodes))
    sim.lossRate = CONCURRENT_LOSS_RATE
    const interval = 1000 / CONCURRENT_RATE_PER_SECOND
    const count = CONCURRENT_DURATION_MS / interval
    for (let i = 0; i < count; i++) {
      const at = t0 + Math.round(i * interval)
      sim.at(at, () => {
        const origin = pickRandom(sim.rng, origins.filter((node) => node.alive))
        if (origin !== undefined) sim.broadcast(origin, at - t0 >= CONCURRENT_SETTLE_MS)
      })
    }
    return finish(sim, this.name, options, t0 + CONCURRENT_DURATION_MS + TAIL_MS, () => null)
  }
}

/** `count` distinct live nodes chosen with the scenario RNG. */
function sampleNodes(sim: Simulation, count: number): SimNode[] {
  return sampleRandom(sim.rng, sim.alive(), count)
}

export const SCENARIOS: readonly Scenario[] = [stable, churn, massFailure(0.5), massFailure(0.8), loss, partition, burstJoin, concurrent]

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name)
}
