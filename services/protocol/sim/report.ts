/**
 * Figures of a scenario run, and the comparison against the committed baseline.
 *
 * - reliability: per measured broadcast, the share of eligible nodes that delivered it within the
 *   delivery window; eligible = alive and settled when it was sent and still alive at the end of
 *   the window. Reported as mean and minimum over broadcasts, in percent.
 * - RMR (relative message redundancy, Plumtree paper §4): per broadcast,
 *   payload messages received / (nodes that delivered − 1) − 1, the origin counted as delivered;
 *   payload (GOSSIP) messages only. Mean over broadcasts. 0 means every node got exactly one copy.
 * - LDH (last delivery hop): the largest hop count at which any node delivered a measured broadcast.
 * - GRAFTs per delivery: GRAFT messages sent from the first measured broadcast to the end of the
 *   run, per first delivery of a measured broadcast (the origin's own not counted).
 * - latency: from broadcast to delivery, over every (broadcast, eligible node) delivery, p50/p99.
 * - overlay shape at the end: components, isolated nodes, symmetry violations (see OverlayShape).
 */
import { countsByType, MESSAGE_TYPES } from '../src/overlay/messages.ts'
import type { MessageType } from '../src/overlay/messages.ts'
import type { OverlayShape, Simulation } from './simulator.ts'

export interface ScenarioReport {
  readonly scenario: string
  readonly nodes: number
  readonly seed: number
  readonly simulatedSeconds: number
  readonly events: number
  readonly aliveAtEnd: number
  /** Measured broadcasts. */
  readonly broadcasts: number
  readonly reliabilityPct: { readonly mean: number, readonly min: number }
  readonly rmr: number
  readonly ldh: number
  /** GRAFTs sent from the first measured broadcast on, per delivery of a measured broadcast. */
  readonly graftsPerDelivery: number
  readonly latencyMs: { readonly p50: number, readonly p99: number }
  readonly components: number
  readonly isolatedNodes: number
  readonly symmetryViolations: number
  readonly staleActiveEntries: number
  /** The fewest live active neighbours any live node has at the end (the active capacity is floor(log2 N) + 1). */
  readonly minActiveDegree: number
  /**
   * Seconds from the disruption (kill, heal) until the overlay was whole: one component, no
   * isolated node, no active view naming a dead node. Null if not applicable or never.
   */
  readonly recoverySeconds: number | null
  /** Joins the driver had to repeat for nodes left with an empty active view. */
  readonly rejoins: number
  /** Plumtree messages dropped by the loss model. */
  readonly dropped: number
  /** Tree optimisations (an eager link swapped for a shorter lazy one, Plumtree §3.8), all nodes. */
  readonly treeSwaps: number
  /** Messages sent during the whole run, by type. */
  readonly sent: Readonly<Record<MessageType, number>>
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000
}

/** Nearest-rank percentile of an ascending list. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(rank, sorted.length) - 1] as number
}

export interface SummaryInput {
  readonly scenario: string
  readonly nodes: number
  readonly seed: number
  /** A delivery counts if it happened within this long of the broadcast. */
  readonly windowMs: number
  readonly recoverySeconds: number | null
  readonly shape: OverlayShape
}

/**
 * The figures of a run. A scenario that runs several independent simulations (`burst-join`)
 * passes them all: broadcasts and message counts are pooled, and `input.shape` is its own
 * combination of their shapes.
 */
export function summarize(simulations: Simulation | readonly Simulation[], input: SummaryInput): ScenarioReport {
  const sims = Array.isArray(simulations) ? simulations : [simulations as Simulation]
  const reliabilities: number[] = []
  const rmrs: number[] = []
  const latencies: number[] = []
  let ldh = 0
  let deliveries = 0
  for (const sim of sims) for (const record of sim.broadcasts) {
    if (!record.measured) continue
    const deadline = record.at + input.windowMs
    let eligible = 0
    let delivered = 0
    for (const index of record.eligible) {
      const node = sim.nodes[index]
      if (node === undefined || node.diedAt <= deadline) continue
      eligible++
      const time = record.deliveries.timeOf(index)
      if (time === undefined || time > deadline) continue
      delivered++
      if (index !== record.origin) latencies.push(time - record.at)
    }
    reliabilities.push(eligible === 0 ? 1 : delivered / eligible)
    const reached = record.deliveries.size
    deliveries += reached - 1
    rmrs.push(reached > 1 ? record.payloadReceived / (reached - 1) - 1 : 0)
    ldh = Math.max(ldh, record.deliveries.maxRound)
  }
  latencies.sort((a, b) => a - b)
  const mean = (xs: readonly number[]): number => xs.length === 0 ? 0 : xs.reduce((s, x) => s + x, 0) / xs.length
  const total = (read: (sim: Simulation) => number): number => sims.reduce((sum, sim) => sum + read(sim), 0)
  const sent = countsByType()
  for (const sim of sims) for (const type of MESSAGE_TYPES) sent[type] += sim.sent[type]
  return {
    scenario: input.scenario,
    nodes: input.nodes,
    seed: input.seed,
    simulatedSeconds: round4(Math.max(...sims.map((sim) => sim.now)) / 1000),
    events: total((sim) => sim.events),
    aliveAtEnd: input.shape.alive,
    broadcasts: reliabilities.length,
    reliabilityPct: {
      mean: round4(100 * mean(reliabilities)),
      min: round4(100 * (reliabilities.length === 0 ? 1 : Math.min(...reliabilities)))
    },
    rmr: round4(mean(rmrs)),
    ldh,
    graftsPerDelivery: round4(deliveries === 0 ? 0 : total((sim) => sim.sent.graft - (sim.sentBeforeMeasurement?.graft ?? 0)) / deliveries),
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
    components: input.shape.components,
    isolatedNodes: input.shape.isolated,
    symmetryViolations: input.shape.symmetryViolations,
    staleActiveEntries: input.shape.staleActiveEntries,
    minActiveDegree: input.shape.minActiveDegree,
    recoverySeconds: input.recoverySeconds,
    rejoins: total((sim) => sim.rejoins),
    dropped: total((sim) => sim.dropped),
    treeSwaps: total((sim) => sim.nodes.reduce((sum, node) => sum + node.topic.counters().dissemination.treeSwaps, 0)),
    sent
  }
}

