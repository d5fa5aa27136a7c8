/**
 * What the fleet-state classes count, as the narrow shapes they call. The prom-client
 * metrics behind them are built by `createFleetMetrics` (metrics/fleet-metrics.ts) in the
 * composition root; the classes never import prom-client, and tests can pass plain objects.
 * Every label is a closed set listed here.
 */

/**
 * The Redis work that failed, the `operation` label of `pharos_redis_errors_total`:
 * - `connection`: the connection itself (lost, refused, reset, timed out), command or subscriber;
 * - `seen`, `membership`, `peer-views`, `bans`, `accounts`, `bridge`, `relay-slots`: a command of that area.
 */
export type RedisOperation = 'connection' | 'seen' | 'membership' | 'peer-views' | 'bans' | 'accounts' | 'bridge' | 'relay-slots'
export const REDIS_OPERATIONS = ['connection', 'seen', 'membership', 'peer-views', 'bans', 'accounts', 'bridge', 'relay-slots'] as const satisfies readonly RedisOperation[]

/**
 * How a seen-set claim was answered, the `result` label of `pharos_seen_claims_total`:
 * `claimed` (this worker took it in Redis), `seen` (some worker, maybe this one, had it),
 * `local` (Redis was down or failed: processed locally, Postgres unique keys dedupe).
 */
export type SeenClaimResult = 'claimed' | 'seen' | 'local'
export const SEEN_CLAIM_RESULTS = ['claimed', 'seen', 'local'] as const satisfies readonly SeenClaimResult[]

/**
 * Gossip bridge frames, the `direction` label of `pharos_gossip_bridge_messages_total`:
 * `published` by this worker, `received` from another worker, `dropped` (malformed or
 * oversized, in either direction).
 */
export type BridgeDirection = 'published' | 'received' | 'dropped'
export const BRIDGE_DIRECTIONS = ['published', 'received', 'dropped'] as const satisfies readonly BridgeDirection[]

/**
 * How a relay slot request was answered, the `result` label of `pharos_relay_slots_total`:
 * `granted` (a new slot), `renewed` (the worker's own slot reused), `full` (the account's
 * slots are all held elsewhere), `local` (Redis unavailable: decided on this worker's own
 * slots).
 */
export type RelaySlotResult = 'granted' | 'renewed' | 'full' | 'local'
export const RELAY_SLOT_RESULTS = ['granted', 'renewed', 'full', 'local'] as const satisfies readonly RelaySlotResult[]

/** Where a malformed value read from Redis came from (it was dropped, not thrown). */
export type MalformedSource = 'membership' | 'peer-views' | 'bans' | 'ban-events' | 'account-events'
export const MALFORMED_SOURCES = ['membership', 'peer-views', 'bans', 'ban-events', 'account-events'] as const satisfies readonly MalformedSource[]

interface SetGauge { set: (value: number) => void }
interface LabelledCounter<Labels> { inc: (labels: Labels, value?: number) => void }

export interface FleetMetricsHooks {
  /** `pharos_redis_up`: 1 while the command connection is ready. */
  redisUp: SetGauge
  redisErrors: LabelledCounter<{ operation: RedisOperation }>
  /** `pharos_fleet_workers`: live workers in the last membership list read. */
  fleetWorkers: SetGauge
  seenClaims: LabelledCounter<{ result: SeenClaimResult }>
  bridgeMessages: LabelledCounter<{ direction: BridgeDirection }>
  /** `pharos_fleet_peers`: peers this worker holds (connected), as PeerViews knows them. */
  fleetPeers: SetGauge
  malformed: LabelledCounter<{ source: MalformedSource }>
  relaySlots: LabelledCounter<{ result: RelaySlotResult }>
}
