import { BAN_REASONS, canonicalBanPeer } from '../bans/ban-list.ts'
import type { BanReason } from '../bans/ban-list.ts'
import type { Logger } from '../logging/logger.ts'
import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'
import type { FleetKeys } from './keys.ts'
import type { FleetRedis } from './redis-connection.ts'

/**
 * Bans told across the fleet at once, rather than at the next Postgres refresh of each
 * worker's BanList. Postgres stays the durable copy and the source of truth: this is only
 * the fast path, and what a resync reads from Redis counts only if Postgres agrees.
 */
export interface BanSync {
  /**
   * Tells the fleet this worker banned `peer` (canonical form, as BanList stores it).
   * Never throws; false if Redis did not take it or the peer ID is not canonical.
   */
  announce: (peer: string, reason: BanReason) => Promise<boolean>
  /**
   * Tells the fleet the ban on `peer` was lifted. Never throws. If Redis is down the entry
   * stays there, and the next resync (any worker's) finds Postgres no longer holds the ban
   * and removes it, rather than banning the peer again.
   */
  unannounce: (peer: string) => Promise<boolean>
  /**
   * Told of bans made by other workers, and of every ban Redis holds whenever this worker
   * (re)connects, and once when the listener is added (resync). Returns the remover.
   */
  onRemoteBan: (listener: (peer: string, reason: BanReason) => void) => () => void
  /** Told of bans other workers lifted. Unbans made while Redis was away come from Postgres only. */
  onRemoteUnban: (listener: (peer: string) => void) => () => void
}

/** A ban as held in the bans hash (field: the peer ID). */
interface StoredBan {
  reason: BanReason
  /** The worker that banned it. */
  by: string
  /** ms since epoch. */
  at: number
}

type BanEventMessage =
  | { op: 'ban', peer: string, reason: BanReason, origin: string }
  | { op: 'unban', peer: string, origin: string }

/** Events larger than this are not ours (a ban event is ~150 bytes). */
const MAX_EVENT_BYTES = 4096
/** HSCAN COUNT when reading every ban on resync (guess). */
const RESYNC_SCAN_COUNT = 500

/**
 * Deletes a bans-hash field only if it still holds the value the resync read: a peer banned
 * again since (a new `at`) keeps its entry.
 */
