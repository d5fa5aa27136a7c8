import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { figure, parseBenchOutput, validateBenchResult } from '../contract.ts'
import type { BenchResult } from '../contract.ts'
import { assembleRun, formatNumber, replaceBlock, runJson, updateMarkdown } from '../run-report.ts'
import type { BenchOutcome, RunFacts } from '../run-report.ts'

const FACTS: RunFacts = {
  date: '2026-11-22T10:00:00.000Z',
  command: 'npm run bench -- --quick',
  quick: true,
  cpuModel: 'Test CPU',
  cores: 2,
  ramGiB: 23.4,
  node: 'v22.23.3',
  loadAverage: { start: 0.5, end: 1.5 },
  elapsedSeconds: 123.4
}

const storage: BenchResult = {
  name: 'storage',
  figures: [figure('Postgres blockstore put, 1 KiB blocks', 8337, 'blocks/s', { label: 'blockstore-fs put, 1 KiB blocks', value: 8281 }, 'higher')],
  notes: ['scale 0.25']
}
const gossip: BenchResult = {
  name: 'gossip',
  figures: [
    figure('Plumtree: reliability', 1, 'share', { label: 'gossipsub: reliability', value: 1 }, 'higher'),
    figure('Plumtree: delivery latency p99', 37.6, 'ms', { label: 'gossipsub: delivery latency p99', value: 110 }, 'lower')
  ],
  notes: []
}

const outcome = (name: string, stdout: string, extra: Partial<BenchOutcome> = {}): BenchOutcome =>
  ({ name, exitCode: 0, signal: null, timedOut: false, stdout, stderrTail: '', seconds: 12.5, ...extra })

/** A deep copy of `result` with one change: a bench that breaks the contract in one way. */
const broken = (result: BenchResult, change: (copy: Record<string, unknown> & { figures: Array<Record<string, unknown>> }) => void): string => {
  const copy = structuredClone(result) as unknown as Record<string, unknown> & { figures: Array<Record<string, unknown>> }
  change(copy)
  return JSON.stringify(copy)
}

