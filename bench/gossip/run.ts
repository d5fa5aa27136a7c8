/**
 * `npm run bench:gossip [-- --quick] [-- --json | --full-json] [-- --seed N]`: Pharos's Plumtree against
 * @libp2p/gossipsub on the same 100 libp2p nodes under the same publish load. The systems run
 * one after the other, each in fresh worker processes (coordinator.ts, worker.ts), so they
 * never compete for the machine's cores; the report puts them side by side (report.ts). See
 * docs/benchmarks.md for what is counted and how. `--json` prints the figures as
 * bench/contract.ts describes (for `npm run bench`); `--full-json` prints the whole report.
 */
import { parseArgs } from 'node:util'
import { runSystem } from './coordinator.ts'
import type { SystemResult } from './coordinator.ts'
import { printResult } from '../contract.ts'
import { benchResult, compare, formatReport } from './report.ts'
import type { Report } from './report.ts'
import { DEFAULT_SCENARIO, QUICK_SCENARIO, SYSTEMS } from './scenario.ts'
import type { Scenario, SystemName } from './scenario.ts'

/** The whole benchmark is abandoned after this long; a run normally takes well under half of it. */
const OVERALL_TIMEOUT_MS = { default: 420_000, quick: 150_000 }

function positiveInteger (flag: string, value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${flag} must be a non-negative integer, got ${value}`)
  return n
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'full-json': { type: 'boolean', default: false },
      seed: { type: 'string' },
      rate: { type: 'string' },
      'plumtree-optimization-threshold': { type: 'string' }
    }
  })
  const scenario: Scenario = { ...(values.quick ? QUICK_SCENARIO : DEFAULT_SCENARIO) }
  const flags: string[] = []
  if (values.quick) flags.push('--quick')
  if (values.json) flags.push('--json')
  if (values['full-json']) flags.push('--full-json')
  if (values.seed !== undefined) {
    scenario.seed = positiveInteger('seed', values.seed)
    flags.push('--seed', values.seed)
  }
  if (values.rate !== undefined) {
    scenario.ratePerSecond = positiveInteger('rate', values.rate)
    if (scenario.ratePerSecond === 0) throw new Error('--rate must be at least 1')
    flags.push('--rate', values.rate)
  }
  const threshold = values['plumtree-optimization-threshold']
  if (threshold !== undefined) {
    scenario.plumtreeOverrides = { optimizationThreshold: positiveInteger('plumtree-optimization-threshold', threshold) }
    flags.push('--plumtree-optimization-threshold', threshold)
  }
  const watchdog = setTimeout(() => {
    console.error('bench:gossip did not finish in time; giving up (workers exit when we do)')
    process.exit(1)
  }, values.quick ? OVERALL_TIMEOUT_MS.quick : OVERALL_TIMEOUT_MS.default)
  watchdog.unref()

  const started = performance.now()
  const results: Partial<Record<SystemName, SystemResult>> = {}
  for (const system of SYSTEMS) {
    results[system] = await runSystem(system, scenario, (line) => { console.error(`  ${line}`) })
  }
  const { plumtree, gossipsub } = results
  if (plumtree === undefined || gossipsub === undefined) throw new Error('a system produced no result')
  const report: Report = {
    command: ['npm run bench:gossip', ...(flags.length > 0 ? ['--', ...flags] : [])].join(' '),
    scenario,
    comparison: compare(plumtree, gossipsub),
    results: { plumtree, gossipsub },
    elapsedMs: performance.now() - started
  }
  if (values.json) printResult(benchResult(report))
  else console.log(values['full-json'] ? JSON.stringify(report, null, 2) : formatReport(report))
  clearTimeout(watchdog)
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : err)
  process.exitCode = 1
})
