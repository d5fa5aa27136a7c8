import { Counter } from 'prom-client'
import type { Registry } from 'prom-client'
import { schema } from '../config/schema.ts'
import type { ConfigKey } from '../config/schema.ts'

/**
 * One counter for every configured limit that refused or cut short a piece of work
 * (docs/security.md). The label is the limit's config key as operators set it
 * (`PHAROS_GATEWAY_CAR_MAX_BLOCKS`), so the label set is closed (the config schema) and an
 * alert or a dashboard panel names the key to raise. Refusals that are not a limit (an
 * unregistered peer, a drain notice from a non-worker) are counted by their own area.
 */
export function createLimitMetrics (registry: Registry) {
  const mirrored: Array<{ key: ConfigKey, read: () => number, last: number }> = []
  const blocked = new Counter({
    name: 'pharos_limit_blocked_total',
    help: 'Work refused or cut short by a configured limit, by the limit\'s config key (docs/security.md).',
    labelNames: ['limit'],
    registers: [registry],
    collect () {
      for (const source of mirrored) {
        const total = source.read()
        if (total > source.last) this.inc({ limit: schema[source.key].env }, total - source.last)
        source.last = Math.max(source.last, total)
      }
    }
  })
  return {
    /** Counts `n` refusals (default 1) by the limit `key`. */
    blocked (key: ConfigKey, n = 1): void {
      blocked.inc({ limit: schema[key].env }, n)
    },
    /**
     * Counts by the limit `key`, on each scrape, what `read` grew by since the last one: for
     * limits enforced where no metrics live (an IO-free state machine keeps its own totals).
     */
    mirror (key: ConfigKey, read: () => number): void {
      mirrored.push({ key, read, last: 0 })
    }
  }
}

export type LimitMetrics = ReturnType<typeof createLimitMetrics>
