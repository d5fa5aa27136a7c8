/**
 * The simulator is the protocol's main test (STYLE.md): every scenario at 200 nodes, asserting
 * what must hold. The committed baseline (sim/baseline.json, 1,000 nodes) is checked by
 * `npm run sim -- --check`.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { EventQueue } from '../sim/event-queue.ts'
import { compareToBaseline } from '../sim/report.ts'
import type { Baseline, ScenarioReport } from '../sim/report.ts'
import { findScenario } from '../sim/scenarios.ts'
import { Simulation } from '../sim/simulator.ts'

const NODES = 200
/** floor(log2 200) + 1 */
const ACTIVE_CAPACITY = 8
/** The figures must hold for any seed; three keep the run short. */
const SEEDS = [1, 2, 3]

function run(name: string, nodes: number, seed: number): ScenarioReport {
  const scenario = findScenario(name)
  assert.ok(scenario !== undefined, `no scenario ${name}`)
  return scenario.run({ nodes, seed })
}

/** Transient asymmetry is allowed while a NEIGHBOR handshake or DISCONNECT is in flight. */
const MAX_ASYMMETRIC = NODES / 100

function assertWhole(report: ScenarioReport): void {
  assert.equal(report.components, 1, 'the active graph is one component')
  assert.equal(report.isolatedNodes, 0, 'no live node is isolated')
  assert.equal(report.staleActiveEntries, 0, 'no active view names a dead node')
  assert.ok(report.symmetryViolations <= MAX_ASYMMETRIC, `${report.symmetryViolations} asymmetric active-view entries`)
}

function assertEveryoneDelivered(report: ScenarioReport): void {
  assert.ok(report.broadcasts >= 30, `only ${report.broadcasts} broadcasts measured`)
  assert.equal(report.reliabilityPct.mean, 100, 'every broadcast reached every live node')
  assert.equal(report.reliabilityPct.min, 100)
}

for (const seed of SEEDS) describe(`simulator, ${NODES} nodes, seed ${seed}`, () => {
  it('stable network: every broadcast reaches everyone and, once the tree settles, almost no payload is duplicated', () => {
    const report = run('stable', NODES, seed)
    assertEveryoneDelivered(report)
    assert.ok(report.rmr < 0.1, `RMR ${report.rmr}`)
    assert.ok(report.latencyMs.p99 < 1000, `p99 latency ${report.latencyMs.p99} ms: the eager tree, not lazy repair, delivers`)
    assert.ok(report.minActiveDegree >= ACTIVE_CAPACITY / 2, `a node has only ${report.minActiveDegree} active neighbours`)
    assertWhole(report)
  })

  it('10% churn per minute: broadcasts keep reaching the live nodes and the overlay stays whole', () => {
    const report = run('churn', NODES, seed)
    assert.ok(report.broadcasts >= 80)
    assert.ok(report.reliabilityPct.mean >= 99.5, `mean reliability ${report.reliabilityPct.mean}%`)
    assert.ok(report.reliabilityPct.min >= 98, `min reliability ${report.reliabilityPct.min}%`)
    assert.ok(report.aliveAtEnd >= NODES * 0.95 && report.aliveAtEnd <= NODES * 1.05, 'as many joined as left')
    assertWhole(report)
  })

  for (const pct of [50, 80]) {
    it(`${pct}% of nodes crash at once: the survivors re-form one overlay within four shuffle rounds, then every broadcast reaches them all`, () => {
      const report = run(`failure-${pct}`, NODES, seed)
      assert.equal(report.aliveAtEnd, NODES - NODES * pct / 100)
      assert.ok(report.recoverySeconds !== null && report.recoverySeconds <= 60, `recovered after ${report.recoverySeconds} s`)
      assertEveryoneDelivered(report)
      assertWhole(report)
    })
  }

  it('5% of Plumtree messages lost: IHAVE/GRAFT repair still delivers every broadcast', () => {
    const report = run('loss', NODES, seed)
    assert.ok(report.dropped > 0, 'messages were dropped')
    assert.ok(report.sent.graft > 0, 'repair was needed')
    assertEveryoneDelivered(report)
    assertWhole(report)
  })

  it('60 s partition, then heal: the halves merge within two shuffle rounds and broadcasts reach everyone', () => {
    const report = run('partition', NODES, seed)
    assert.ok(report.recoverySeconds !== null && report.recoverySeconds <= 30, `merged after ${report.recoverySeconds} s`)
    assertEveryoneDelivered(report)
    assertWhole(report)
  })

  it(`bursts of 20 joins: each forms one overlay within two shuffle rounds, and broadcasts reach everyone`, () => {
    const report = run('burst-join', NODES, seed)
    assert.ok(report.recoverySeconds !== null && report.recoverySeconds <= 30, `the slowest burst was whole after ${report.recoverySeconds} s`)
    assert.equal(report.broadcasts, (NODES / 5) * 5)
    assert.equal(report.reliabilityPct.min, 100)
    assert.equal(report.components, 1, 'every burst is one component at the end')
    assert.equal(report.isolatedNodes, 0)
  })
})

