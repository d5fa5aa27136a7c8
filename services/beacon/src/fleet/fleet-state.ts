import type { Logger } from '../logging/logger.ts'
import { RedisAccountSync } from './account-sync.ts'
import type { AccountSync } from './account-sync.ts'
import { RedisBanSync } from './ban-sync.ts'
import type { BanSync } from './ban-sync.ts'
import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'
import { RedisGossipBridge } from './gossip-bridge.ts'
import type { GossipBridge } from './gossip-bridge.ts'
import { fleetKeys } from './keys.ts'
import { RedisFleetMembership } from './membership.ts'
import type { FleetMembership, WorkerRecordFields } from './membership.ts'
import { RedisPeerViews } from './peer-views.ts'
import type { PeerViews } from './peer-views.ts'
import { openFleetRedis } from './redis-connection.ts'
import type { FleetRedis, RedisMode } from './redis-connection.ts'
import { RedisRelaySlots } from './relay-slots.ts'
import type { RelaySlots } from './relay-slots.ts'
import { RedisSeenSet } from './seen-set.ts'
import type { SeenSet } from './seen-set.ts'

/**
 * What workers share (DESIGN.md §6), behind one interface whether it lives in Redis (a
 * fleet) or in this process (a worker alone).
 */
export interface FleetState {
  readonly mode: 'redis' | 'in-process'
  /** The connections, in Redis mode (for /readyz: `isUp`). */
  readonly redis: FleetRedis | undefined
  readonly seen: SeenSet
  readonly membership: FleetMembership
  readonly peerViews: PeerViews
  readonly bans: BanSync
  /** Account changes made through any worker, told to every other at once. */
  readonly accounts: AccountSync
  readonly bridge: GossipBridge
  /** Relay reservation slots per account, counted fleet-wide. */
  readonly relaySlots: RelaySlots
  /** Leaves the fleet (membership and peer view removed), stops timers, closes Redis. */
  stop: () => Promise<void>
}

/** The Redis state, with the concrete parts (flush, beat, resync, stats) visible. */
export interface RedisFleetState extends FleetState {
  readonly mode: 'redis'
  readonly redis: FleetRedis
  readonly seen: RedisSeenSet
  readonly membership: RedisFleetMembership
  readonly peerViews: RedisPeerViews
  readonly bans: RedisBanSync
  readonly accounts: RedisAccountSync
  readonly bridge: RedisGossipBridge
  readonly relaySlots: RedisRelaySlots
}

export interface FleetStateOptions {
  /** REDIS_URL, PHAROS_REDIS_MODE. */
  redis: { url: string, mode: RedisMode, commandTimeoutMs?: number, maxReconnectDelayMs?: number }
  /** PHAROS_REDIS_PREFIX. */
  prefix: string
  /** This worker's peer ID. */
  workerId: string
  /** PHAROS_WORKER_NAME. */
  workerName: string
  /** PHAROS_FLEET_HEARTBEAT_MS. */
  heartbeatMs: number
  /** PHAROS_SEEN_TTL_MS. */
  seenTtlMs: number
  /** PHAROS_SEEN_CLAIM_TTL_MS. */
  seenClaimTtlMs: number
  /** PHAROS_PEER_VIEW_RETENTION_MS. */
  peerViewRetentionMs: number
  /** PHAROS_RELAY_SLOTS_PER_ACCOUNT and PHAROS_RELAY_RESERVATION_TTL_MS. */
  relaySlots: { slotsPerAccount: number, reservationTtlMs: number }
  log: Logger
  metrics?: FleetMetricsHooks
  /** The changing fields of this worker's membership record, read at each heartbeat. */
  record: () => WorkerRecordFields
  /** Which of these peers Postgres holds banned: what a ban resync checks Redis against (RedisBanSyncInit.standing). */
  bansStanding?: (peers: readonly string[]) => Promise<ReadonlySet<string>>
  /**
   * Start waits this long for Redis before going on degraded; it connects in the
   * background either way (guess: long enough for a Redis that is up, short enough not to
   * hold a worker's start when it is not).
   * @default 3000
   */
  connectWaitMs?: number
}

/** What the in-process state needs: no Redis, no prefix, no heartbeats. */
export type InProcessFleetStateOptions = Pick<FleetStateOptions, 'workerId' | 'workerName' | 'seenTtlMs' | 'seenClaimTtlMs' | 'peerViewRetentionMs' | 'relaySlots' | 'record' | 'metrics'>

/**
 * Opens Redis and starts every fleet structure on it: membership heartbeats, peer view
 * flushes, ban and bridge subscriptions. Never fails because Redis is down: it waits up to
 * `connectWaitMs`, then starts degraded and catches up when Redis connects.
 */
export async function startFleetState (options: FleetStateOptions): Promise<RedisFleetState> {
  const log = options.log.child({ component: 'fleet', worker: options.workerName })
  const keys = fleetKeys(options.prefix)
  const { workerId, workerName, metrics } = options
  const redis = openFleetRedis({
    ...options.redis,
    log,
    metrics,
    connectionName: `pharos:${workerName}`
  })
  const seen = new RedisSeenSet({ redis, keys, workerId, seenTtlMs: options.seenTtlMs, claimTtlMs: options.seenClaimTtlMs, metrics })
  const membership = new RedisFleetMembership({ redis, keys, workerId, workerName, heartbeatMs: options.heartbeatMs, record: options.record, log, metrics })
  const peerViews = new RedisPeerViews({
    redis, keys, workerId, workerName, membership, heartbeatMs: options.heartbeatMs, retentionMs: options.peerViewRetentionMs, log, metrics
  })
  const bans = new RedisBanSync({ redis, keys, workerId, log, metrics, ...(options.bansStanding === undefined ? {} : { standing: options.bansStanding }) })
  const accounts = new RedisAccountSync({ redis, keys, workerId, log, metrics })
  const bridge = new RedisGossipBridge({ redis, keys, workerId, log, metrics })
  const relaySlots = new RedisRelaySlots({ redis, keys, workerId, ...options.relaySlots, log, metrics })

  // Subscriptions and state listeners first, so nothing said after connecting is missed.
  bans.start()
  accounts.start()
  bridge.start()
  membership.start()
  peerViews.start()
  relaySlots.start()
  if (!await redis.waitUntilReady(options.connectWaitMs ?? 3000)) {
    log.warn('Redis not reachable at start: running on local state, connecting in the background')
  }

  let stopping: Promise<void> | undefined
  return {
    mode: 'redis',
    redis,
    seen,
    membership,
    peerViews,
    bans,
    accounts,
    bridge,
    relaySlots,
    async stop () {
      stopping ??= (async () => {
        bans.stop()
        accounts.stop()
        bridge.stop()
        relaySlots.stop()
        seen.flush()
        await Promise.all([membership.leave(), peerViews.remove(), relaySlots.releaseAll()])
        await redis.close()
      })()
      await stopping
    }
  }
}
