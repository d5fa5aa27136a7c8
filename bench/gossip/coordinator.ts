/**
 * One system's run: forks the workers that host the nodes (worker.ts), drives the phases and
 * merges what the workers counted.
 *
 * Phases: start the nodes → the same dials for both systems → Plumtree nodes join through
 * their bootstrap node (gossipsub nodes subscribed at start) → wait until every node has a
 * dissemination neighbour → settle → warm-up messages → one measurement window per publish
 * rate (counting on), each followed by its drain and a quiet pause → stop. Only the windows are
 * counted, each its own messages (a late delivery of one window's message is not counted in
 * the next).
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Scenario, SystemName } from './scenario.ts'
import { publishers, sharedNow, workerOf } from './scenario.ts'
import type { BookEntry } from './systems.ts'
import { sleep, within } from './systems.ts'
import type { WireTally } from './wire-meter.ts'
import type { FromWorker, NodeStatus, ToWorker, WindowResult, WorkerInit, WorkerReply, WorkerRequest } from './worker.ts'

export interface Spread {
  mean: number
  min: number
  max: number
}

export interface SystemResult {
  system: SystemName
  /** Publish rate of this window, messages per second. */
  ratePerSecond: number
  nodes: number
  workers: number
  /** Start, dials, join, until every node had a neighbour. */
  setupMs: number
  /** Nodes that still had no dissemination neighbour when the wait for it gave up (should be 0). */
  nodesWithoutNeighbour: number
  dialFailures: number
  /** Largest estimated difference between a worker's clock and the coordinator's, ms (bounds the latency error). */
  clockSkewMs: number
  /** libp2p connections per node when the window opened. */
  connections: Spread
  /** Dissemination neighbours per node when the window opened (Plumtree active view, gossipsub mesh). */
  degree: Spread
  /** Plumtree eager peers per node when the window opened (a spanning tree averages 2 × (N − 1) / N). */
  eagerDegree?: Spread
  messages: number
  publishFailures: number
  /** messages × (nodes − 1). */
  expectedDeliveries: number
  /** First deliveries of measured messages inside the window. */
  deliveries: number
  /** Deliveries of a message a node had already delivered (should be 0). */
  repeatDeliveries: number
  /** The lowest share of the measured messages (other nodes') any one node delivered. */
  worstNodeReliability: number
  /** Receive time − publish time, ms, over every delivery. */
  latencyMs: { p50: number, p90: number, p99: number, max: number }
  windowMs: number
  wire: WireTally
  /** Event-loop delay over the window, ms, of the worst worker: when it is high, latency measures the CPU queue. */
  eventLoopDelayMs: { p50: number, p99: number, max: number }
  /** CPU time of all workers over the window per wall-clock time (1.0 = one core busy). */
  cpuCores: number
}

const READY_TIMEOUT_MS = 30_000
const REQUEST_TIMEOUT_MS = 60_000

/** A forked worker and the requests it has not answered yet. */
class WorkerHandle {
  readonly child: ChildProcess
  readonly listening: Promise<BookEntry[]>
  private nextId = 0
  private readonly pending = new Map<number, { resolve: (reply: WorkerReply) => void, reject: (err: Error) => void }>()

  constructor (init: WorkerInit) {
    this.child = fork(fileURLToPath(new URL('./worker.ts', import.meta.url)), [JSON.stringify(init)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: [...process.execArgv, '--disable-warning=ExperimentalWarning']
    })
    this.listening = new Promise((resolve, reject) => {
      this.child.on('message', (message: FromWorker) => {
        if ('ready' in message) {
          if (message.ready.type === 'listening') resolve(message.ready.book)
          return
        }
        const waiter = this.pending.get(message.id)
        this.pending.delete(message.id)
        if (message.reply.type === 'error') waiter?.reject(new Error(`worker ${init.worker}: ${message.reply.error}`))
        else waiter?.resolve(message.reply)
      })
      this.child.on('exit', (code, signal) => {
        const err = new Error(`worker ${init.worker} exited (${signal ?? code})`)
        reject(err)
        for (const waiter of this.pending.values()) waiter.reject(err)
        this.pending.clear()
      })
    })
  }

  async request (request: WorkerRequest): Promise<WorkerReply> {
    const id = this.nextId++
    return await new Promise<WorkerReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`worker did not answer ${request.type} within ${REQUEST_TIMEOUT_MS / 1000} s`))
      }, REQUEST_TIMEOUT_MS)
      this.pending.set(id, {
        resolve: (reply) => { clearTimeout(timer); resolve(reply) },
        reject: (err) => { clearTimeout(timer); reject(err) }
      })
      this.post({ id, request })
    })
  }

  post (message: ToWorker): void {
    if (this.child.connected) this.child.send(message)
  }
}

