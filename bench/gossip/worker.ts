/**
 * A worker process: hosts one slice of the network's nodes (scenario.ts `nodeRange`) and does
 * what the coordinator asks over IPC. Each request carries an `id`; the reply echoes it. Nodes
 * talk to nodes in other workers over loopback TCP like any libp2p peers.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { IntervalHistogram } from 'node:perf_hooks'
import { multiaddr } from '@multiformats/multiaddr'
import type { Scenario, SystemName } from './scenario.ts'
import { dialPlan, nodeRange, payloadOf, readPayload, sharedNow, stampPayload } from './scenario.ts'
import type { BookEntry, Swarm } from './systems.ts'
import { classifierOf, sleep, startGossipsub, startPlumtree } from './systems.ts'
import type { WireTally } from './wire-meter.ts'
import { WireMeter } from './wire-meter.ts'

export interface WorkerInit {
  system: SystemName
  scenario: Scenario
  worker: number
}

export type WorkerRequest =
  | { type: 'clock' }
  | { type: 'book', book: BookEntry[] }
  | { type: 'dial' }
  | { type: 'join' }
  | { type: 'status' }
  | { type: 'open', from: number, to: number }
  | { type: 'close' }
  | { type: 'stop' }

/** One node's state, for the coordinator's readiness check and report. */
export interface NodeStatus {
  index: number
  degree: number
  eager?: number
  connections: number
}

/** What a worker counted while the window was open. */
export interface WindowResult {
  wire: WireTally
  /** Receive time − publish time (shared clock, ms) of every in-window delivery of a measured message. */
  latencies: number[]
  /** Node index → measured messages it delivered in the window. */
  delivered: Record<number, number>
  repeatDeliveries: number
  publishFailures: number
  eventLoopDelayMs: { p50: number, p99: number, max: number }
  cpuCores: number
}

export type WorkerReply =
  | { type: 'listening', book: BookEntry[] }
  | { type: 'clock', now: number }
  | { type: 'done' }
  | { type: 'dialed', failures: number }
  | { type: 'status', nodes: NodeStatus[] }
  | { type: 'closed', result: WindowResult }
  | { type: 'error', error: string }

/** Coordinator → worker: a request, or a publish (fire-and-forget, so the schedule never waits on IPC replies). */
export type ToWorker = { id: number, request: WorkerRequest } | { publish: { seq: number, index: number } }
export type FromWorker = { id: number, reply: WorkerReply } | { ready: WorkerReply }

const DIAL_TIMEOUT_MS = 10_000
/** Dials in flight per worker: the handshakes are CPU-bound (about 10 ms of CPU per connection, measured), more do not help. */
const DIAL_CONCURRENCY = 8
const LOOP_RESOLUTION_MS = 10

/** The histogram records the whole interval between its timer's runs; the lateness is what exceeds the resolution (ns in, ms out). */
function lateness (ns: number): number {
  return Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS)
}

class Worker {
  private readonly scenario: Scenario
  private readonly swarm: Swarm
  private readonly meter: WireMeter
  private bookEntries: readonly BookEntry[] = []
  private recording = false
  private window: { from: number, to: number, latencies: number[], delivered: Record<number, number>, loop: IntervalHistogram, cpu: NodeJS.CpuUsage, started: number } | undefined
  private readonly seen = new Map<number, Set<number>>()
  private repeatDeliveries = 0
  private publishFailures = 0

  constructor (init: WorkerInit, swarm: Swarm, meter: WireMeter) {
    this.scenario = init.scenario
    this.swarm = swarm
    this.meter = meter
    swarm.onDeliver((index, payload) => { this.onDeliver(index, payload) })
  }

  book (): BookEntry[] {
    return [...this.swarm.nodes].map(([index, node]) => ({
      index,
      peerId: node.peerId.toString(),
      addrs: node.getMultiaddrs().map((addr) => addr.toString())
    }))
  }

  private onDeliver (index: number, payload: Uint8Array): void {
    const receivedAt = sharedNow()
    const { seq, sentAt } = readPayload(payload)
    let seen = this.seen.get(index)
    if (seen === undefined) {
      seen = new Set()
      this.seen.set(index, seen)
    }
    if (seen.has(seq)) {
      this.repeatDeliveries++
      return
    }
    seen.add(seq)
    const window = this.window
    // Only this window's messages: a late one of the window before is not counted here.
    if (!this.recording || window === undefined || seq < window.from || seq >= window.to) return
    window.latencies.push(receivedAt - sentAt)
    window.delivered[index] = (window.delivered[index] ?? 0) + 1
  }

