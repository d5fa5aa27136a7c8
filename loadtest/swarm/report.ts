/** The swarm generator's report, and the arithmetic behind it. */

export interface Distribution { count: number, p50: number, p99: number, max: number }

/** Nearest-rank percentile `q` (0–1) of values sorted ascending; NaN for none. */
function rank (sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN
}

/** Nearest-rank percentile `q` (0–1); NaN for no values. */
export function quantile (values: readonly number[], q: number): number {
  return rank([...values].sort((a, b) => a - b), q)
}

/** Nearest-rank percentiles. */
export function distribution (values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b)
  return { count: sorted.length, p50: round(rank(sorted, 0.5)), p99: round(rank(sorted, 0.99)), max: round(rank(sorted, 1)) }
}

/** A Prometheus histogram's cumulative buckets: `count` observations were ≤ `le`, ascending, the last `le` +Infinity. */
export type Buckets = ReadonlyArray<{ le: number, count: number }>

/** What was observed between two scrapes of one histogram: `after`'s counts less `before`'s. */
export function bucketsBetween (before: Buckets, after: Buckets): Buckets {
  return after.map((bucket, k) => ({ le: bucket.le, count: bucket.count - (before[k]?.count ?? 0) }))
}

/** Bucket by bucket sums of histograms with the same bounds. */
export function addBuckets (sets: readonly Buckets[]): Buckets {
  const [first, ...rest] = sets
  if (first === undefined) return []
  return first.map((bucket, k) => ({ le: bucket.le, count: bucket.count + rest.reduce((sum, set) => sum + (set[k]?.count ?? 0), 0) }))
}

/**
 * Quantile `q` (0–1) as Prometheus' `histogram_quantile` estimates it: linear within the
 * bucket it falls in (from 0 for the first), the highest finite bound if it falls past
 * it; NaN for no observations.
 */
export function bucketQuantile (buckets: Buckets, q: number): number {
  const total = buckets.at(-1)?.count ?? 0
  if (total === 0) return Number.NaN
  const target = q * total
  let lower = 0
  let below = 0
  for (const { le, count } of buckets) {
    if (count >= target) {
      if (le === Number.POSITIVE_INFINITY) return lower
      return count === below ? le : lower + (le - lower) * (target - below) / (count - below)
    }
    lower = le
    below = count
  }
  return lower
}

/** Share (0–1) of observations at most `bound`, which must be one of the bucket bounds; NaN for none. */
export function shareWithin (buckets: Buckets, bound: number): number {
  const total = buckets.at(-1)?.count ?? 0
  const bucket = buckets.find((entry) => entry.le === bound)
  if (bucket === undefined) throw new Error(`no bucket bound ${bound}`)
  return total === 0 ? Number.NaN : bucket.count / total
}

export function round (value: number, digits = 1): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

export type Phase = 'baseline' | 'ramp' | 'probe' | 'hold'

export interface SwarmReport {
  settings: {
    bootstrap: string[]
    connections: number
    fullPeers: number
    lightProcesses: number
    rampPerSecond: number
    /** Rounds that reopened failed light connections after the ramp (`--top-up`). */
    topUpRounds: number
    holdSeconds: number
    publishPerSecond: number
    attachmentBytes: number
  }
  connections: {
    target: number
    /** Opened successfully at least once (light connections and joined full peers). */
    established: number
    /** Still open at the end of the hold, as the generator sees them. */
    held: number
    /** What the workers' own `pharos_connections` gauges say at the end of the hold. */
    heldByWorkers: number
    /** Failures by reason: `open:<error>`, `closed-by-remote`, `join:<error>`, `publish:<error>`, `fetch:<error>`. */
    failures: Record<string, number>
    /** Time from dial to an upgraded connection (Noise + Yamux), light connections. */
    openMs: Distribution
  }
  /** Accept rate: a probe opens extra connections as fast as the workers take them, then closes them. */
  acceptRate: Array<{ held: number, opened: number, perSecond: number }>
  /** Accept rate at the last probe ÷ at the first (the target: ≥ 0.8 from 1k to 10k held). */
  acceptRateRatio: number | null
  workers: {
    rssBaselineBytes: number
    rssHeldBytes: number
    /** (RSS at the end of the hold − RSS before the first connection) ÷ connections the workers held. */
    rssPerConnectionKiB: number
    /** RSS at the end of the hold ÷ connections the workers held (the worker's whole footprint, its idle start included). */
    rssTotalPerConnectionKiB: number
    /**
     * Where the RSS growth per connection is, in KiB (the same difference ÷ connections as
     * `rssPerConnectionKiB`): V8 heap in use and reserved, memory outside the heap that V8
     * knows of (`external`: Buffers, ArrayBuffers), and the rest of RSS (malloc'd native
     * memory: OpenSSL, libuv, V8's own, fragmentation).
     */
    memoryPerConnectionKiB: { heapUsed: number, heapTotal: number, external: number, rest: number }
    /** Event-loop delay p99 of each scrape window (ms; prom-client's p99 less its 10 ms sampling interval), by phase: the largest, the 90th-percentile and the median window. */
    lagP99Ms: Record<Phase, { windows: number, max: number, p90: number, median: number }>
    /** Worker CPU time ÷ wall time over each phase's scrape windows, in percent of one core (averaged over workers); null for a phase not run. */
    cpuPercent: Record<Phase, number | null>
    /**
     * The share of each phase the workers' main threads waited, runnable, for a CPU, in
     * percent (/proc/<pid>/task/<pid>/schedstat; null unless the workers are local and their
     * pids given): how much of the lag was the core being busy with something else (the
     * worker's own helper threads, or other processes), not the event loop's own work.
     */
    cpuWaitPercent: Record<Phase, number | null>
    /**
     * Event-loop delay over each whole phase, from the workers' `pharos_event_loop_delay_seconds`
     * histogram (one sample every 10 ms): how many samples, their p99 (ms, interpolated within
     * its bucket), and the share of samples within 20 ms and within 50 ms; null for a phase not run.
     */
    eventLoopDelay: Record<Phase, { samples: number, p99Ms: number, within20Ms: number, within50Ms: number } | null>
  }
  join: { ms: Distribution }
  publish: { published: number, pinned: number, pinnedMs: Distribution }
  /** `bytesPerSecond`: attachment bytes fetched ÷ time from the start of the hold to the last publish or fetch settled. */
  fetch: { fetched: number, bytes: number, ms: Distribution, bytesPerSecond: number }
  generator: { rssBytes: number, lightRssPerConnectionKiB: number }
  durationSeconds: number
}

