/** Plumtree's options, their defaults (constants.ts says where each came from) and their checks. */
import {
  GRAFT_RETRY_TIMEOUT_MS,
  GRAFT_TIMEOUT_MS,
  IHAVE_INTERVAL_MS,
  MAX_ANNOUNCERS_PER_MESSAGE,
  MAX_GRAFT_TIMEOUT_MS,
  MAX_IHAVE_BATCH,
  MAX_MISSING_MESSAGES,
  MAX_ORIGIN_TREES,
  MAX_PAYLOAD_BYTES,
  MAX_PENDING_MESSAGES,
  MAX_PRUNE_ORIGINS,
  MAX_ROUND,
  MESSAGE_CACHE_MAX_BYTES,
  MESSAGE_CACHE_MAX_ENTRIES,
  MESSAGE_CACHE_TTL_MS,
  OPTIMIZATION_CONSISTENCY,
  OPTIMIZATION_THRESHOLD,
  ORIGIN_TREE_IDLE_MS,
  REJECTED_CACHE_MAX_BYTES,
  REJECTED_CACHE_MAX_ENTRIES,
  REPAIRS_BEFORE_JOIN,
  SEEN_MAX_ENTRIES,
  SHARED_PRUNE_DUPLICATES,
  SEEN_TTL_MS
} from './constants.ts'
import { requireInteger } from './errors.ts'

/** Plumtree options. */
export interface PlumtreeConfig {
  /**
   * Period of the lazy-push IHAVE batches.
   * @default 500 (seed)
   */
  ihaveIntervalMs: number
  /**
   * Wait after the first IHAVE of a missing message before the first GRAFT (§3.6).
   * @default 1000 (guess)
   */
  graftTimeoutMs: number
  /**
   * The longest the first GRAFT waits, however late eager copies have recently been (the wait
   * adapts to them, from graftTimeoutMs up).
   * @default 10000 (guess: constants.ts)
   */
  maxGraftTimeoutMs: number
  /**
   * Wait after each GRAFT before asking the next announcer (§3.6).
   * @default 500 (guess)
   */
  graftRetryTimeoutMs: number
  /**
   * Hops a lazy path must save over the eager one for the two to swap (§3.8).
   * @default 4 (seed)
   */
  optimizationThreshold: number
  /**
   * Messages of one origin in a row that must show the same shorter lazy path before the swap.
   * @default 3 (guess: constants.ts)
   */
  optimizationConsistency: number
  /**
   * Duplicates of first messages in a row over one shared-tree link before it is pruned there.
   * @default 2 (measurement: constants.ts)
   */
  sharedPruneDuplicates: number
  /**
   * An origin's messages that must come by GRAFT in a row before the tree joins the neighbour that
   * served them; a single repair only fetches the payload.
   * @default 2 (guess: constants.ts)
   */
  repairsBeforeJoin: number
  /**
   * Origins whose broadcast trees are kept, the most recently used first.
   * @default 1024 (guess: constants.ts)
   */
  maxOriginTrees: number
  /**
   * An origin's tree unused this long is replaced by a fresh copy of the shared tree at the
   * origin's next message (origin-trees.ts: an idle tree collects every new link).
   * @default 10000 (measurement: constants.ts)
   */
  originTreeIdleMs: number
  /**
   * First receipts held while the application validates them; past it a new one is dropped as `ignore`.
   * @default 4096 (guess: constants.ts)
   */
  maxPendingMessages: number
  /**
   * Most origins per PRUNE message; more are split. Keep it at or below the receivers' wire
   * limit (`maxPruneOrigins`).
   * @default 1024 (guess)
   */
  maxPruneOrigins: number
  /**
   * Payloads kept to answer GRAFTs, by count.
   * @default 1024 (guess)
   */
  messageCacheMaxEntries: number
  /**
   * Payloads kept to answer GRAFTs, by their total bytes; the oldest are dropped past it.
   * @default 8388608 (guess: constants.ts)
   */
  messageCacheMaxBytes: number
  /**
   * Payloads kept to answer GRAFTs, by age (ms). A `cacheExpiry` timer enforces it while the
   * topic is quiet.
   * @default 60000 (guess)
   */
  messageCacheTtlMs: number
  /**
   * Rejected payloads remembered (an identical copy is rejected without a second validation), by count.
   * @default 1024 (guess: constants.ts)
   */
  rejectedCacheMaxEntries: number
  /**
   * Rejected payloads remembered, by their total bytes; the oldest are dropped past it.
   * @default 1048576 (guess: constants.ts)
   */
  rejectedCacheMaxBytes: number
  /**
   * Message IDs remembered for duplicate detection, by count.
   * @default 65536 (guess)
   */
  seenMaxEntries: number
  /**
   * Message IDs remembered for duplicate detection, by age (ms).
   * @default 300000 (guess)
   */
  seenTtlMs: number
  /**
   * Most IDs per IHAVE message; longer batches are split. Keep it at or below the receivers'
   * wire limit (`maxIHaveEntries`).
   * @default 1024 (guess)
   */
  maxIHaveBatch: number
  /**
   * Most announced-but-missing messages tracked at once.
   * @default 4096 (guess)
   */
  maxMissingMessages: number
  /**
   * Most announcers remembered per missing message.
   * @default 8 (guess)
   */
  maxAnnouncersPerMessage: number
  /**
   * Largest payload this node broadcasts.
   * @default 1048576 (guess)
   */
  maxPayloadBytes: number
  /**
   * Hop counts are clamped to this.
   * @default 1024 (guess)
   */
  maxRound: number
}

