/**
 * Fleet-wide figures that gauges read from Postgres on scrape: one read serves every gauge
 * of a scrape (and scrapes within `ttlMs`), and a failed read keeps the last figures —
 * /readyz, not a gap in the gauges, reports storage health.
 */
export interface ScrapeSnapshot<T> {
  /** Where the figures come from (set by worker.ts once storage exists). */
  readFrom: (source: () => Promise<T>) => void
  /** The figures, cached for `ttlMs`; undefined until a read has succeeded. */
  get: () => Promise<T | undefined>
}

export function scrapeSnapshot<T> (ttlMs: number): ScrapeSnapshot<T> {
  let read: (() => Promise<T>) | undefined
  let cached: { at: number, value: Promise<T> } | undefined
  let last: T | undefined
  return {
    readFrom (source) {
      read = source
      cached = undefined
    },
    async get () {
      if (read === undefined) return last
      const now = Date.now()
      if (cached === undefined || now - cached.at > ttlMs) cached = { at: now, value: read() }
      try {
        last = await cached.value
      } catch {
        cached = undefined
      }
      return last
    }
  }
}
