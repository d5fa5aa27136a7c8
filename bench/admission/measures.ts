/**
 * What the admission bench reads from the processes it measures: CPU time from /proc, and a
 * worker's event-loop delay and refusal counters from its /metrics.
 */
import { execFileSync } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { EVENT_LOOP_MONITORING_PRECISION_MS } from '@pharos/beacon/metrics/registry.ts'
import { bucketQuantile, bucketsBetween, shareWithin } from '../../loadtest/swarm/report.ts'
import type { Buckets } from '../../loadtest/swarm/report.ts'

function clockTicksPerSecond (): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100
  } catch {
    return 100
  }
}
const CLOCK_TICKS = clockTicksPerSecond()

/** utime and stime of one /proc/<pid>[/task/<tid>]/stat line, in seconds. */
function parseStat (stat: string): { user: number, system: number } {
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // utime and stime are fields 14 and 15 of the whole line: 12th and 13th after the name.
  return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS }
}

/** User + system CPU seconds of a process, all its threads (/proc/<pid>/stat utime + stime). */
export async function cpuSecondsOf (pid: number): Promise<number> {
  const { user, system } = parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'))
  return user + system
}

/**
 * A process's CPU seconds split: user and system time of the whole process, and the main
 * thread's (where JavaScript runs) apart from its other threads (libuv's pool, V8's GC and
 * compiler threads, worker threads). Threads that ended since are in neither thread figure.
 */
export interface CpuSplit { user: number, system: number, mainThread: number, otherThreads: number }

export async function cpuSplitOf (pid: number): Promise<CpuSplit> {
  const whole = parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'))
  let mainThread = 0
  let otherThreads = 0
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      const { user, system } = parseStat(await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8'))
      if (tid === String(pid)) mainThread += user + system
      else otherThreads += user + system
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return { user: whole.user, system: whole.system, mainThread, otherThreads }
}

export function cpuSplitBetween (before: CpuSplit, after: CpuSplit): CpuSplit {
  return {
    user: after.user - before.user,
    system: after.system - before.system,
    mainThread: after.mainThread - before.mainThread,
    otherThreads: after.otherThreads - before.otherThreads
  }
}

/**
 * How long the process's main thread has waited, runnable, for a CPU (seconds; the second
 * field of /proc/<pid>/task/<pid>/schedstat): time its core ran something else, the
 * process's own helper threads (pinned with it) or another process. Over a phase, its share
 * of the wall time bounds how much of the event-loop delay measured then was not the main
 * thread's own work.
 */
export async function runQueueWaitSecondsOf (pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/task/${pid}/schedstat`, 'utf8')).trim().split(' ')
  return Number(fields[1]) / 1e9
}

/** The worker's /metrics at one moment: what the bench compares between phase boundaries. */
export interface MetricsSnapshot {
  /**
   * prom-client's event-loop delay p99 and max since the previous scrape (it resets its
   * perf_hooks monitor on every collect), less the monitor's 10 ms sampling interval.
   */
  lagP99Ms: number
  lagMaxMs: number
  /** `pharos_event_loop_delay_seconds` bucket counters since the worker started. */
  delayBuckets: Buckets
  /** Every counter whose name starts with one of REFUSAL_COUNTERS, by its label set. */
  refusals: Record<string, number>
}

/** Counters that say why a connection was refused or a limit hit; summed per label set. */
const REFUSAL_COUNTERS = ['pharos_connections_refused_total', 'pharos_limit_blocked_total', 'pharos_listener_errors_total']

function valueOf (text: string, name: string): number {
  const line = text.split('\n').find((entry) => entry.startsWith(`${name} `))
  const value = Number(line?.slice(line.lastIndexOf(' ') + 1))
  if (!Number.isFinite(value)) throw new Error(`metric ${name} missing from /metrics`)
  return value
}

export function parseMetrics (text: string): MetricsSnapshot {
  const buckets: Array<{ le: number, count: number }> = []
  const refusals: Record<string, number> = {}
  for (const line of text.split('\n')) {
    if (line.startsWith('pharos_event_loop_delay_seconds_bucket{')) {
      const le = /le="([^"]+)"/.exec(line)?.[1]
      if (le !== undefined) buckets.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count: Number(line.slice(line.lastIndexOf(' ') + 1)) })
    } else if (REFUSAL_COUNTERS.some((name) => line.startsWith(`${name}{`))) {
      const series = line.slice(0, line.lastIndexOf(' '))
      refusals[series] = Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  }
  return {
    lagP99Ms: Math.max(0, valueOf(text, 'nodejs_eventloop_lag_p99_seconds') * 1000 - EVENT_LOOP_MONITORING_PRECISION_MS),
    lagMaxMs: Math.max(0, valueOf(text, 'nodejs_eventloop_lag_max_seconds') * 1000 - EVENT_LOOP_MONITORING_PRECISION_MS),
    delayBuckets: buckets.sort((a, b) => a.le - b.le),
    refusals
  }
}

export async function scrapeMetrics (httpUrl: string): Promise<MetricsSnapshot> {
  const response = await fetch(new URL('/metrics', httpUrl), { signal: AbortSignal.timeout(30_000) })
  if (!response.ok) throw new Error(`GET ${httpUrl}/metrics answered ${response.status}`)
  return parseMetrics(await response.text())
}

/** The event loop over one phase, from the scrapes at its start and its end (nothing scrapes in between). */
export interface LoopOverPhase {
  /** prom-client's p99 over the phase (the end scrape's, since the start scrape reset it). */
  p99Ms: number
  maxMs: number
  /** The same p99 from the worker's own histogram (interpolated in its bucket) and its share within 20 ms. */
  histogramP99Ms: number
  within20Ms: number
  /** Refusal counters that moved during the phase, by series. */
  refusals: Record<string, number>
}

export function loopOverPhase (start: MetricsSnapshot, end: MetricsSnapshot): LoopOverPhase {
  const buckets = bucketsBetween(start.delayBuckets, end.delayBuckets)
  const refusals: Record<string, number> = {}
  for (const [series, value] of Object.entries(end.refusals)) {
    const delta = value - (start.refusals[series] ?? 0)
    if (delta > 0) refusals[series] = delta
  }
  return {
    p99Ms: end.lagP99Ms,
    maxMs: end.lagMaxMs,
    histogramP99Ms: bucketQuantile(buckets, 0.99) * 1000,
    within20Ms: shareWithin(buckets, 0.02),
    refusals
  }
}

/** The longest run of consecutive failures in attempts taken in order. */
export function longestFailureRun (outcomes: readonly boolean[]): number {
  let longest = 0
  let current = 0
  for (const ok of outcomes) {
    current = ok ? 0 : current + 1
    longest = Math.max(longest, current)
  }
  return longest
}

/** Failure reasons and how often each occurred, most frequent first: "reason ×n, …". */
export function tally (reasons: ReadonlyArray<string | undefined>): string {
  const counts = new Map<string, number>()
  for (const reason of reasons) if (reason !== undefined) counts.set(reason, (counts.get(reason) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1]).map(([reason, count]) => `${reason} ×${count}`).join(', ') || 'none'
}