export function formatReport (report: SwarmReport): string {
  const c = report.connections
  const lag = report.workers.lagP99Ms
  const lines = [
    `connections: ${c.held}/${c.target} held (workers say ${c.heldByWorkers}), ${c.established} established, open p50 ${c.openMs.p50} ms p99 ${c.openMs.p99} ms`,
    `failures: ${Object.keys(c.failures).length === 0 ? 'none' : Object.entries(c.failures).map(([reason, count]) => `${reason} ${count}`).join(', ')}`,
    `accept rate: ${report.acceptRate.map((probe) => `${probe.perSecond}/s at ${probe.held} held`).join(', ') || 'not probed'}${report.acceptRateRatio === null ? '' : ` (ratio ${report.acceptRateRatio})`}`,
    `worker RSS: ${round(report.workers.rssBaselineBytes / 2 ** 20)} MiB → ${round(report.workers.rssHeldBytes / 2 ** 20)} MiB, ${report.workers.rssPerConnectionKiB} KiB per connection (${report.workers.rssTotalPerConnectionKiB} KiB of the whole RSS per connection); per connection: heap used ${report.workers.memoryPerConnectionKiB.heapUsed} KiB (heap reserved ${report.workers.memoryPerConnectionKiB.heapTotal}), external ${report.workers.memoryPerConnectionKiB.external} KiB, rest of RSS ${report.workers.memoryPerConnectionKiB.rest} KiB`,
    `event-loop lag p99 (max / p90 / median window, ms): ${(Object.keys(lag) as Phase[]).filter((phase) => lag[phase].windows > 0).map((phase) => `${phase} ${lag[phase].max} / ${lag[phase].p90} / ${lag[phase].median}`).join(', ')}`,
    `event-loop delay over each phase (p99 ms, share within 20 ms): ${(Object.keys(report.workers.eventLoopDelay) as Phase[]).flatMap((phase) => {
      const delay = report.workers.eventLoopDelay[phase]
      return delay === null ? [] : [`${phase} ${delay.p99Ms} ms, ${round(100 * delay.within20Ms, 2)} %`]
    }).join(', ')}`,
    `worker CPU (% of one core): ${(Object.keys(report.workers.cpuPercent) as Phase[]).filter((phase) => report.workers.cpuPercent[phase] !== null).map((phase) => `${phase} ${report.workers.cpuPercent[phase]}`).join(', ')}`,
    `worker main thread waiting for a CPU (% of the phase): ${(Object.keys(report.workers.cpuWaitPercent) as Phase[]).filter((phase) => report.workers.cpuWaitPercent[phase] !== null).map((phase) => `${phase} ${report.workers.cpuWaitPercent[phase]}`).join(', ') || 'not measured (SWARM_WORKER_PIDS unset)'}`,
    `join: p50 ${report.join.ms.p50} ms, p99 ${report.join.ms.p99} ms (${report.join.ms.count} peers)`,
    `publish → pinned: ${report.publish.pinned}/${report.publish.published} pinned, p50 ${report.publish.pinnedMs.p50} ms, p99 ${report.publish.pinnedMs.p99} ms`,
    `fetch: ${report.fetch.fetched} posts, ${round(report.fetch.bytes / 1e6, 2)} MB, p50 ${report.fetch.ms.p50} ms, ${round(report.fetch.bytesPerSecond / 1e6, 2)} MB/s`,
    `generator: ${round(report.generator.rssBytes / 2 ** 20)} MiB RSS, ${report.generator.lightRssPerConnectionKiB} KiB per light connection`
  ]
  return lines.join('\n')
}
