/**
 * Overlay simulator CLI.
 *
 *   node services/protocol/sim/cli.ts [--nodes N] [--seed S] [--scenario name|all]
 *                                     [--json] [--check] [--write-baseline]
 *
 * --check compares the figures with sim/baseline.json (which must have been written with the
 * same --nodes and --seed) and exits 1 naming every figure that regressed beyond its tolerance.
 * --write-baseline runs every scenario and rewrites sim/baseline.json.
 */
// The simulator does no I/O (the lint rule for services/protocol); its CLI is the one exception,
// to read and write the baseline file.
// eslint-disable-next-line no-restricted-imports
import { readFileSync, writeFileSync } from 'node:fs'
import { compareToBaseline } from './report.ts'
import type { Baseline, ScenarioReport } from './report.ts'
import { findScenario, SCENARIOS } from './scenarios.ts'
import type { Scenario } from './scenarios.ts'

const DEFAULT_NODES = 1000
const DEFAULT_SEED = 1
const BASELINE = new URL('./baseline.json', import.meta.url)

const USAGE = `usage: node services/protocol/sim/cli.ts [--nodes N] [--seed S] [--scenario name|all] [--json] [--check] [--write-baseline]
  --nodes N           nodes in the overlay (default ${DEFAULT_NODES})
  --seed S            seed, an integer from 0 to 4294967295 (default ${DEFAULT_SEED})
  --scenario NAME     one of ${SCENARIOS.map((s) => s.name).join(', ')}, or all (default)
  --json              print the report as JSON
  --check             compare with sim/baseline.json; exit 1 on a regression
  --write-baseline    run all scenarios and write sim/baseline.json`

interface Options {
  nodes: number
  seed: number
  scenarios: readonly Scenario[]
  json: boolean
  check: boolean
  writeBaseline: boolean
}

class UsageError extends Error {
  override readonly name = 'UsageError'
}

function parseInteger(flag: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value)
  if (value === undefined || !/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} needs an integer from ${min} to ${max}, got ${value ?? 'nothing'}`)
  }
  return n
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { nodes: DEFAULT_NODES, seed: DEFAULT_SEED, scenarios: SCENARIOS, json: false, check: false, writeBaseline: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    const [flag, inline] = arg.includes('=') ? arg.split('=', 2) as [string, string] : [arg, undefined]
    const value = (): string | undefined => inline ?? argv[++i]
    switch (flag) {
      case '--nodes': options.nodes = parseInteger(flag, value(), 2, 100_000); break
      case '--seed': options.seed = parseInteger(flag, value(), 0, 0xffff_ffff); break
      case '--scenario': {
        const name = value()
        if (name === 'all') {
          options.scenarios = SCENARIOS
          break
        }
        const scenario = name === undefined ? undefined : findScenario(name)
        if (scenario === undefined) throw new UsageError(`--scenario needs one of ${SCENARIOS.map((s) => s.name).join(', ')}, all; got ${name ?? 'nothing'}`)
        options.scenarios = [scenario]
        break
      }
      case '--json': options.json = true; break
      case '--check': options.check = true; break
      case '--write-baseline': options.writeBaseline = true; break
      case '--help': case '-h': throw new UsageError('')
      default: throw new UsageError(`unknown argument ${arg}`)
    }
  }
  if (options.writeBaseline && options.scenarios.length !== SCENARIOS.length) {
    throw new UsageError('--write-baseline runs every scenario; drop --scenario')
  }
  return options
}

function table(reports: readonly ScenarioReport[]): string {
  const header = ['scenario', 'reliability % (mean/min)', 'RMR', 'LDH', 'GRAFTs/delivery', 'latency ms (p50/p99)', 'components', 'isolated', 'min degree', 'asymmetric', 'recovery s', 'simulated s', 'events']
  const rows = reports.map((r) => [
    r.scenario,
    `${r.reliabilityPct.mean} / ${r.reliabilityPct.min}`,
    String(r.rmr),
    String(r.ldh),
    String(r.graftsPerDelivery),
    `${r.latencyMs.p50} / ${r.latencyMs.p99}`,
    String(r.components),
    String(r.isolatedNodes),
    String(r.minActiveDegree),
    String(r.symmetryViolations),
    r.recoverySeconds === null ? '-' : String(r.recoverySeconds),
    String(r.simulatedSeconds),
    String(r.events)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)))
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}

function readBaseline(): Baseline {
  return JSON.parse(readFileSync(BASELINE, 'utf8')) as Baseline
}

function main(argv: readonly string[]): number {
  let options: Options
  try {
    options = parseArgs(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    if (error.message !== '') console.error(error.message)
    console.error(USAGE)
    return error.message === '' ? 0 : 2
  }

  let baseline: Baseline | undefined
  if (options.check) {
    baseline = readBaseline()
    if (baseline.nodes !== options.nodes || baseline.seed !== options.seed) {
      console.error(`baseline.json was written with --nodes ${baseline.nodes} --seed ${baseline.seed}; run --check with those`)
      return 2
    }
  }

  const reports: ScenarioReport[] = []
  for (const scenario of options.scenarios) {
    const started = performance.now()
    const report = scenario.run({ nodes: options.nodes, seed: options.seed })
    reports.push(report)
    console.error(`${scenario.name}: ${((performance.now() - started) / 1000).toFixed(1)} s wall, ${report.simulatedSeconds} s simulated, ${report.events} events`)
  }

  const result = { nodes: options.nodes, seed: options.seed, scenarios: Object.fromEntries(reports.map((r) => [r.scenario, r])) }
  console.log(options.json ? JSON.stringify(result, null, 2) : table(reports))

  if (options.writeBaseline) {
    writeFileSync(BASELINE, JSON.stringify(result, null, 2) + '\n')
    console.error(`wrote ${BASELINE.pathname}`)
  }

  if (baseline !== undefined) {
    const regressions = compareToBaseline(reports, baseline)
    if (regressions.length > 0) {
      for (const r of regressions) {
        console.error(`REGRESSION ${r.scenario} ${r.figure}: ${r.current ?? 'none'} (baseline ${r.baseline ?? 'none'}, limit ${r.limit ?? 'none'})`)
      }
      return 1
    }
    console.error(`check: no regression against baseline.json (${reports.length} scenarios)`)
  }
  return 0
}

process.exitCode = main(process.argv.slice(2))