  publish (seq: number, index: number): void {
    const payload = payloadOf(this.scenario, seq)
    stampPayload(payload, sharedNow())
    void this.swarm.publish(index, payload).then((ok) => {
      if (!ok && seq >= this.scenario.warmupMessages) this.publishFailures++
    })
  }

  async handle (request: WorkerRequest): Promise<WorkerReply> {
    switch (request.type) {
      case 'clock': return { type: 'clock', now: sharedNow() }
      case 'book':
        this.bookEntries = request.book
        this.swarm.setBook(request.book)
        return { type: 'done' }
      case 'dial': return { type: 'dialed', failures: await this.dial() }
      case 'join':
        await this.swarm.join()
        return { type: 'done' }
      case 'status':
        return {
          type: 'status',
          nodes: [...this.swarm.nodes].map(([index, node]) => {
            const eager = this.swarm.eagerDegree(index)
            return { index, degree: this.swarm.degree(index), ...(eager === undefined ? {} : { eager }), connections: node.getConnections().length }
          })
        }
      case 'open': {
        const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
        loop.enable()
        this.window = { from: request.from, to: request.to, latencies: [], delivered: {}, loop, cpu: process.cpuUsage(), started: performance.now() }
        this.publishFailures = 0
        this.meter.open()
        this.recording = true
        return { type: 'done' }
      }
      case 'close': {
        this.recording = false
        const wire = this.meter.close()
        const window = this.window
        if (window === undefined) throw new Error('close without open')
        window.loop.disable()
        const cpu = process.cpuUsage(window.cpu)
        return {
          type: 'closed',
          result: {
            wire,
            latencies: window.latencies,
            delivered: window.delivered,
            repeatDeliveries: this.repeatDeliveries,
            publishFailures: this.publishFailures,
            eventLoopDelayMs: { p50: lateness(window.loop.percentile(50)), p99: lateness(window.loop.percentile(99)), max: lateness(window.loop.max) },
            cpuCores: (cpu.user + cpu.system) / 1000 / (performance.now() - window.started)
          }
        }
      }
      case 'stop':
        await this.swarm.stop()
        return { type: 'done' }
      default: {
        const unknown: never = request
        throw new TypeError(`unknown request ${JSON.stringify(unknown)}`)
      }
    }
  }

  /** This worker's share of the dial plan (the dials whose dialling node it hosts), with bounded concurrency. */
  private async dial (): Promise<number> {
    const plan = dialPlan(this.scenario).filter(([from]) => this.swarm.nodes.has(from))
    let next = 0
    let failures = 0
    const dialer = async (): Promise<void> => {
      // Bounded: each pass takes one entry of the finite plan.
      while (next < plan.length) {
        const entry = plan[next++]
        if (entry === undefined) break
        const [from, to] = entry
        try {
          const target = this.bookEntries[to]
          const node = this.swarm.nodes.get(from)
          if (target === undefined || node === undefined) throw new Error(`no node ${from} or ${to}`)
          await node.dial(target.addrs.map((addr) => multiaddr(addr)), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
        } catch {
          failures++
        }
      }
    }
    await Promise.all(Array.from({ length: DIAL_CONCURRENCY }, dialer))
    return failures
  }
}

async function main (): Promise<void> {
  const send = process.send?.bind(process)
  if (send === undefined || process.argv[2] === undefined) throw new Error('worker.ts is forked by coordinator.ts')
  const post = (message: FromWorker): void => { send(message) }
  const init = JSON.parse(process.argv[2]) as WorkerInit
  const meter = new WireMeter(classifierOf(init.system))
  const range = nodeRange(init.scenario, init.worker)
  const swarm = init.system === 'plumtree' ? await startPlumtree(init.scenario, range, meter) : await startGossipsub(init.scenario, range, meter)
  const worker = new Worker(init, swarm, meter)
  process.on('message', (message: ToWorker) => {
    if ('publish' in message) {
      worker.publish(message.publish.seq, message.publish.index)
      return
    }
    worker.handle(message.request).then((reply) => {
      post({ id: message.id, reply })
      if (message.request.type === 'stop') {
        // Give the IPC reply a moment to flush, then leave even if a socket lingers.
        void sleep(100).then(() => { process.exit(0) })
      }
    }, (err: unknown) => {
      post({ id: message.id, reply: { type: 'error', error: err instanceof Error ? err.stack ?? err.message : String(err) } })
    })
  })
  // If the coordinator dies, so do we.
  process.on('disconnect', () => { process.exit(1) })
  post({ ready: { type: 'listening', book: worker.book() } })
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
