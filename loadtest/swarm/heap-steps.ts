/**
 * Where a worker's memory per connection goes (issue 19, item 4): opens light connections to
 * a worker in steps (`--steps 2000,4000`), and at each step, once the worker has settled,
 * has it write a V8 heap snapshot (the worker runs with `--heapsnapshot-signal=SIGUSR2`) and
 * records its RSS and heap figures from /metrics. Diff two snapshots with heap-diff.ts.
 *
 *   SWARM_WORKER_NODE_ARGS='--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=/tmp/heap' \
 *   SWARM_GENERATOR_SCRIPT=loadtest/swarm/heap-steps.ts loadtest/swarm/target.sh --steps 2000,4000
 *
 * Light connections only (no full peers, no publishes): what one idle connection costs.
 * Logs go to stderr; one JSON line per step to stdout.
 */
import { readdir, stat } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { LightPool } from './light-pool.ts'
import { scrapeWorker } from './worker-metrics.ts'

const log = (message: string): void => { process.stderr.write(`[heap-steps] ${message}\n`) }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

const { values } = parseArgs({
  options: {
    bootstrap: { type: 'string' },
    http: { type: 'string' },
    steps: { type: 'string', default: '2000,4000' },
    rate: { type: 'string', default: '100' },
    settle: { type: 'string', default: '20' },
    'light-processes': { type: 'string', default: '4' },
    'snapshot-dir': { type: 'string', default: process.env.SWARM_HEAP_DIR ?? '/tmp/heap' },
    'no-snapshot': { type: 'boolean', default: false },
    'top-up': { type: 'string', default: '0' },
    connections: { type: 'string' }
  }
})
const bootstrap = (values.bootstrap ?? '').split(',').filter((part) => part !== '')
const http = values.http ?? ''
const steps = values.steps.split(',').map(Number)
const ratePerSecond = Number(values.rate)
const settleMs = Number(values.settle) * 1000
const snapshotDir = values['snapshot-dir']
const topUpRounds = Number(values['top-up'])
const workerPid = Number((process.env.SWARM_WORKER_PIDS ?? '').split(',')[0])
if (bootstrap.length === 0 || http === '' || steps.some((step) => !Number.isInteger(step) || step <= 0)) {
  process.stderr.write('heap-steps: --bootstrap, --http and --steps N[,N…] are required\n')
  process.exit(2)
}

/** Scrapes until the worker answers again (it writes the snapshot on its main thread). */
async function scrapeAfterSnapshot (): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try { await scrapeWorker(http); return } catch (err) { if (attempt >= 12) throw err }
  }
}

/** Sends SIGUSR2 and waits until a new .heapsnapshot in `snapshotDir` stops growing. */
async function snapshot (): Promise<string> {
  const before = new Set(await readdir(snapshotDir).catch(() => []))
  process.kill(workerPid, 'SIGUSR2')
  for (;;) {
    await sleep(1000)
    const fresh = (await readdir(snapshotDir).catch(() => [])).filter((name) => name.endsWith('.heapsnapshot') && !before.has(name))
    const file = fresh[0]
    if (file === undefined) continue
    const path = `${snapshotDir}/${file}`
    let size = -1
    for (;;) {
      await sleep(2000)
      const now = (await stat(path)).size
      // The scrape answers only after the snapshot is written (the main thread writes it).
      if (now === size) { await scrapeAfterSnapshot(); return path }
      size = now
    }
  }
}

let failures = 0
let settled = 0
let closedByRemote = 0
const pool = new LightPool(Number(values['light-processes']), {
  onOpened: () => { settled++ },
  onFailed: (_, reason, message) => { settled++; if (++failures <= 5) log(`open failed: ${reason}: ${message}`) },
  onClosedByRemote: () => { closedByRemote++ }
})
await pool.ready()
await scrapeWorker(http)
const baseline = await scrapeWorker(http)
process.stdout.write(`${JSON.stringify({ step: 0, held: baseline.connections, rssBytes: baseline.rssBytes, heapUsedBytes: baseline.heapUsedBytes, heapTotalBytes: baseline.heapTotalBytes, externalBytes: baseline.externalBytes })}\n`)
let opened = 0
for (const step of steps) {
  while (opened < step) {
    const count = Math.min(Math.max(1, Math.round(ratePerSecond / 10)), step - opened)
    void pool.openAll(pool.specs(count, bootstrap), 256)
    opened += count
    await sleep(100)
  }
  // Wait until every open has finished; reopen the ones that failed (--top-up rounds).
  while (settled < opened) await sleep(500)
  for (let round = 1; round <= topUpRounds && pool.open.size < step; round++) {
    const shortfall = step - pool.open.size
    log(`step ${step}, top-up round ${round}: ${pool.open.size} held, opening ${shortfall} more`)
    for (let count = 0; count < shortfall;) {
      const slice = Math.min(Math.max(1, Math.round(ratePerSecond / 10)), shortfall - count)
      void pool.openAll(pool.specs(slice, bootstrap), 256)
      count += slice
      opened += slice
      await sleep(100)
    }
    while (settled < opened) await sleep(500)
  }
  // Then for timers and GC to settle.
  await sleep(settleMs)
  const sample = await scrapeWorker(http)
  const file = values['no-snapshot'] || Number.isNaN(workerPid) ? null : await snapshot()
  if (file !== null) await scrapeAfterSnapshot()
  const after = await scrapeWorker(http)
  log(`step ${step}: ${sample.connections} held, RSS ${Math.round(sample.rssBytes / 2 ** 20)} MiB, heap used ${Math.round(sample.heapUsedBytes / 2 ** 20)} MiB${file === null ? '' : `, snapshot ${file}`}`)
  process.stdout.write(`${JSON.stringify({ step, held: sample.connections, failures, closedByRemote, rssBytes: sample.rssBytes, heapUsedBytes: sample.heapUsedBytes, heapTotalBytes: sample.heapTotalBytes, externalBytes: sample.externalBytes, rssAfterSnapshotBytes: after.rssBytes, heapUsedAfterSnapshotBytes: after.heapUsedBytes, snapshot: file })}\n`)
}
await pool.stop()
process.exit(0)
