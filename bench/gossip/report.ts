/**
 * The side-by-side report: each Plumtree figure beside the gossipsub figure of the same run,
 * and their ratio (Plumtree ÷ gossipsub; below 1 means Plumtree spent or waited less, except
 * for reliability, where higher is better).
 */
import { figure } from '../contract.ts'
import type { BenchFigure, BenchResult } from '../contract.ts'
import type { SystemResult } from './coordinator.ts'
import type { Scenario } from './scenario.ts'

export interface ComparisonRow {
  metric: string
  /** How the table shows it (parts of a figure are indented under it). */
  label: string
  unit: string
  plumtree: number
  gossipsub: number
  /** plumtree / gossipsub. */
  ratio: number
}

/** One publish rate's window, both systems side by side. */
export interface RateReport {
  ratePerSecond: number
  comparison: ComparisonRow[]
  results: { plumtree: SystemResult, gossipsub: SystemResult }
  /** Issue 18's targets for Plumtree at this rate, each with the value measured and whether it was met. */
  targets: TargetCheck[]
}

export interface TargetCheck {
  target: string
  value: number
  limit: number
  met: boolean
}

export interface Report {
  command: string
  scenario: Scenario
  rates: RateReport[]
  elapsedMs: number
}

/**
 * Issue 18's targets for Plumtree at each rate: every node delivers every message, GRAFT frames
 * ≤ 0.05 and payload-carrying frames ≤ 1.2 per delivered message, and p99 latency at most twice
 * the p99 of the first (slowest) rate of the same run.
 */
export function targetsOf (plumtree: SystemResult, first: SystemResult): TargetCheck[] {
  const check = (target: string, value: number, limit: number, met: boolean): TargetCheck => ({ target, value, limit, met })
  const graft = (plumtree.wire.items.graft ?? 0) / plumtree.deliveries
  const payload = plumtree.wire.payloadFrames / plumtree.deliveries
  return [
    check('worst node reliability = 100 %', plumtree.worstNodeReliability, 1, plumtree.worstNodeReliability === 1),
    check('GRAFT frames per delivered message ≤ 0.05', graft, 0.05, graft <= 0.05),
    check('payload-carrying frames per delivered message ≤ 1.2', payload, 1.2, payload <= 1.2),
    check(`delivery latency p99 ≤ 2 × its p99 at ${first.ratePerSecond}/s`, plumtree.latencyMs.p99, 2 * first.latencyMs.p99, plumtree.latencyMs.p99 <= 2 * first.latencyMs.p99)
  ]
}

/** The side-by-side rows and target checks of every rate; `results` in the order of the rates. */
export function rateReports (plumtree: readonly SystemResult[], gossipsub: readonly SystemResult[]): RateReport[] {
  return plumtree.map((result, i) => {
    const other = gossipsub[i]
    const first = plumtree[0]
    if (other === undefined || first === undefined) throw new Error('the systems measured different rates')
    return { ratePerSecond: result.ratePerSecond, comparison: compare(result, other), results: { plumtree: result, gossipsub: other }, targets: targetsOf(result, first) }
  })
}

/** The rows of the comparison, derived from both results the same way. */
export function compare (plumtree: SystemResult, gossipsub: SystemResult): ComparisonRow[] {
  const rows: ComparisonRow[] = []
  const row = (metric: string, label: string, unit: string, of: (result: SystemResult) => number): void => {
    const p = of(plumtree)
    const g = of(gossipsub)
    rows.push({ metric, label, unit, plumtree: p, gossipsub: g, ratio: p / g })
  }
  const perDelivery = (value: (result: SystemResult) => number) => (result: SystemResult): number => value(result) / result.deliveries
  row('reliability', 'reliability', 'share of messages × (N−1)', (r) => r.deliveries / r.expectedDeliveries)
  row('worst node reliability', 'worst node reliability', 'share', (r) => r.worstNodeReliability)
  row('delivery latency p50', 'delivery latency p50', 'ms', (r) => r.latencyMs.p50)
  row('delivery latency p99', 'delivery latency p99', 'ms', (r) => r.latencyMs.p99)
  row('network messages per delivered message', 'network messages per delivered message', 'frames', perDelivery((r) => r.wire.frames))
  row('payload-carrying network messages per delivered message', '  payload-carrying', 'frames', perDelivery((r) => r.wire.payloadFrames))
  row('control-only network messages per delivered message', '  control only', 'frames', perDelivery((r) => r.wire.controlFrames))
  row('bytes per delivered message', 'bytes per delivered message', 'B', perDelivery((r) => r.wire.bytes))
  row('bytes in payload-carrying frames per delivered message', '  in payload-carrying frames', 'B', perDelivery((r) => r.wire.payloadBytes))
  row('bytes in control-only frames per delivered message', '  in control-only frames', 'B', perDelivery((r) => r.wire.controlBytes))
  row('TCP bytes per delivered message', 'TCP bytes per delivered message (all protocols, noise, yamux)', 'B', perDelivery((r) => r.wire.tcpBytes))
  return rows
}