describe('simulator: an island left by a burst of joins (docs/overlay.md, HyParView bridges)', () => {
  // Seed 11 at 200 nodes (40 bursts) is one where the paper's rule leaves a burst split for good:
  // every node of one side full, the other side's free slots facing full nodes.
  it('with the paper\'s rule (no bridges) a burst stays split; with bridges it is whole within two shuffle rounds', () => {
    const scenario = findScenario('burst-join')
    assert.ok(scenario !== undefined)
    const paper = scenario.run({ nodes: NODES, seed: 11, topic: { hyparview: { bridges: false } } })
    assert.equal(paper.recoverySeconds, null, 'a burst was still split four shuffle rounds after it joined')
    assert.ok(paper.components > 1 && paper.isolatedNodes > 0)
    assert.ok(paper.reliabilityPct.min < 100, 'its broadcasts missed the other side')
    const bridged = scenario.run({ nodes: NODES, seed: 11 })
    assert.ok(bridged.recoverySeconds !== null && bridged.recoverySeconds <= 30, `whole after ${bridged.recoverySeconds} s`)
    assert.equal(bridged.components, 1)
    assert.equal(bridged.reliabilityPct.min, 100)
  })
})

describe(`simulator, ${NODES} nodes, concurrent broadcasts (issue 18)`, () => {
  it('100 broadcasts a second from 100 origins under 1% loss: every broadcast reaches everyone, and once the trees settle almost no payload is duplicated', () => {
    const report = run('concurrent', NODES, 1)
    assert.ok(report.broadcasts >= 4000, `only ${report.broadcasts} broadcasts measured`)
    assert.ok(report.dropped > 0, 'messages were dropped')
    assert.equal(report.reliabilityPct.mean, 100, 'every broadcast reached every live node')
    assert.equal(report.reliabilityPct.min, 100)
    assert.ok(report.rmr <= 0.1, `RMR ${report.rmr}: concurrent broadcasts thrash the trees`)
    assertWhole(report)
  })
})

describe('simulator driver', () => {
  it('runs the node\'s own rejoin rule: a node cut off with nobody to fall back on rejoins after rejoinAfterMs, not before', () => {
    const sim = new Simulation({ seed: 1, networkSize: 4, rejoinAfterMs: 10_000, network: { failureDetectionMs: [500, 500] } })
    const a = sim.addNode()
    const lonely = sim.addNode(a)
    sim.addNode(sim.addNode())
    sim.runUntil(2000)
    assert.deepEqual(lonely.topic.snapshot().active, [a.key])
    sim.kill(a)
    sim.runUntil(3000)
    assert.equal(lonely.topic.activeSize, 0, 'its only neighbour is gone and its passive view holds nobody else')
    sim.runUntil(12_999)
    assert.equal(sim.rejoins, 0, 'not before the view was seen empty for 10 s (from the tick at 3 s)')
    sim.runUntil(13_000)
    assert.equal(sim.rejoins, 1)
    assert.equal(lonely.node.counters().rejoins, 1, 'the node made it')
    sim.runUntil(14_000)
    assert.ok(lonely.topic.activeSize > 0, 'rejoined through a live node')
  })
})

describe('simulator determinism', () => {
  it('the same seed gives a byte-identical report; another seed a different one', () => {
    const first = JSON.stringify(run('churn', 100, 7))
    assert.equal(JSON.stringify(run('churn', 100, 7)), first)
    assert.notEqual(JSON.stringify(run('churn', 100, 8)), first)
  })
})

describe('simulator baseline check', () => {
  const report = run('stable', 50, 1)
  const baseline: Baseline = { nodes: 50, seed: 1, scenarios: { stable: report } }

  it('an identical run passes', () => {
    assert.deepEqual(compareToBaseline([report], baseline), [])
  })

  it('names each figure that got worse beyond its tolerance, and only those', () => {
    const worse: ScenarioReport = {
      ...report,
      reliabilityPct: { mean: report.reliabilityPct.mean - 0.5, min: report.reliabilityPct.min },
      rmr: report.rmr + 0.01,
      components: 2,
      latencyMs: { p50: report.latencyMs.p50 * 2, p99: report.latencyMs.p99 }
    }
    const figures = compareToBaseline([worse], baseline).map((r) => r.figure)
    assert.deepEqual(figures, ['reliabilityPct.mean', 'latencyMs.p50', 'components'])
  })

  it('a scenario missing from the baseline is a regression', () => {
    assert.equal(compareToBaseline([{ ...report, scenario: 'new' }], baseline).length, 1)
  })
})

describe('simulator event queue', () => {
  it('pops by time, and events at the same time in the order they were pushed', () => {
    const queue = new EventQueue<{ time: number, seq: number }>()
    const times = [5, 1, 3, 3, 0, 9, 3, 1]
    times.forEach((time, seq) => { queue.push({ time, seq }) })
    const popped: Array<[number, number]> = []
    for (let e = queue.pop(); e !== undefined; e = queue.pop()) popped.push([e.time, e.seq])
    assert.deepEqual(popped, [[0, 4], [1, 1], [1, 7], [3, 2], [3, 3], [3, 6], [5, 0], [9, 5]])
  })
})