describe('npm run bench: the contract and the report', () => {
  it('accepts output that keeps the contract, and computes ratio as value ÷ baseline', () => {
    assert.deepEqual(parseBenchOutput(`\n${JSON.stringify(storage)}\n`, 'storage'), storage)
    assert.equal(gossip.figures[1]?.ratio, 37.6 / 110)
    assert.deepEqual(validateBenchResult(gossip, 'gossip'), [])
  })

  it('reports a bench that breaks the contract as an error, naming the problem', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['nothing on stdout', '', /printed nothing/],
      ['a log line before the JSON', `starting\n${JSON.stringify(storage)}`, /not exactly one JSON object/],
      ['two JSON objects', `${JSON.stringify(storage)}\n${JSON.stringify(storage)}`, /not exactly one JSON object/],
      ['an array', '[]', /not a JSON object/],
      ['a ratio inconsistent with value ÷ baseline', broken(storage, (copy) => { copy.figures[0]!.ratio = 8281 / 8337 }), /ratio .* is not value \/ baseline\.value/],
      ['a ratio of null (Infinity in JSON)', broken(storage, (copy) => { copy.figures[0]!.ratio = null }), /ratio must be a finite number/],
      ['a zero baseline', broken(storage, (copy) => { (copy.figures[0]!.baseline as { value: number }).value = 0 }), /baseline\.value must be a finite, non-zero number/],
      ['no baseline', broken(storage, (copy) => { delete copy.figures[0]!.baseline }), /baseline must be an object/],
      ['a string value', broken(storage, (copy) => { copy.figures[0]!.value = '8337' }), /value must be a finite number/],
      ['a wrong "better"', broken(storage, (copy) => { copy.figures[0]!.better = 'more' }), /better must be "lower" or "higher"/],
      ['a wrong name', broken(storage, (copy) => { copy.name = 'store' }), /name is "store", expected "storage"/],
      ['no figures', broken(storage, (copy) => { copy.figures = [] }), /figures must be a non-empty array/],
      ['notes that are not strings', broken(storage, (copy) => { copy.notes = [1] }), /notes must be an array of strings/],
      ['an extra key', broken(storage, (copy) => { copy.details = {} }), /unexpected key\(s\) details/],
      ['a label twice', broken(gossip, (copy) => { copy.figures[1]!.label = copy.figures[0]!.label }), /label appears twice/]
    ]
    for (const [what, stdout, reason] of cases) {
      const { run, errors } = assembleRun(FACTS, [outcome('gossip', JSON.stringify(gossip)), outcome('storage', stdout)])
      assert.equal(run, undefined, `${what}: nothing may be written`)
      assert.equal(errors.length, 1, `${what}: ${errors.join(' | ')}`)
      assert.match(errors[0] ?? '', /^storage: /, what)
      assert.match(errors[0] ?? '', reason, what)
    }
  })

  it('reports a bench that failed or ran too long, with the end of its stderr', () => {
    const failed = assembleRun(FACTS, [outcome('ingest', '', { exitCode: 1, stderrTail: 'line 1\nError: connection refused' })])
    assert.equal(failed.run, undefined)
    assert.match(failed.errors[0] ?? '', /^ingest: exited with code 1\n[\s\S]*Error: connection refused/)
    const signalled = assembleRun(FACTS, [outcome('ingest', '', { exitCode: null, signal: 'SIGTERM' })])
    assert.match(signalled.errors[0] ?? '', /^ingest: ended by SIGTERM/)
    const killed = assembleRun(FACTS, [outcome('gossip', JSON.stringify(gossip), { timedOut: true, exitCode: null, signal: 'SIGKILL', seconds: 180 })])
    assert.match(killed.errors[0] ?? '', /^gossip: killed after 180 s/)
    assert.deepEqual(assembleRun(FACTS, []).errors, ['no benchmark ran (no bench/*/run.ts found)'])
  })

  it('regenerates only the marked blocks of the markdown, and adds a section for a new bench', () => {
    const { run } = assembleRun(FACTS, [outcome('gossip', JSON.stringify(gossip)), outcome('storage', JSON.stringify(storage))])
    assert.ok(run !== undefined)
    const before = [
      '# Benchmarks', '',
      '<!-- bench:summary:begin (old) -->', 'old summary', '<!-- bench:summary:end -->', '',
      '## Storage', '', 'Hand-written: what it measures.', '',
      '<!-- bench:storage:begin -->', '| old | table |', '<!-- bench:storage:end -->', '',
      'Hand-written: reading the figures.', ''
    ].join('\n')
    const after = updateMarkdown(before, run)
    assert.ok(after.startsWith('# Benchmarks\n\n<!-- bench:summary:begin'))
    assert.match(after, /Hand-written: what it measures\.\n\n<!-- bench:storage:begin[^\n]*-->\nGenerated by `npm run bench -- --quick`/)
    assert.match(after, /\| Postgres blockstore put, 1 KiB blocks \| 8,337 blocks\/s \| blockstore-fs put, 1 KiB blocks \| 8,281 blocks\/s \| 1\.01 \| higher \|/)
    assert.match(after, /<!-- bench:storage:end -->\n\nHand-written: reading the figures\./)
    assert.doesNotMatch(after, /old summary|\| old \| table \|/)
    assert.match(after, /Test CPU, 2 cores, 23\.4 GiB RAM, Node v22\.23\.3/)
    // gossip had no markers: it gets a section of its own at the end.
    assert.match(after, /\n## gossip\n\n<!-- bench:gossip:begin[^\n]*-->\n[\s\S]*\| Plumtree: reliability \| 100 % \| gossipsub: reliability \| 100 % \| 1 \| higher \|[\s\S]*<!-- bench:gossip:end -->\n$/)
    // A second run replaces the blocks in place: same text, nothing appended twice.
    assert.equal(updateMarkdown(after, run), after)
    assert.throws(() => replaceBlock('<!-- bench:storage:begin -->\nno end', 'storage', 'x', 'storage'), /unbalanced/)
    const json = JSON.parse(runJson(run)) as { command: string, benches: Array<{ name: string, seconds: number }> }
    assert.equal(json.command, 'npm run bench -- --quick')
    assert.deepEqual(json.benches.map((bench) => [bench.name, bench.seconds]), [['gossip', 12.5], ['storage', 12.5]])
  })

  it('formats numbers to three significant digits with thousands separators', () => {
    assert.deepEqual([8337.4, 38.24, 0.05344, 1, 0, 1234567].map(formatNumber), ['8,337', '38.2', '0.0534', '1', '0', '1,234,567'])
  })

  it('docs/benchmarks.md has balanced markers for the summary and every bench it shows', async () => {
    const markdown = await readFile(fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url)), 'utf8')
    for (const id of ['summary', 'storage', 'gossip', 'ingest']) {
      assert.equal(markdown.split(`<!-- bench:${id}:begin`).length, 2, `one begin marker for ${id}`)
      assert.equal(markdown.split(`<!-- bench:${id}:end -->`).length, 2, `one end marker for ${id}`)
    }
  })
})