async function all<T extends WorkerReply['type']> (workers: readonly WorkerHandle[], request: WorkerRequest, expect: T): Promise<Array<Extract<WorkerReply, { type: T }>>> {
  const replies = await Promise.all(workers.map(async (worker) => await worker.request(request)))
  return replies.map((reply) => {
    if (reply.type !== expect) throw new Error(`expected ${expect}, got ${reply.type}`)
    return reply as Extract<WorkerReply, { type: T }>
  })
}

/** Runs `system` once: one network, one window per rate of `scenario.rates`, in that order. */
export async function runSystem (system: SystemName, scenario: Scenario, progress: (line: string) => void): Promise<SystemResult[]> {
  const started = performance.now()
  const workers = Array.from({ length: scenario.workers }, (_, worker) => new WorkerHandle({ system, scenario, worker }))
  try {
    const book = (await Promise.all(workers.map(async (worker) => await worker.listening))).flat().sort((a, b) => a.index - b.index)
    progress(`${system}: ${book.length} nodes listening in ${workers.length} workers at ${((performance.now() - started) / 1000).toFixed(1)} s`)
    const clockSkewMs = await measureSkew(workers)
    await all(workers, { type: 'book', book }, 'done')
    const dialFailures = (await all(workers, { type: 'dial' }, 'dialed')).reduce((n, reply) => n + reply.failures, 0)
    progress(`${system}: dials done at ${((performance.now() - started) / 1000).toFixed(1)} s`)
    await all(workers, { type: 'join' }, 'done')
    const status = async (): Promise<NodeStatus[]> => (await all(workers, { type: 'status' }, 'status')).flatMap((reply) => reply.nodes)
    const readyBy = performance.now() + READY_TIMEOUT_MS
    let nodes = await status()
    while (nodes.some((node) => node.degree === 0) && performance.now() < readyBy) {
      await sleep(250)
      nodes = await status()
    }
    const nodesWithoutNeighbour = nodes.filter((node) => node.degree === 0).length
    const setupMs = performance.now() - started
    progress(`${system}: connected in ${(setupMs / 1000).toFixed(1)} s (${dialFailures} dial failures, ${nodesWithoutNeighbour} nodes without a neighbour); settling`)
    await sleep(scenario.settleMs)

    const order = publishers(scenario)
    progress(`${system}: ${scenario.warmupMessages} warm-up messages at ${scenario.warmupRatePerSecond}/s`)
    await publishRange(workers, scenario, order, 0, scenario.warmupMessages, scenario.warmupRatePerSecond)
    await sleep(scenario.quietMs)

    const results: SystemResult[] = []
    for (const [window, ratePerSecond] of scenario.rates.entries()) {
      const from = scenario.warmupMessages + window * scenario.messages
      const to = from + scenario.messages
      if (window > 0) await sleep(scenario.quietMs)
      progress(`${system}: measuring ${scenario.messages} messages at ${ratePerSecond}/s`)
      nodes = await status()
      await all(workers, { type: 'open', from, to }, 'done')
      const windowStart = performance.now()
      await publishRange(workers, scenario, order, from, to, ratePerSecond)
      await sleep(scenario.drainMs)
      const windows = (await all(workers, { type: 'close' }, 'closed')).map((reply) => reply.result)
      const windowMs = performance.now() - windowStart
      results.push(summarize(system, scenario, ratePerSecond, order.slice(from, to), nodes, windows, { setupMs, nodesWithoutNeighbour, dialFailures, clockSkewMs, windowMs, workers: workers.length }))
    }
    return results
  } finally {
    const stopping = performance.now()
    await Promise.all(workers.map(async (worker) => {
      await within(10_000, worker.request({ type: 'stop' }).catch(() => {}))
      // It leaves by itself just after its reply; waiting for that lets `--cpu-prof` write its profile.
      if (worker.child.exitCode === null) await within(2_000, new Promise((resolve) => worker.child.once('exit', resolve)))
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL')
    }))
    progress(`${system}: stopped in ${((performance.now() - stopping) / 1000).toFixed(1)} s`)
  }
}

/**
 * Each worker's clock against ours: ask for its time and compare with the midpoint of the round
 * trip. Five tries each, the one with the shortest round trip kept.
 */
