import { Counter, Gauge, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'
import { scrapeSnapshot } from '../metrics/scrape-snapshot.ts'

export type PinStatusName = 'queued' | 'pinning' | 'pinned' | 'failed'
export const PIN_STATUSES: readonly PinStatusName[] = ['queued', 'pinning', 'pinned', 'failed']

/** How one pin attempt ended. `retry` and `released` put the job back in the queue. */
export type PinAttemptOutcome = 'pinned' | 'failed' | 'retry' | 'released' | 'lease-lost'
export const GC_OUTCOMES = ['completed', 'skipped-locked', 'failed'] as const
export type GcOutcome = typeof GC_OUTCOMES[number]

/** What the Bitswap send budget holds (read on scrape). */
export interface BitswapSendBudgetFigures {
  bytesInFlight: number
  peersWaiting: number
}

/** Fleet-wide figures read from Postgres on scrape. */
export interface StorageSnapshot {
  pins: Record<PinStatusName, number>
  blocks: number
  bytes: number
}

/**
 * Snapshots are cached this long, so every worker's scrape does not count the pins and
 * blocks tables (guess: well under a 15–30 s scrape interval, cheap enough per worker).
 */
const SNAPSHOT_TTL_MS = 10_000

/**
 * Metrics of the storage area: blockstore, pins, GC and Bitswap serving. Labels are closed
 * sets (status, outcome); never CIDs, owners or peers. The fleet-wide gauges (pins by
 * status, queue depth, blocks and bytes stored) read Postgres on scrape through
 * `readSnapshotFrom`.
 */
export function createStorageMetrics (registry: Registry) {
  const scraped = scrapeSnapshot<StorageSnapshot>(SNAPSHOT_TTL_MS)
  let sendBudget: (() => BitswapSendBudgetFigures) | undefined
  const snapshot = scraped.get
  const pinBlocksFetched = new Counter({
    name: 'pharos_pin_blocks_fetched_total',
    help: 'Blocks pin jobs of this worker fetched from peers (blocks already stored are not counted), by who was asked: the pin\'s connected origins only (origin), or every connected peer (any)',
    labelNames: ['from'] as const,
    registers: [registry]
  })
  // Both sources on the first scrape, so dashboards see the series before the first pin.
  for (const from of ['origin', 'any'] as const) pinBlocksFetched.inc({ from }, 0)
  const gcRuns = new Counter({
    name: 'pharos_gc_runs_total',
    help: 'GC runs started by this worker, by outcome (skipped-locked: another worker was collecting)',
    labelNames: ['outcome'] as const,
    registers: [registry]
  })
  // Every outcome from the start: `increase()` over a series that appears at 1 reads 0, so
  // the first failed run would not fire PharosGcFailing.
  for (const outcome of GC_OUTCOMES) gcRuns.inc({ outcome }, 0)

  return {
    /** Where the fleet-wide gauges come from (the pin store and blockstore, in worker.ts). */
    readSnapshotFrom (source: () => Promise<StorageSnapshot>): void {
      scraped.readFrom(source)
    },
    /** Where the Bitswap send budget's gauges come from (storage-service.ts). */
    readSendBudgetFrom (source: () => BitswapSendBudgetFigures): void {
      sendBudget = source
    },
    bitswapBytesInFlight: new Gauge({
      name: 'pharos_bitswap_bytes_in_flight',
      help: 'Bytes of blocks read to send to peers over Bitswap and not yet written to their streams (PHAROS_BITSWAP_BYTES_IN_FLIGHT bounds it)',
      registers: [registry],
      collect () {
        if (sendBudget !== undefined) this.set(sendBudget().bytesInFlight)
      }
    }),
    bitswapPeersWaiting: new Gauge({
      name: 'pharos_bitswap_peers_waiting',
      help: 'Peers whose next Bitswap block waits for room in the send budget',
      registers: [registry],
      collect () {
        if (sendBudget !== undefined) this.set(sendBudget().peersWaiting)
      }
    }),
    pins: new Gauge({
      name: 'pharos_pins',
      help: 'Pins in the fleet by status (read from Postgres on scrape)',
      labelNames: ['status'] as const,
      registers: [registry],
      async collect () {
        const figures = await snapshot()
        if (figures !== undefined) for (const status of PIN_STATUSES) this.set({ status }, figures.pins[status])
      }
    }),
    pinQueueDepth: new Gauge({
      name: 'pharos_pin_queue_depth',
      help: 'Pin jobs not yet settled (queued or pinning) in the fleet',
      registers: [registry],
      async collect () {
        const figures = await snapshot()
        if (figures !== undefined) this.set(figures.pins.queued + figures.pins.pinning)
      }
    }),
    blocksStored: new Gauge({
      name: 'pharos_blocks_stored',
      help: 'Blocks in the Postgres blockstore (fleet-wide)',
      registers: [registry],
      async collect () {
        const figures = await snapshot()
        if (figures !== undefined) this.set(figures.blocks)
      }
    }),
    bytesStored: new Gauge({
      name: 'pharos_block_bytes_stored',
      help: 'Bytes of block data in the Postgres blockstore (fleet-wide)',
      registers: [registry],
      async collect () {
        const figures = await snapshot()
        if (figures !== undefined) this.set(figures.bytes)
      }
    }),
    pinAttempts: new Counter({
      name: 'pharos_pin_attempts_total',
      help: 'Pin attempts run by this worker, by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry]
    }),
    pinDuration: new Histogram({
      name: 'pharos_pin_duration_seconds',
      help: 'Duration of pin attempts run by this worker, by outcome',
      labelNames: ['outcome'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [registry]
    }),
    pinBlocksFetched,
    pinBytesFetched: new Counter({
      name: 'pharos_pin_bytes_fetched_total',
      help: 'Bytes pin jobs of this worker fetched from peers',
      registers: [registry]
    }),
    gcRuns,
    gcFreedBlocks: new Counter({
      name: 'pharos_gc_freed_blocks_total',
      help: 'Blocks removed by GC runs of this worker',
      registers: [registry]
    }),
    gcFreedBytes: new Counter({
      name: 'pharos_gc_freed_bytes_total',
      help: 'Bytes of block data removed by GC runs of this worker',
      registers: [registry]
    }),
    hashMismatches: new Counter({
      name: 'pharos_block_hash_mismatches_total',
      help: 'Block reads whose stored bytes did not match their multihash (the block was not served)',
      registers: [registry]
    }),
    bitswapBlocksServed: new Counter({
      name: 'pharos_bitswap_blocks_served_total',
      help: 'Blocks this worker sent to peers over Bitswap',
      registers: [registry]
    }),
    bitswapBytesServed: new Counter({
      name: 'pharos_bitswap_bytes_served_total',
      help: 'Bytes of blocks this worker sent to peers over Bitswap',
      registers: [registry]
    })
  }
}

export type StorageMetrics = ReturnType<typeof createStorageMetrics>