// ---- baseline --------------------------------------------------------------------------------

export interface Baseline {
  readonly nodes: number
  readonly seed: number
  readonly scenarios: Readonly<Record<string, ScenarioReport>>
}

type Figure = (r: ScenarioReport) => number | null

interface Check {
  readonly figure: string
  readonly read: Figure
  readonly better: 'higher' | 'lower'
  /** Allowed worsening: the larger of `absolute` and `relative` × |baseline|. */
  readonly absolute: number
  readonly relative: number
}

/**
 * What `--check` compares and how much worse each figure may get before it counts as a
 * regression. A run with the baseline's seed and size reproduces it exactly; the tolerances are
 * for code changes that move figures a little without making the protocol worse.
 */
const CHECKS: readonly Check[] = [
  { figure: 'reliabilityPct.mean', read: (r) => r.reliabilityPct.mean, better: 'higher', absolute: 0.1, relative: 0 },
  { figure: 'reliabilityPct.min', read: (r) => r.reliabilityPct.min, better: 'higher', absolute: 1, relative: 0 },
  { figure: 'rmr', read: (r) => r.rmr, better: 'lower', absolute: 0.05, relative: 0.2 },
  { figure: 'ldh', read: (r) => r.ldh, better: 'lower', absolute: 2, relative: 0 },
  { figure: 'graftsPerDelivery', read: (r) => r.graftsPerDelivery, better: 'lower', absolute: 0.005, relative: 0.25 },
  { figure: 'latencyMs.p50', read: (r) => r.latencyMs.p50, better: 'lower', absolute: 20, relative: 0.2 },
  { figure: 'latencyMs.p99', read: (r) => r.latencyMs.p99, better: 'lower', absolute: 50, relative: 0.25 },
  { figure: 'components', read: (r) => r.components, better: 'lower', absolute: 0, relative: 0 },
  { figure: 'isolatedNodes', read: (r) => r.isolatedNodes, better: 'lower', absolute: 0, relative: 0 },
  { figure: 'minActiveDegree', read: (r) => r.minActiveDegree, better: 'higher', absolute: 1, relative: 0 },
  { figure: 'symmetryViolations', read: (r) => r.symmetryViolations, better: 'lower', absolute: 2, relative: 0.5 },
  { figure: 'recoverySeconds', read: (r) => r.recoverySeconds, better: 'lower', absolute: 15, relative: 0 }
]

export interface Regression {
  readonly scenario: string
  readonly figure: string
  readonly baseline: number | null
  readonly current: number | null
  /** The worst value still accepted. */
  readonly limit: number | null
}

/** Figures of `current` worse than the baseline beyond tolerance; a scenario missing from the baseline is an error. */
export function compareToBaseline(current: readonly ScenarioReport[], baseline: Baseline): Regression[] {
  const regressions: Regression[] = []
  for (const report of current) {
    const base = baseline.scenarios[report.scenario]
    if (base === undefined) {
      regressions.push({ scenario: report.scenario, figure: '(scenario missing from baseline)', baseline: null, current: null, limit: null })
      continue
    }
    for (const check of CHECKS) {
      const was = check.read(base)
      const now = check.read(report)
      if (was === null) continue
      if (now === null) {
        regressions.push({ scenario: report.scenario, figure: check.figure, baseline: was, current: null, limit: was })
        continue
      }
      const slack = Math.max(check.absolute, check.relative * Math.abs(was))
      const limit = check.better === 'higher' ? was - slack : was + slack
      const worse = check.better === 'higher' ? now < limit : now > limit
      if (worse) regressions.push({ scenario: report.scenario, figure: check.figure, baseline: was, current: now, limit: round4(limit) })
    }
  }
  return regressions
}