async function measureSkew (workers: readonly WorkerHandle[]): Promise<number> {
  let worst = 0
  for (const worker of workers) {
    let best = { rtt: Number.POSITIVE_INFINITY, skew: 0 }
    for (let i = 0; i < 5; i++) {
      const before = sharedNow()
      const reply = await worker.request({ type: 'clock' })
      const after = sharedNow()
      if (reply.type === 'clock' && after - before < best.rtt) best = { rtt: after - before, skew: reply.now - (before + after) / 2 }
    }
    worst = Math.max(worst, Math.abs(best.skew) + best.rtt / 2)
  }
  return worst
}

/** Publishes messages [from, to) on a fixed schedule (a late publish does not shift the ones after it). */
async function publishRange (workers: readonly WorkerHandle[], scenario: Scenario, order: readonly number[], from: number, to: number, ratePerSecond: number): Promise<void> {
  const interval = 1000 / ratePerSecond
  const start = performance.now()
  for (let seq = from; seq < to; seq++) {
    const wait = start + (seq - from) * interval - performance.now()
    if (wait > 0) await sleep(wait)
    const index = order[seq] ?? 0
    workers[workerOf(scenario, index)]?.post({ publish: { seq, index } })
  }
}

/** One window's figures; `measured` are its messages' publishers. */
function summarize (
  system: SystemName,
  scenario: Scenario,
  ratePerSecond: number,
  measured: readonly number[],
  nodes: readonly NodeStatus[],
  windows: readonly WindowResult[],
  run: Pick<SystemResult, 'setupMs' | 'nodesWithoutNeighbour' | 'dialFailures' | 'clockSkewMs' | 'windowMs' | 'workers'>
): SystemResult {
  const latencies = windows.flatMap((window) => window.latencies).sort((a, b) => a - b)
  const delivered: Record<number, number> = Object.assign({}, ...windows.map((window) => window.delivered))
  let worstNodeReliability = 1
  for (let index = 0; index < scenario.nodes; index++) {
    // Neither system delivers a node's own broadcasts back to it.
    const expected = measured.filter((publisher) => publisher !== index).length
    if (expected > 0) worstNodeReliability = Math.min(worstNodeReliability, (delivered[index] ?? 0) / expected)
  }
  const eager = nodes.map((node) => node.eager).filter((value): value is number => value !== undefined)
  return {
    system,
    ratePerSecond,
    nodes: scenario.nodes,
    ...run,
    connections: spread(nodes.map((node) => node.connections)),
    degree: spread(nodes.map((node) => node.degree)),
    ...(eager.length === 0 ? {} : { eagerDegree: spread(eager) }),
    messages: scenario.messages,
    publishFailures: windows.reduce((n, window) => n + window.publishFailures, 0),
    expectedDeliveries: scenario.messages * (scenario.nodes - 1),
    deliveries: latencies.length,
    repeatDeliveries: windows.reduce((n, window) => n + window.repeatDeliveries, 0),
    worstNodeReliability,
    latencyMs: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: latencies.at(-1) ?? Number.NaN },
    wire: mergeTallies(windows.map((window) => window.wire)),
    eventLoopDelayMs: {
      p50: Math.max(...windows.map((window) => window.eventLoopDelayMs.p50)),
      p99: Math.max(...windows.map((window) => window.eventLoopDelayMs.p99)),
      max: Math.max(...windows.map((window) => window.eventLoopDelayMs.max))
    },
    cpuCores: windows.reduce((n, window) => n + window.cpuCores, 0)
  }
}

function mergeTallies (tallies: readonly WireTally[]): WireTally {
  const total: WireTally = { frames: 0, bytes: 0, payloadFrames: 0, payloadBytes: 0, controlFrames: 0, controlBytes: 0, tcpBytes: 0, items: {}, undecoded: 0 }
  for (const tally of tallies) {
    total.frames += tally.frames
    total.bytes += tally.bytes
    total.payloadFrames += tally.payloadFrames
    total.payloadBytes += tally.payloadBytes
    total.controlFrames += tally.controlFrames
    total.controlBytes += tally.controlBytes
    total.tcpBytes += tally.tcpBytes
    total.undecoded += tally.undecoded
    for (const [item, count] of Object.entries(tally.items)) total.items[item] = (total.items[item] ?? 0) + count
  }
  return total
}

function spread (values: readonly number[]): Spread {
  if (values.length === 0) return { mean: Number.NaN, min: Number.NaN, max: Number.NaN }
  return { mean: values.reduce((a, b) => a + b, 0) / values.length, min: Math.min(...values), max: Math.max(...values) }
}

/** Nearest-rank quantile of sorted values. */
function quantile (sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN
}
