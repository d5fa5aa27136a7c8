/**
 * What every benchmark's `run.ts` promises `npm run bench` (bench/run.ts), which runs each
 * `bench/<name>/run.ts` it finds:
 *
 * - it accepts `--quick` (a smaller run; the whole of `npm run bench -- --quick` must finish
 *   within 5 minutes on a 2-core machine) and `--json`;
 * - with `--json`, stdout is exactly one JSON object, a {@link BenchResult}, and nothing else
 *   (progress and logs go to stderr); without it, the bench prints its own readable report;
 * - every figure stands beside a baseline measured in the same run, and `ratio` is
 *   `value / baseline.value`;
 * - it exits 0 only when the result is complete.
 *
 * The runner validates each result with {@link parseBenchOutput}; a bench that breaks the
 * contract is reported as an error and nothing is written.
 */
import { relative } from 'node:path'
import { parseArgs } from 'node:util'

export interface BenchFigure {
  label: string
  value: number
  unit: string
  /** The same quantity of the reference system, measured in the same run. */
  baseline: { label: string, value: number }
  /** value / baseline.value. */
  ratio: number
  /** Which direction of `value` (and so of `ratio`) is the good one. */
  better: 'lower' | 'higher'
}

export interface BenchResult {
  /** The bench's directory name under bench/. */
  name: string
  figures: BenchFigure[]
  /** Sentences a reader needs beside the figures: the run's size, warnings (e.g. CPU-bound). */
  notes: string[]
}

/**
 * How far a reported ratio may be from value / baseline.value, relative: room for a bench
 * that rounds its ratio to three significant digits, none for one that inverts it.
 */
export const RATIO_TOLERANCE = 0.005

/** A figure with its ratio computed, so no bench computes it by hand. */
export function figure (label: string, value: number, unit: string, baseline: { label: string, value: number }, better: 'lower' | 'higher'): BenchFigure {
  return { label, value, unit, baseline, ratio: value / baseline.value, better }
}

/**
 * With `--help` among the arguments: prints `usage` to stdout and exits 0, before any work.
 * Every bench and load test answers it, so `npm run <script> -- --help` shows the flags
 * reach the script through npm (bench/test/scripts.test.ts).
 */
export function exitWithUsageOnHelp (usage: string): void {
  if (!process.argv.slice(2).includes('--help')) return
  process.stdout.write(`usage: ${usage}\n`)
  process.exit(0)
}

/** `--quick` and `--json`, the flags every bench takes (benches with more options parse their own), and `--help`. */
export function benchFlags (): { quick: boolean, json: boolean } {
  exitWithUsageOnHelp(`node ${relative(process.cwd(), process.argv[1] ?? 'bench/<name>/run.ts')} [--quick] [--json]`)
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } } })
  return { quick: values.quick, json: values.json }
}

/** Prints `result` as the contract's one JSON object on stdout. */
export function printResult (result: BenchResult): void {
  const problems = validateBenchResult(result, result.name)
  if (problems.length > 0) throw new Error(`the ${result.name} bench broke its own contract: ${problems.join('; ')}`)
  process.stdout.write(JSON.stringify(result) + '\n')
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const isNonEmptyString = (value: unknown): value is string => typeof value === 'string' && value.trim().length > 0

function keysExactly (value: Record<string, unknown>, keys: readonly string[], where: string): string[] {
  const extra = Object.keys(value).filter((key) => !keys.includes(key))
  return extra.length === 0 ? [] : [`${where} has unexpected key(s) ${extra.join(', ')}`]
}

/** Every way `value` breaks the contract (empty: it keeps it). `expectedName` is the bench's directory. */
export function validateBenchResult (value: unknown, expectedName: string): string[] {
  if (!isObject(value)) return ['the output is not a JSON object']
  const problems = keysExactly(value, ['name', 'figures', 'notes'], 'the result')
  if (value.name !== expectedName) problems.push(`name is ${JSON.stringify(value.name)}, expected ${JSON.stringify(expectedName)} (the bench's directory)`)
  if (!Array.isArray(value.notes) || !value.notes.every((note) => typeof note === 'string')) problems.push('notes must be an array of strings')
  if (!Array.isArray(value.figures) || value.figures.length === 0) {
    problems.push('figures must be a non-empty array')
    return problems
  }
  const labels = new Set<string>()
  value.figures.forEach((item: unknown, index) => {
    const where = `figure ${index}${isObject(item) && typeof item.label === 'string' ? ` (${item.label})` : ''}`
    if (!isObject(item)) {
      problems.push(`${where} is not an object`)
      return
    }
    problems.push(...keysExactly(item, ['label', 'value', 'unit', 'baseline', 'ratio', 'better'], where))
    if (!isNonEmptyString(item.label)) problems.push(`${where}: label must be a non-empty string`)
    else if (labels.has(item.label)) problems.push(`${where}: label appears twice`)
    else labels.add(item.label)
    if (!isNonEmptyString(item.unit)) problems.push(`${where}: unit must be a non-empty string`)
    if (item.better !== 'lower' && item.better !== 'higher') problems.push(`${where}: better must be "lower" or "higher"`)
    if (typeof item.value !== 'number' || !Number.isFinite(item.value)) problems.push(`${where}: value must be a finite number`)
    const baseline = item.baseline
    if (!isObject(baseline)) {
      problems.push(`${where}: baseline must be an object { label, value }`)
      return
    }
    problems.push(...keysExactly(baseline, ['label', 'value'], `${where}'s baseline`))
    if (!isNonEmptyString(baseline.label)) problems.push(`${where}: baseline.label must be a non-empty string`)
    if (typeof baseline.value !== 'number' || !Number.isFinite(baseline.value) || baseline.value === 0) problems.push(`${where}: baseline.value must be a finite, non-zero number`)
    if (typeof item.ratio !== 'number' || !Number.isFinite(item.ratio)) {
      problems.push(`${where}: ratio must be a finite number`)
    } else if (typeof item.value === 'number' && typeof baseline.value === 'number' && Number.isFinite(item.value) && Number.isFinite(baseline.value) && baseline.value !== 0) {
      const expected = item.value / baseline.value
      if (Math.abs(item.ratio - expected) > RATIO_TOLERANCE * Math.max(Math.abs(expected), 1e-12)) {
        problems.push(`${where}: ratio ${item.ratio} is not value / baseline.value = ${item.value} / ${baseline.value} = ${expected}`)
      }
    }
  })
  return problems
}

export class BenchOutputError extends Error {
  override readonly name = 'BenchOutputError'
  readonly problems: string[]

  constructor (bench: string, problems: string[]) {
    super(`${bench}: ${problems.join('; ')}`)
    this.problems = problems
  }
}

/** The bench's stdout under `--json`, checked: exactly one JSON object that keeps the contract. */
export function parseBenchOutput (stdout: string, expectedName: string): BenchResult {
  const text = stdout.trim()
  if (text.length === 0) throw new BenchOutputError(expectedName, ['printed nothing on stdout'])
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    const firstLine = text.split('\n')[0] ?? ''
    throw new BenchOutputError(expectedName, [`stdout is not exactly one JSON object (${(err as Error).message}); it starts ${JSON.stringify(firstLine.slice(0, 120))}`])
  }
  const problems = validateBenchResult(value, expectedName)
  if (problems.length > 0) throw new BenchOutputError(expectedName, problems)
  return value as BenchResult
}
