/**
 * `npm run bench:gossip [-- --quick] [-- --json | --full-json] [-- --seed N] [-- --rates 5,20,50,100] [-- --nodes N]`:
 * Pharos's Plumtree against @libp2p/gossipsub on the same 100 libp2p nodes under the same
 * publish load, one measurement window per rate. The systems run one after the other, each in
 * fresh worker processes (coordinator.ts, worker.ts), so they never compete for the machine's
 * cores; the report puts them side by side (report.ts). See docs/benchmarks.md for what is
 * counted and how. `--json` prints the figures as bench/contract.ts describes (for
 * `npm run bench`); `--full-json` prints the whole report.
 */
import { parseArgs } from 'node:util'
import { runSystem } from './coordinator.ts'
import type { SystemResult } from './coordinator.ts'
import { exitWithUsageOnHelp, printResult } from '../contract.ts'
import { benchResult, formatReport, rateReports } from './report.ts'
import type { Report } from './report.ts'
import { DEFAULT_SCENARIO, QUICK_SCENARIO, SYSTEMS } from './scenario.ts'
import type { Scenario, SystemName } from './scenario.ts'

/** The whole benchmark is abandoned after this long per rate; a run normally takes well under half of it. */
const OVERALL_TIMEOUT_MS = { default: 420_000, quick: 150_000 }
/** Each rate after the first adds its window to both systems' runs. */
const PER_EXTRA_RATE_TIMEOUT_MS = { default: 180_000, quick: 60_000 }

function positiveInteger (flag: string, value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${flag} must be a non-negative integer, got ${value}`)
  return n
}

async function main (): Promise<void> {
  exitWithUsageOnHelp('npm run bench:gossip [-- --quick] [-- --json | --full-json] [-- --seed N] [-- --rate N | --rates 5,20,50,100] [-- --nodes N] [-- --plumtree-optimization-threshold N]')
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'full-json': { type: 'boolean', default: false },
      seed: { type: 'string' },
      rate: { type: 'string' },
      rates: { type: 'string' },
      nodes: { type: 'string' },
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
  if (values.rate !== undefined && values.rates !== undefined) throw new Error('--rate and --rates: give one')
  const rates = values.rates ?? values.rate
  if (rates !== undefined) {
    scenario.rates = rates.split(',').map((rate) => positiveInteger('rates', rate.trim()))
    if (scenario.rates.length === 0 || scenario.rates.some((rate) => rate === 0)) throw new Error('--rates needs one or more rates of at least 1, e.g. 5,20,50,100')
    flags.push(values.rates !== undefined ? '--rates' : '--rate', rates)
  }
  if (values.nodes !== undefined) {
    scenario.nodes = positiveInteger('nodes', values.nodes)
    if (scenario.nodes < scenario.bootstrapNodes + scenario.randomDials + 1) throw new Error(`--nodes must be at least ${scenario.bootstrapNodes + scenario.randomDials + 1}`)
    flags.push('--nodes', values.nodes)
  }
  const threshold = values['plumtree-optimization-threshold']
  if (threshold !== undefined) {
    scenario.plumtreeOverrides = { optimizationThreshold: positiveInteger('plumtree-optimization-threshold', threshold) }
    flags.push('--plumtree-optimization-threshold', threshold)
  }
  const watchdog = setTimeout(() => {
    console.error('bench:gossip did not finish in time; giving up (workers exit when we do)')
    process.exit(1)
  }, (values.quick ? OVERALL_TIMEOUT_MS.quick : OVERALL_TIMEOUT_MS.default) +
    (scenario.rates.length - 1) * (values.quick ? PER_EXTRA_RATE_TIMEOUT_MS.quick : PER_EXTRA_RATE_TIMEOUT_MS.default))
  watchdog.unref()

  const started = performance.now()
  const results: Partial<Record<SystemName, SystemResult[]>> = {}
  for (const system of SYSTEMS) {
    results[system] = await runSystem(system, scenario, (line) => { console.error(`  ${line}`) })
  }
  const { plumtree, gossipsub } = results
  if (plumtree === undefined || gossipsub === undefined) throw new Error('a system produced no result')
  const report: Report = {
    command: ['npm run bench:gossip', ...(flags.length > 0 ? ['--', ...flags] : [])].join(' '),
    scenario,
    rates: rateReports(plumtree, gossipsub),
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