/** Above this event-loop delay p99 (ms) a worker was short of CPU, and latency says more about the machine than the protocol. */
export const SATURATED_LOOP_P99_MS = 50

export function cpuBound (result: SystemResult): boolean {
  return result.eventLoopDelayMs.p99 > SATURATED_LOOP_P99_MS
}

export function formatReport (report: Report): string {
  const { scenario } = report
  const lines: string[] = []
  lines.push(`Gossip head-to-head: ${scenario.nodes} libp2p nodes on loopback (TCP, noise, yamux) in ${scenario.workers} worker processes, ` +
    `${scenario.messages} messages of ${scenario.payloadBytes} B per rate (${scenario.rates.map((rate) => `${rate}/s`).join(', ')}) from random publishers ` +
    `after ${scenario.warmupMessages} warm-up messages at ${scenario.warmupRatePerSecond}/s, seed ${scenario.seed}`)
  if (scenario.plumtreeOverrides !== undefined) lines.push(`NON-DEFAULT Plumtree config (diagnosis only): ${JSON.stringify(scenario.plumtreeOverrides)}`)
  lines.push(`command: ${report.command}`)
  for (const rate of report.rates) {
    const { plumtree, gossipsub } = rate.results
    lines.push('')
    lines.push(`## ${rate.ratePerSecond} messages/s`)
    lines.push('')
    const width = Math.max(...rate.comparison.map((r) => r.label.length))
    lines.push(`${'figure'.padEnd(width)}  ${'Plumtree'.padStart(10)}  ${'gossipsub'.padStart(10)}  ${'ratio P/g'.padStart(9)}`)
    for (const r of rate.comparison) {
      const fmt = (value: number): string => r.unit.startsWith('share') ? `${(value * 100).toFixed(2)}%` : value >= 100 ? value.toFixed(0) : value.toFixed(2)
      lines.push(`${r.label.padEnd(width)}  ${fmt(r.plumtree).padStart(10)}  ${fmt(r.gossipsub).padStart(10)}  ${Number.isFinite(r.ratio) ? r.ratio.toFixed(3).padStart(9) : '—'.padStart(9)}`)
    }
    lines.push('')
    lines.push(`Plumtree targets (issue 18): ${rate.targets.map((t) => `${t.met ? 'met' : 'MISSED'}: ${t.target} (${formatTarget(t)})`).join('; ')}`)
    for (const result of [plumtree, gossipsub]) {
      const w = result.wire
      const items = Object.entries(w.items).sort(([a], [b]) => a.localeCompare(b)).map(([item, count]) => `${item} ${count}`).join(', ')
      lines.push(`${result.system}: delivered ${result.deliveries}/${result.expectedDeliveries}, ${result.publishFailures} publish failures, ${result.repeatDeliveries} repeat deliveries; ` +
        `latency p90 ${result.latencyMs.p90.toFixed(1)} ms, max ${result.latencyMs.max.toFixed(1)} ms`)
      lines.push(`  window ${(result.windowMs / 1000).toFixed(1)} s: ${w.frames} frames, ${w.bytes} B on protocol streams, ${w.tcpBytes} B on TCP` +
        (w.undecoded > 0 ? `, ${w.undecoded} UNDECODED frames` : ''))
      lines.push(`  frames carried: ${items}`)
      lines.push(`  per node: ${result.connections.mean.toFixed(1)} connections (${result.connections.min}–${result.connections.max}), ` +
        `${result.degree.mean.toFixed(1)} dissemination neighbours (${result.degree.min}–${result.degree.max})` +
        (result.eagerDegree === undefined ? '' : `, ${result.eagerDegree.mean.toFixed(1)} eager (${result.eagerDegree.min}–${result.eagerDegree.max})`))
      lines.push(`  setup ${(result.setupMs / 1000).toFixed(1)} s (${result.dialFailures} dial failures, ${result.nodesWithoutNeighbour} nodes without a neighbour); ` +
        `clock skew between processes ≤ ${result.clockSkewMs.toFixed(2)} ms`)
      lines.push(`  worst worker's event-loop delay p50 ${result.eventLoopDelayMs.p50.toFixed(1)} ms, p99 ${result.eventLoopDelayMs.p99.toFixed(1)} ms, ` +
        `max ${result.eventLoopDelayMs.max.toFixed(1)} ms; CPU ${result.cpuCores.toFixed(2)} cores over the window`)
    }
    const saturated = [plumtree, gossipsub].filter(cpuBound)
    if (saturated.length > 0) {
      lines.push(`WARNING: ${saturated.map((r) => r.system).join(' and ')} ran with event-loop delay p99 above ${SATURATED_LOOP_P99_MS} ms: ` +
        'its latencies include time queued for the CPU (this machine, or others sharing it), not only the protocol. ' +
        'Message and byte counts do not depend on it.')
    }
  }
  lines.push('')
  lines.push(`elapsed ${(report.elapsedMs / 1000).toFixed(1)} s`)
  return lines.join('\n')
}

