/** What the generator reads from a worker's Prometheus `/metrics` (and, for a local worker, /proc). */
import { readFile } from 'node:fs/promises'
import { EVENT_LOOP_MONITORING_PRECISION_MS } from '@pharos/beacon/metrics/registry.ts'
import type { Buckets } from './report.ts'

export interface WorkerSample {
  at: number
  rssBytes: number
  /** Where the RSS is (prom-client's `nodejs_heap_size_used_bytes`, `nodejs_heap_size_total_bytes`, `nodejs_external_memory_bytes`; 0 when absent). */
  heapUsedBytes: number
  heapTotalBytes: number
  externalBytes: number
  /**
   * Event-loop delay p99 since the previous scrape (prom-client resets its histogram on each):
   * `nodejs_eventloop_lag_p99_seconds` less the monitor's sampling interval, which every sample
   * it records includes.
   */
  lagP99Ms: number
  /** The worker's own connection gauge (`pharos_connections`, summed over labels). */
  connections: number
  /** prom-client's `process_cpu_seconds_total`: user + system CPU since the worker started. */
  cpuSeconds: number
  /** `pharos_event_loop_delay_seconds` bucket counters since the worker started, `le` in seconds. */
  delayBuckets: Buckets
  /**
   * How long the worker's main thread has waited, runnable, for a CPU (seconds; the second
   * field of /proc/<pid>/task/<pid>/schedstat), when the worker runs on this machine and its
   * pid is known (SWARM_WORKER_PIDS); else undefined.
   */
  runQueueWaitSeconds?: number
}

function sumOf (text: string, name: string, required = true): number {
  let sum = 0
  let found = false
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue
    const value = Number(line.slice(line.lastIndexOf(' ') + 1))
    if (Number.isFinite(value)) { sum += value; found = true }
  }
  if (!found && required) throw new Error(`metric ${name} missing from /metrics`)
  return sum
}

function bucketsOf (text: string, name: string): Buckets {
  const prefix = `${name}_bucket{`
  const buckets: Array<{ le: number, count: number }> = []
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue
    const le = /le="([^"]+)"/.exec(line)?.[1]
    const count = Number(line.slice(line.lastIndexOf(' ') + 1))
    if (le !== undefined && Number.isFinite(count)) buckets.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count })
  }
  if (buckets.length === 0) throw new Error(`metric ${name} missing from /metrics`)
  return buckets.sort((a, b) => a.le - b.le)
}

export async function scrapeWorker (httpUrl: string, pid?: number): Promise<WorkerSample> {
  const response = await fetch(new URL('/metrics', httpUrl), { signal: AbortSignal.timeout(10_000) })
  if (!response.ok) throw new Error(`GET ${httpUrl}/metrics answered ${response.status}`)
  const sample: WorkerSample = { at: Date.now(), ...parseWorkerMetrics(await response.text()) }
  if (pid !== undefined) {
    const fields = (await readFile(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').catch(() => '')).trim().split(' ')
    const waitNs = Number(fields[1])
    if (Number.isFinite(waitNs)) sample.runQueueWaitSeconds = waitNs / 1e9
  }
  return sample
}

export function parseWorkerMetrics (text: string): Omit<WorkerSample, 'at'> {
  return {
    rssBytes: sumOf(text, 'process_resident_memory_bytes'),
    heapUsedBytes: sumOf(text, 'nodejs_heap_size_used_bytes', false),
    heapTotalBytes: sumOf(text, 'nodejs_heap_size_total_bytes', false),
    externalBytes: sumOf(text, 'nodejs_external_memory_bytes', false),
    lagP99Ms: Math.max(0, sumOf(text, 'nodejs_eventloop_lag_p99_seconds') * 1000 - EVENT_LOOP_MONITORING_PRECISION_MS),
    // A labelled gauge has no sample before its first connection.
    connections: sumOf(text, 'pharos_connections', false),
    cpuSeconds: sumOf(text, 'process_cpu_seconds_total'),
    delayBuckets: bucketsOf(text, 'pharos_event_loop_delay_seconds')
  }
}