export const DEFAULT_PLUMTREE_CONFIG: Readonly<PlumtreeConfig> = Object.freeze({
  ihaveIntervalMs: IHAVE_INTERVAL_MS,
  graftTimeoutMs: GRAFT_TIMEOUT_MS,
  maxGraftTimeoutMs: MAX_GRAFT_TIMEOUT_MS,
  graftRetryTimeoutMs: GRAFT_RETRY_TIMEOUT_MS,
  optimizationThreshold: OPTIMIZATION_THRESHOLD,
  optimizationConsistency: OPTIMIZATION_CONSISTENCY,
  repairsBeforeJoin: REPAIRS_BEFORE_JOIN,
  sharedPruneDuplicates: SHARED_PRUNE_DUPLICATES,
  maxOriginTrees: MAX_ORIGIN_TREES,
  originTreeIdleMs: ORIGIN_TREE_IDLE_MS,
  maxPendingMessages: MAX_PENDING_MESSAGES,
  maxPruneOrigins: MAX_PRUNE_ORIGINS,
  messageCacheMaxEntries: MESSAGE_CACHE_MAX_ENTRIES,
  messageCacheMaxBytes: MESSAGE_CACHE_MAX_BYTES,
  messageCacheTtlMs: MESSAGE_CACHE_TTL_MS,
  rejectedCacheMaxEntries: REJECTED_CACHE_MAX_ENTRIES,
  rejectedCacheMaxBytes: REJECTED_CACHE_MAX_BYTES,
  seenMaxEntries: SEEN_MAX_ENTRIES,
  seenTtlMs: SEEN_TTL_MS,
  maxIHaveBatch: MAX_IHAVE_BATCH,
  maxMissingMessages: MAX_MISSING_MESSAGES,
  maxAnnouncersPerMessage: MAX_ANNOUNCERS_PER_MESSAGE,
  maxPayloadBytes: MAX_PAYLOAD_BYTES,
  maxRound: MAX_ROUND
})

/** Fills in defaults and checks ranges; throws {@link OverlayConfigError}. */
export function resolvePlumtreeConfig(partial: Partial<PlumtreeConfig> = {}): Readonly<PlumtreeConfig> {
  const config: PlumtreeConfig = { ...DEFAULT_PLUMTREE_CONFIG, ...partial }
  for (const key of Object.keys(DEFAULT_PLUMTREE_CONFIG) as Array<keyof PlumtreeConfig>) {
    requireInteger(`plumtree.${key}`, config[key], 1)
  }
  return Object.freeze(config)
}
