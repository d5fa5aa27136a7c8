import { totalmem } from 'node:os'
import { getHeapStatistics } from 'node:v8'
import type { Config, ConfigKey } from '../config/schema.ts'
import { schema } from '../config/schema.ts'
import { ReadinessFailure } from '../health.ts'
import type { ReadinessCheck } from '../health.ts'
import type { Logger } from '../logging/logger.ts'

/**
 * Whether the worker is overloaded, for HTTP load shedding and `/readyz` (issue 19, item 2).
 *
 * Three signals, each against its own config key:
 * - **event-loop delay**: the longest the loop was held at a time in the current and the
 *   previous window. A timer due every {@link LOOP_SAMPLE_MS} ms records how late it fired,
 *   and the timer's lateness *now* counts too, so the first request served after a stall
 *   already sees it (the timer itself runs only in the loop's next timers phase).
 *   Not `perf_hooks.monitorEventLoopDelay` as `@fastify/under-pressure` uses it: its
 *   histogram's mean over a second turns a 1.5 s stall after 100 on-time samples into
 *   15 ms, and a stall that spans its reset is not recorded at all (measured on Node 22).
 * - **heap used** and **RSS**, read once a window: they move slowly, and reading them is not
 *   free (`process.memoryUsage()` walks the heap spaces).
 *
 * A window is {@link PRESSURE_WINDOW_MS}; the worker is over while the current or the
 * previous window is, so it answers one way for at least a second after a stall ends,
 * not flapping with every sample, and is clear again 1–2 s after the pressure ends.
 *
 * It measures from {@link PressureMonitor.start}, which the worker calls once it has
 * started: compiling the routes' serializers, migrations and key derivation hold the loop
 * for longer than the limit, and are the worker's start, not its load.
 */
export type PressureSignal = 'event-loop-delay' | 'heap-used' | 'rss'

export const PRESSURE_SIGNALS: readonly PressureSignal[] = ['event-loop-delay', 'heap-used', 'rss']

/** The config key that bounds each signal: the `limit` label of `pharos_limit_blocked_total`. */
export const PRESSURE_LIMIT_KEYS: Readonly<Record<PressureSignal, ConfigKey>> = {
  'event-loop-delay': 'httpPressureMaxEventLoopDelayMs',
  'heap-used': 'httpPressureMaxHeapUsedBytes',
  rss: 'httpPressureMaxRssBytes'
}

/** How often the delay timer is due, in ms: as the worker's delay histogram (metrics/event-loop-metrics.ts). */
export const LOOP_SAMPLE_MS = 10

/** One window, in ms (`@fastify/under-pressure`'s default sample interval). */
export const PRESSURE_WINDOW_MS = 1000

/** Share of V8's heap limit, or of the OS memory limit, that is "over" when the key is unset (guess). */
const DEFAULT_MEMORY_SHARE = 0.9

/** Each signal's bound; 0 turns a signal off. */
export interface PressureLimits {
  maxEventLoopDelayMs: number
  maxHeapUsedBytes: number
  maxRssBytes: number
}

/** What the worker is over, and the bound it crossed. */
export interface Overload {
  signal: PressureSignal
  /** The env name of the key, e.g. PHAROS_HTTP_PRESSURE_MAX_EVENT_LOOP_DELAY_MS. */
  limit: string
  /** Fixed text for clients and `/readyz`: the signal, the key and its value, never a measured figure. */
  reason: string
}

/**
 * The bounds from config; unset memory keys take their documented defaults here, from what
 * this process can see: V8's heap limit (`--max-old-space-size`), and the memory limit the
 * OS sets the process (`process.constrainedMemory()`: a container's cgroup limit; with none,
 * libuv reports no limit or one above the machine's memory, and RSS is not watched).
 */
export function pressureLimits (config: Pick<Config, 'httpPressureMaxEventLoopDelayMs' | 'httpPressureMaxHeapUsedBytes' | 'httpPressureMaxRssBytes'>): PressureLimits {
  const osLimit = memoryLimitBytes()
  return {
    maxEventLoopDelayMs: config.httpPressureMaxEventLoopDelayMs,
    maxHeapUsedBytes: config.httpPressureMaxHeapUsedBytes ?? Math.floor(getHeapStatistics().heap_size_limit * DEFAULT_MEMORY_SHARE),
    maxRssBytes: config.httpPressureMaxRssBytes ?? Math.floor(osLimit * DEFAULT_MEMORY_SHARE)
  }
}

/**
 * The memory limit the OS sets this process, in bytes (`process.constrainedMemory()`: a
 * container's cgroup limit), or 0 when there is none: libuv then reports no limit, or one at
 * or above the machine's memory.
 */
export function memoryLimitBytes (): number {
  const constrained = process.constrainedMemory()
  return constrained > 0 && constrained < totalmem() ? constrained : 0
}

export interface PressureMonitorOptions {
  /** Where changes of state go: one line when the worker becomes overloaded, one when it is clear. */
  log?: Logger
}

