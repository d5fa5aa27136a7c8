/**
 * `npm run bench [-- --quick] [-- --only a,b]`: every benchmark, one after the other, into
 * one report.
 *
 * Runs each `bench/<name>/run.ts` it finds with `--json` (and `--quick`), against one
 * throwaway Postgres and Redis (scripts/with-services.sh, started here unless
 * TEST_PG_ADMIN_URL is already set), checks each output against bench/contract.ts, and
 * regenerates docs/benchmarks.json and the marked blocks of docs/benchmarks.md with the
 * machine's facts and the exact command. If any bench fails or breaks the contract, the
 * errors are printed and nothing is written. `--only` runs some benches and prints their
 * tables without writing either file (a partial run is not the report).
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { exitWithUsageOnHelp } from './contract.ts'
import { assembleRun, figureTable, runJson, updateMarkdown } from './run-report.ts'
import type { BenchOutcome, RunFacts } from './run-report.ts'

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url))
const ROOT = join(BENCH_DIR, '..')
const MARKDOWN = join(ROOT, 'docs', 'benchmarks.md')
const JSON_REPORT = join(ROOT, 'docs', 'benchmarks.json')
/** Per bench: a quick run of every bench together must fit in 5 minutes; a full one takes a few. */
const BENCH_TIMEOUT_MS = { quick: 180_000, full: 900_000 }
/** What `npm run bench -- --quick` must stay under (issue 8). */
const QUICK_BUDGET_SECONDS = 300
const STDERR_TAIL_LINES = 40

exitWithUsageOnHelp('npm run bench [-- --quick] [-- --only a,b]')
const args = process.argv.slice(2)
const { values } = parseArgs({ args, options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } } })

if (process.env.TEST_PG_ADMIN_URL === undefined || process.env.TEST_PG_ADMIN_URL === '') {
  // Postgres and Redis once, for every bench: run this same script under with-services.
  const child = spawn(join(ROOT, 'scripts', 'with-services.sh'), [process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...args], { stdio: 'inherit' })
  child.on('exit', (code, signal) => { process.exit(code ?? (signal === null ? 1 : 128)) })
} else {
  await main()
}

/** Directories under bench/ with a run.ts: every bench, including ones added later. */
async function discover (): Promise<string[]> {
  const entries = await readdir(BENCH_DIR, { withFileTypes: true })
  return entries.filter((entry) => entry.isDirectory() && existsSync(join(BENCH_DIR, entry.name, 'run.ts'))).map((entry) => entry.name).sort()
}

async function runBench (name: string, quick: boolean): Promise<BenchOutcome> {
  const started = performance.now()
  // Its own process group, so a timeout also ends the processes it forked.
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', join(BENCH_DIR, name, 'run.ts'), '--json', ...(quick ? ['--quick'] : [])], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  const tail: string[] = []
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  let partial = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      process.stderr.write(`[${name}] ${line}\n`)
      tail.push(line)
      if (tail.length > STDERR_TAIL_LINES) tail.shift()
    }
  })
  let timedOut = false
  const limit = setTimeout(() => {
    timedOut = true
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
  }, quick ? BENCH_TIMEOUT_MS.quick : BENCH_TIMEOUT_MS.full)
  const [exitCode, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('close', (code, signal) => { resolve([code, signal]) }))
  clearTimeout(limit)
  if (partial !== '') tail.push(partial)
  return { name, exitCode, signal, timedOut, stdout, stderrTail: tail.join('\n'), seconds: (performance.now() - started) / 1000 }
}

function commandLine (): string {
  const flags = args.join(' ')
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${flags === '' ? '' : ` -- ${flags}`}`
  return `node bench/run.ts${flags === '' ? '' : ` ${flags}`}`
}

async function main (): Promise<void> {
  const quick = values.quick
  const available = await discover()
  const only = values.only?.split(',').map((name) => name.trim()).filter((name) => name.length > 0)
  const unknown = (only ?? []).filter((name) => !available.includes(name))
  if (unknown.length > 0) throw new Error(`--only: no bench/${unknown.join(', bench/')}/run.ts (available: ${available.join(', ')})`)
  const names = only ?? available
  const date = new Date().toISOString()
  const loadStart = loadavg()[0] ?? 0
  const started = performance.now()
  console.error(`bench: ${names.join(', ')}${quick ? ' (quick)' : ''}`)
  const outcomes: BenchOutcome[] = []
  for (const name of names) {
    console.error(`bench: ${name} …`)
    const outcome = await runBench(name, quick)
    console.error(`bench: ${name} ${outcome.exitCode === 0 ? 'done' : 'FAILED'} in ${outcome.seconds.toFixed(1)} s`)
    outcomes.push(outcome)
  }
  const cpu = cpus()
  const facts: RunFacts = {
    date,
    command: commandLine(),
    quick,
    cpuModel: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    ramGiB: totalmem() / 1024 ** 3,
    node: process.version,
    loadAverage: { start: loadStart, end: loadavg()[0] ?? 0 },
    elapsedSeconds: (performance.now() - started) / 1000
  }
  const { run, errors } = assembleRun(facts, outcomes)
  if (run === undefined) {
    console.error(`\nbench: nothing written; ${errors.length} error(s):\n- ${errors.join('\n- ')}`)
    process.exitCode = 1
    return
  }
  for (const bench of run.benches) console.log(`\n## ${bench.name} (${bench.seconds.toFixed(1)} s)\n\n${figureTable(bench.figures)}\n${bench.notes.map((note) => `\n- ${note}`).join('')}`)
  console.log(`\n${names.length} bench(es) in ${facts.elapsedSeconds.toFixed(1)} s`)
  if (quick && facts.elapsedSeconds > QUICK_BUDGET_SECONDS) console.error(`bench: WARNING: the quick run took ${facts.elapsedSeconds.toFixed(0)} s, over its ${QUICK_BUDGET_SECONDS} s budget`)
  if (only !== undefined) {
    console.error('bench: --only: docs/benchmarks.md and docs/benchmarks.json left as they were')
    return
  }
  await writeFile(MARKDOWN, updateMarkdown(await readFile(MARKDOWN, 'utf8'), run))
  await writeFile(JSON_REPORT, runJson(run))
  console.error('bench: wrote docs/benchmarks.md and docs/benchmarks.json')
}