function formatTarget (check: TargetCheck): string {
  return check.target.startsWith('worst node') ? `${(check.value * 100).toFixed(2)} %` : check.target.startsWith('delivery latency') ? `${check.value.toFixed(0)} ms, limit ${check.limit.toFixed(0)} ms` : check.value.toFixed(3)
}

/**
 * The comparison as bench/contract.ts's result: each Plumtree figure beside gossipsub's, per
 * rate (labels name the rate when there is more than one), and Plumtree's p99 at each further
 * rate beside its p99 at the first. A figure whose baseline is zero cannot be a contract figure
 * (its ratio is undefined): it goes into the notes.
 */
export function benchResult (report: Report): BenchResult {
  const { scenario } = report
  const several = report.rates.length > 1
  const figures: BenchFigure[] = []
  const notes = [
    `${scenario.nodes} libp2p nodes on loopback in ${scenario.workers} worker processes, ${scenario.messages} messages of ${scenario.payloadBytes} B per rate ` +
      `(${scenario.rates.map((rate) => `${rate}/s`).join(', ')}) after ${scenario.warmupMessages} warm-up messages, seed ${scenario.seed}; command ${report.command}.`
  ]
  const first = report.rates[0]
  for (const rate of report.rates) {
    const at = several ? ` at ${rate.ratePerSecond}/s` : ''
    for (const row of rate.comparison) {
      const share = row.unit.startsWith('share')
      const label = `${row.metric}${at}`
      if (row.gossipsub === 0) {
        notes.push(`Plumtree: ${label} = ${row.plumtree}; gossipsub: 0, so no ratio.`)
        continue
      }
      figures.push(figure(`Plumtree: ${label}`, row.plumtree, share ? 'share' : row.unit, { label: `gossipsub: ${label}`, value: row.gossipsub }, share ? 'higher' : 'lower'))
    }
    if (first !== undefined && rate !== first && first.results.plumtree.latencyMs.p99 > 0) {
      figures.push(figure(`Plumtree: delivery latency p99${at} against its own at ${first.ratePerSecond}/s`, rate.results.plumtree.latencyMs.p99, 'ms',
        { label: `Plumtree: delivery latency p99 at ${first.ratePerSecond}/s`, value: first.results.plumtree.latencyMs.p99 }, 'lower'))
    }
    const missed = rate.targets.filter((t) => !t.met)
    notes.push(`Plumtree targets${at || ''}: ${missed.length === 0 ? 'all met' : `MISSED ${missed.map((t) => `${t.target} (${formatTarget(t)})`).join('; ')}`}; ` +
      `GRAFT frames per delivered message ${(rate.targets[1]?.value ?? 0).toFixed(3)}.`)
    for (const result of [rate.results.plumtree, rate.results.gossipsub]) {
      if (cpuBound(result)) {
        notes.push(`${result.system}${at} ran CPU-bound (event-loop delay p99 ${result.eventLoopDelayMs.p99.toFixed(0)} ms > ${SATURATED_LOOP_P99_MS} ms): its latencies include time queued for the CPU; message and byte counts do not depend on it.`)
      }
    }
  }
  return { name: 'gossip', figures, notes }
}