const MiB = 1024 * 1024

export class PressureMonitor {
  private readonly limits: PressureLimits
  private readonly log: Logger | undefined
  private loopTimer: NodeJS.Timeout | undefined
  private readonly reasons: Record<PressureSignal, string>
  /** When the delay timer is next due (performance.now()). */
  private due: number
  private windowStart: number
  /** Longest delay seen in the current window, and in the one before it, in ms. */
  private delayMs = 0
  private previousDelayMs = 0
  private heapUsed = 0
  private rss = 0
  /** What the last closed window found, for the log line on change. */
  private loggedSignal: PressureSignal | undefined

  constructor (limits: PressureLimits, options: PressureMonitorOptions = {}) {
    this.limits = limits
    this.log = options.log?.child({ component: 'pressure' })
    this.reasons = {
      'event-loop-delay': `event-loop delay over ${envOf('event-loop-delay')} (${limits.maxEventLoopDelayMs} ms)`,
      'heap-used': `V8 heap in use over ${envOf('heap-used')} (${bytes(limits.maxHeapUsedBytes)})`,
      rss: `resident memory over ${envOf('rss')} (${bytes(limits.maxRssBytes)})`
    }
    this.due = Number.POSITIVE_INFINITY
    this.windowStart = performance.now()
  }

  /** Starts measuring; until then the worker is never over. */
  start (): void {
    if (this.loopTimer !== undefined) return
    this.due = performance.now() + LOOP_SAMPLE_MS
    this.windowStart = performance.now()
    this.readMemory()
    this.loopTimer = setInterval(() => { this.sample() }, LOOP_SAMPLE_MS)
    this.loopTimer.unref()
  }

  /** What the worker is over now, the first signal in {@link PRESSURE_SIGNALS} order; undefined when it is not. */
  overload (): Overload | undefined {
    if (this.loopTimer === undefined) return undefined
    const signal = this.signalOver(Math.max(this.delayMs, this.previousDelayMs, performance.now() - this.due))
    return signal === undefined ? undefined : { signal, limit: envOf(signal), reason: this.reasons[signal] }
  }

  stop (): void {
    clearInterval(this.loopTimer)
  }

  private signalOver (delayMs: number): PressureSignal | undefined {
    const { maxEventLoopDelayMs, maxHeapUsedBytes, maxRssBytes } = this.limits
    if (maxEventLoopDelayMs > 0 && delayMs > maxEventLoopDelayMs) return 'event-loop-delay'
    if (maxHeapUsedBytes > 0 && this.heapUsed > maxHeapUsedBytes) return 'heap-used'
    if (maxRssBytes > 0 && this.rss > maxRssBytes) return 'rss'
    return undefined
  }

  private sample (): void {
    const now = performance.now()
    this.delayMs = Math.max(this.delayMs, now - this.due)
    this.due = now + LOOP_SAMPLE_MS
    if (now - this.windowStart < PRESSURE_WINDOW_MS) return
    const closedDelayMs = this.delayMs
    this.readMemory()
    this.previousDelayMs = closedDelayMs
    this.delayMs = 0
    this.windowStart = now
    this.logChange(this.signalOver(closedDelayMs), closedDelayMs)
  }

  /**
   * The heap in use from V8 itself; the RSS from /proc/self/statm, which takes a file
   * descriptor: with every descriptor in use (connections up to the ulimit) reading it
   * throws EMFILE, which in this timer killed the worker in a 20,000-connection run. The
   * last RSS read stands until one succeeds.
   */
  private readMemory (): void {
    this.heapUsed = getHeapStatistics().used_heap_size
    try {
      this.rss = process.memoryUsage.rss()
    } catch {
      // EMFILE (or any failure to read /proc): keep the last reading.
    }
  }

  private logChange (signal: PressureSignal | undefined, delayMs: number): void {
    if (signal === this.loggedSignal) return
    this.loggedSignal = signal
    const figures = { delayMs: Math.round(delayMs), heapUsed: this.heapUsed, rss: this.rss }
    if (signal === undefined) this.log?.info(figures, 'no longer overloaded: HTTP serves every route, /readyz may answer ready')
    else this.log?.warn({ ...figures, signal, limit: envOf(signal) }, 'overloaded: HTTP answers 503 but for /healthz, /readyz, /metrics and the admin API; /readyz answers not ready')
  }
}

function bytes (n: number): string {
  return n >= MiB ? `${Math.round(n / MiB)} MiB` : `${n} B`
}

function envOf (signal: PressureSignal): string {
  return schema[PRESSURE_LIMIT_KEYS[signal]].env
}

/**
 * The `/readyz` check: fails while the worker is overloaded, naming the limit it is over,
 * so load balancers send new traffic to other workers until it is clear.
 */
export function overloadReadinessCheck (pressure: Pick<PressureMonitor, 'overload'>): ReadinessCheck {
  return async () => {
    const overload = pressure.overload()
    if (overload !== undefined) throw new ReadinessFailure(overload.reason)
  }
}
