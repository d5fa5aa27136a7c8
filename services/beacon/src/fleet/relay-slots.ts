import type { Logger } from '../logging/logger.ts'
import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'
import type { FleetKeys } from './keys.ts'
import type { FleetRedis } from './redis-connection.ts'

/**
 * What a slot request answered: `granted` (a new slot for this worker), `renewed` (this
 * worker already held the account's slot: a renewal or a reconnect reuses it), `full`
 * (the account holds all its slots on other workers).
 */
export type SlotResult = 'granted' | 'renewed' | 'full'

/**
 * Relay reservation slots per registered account, fleet-wide (issue 9, docs/fleet.md
 * "Relay slots"). An account is an ed25519 peer ID; the relay server keys reservations by
 * peer, so one worker holds at most one reservation per account, and a slot is the pair
 * (account, worker). An account may hold `slotsPerAccount` slots at once over the fleet.
 */
export interface RelaySlots {
  /** Takes (or renews) this worker's slot for `account` for one reservation TTL from `now`. */
  reserve: (account: string, now: number) => Promise<SlotResult>
  /** Frees this worker's slots for `accounts` (their reservations expired or were dropped). */
  release: (accounts: readonly string[]) => Promise<void>
  /** Frees every slot this worker holds (a drain: its reservations end with it). */
  releaseAll: () => Promise<void>
  /** Accounts this worker holds a slot for, with the slot's expiry (ms since epoch). */
  held: () => ReadonlyMap<string, number>
}

export interface RelaySlotsInit {
  /** This worker's peer ID: the member of the slot sets it holds. */
  workerId: string
  /** PHAROS_RELAY_SLOTS_PER_ACCOUNT. */
  slotsPerAccount: number
  /** PHAROS_RELAY_RESERVATION_TTL_MS: a slot lives exactly as long as the reservation it backs. */
  reservationTtlMs: number
  metrics?: Pick<FleetMetricsHooks, 'relaySlots'>
}

/**
 * The slots of a worker alone (embedded, or Postgres without Redis), and what a Redis
 * worker falls back to while Redis is down: this worker's own slots only. One worker holds
 * at most one reservation per account, so any `slotsPerAccount` ≥ 1 grants it.
 */
export class LocalRelaySlots implements RelaySlots {
  private readonly init: RelaySlotsInit
  private readonly own = new Map<string, number>()

  constructor (init: RelaySlotsInit) {
    this.init = init
  }

  async reserve (account: string, now: number): Promise<SlotResult> {
    const result = this.decide(account, now)
    this.init.metrics?.relaySlots.inc({ result })
    return result
  }

  /** The answer from this worker's own slots, recorded; not counted. */
  decide (account: string, now: number): SlotResult {
    const expiresAt = this.own.get(account)
    const result: SlotResult = expiresAt !== undefined && expiresAt > now ? 'renewed' : this.init.slotsPerAccount > 0 ? 'granted' : 'full'
    if (result === 'full') this.own.delete(account)
    else this.own.set(account, now + this.init.reservationTtlMs)
    return result
  }

  async release (accounts: readonly string[]): Promise<void> {
    for (const account of accounts) this.own.delete(account)
  }

  async releaseAll (): Promise<void> {
    this.own.clear()
  }

  held (): ReadonlyMap<string, number> {
    return this.own
  }

  /** Records a slot Redis granted, so the fallback and the resync know it. */
  remember (account: string, expiresAt: number): void {
    this.own.set(account, expiresAt)
  }

  forget (account: string): void {
    this.own.delete(account)
  }
}

export interface RedisRelaySlotsInit extends RelaySlotsInit {
  redis: FleetRedis
  keys: FleetKeys
  log: Logger
}

/**
 * One atomic step per request, on the account's own key (one hash tag, so legal on a
 * Cluster): drop members whose expiry has passed, renew this worker's member if present,
 * else add it if fewer than the limit hold one. The key's TTL is the reservation TTL, so
 * an account whose slots all lapse leaves nothing behind.
 * KEYS[1] slot set; ARGV worker, now, expiresAt, limit, ttlMs.
 */