const DELETE_IF_UNCHANGED = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0`

function isBanReason (value: unknown): value is BanReason {
  return (BAN_REASONS as readonly unknown[]).includes(value)
}

/** True for a peer ID in the one form bans use (canonicalBanPeer's). */
function isBanPeer (value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 128) return false
  try {
    return canonicalBanPeer(value) === value
  } catch {
    return false
  }
}

function parseJsonObject (raw: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(raw)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** A bans-hash entry, or undefined if it is not one. */
export function parseStoredBan (peer: string, raw: string): StoredBan | undefined {
  const value = parseJsonObject(raw)
  if (value === undefined || !isBanPeer(peer) || !isBanReason(value.reason) || typeof value.by !== 'string' || !Number.isFinite(value.at)) return undefined
  return { reason: value.reason, by: value.by, at: value.at as number }
}

/** A ban event from the channel, or undefined if it is not one. */
export function parseBanEvent (message: Buffer): BanEventMessage | undefined {
  if (message.length > MAX_EVENT_BYTES) return undefined
  const value = parseJsonObject(message.toString())
  if (value === undefined || !isBanPeer(value.peer) || typeof value.origin !== 'string') return undefined
  if (value.op === 'ban' && isBanReason(value.reason)) return { op: 'ban', peer: value.peer, reason: value.reason, origin: value.origin }
  if (value.op === 'unban') return { op: 'unban', peer: value.peer, origin: value.origin }
  return undefined
}

export interface RedisBanSyncInit {
  redis: FleetRedis
  keys: FleetKeys
  workerId: string
  log: Logger
  metrics?: Pick<FleetMetricsHooks, 'malformed'>
  /**
   * Which of `peers` Postgres holds banned: the source of truth a resync checks Redis against.
   * A ban in Redis that Postgres no longer holds was lifted while Redis could not be told (an
   * unban during an outage); the resync removes it from Redis instead of banning the peer
   * again. A resync whose check fails learns nothing (the BanList's Postgres refresh will).
   * @default none: every ban in Redis is learnt (a fleet of bans kept in Redis alone)
   */
  standing?: (peers: readonly string[]) => Promise<ReadonlySet<string>>
}

/**
 * Bans in Redis: a HASH of every ban (peer → JSON `{ reason, by, at }`) and a channel of
 * ban and unban events. A worker subscribed to the channel hears bans as they happen; a
 * worker that (re)connects reads the whole hash, so bans made while it was away reach it
 * too. Everything read is validated: a malformed entry or event is counted and dropped.
 */
export class RedisBanSync implements BanSync {
  private readonly init: RedisBanSyncInit
  private readonly log: Logger
  private readonly banListeners = new Set<(peer: string, reason: BanReason) => void>()
  private readonly unbanListeners = new Set<(peer: string) => void>()
  private readonly stops: Array<() => void> = []
  private resyncing: Promise<number> | undefined
  private nextResync: Promise<number> | undefined

  constructor (init: RedisBanSyncInit) {
    this.init = init
    this.log = init.log.child({ component: 'fleet-bans' })
  }

  /** Subscribes to ban events, and resyncs on every (re)connect. */
  start (): void {
    if (this.stops.length > 0) return
    const { redis, keys } = this.init
    this.stops.push(
      redis.subscribe(keys.banEvents(), (message) => { this.heard(message) }),
      // Subscribed first, read second: a ban made between the two is heard, not lost.
      redis.onSubscribed(() => { this.resyncInBackground() }),
      redis.onStateChange((up) => { if (up) this.resyncInBackground() })
    )
    this.resyncInBackground()
  }

  stop (): void {
    for (const stop of this.stops.splice(0)) stop()
  }

  async announce (peer: string, reason: BanReason): Promise<boolean> {
    const { redis, keys, workerId } = this.init
    // Other workers drop a peer ID not in canonical form as malformed: refuse it here.
    if (!isBanPeer(peer)) return false
    const stored: StoredBan = { reason, by: workerId, at: Date.now() }
    const event: BanEventMessage = { op: 'ban', peer, reason, origin: workerId }
    const sent = await redis.command('bans', async (client) => {
      await client.hset(keys.bans(), peer, JSON.stringify(stored))
      await client.publish(keys.banEvents(), JSON.stringify(event))
    })
    return sent.ok
  }

  async unannounce (peer: string): Promise<boolean> {
    const { redis, keys, workerId } = this.init
    const event: BanEventMessage = { op: 'unban', peer, origin: workerId }
    const sent = await redis.command('bans', async (client) => {
      await client.hdel(keys.bans(), peer)
      await client.publish(keys.banEvents(), JSON.stringify(event))
    })
    return sent.ok
  }

  onRemoteBan (listener: (peer: string, reason: BanReason) => void): () => void {
    this.banListeners.add(listener)
    // A listener added after start has missed the bans already in Redis.
    if (this.stops.length > 0) this.resyncInBackground()
    return () => { this.banListeners.delete(listener) }
  }

  onRemoteUnban (listener: (peer: string) => void): () => void {
    this.unbanListeners.add(listener)
    return () => { this.unbanListeners.delete(listener) }
  }

  /**
   * Reads every ban in Redis and tells the ban listeners (this worker's own bans too: the
   * listener, BanList.learn, ignores peers already banned) of those Postgres still holds
   * (`standing`); the others, lifted while Redis was away, are removed from Redis and their
   * unban told to the fleet. Answers how many bans were told.
   * Calls made while one runs are served by one more run after it.
   */
  async resync (): Promise<number> {
    if (this.resyncing !== undefined) {
      // The read under way may have passed a ban this call is about: read once more after it.
      this.nextResync ??= this.resyncing.then(async () => {
        this.nextResync = undefined
        return await this.resync()
      })
      return await this.nextResync
    }
    this.resyncing = this.readAll().finally(() => { this.resyncing = undefined })
    return await this.resyncing
  }

  private resyncInBackground (): void {
    if (!this.init.redis.isUp() || this.banListeners.size === 0) return
    this.resync().catch((err: unknown) => { this.log.error({ err }, 'ban resync threw') })
  }

  private async readAll (): Promise<number> {
    const { redis, keys, metrics } = this.init
    const read = await redis.command('bans', async (client) => {
      const entries: Array<[string, string]> = []
      let cursor = '0'
      do {
        const [next, flat] = await client.hscan(keys.bans(), cursor, 'COUNT', RESYNC_SCAN_COUNT)
        for (let i = 0; i + 1 < flat.length; i += 2) entries.push([flat[i] as string, flat[i + 1] as string])
        cursor = next
      } while (cursor !== '0')
      return entries
    })
    if (!read.ok) return 0
    const bans: Array<{ peer: string, raw: string, reason: BanReason }> = []
    for (const [peer, raw] of read.value) {
      const ban = parseStoredBan(peer, raw)
      if (ban === undefined) {
        metrics?.malformed.inc({ source: 'bans' })
        continue
      }
      bans.push({ peer, raw, reason: ban.reason })
    }
    let standing: ReadonlySet<string> | undefined
    if (this.init.standing !== undefined && bans.length > 0) {
      try {
        standing = await this.init.standing(bans.map((ban) => ban.peer))
      } catch (err) {
        this.log.warn({ err, bans: bans.length }, 'could not check the bans in Redis against Postgres; learning none of them until the next resync')
        return 0
      }
    }
    let told = 0
    const lifted: typeof bans = []
    for (const ban of bans) {
      if (standing !== undefined && !standing.has(ban.peer)) {
        lifted.push(ban)
        continue
      }
      this.tellBan(ban.peer, ban.reason)
      told++
    }
    if (lifted.length > 0) await this.removeLifted(lifted)
    return told
  }

  /** Removes bans Postgres no longer holds from Redis, and tells the fleet they were lifted. */
  private async removeLifted (lifted: ReadonlyArray<{ peer: string, raw: string }>): Promise<void> {
    const { redis, keys, workerId } = this.init
    const removed = await redis.command('bans', async (client) => {
      const peers: string[] = []
      for (const { peer, raw } of lifted) {
        if (Number(await client.eval(DELETE_IF_UNCHANGED, 1, keys.bans(), peer, raw)) === 1) {
          peers.push(peer)
          const event: BanEventMessage = { op: 'unban', peer, origin: workerId }
          await client.publish(keys.banEvents(), JSON.stringify(event))
        }
      }
      return peers
    })
    if (removed.ok && removed.value.length > 0) {
      this.log.info({ peers: removed.value }, 'removed from Redis bans that Postgres no longer holds (lifted while Redis was away)')
    }
  }

  private heard (message: Buffer): void {
    const event = parseBanEvent(message)
    if (event === undefined) {
      this.init.metrics?.malformed.inc({ source: 'ban-events' })
      return
    }
    if (event.origin === this.init.workerId) return
    switch (event.op) {
      case 'ban':
        this.tellBan(event.peer, event.reason)
        break
      case 'unban':
        for (const listener of this.unbanListeners) this.safely(() => { listener(event.peer) })
        break
    }
  }

  private tellBan (peer: string, reason: BanReason): void {
    for (const listener of this.banListeners) this.safely(() => { listener(peer, reason) })
  }

  private safely (call: () => void): void {
    try {
      call()
    } catch (err) {
      this.log.error({ err }, 'ban listener threw')
    }
  }
}
