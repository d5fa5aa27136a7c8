/** What the generator reads from a worker's Prometheus `/metrics`. */

export interface WorkerSample {
  at: number
  rssBytes: number
  /** prom-client's `nodejs_eventloop_lag_p99_seconds`: p99 since the previous scrape (it resets its histogram on each). */
  lagP99Ms: number
  /** The worker's own connection gauge (`pharos_connections`, summed over labels). */
  connections: number
  /** prom-client's `process_cpu_seconds_total`: user + system CPU since the worker started. */
  cpuSeconds: number
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

export async function scrapeWorker (httpUrl: string): Promise<WorkerSample> {
  const response = await fetch(new URL('/metrics', httpUrl), { signal: AbortSignal.timeout(10_000) })
  if (!response.ok) throw new Error(`GET ${httpUrl}/metrics answered ${response.status}`)
  const text = await response.text()
  return {
    at: Date.now(),
    rssBytes: sumOf(text, 'process_resident_memory_bytes'),
    lagP99Ms: sumOf(text, 'nodejs_eventloop_lag_p99_seconds') * 1000,
    // A labelled gauge has no sample before its first connection.
    connections: sumOf(text, 'pharos_connections', false),
    cpuSeconds: sumOf(text, 'process_cpu_seconds_total')
  }
}