const RESERVE_SCRIPT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 'full' end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if held then return 'renewed' end
return 'granted'`

const SLOT_RESULTS: readonly string[] = ['granted', 'renewed', 'full']

/** Slot releases sent at once on a drain (guess: bounds the burst, keeps a drain of thousands short). */
const RELEASE_CONCURRENCY = 64

/**
 * Slots in Redis: one ZSET per account (`<prefix>{relay:<account>}:slots`), members the
 * workers holding a slot, scores their expiry. While Redis is down (or a command fails)
 * the answer comes from this worker's own slots (`LocalRelaySlots`), counted as `local`:
 * an account may then hold one reservation per worker, past its fleet-wide limit, until
 * Redis returns. When it does, every slot this worker holds is written back (without the
 * limit: those reservations exist), so other workers count them again.
 */
export class RedisRelaySlots implements RelaySlots {
  private readonly init: RedisRelaySlotsInit
  private readonly local: LocalRelaySlots
  private stopStateListener: (() => void) | undefined

  constructor (init: RedisRelaySlotsInit) {
    this.init = init
    this.local = new LocalRelaySlots({ ...init, metrics: undefined })
  }

  /** Writes this worker's slots back whenever Redis (re)connects. */
  start (): void {
    this.stopStateListener ??= this.init.redis.onStateChange((up) => {
      if (up) void this.resync()
    })
  }

  stop (): void {
    this.stopStateListener?.()
    this.stopStateListener = undefined
  }

  async reserve (account: string, now: number): Promise<SlotResult> {
    const { redis, keys, workerId, slotsPerAccount, reservationTtlMs, metrics } = this.init
    const expiresAt = now + reservationTtlMs
    const reply = await redis.command('relay-slots', async (client) =>
      await client.eval(RESERVE_SCRIPT, 1, keys.relaySlots(account), workerId, now, expiresAt, slotsPerAccount, reservationTtlMs))
    if (!reply.ok || typeof reply.value !== 'string' || !SLOT_RESULTS.includes(reply.value)) {
      if (reply.ok) redis.failed('relay-slots', new TypeError(`unexpected reply ${String(reply.value)}`))
      metrics?.relaySlots.inc({ result: 'local' })
      return this.local.decide(account, now)
    }
    const result = reply.value as SlotResult
    if (result === 'full') this.local.forget(account)
    else this.local.remember(account, expiresAt)
    metrics?.relaySlots.inc({ result })
    return result
  }

  async release (accounts: readonly string[]): Promise<void> {
    await this.local.release(accounts)
    const { redis, keys, workerId } = this.init
    for (let i = 0; i < accounts.length; i += RELEASE_CONCURRENCY) {
      await Promise.all(accounts.slice(i, i + RELEASE_CONCURRENCY).map(async (account) => {
        await redis.command('relay-slots', async (client) => await client.zrem(keys.relaySlots(account), workerId))
      }))
    }
  }

  async releaseAll (): Promise<void> {
    await this.release([...this.local.held().keys()])
  }

  held (): ReadonlyMap<string, number> {
    return this.local.held()
  }

  /** Rewrites every live slot of this worker (after an outage, Redis may have lost them or never seen them). */
  async resync (): Promise<void> {
    const { redis, keys, workerId, reservationTtlMs, log } = this.init
    const now = Date.now()
    const live = [...this.local.held()].filter(([, expiresAt]) => expiresAt > now)
    for (let i = 0; i < live.length; i += RELEASE_CONCURRENCY) {
      await Promise.all(live.slice(i, i + RELEASE_CONCURRENCY).map(async ([account, expiresAt]) => {
        await redis.command('relay-slots', async (client) => await client.multi()
          .zadd(keys.relaySlots(account), expiresAt, workerId)
          .pexpire(keys.relaySlots(account), reservationTtlMs)
          .exec())
      }))
    }
    if (live.length > 0) log.info({ slots: live.length }, 'relay slots written back to Redis')
  }
}
