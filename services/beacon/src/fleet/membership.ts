import type { Logger } from '../logging/logger.ts'
import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'
import type { FleetKeys } from './keys.ts'
import { batchReplies, firstBatchError } from './redis-connection.ts'
import type { FleetRedis } from './redis-connection.ts'

/** One worker as the fleet sees it (DESIGN.md §6: heartbeats, addresses for bootstrap lists). */
export interface WorkerRecord {
  /** PHAROS_WORKER_NAME. */
  name: string
  peerId: string
  /** Where peers reach it (announced addresses, with /p2p/). */
  multiaddrs: string[]
  /** Its HTTP base URL, where known. */
  httpUrl: string | null
  /** ms since epoch. */
  startedAt: number
  /** ms since epoch, the worker's own clock. */
  heartbeatAt: number
  /** Open libp2p connections. */
  connections: number
  /** Its /readyz answer. */
  ready: boolean
}

/** The fields of a record that change while a worker runs, asked for at each heartbeat. */
export type WorkerRecordFields = Pick<WorkerRecord, 'multiaddrs' | 'httpUrl' | 'connections' | 'ready'>

/** A worker from `list`, with whether the list is current. */
export interface FleetWorker extends WorkerRecord {
  /** True when Redis could not be read: this is the last list known (or only this worker). */
  stale: boolean
}

/** Fleet membership: who is alive, with their addresses. */
export interface FleetMembership {
  /** Live workers (heartbeat within 3 intervals), this one included, by peer ID. */
  list: () => Promise<FleetWorker[]>
  /** Leaves the fleet at once (graceful stop) and stops heartbeats. */
  leave: () => Promise<void>
}

export interface RedisFleetMembershipInit {
  redis: FleetRedis
  keys: FleetKeys
  workerId: string
  workerName: string
  /** PHAROS_FLEET_HEARTBEAT_MS. A worker is gone after three missed beats. */
  heartbeatMs: number
  /** The changing fields, read at each beat. */
  record: () => WorkerRecordFields
  log: Logger
  metrics?: Pick<FleetMetricsHooks, 'fleetWorkers' | 'malformed'>
  /** @default Date.now() at construction */
  startedAt?: number
}

/** A worker missing this many beats has left (guess, also in PHAROS_FLEET_HEARTBEAT_MS's help). */
export const MISSED_BEATS = 3
/** Index entries this many intervals old are pruned (their records expired long before). */
const PRUNE_AFTER_BEATS = 10

/** The record read back from Redis, or undefined if it is not one (counted as malformed). */
export function parseWorkerRecord (raw: string, peerId: string): WorkerRecord | undefined {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const r = value as Record<string, unknown>
  if (typeof r.name !== 'string' || r.peerId !== peerId) return undefined
  if (!Array.isArray(r.multiaddrs) || !r.multiaddrs.every((a) => typeof a === 'string')) return undefined
  if (r.httpUrl !== null && typeof r.httpUrl !== 'string') return undefined
  if (!Number.isFinite(r.startedAt) || !Number.isFinite(r.heartbeatAt) || !Number.isSafeInteger(r.connections)) return undefined
  if (typeof r.ready !== 'boolean') return undefined
  return {
    name: r.name,
    peerId,
    multiaddrs: r.multiaddrs as string[],
    httpUrl: r.httpUrl,
    startedAt: r.startedAt as number,
    heartbeatAt: r.heartbeatAt as number,
    connections: r.connections as number,
    ready: r.ready
  }
}

/**
 * Membership in Redis. Each beat, one MULTI (both keys under the hash tag `{fleet}`) sets
 * this worker's record with a TTL of three beats and scores it in the index by heartbeat
 * time; a worker that stops beating drops out when its record expires and its score ages
 * past three beats (scores are the workers' clocks: keep them NTP-synced). When Redis
 * comes back, the worker announces itself at once.
 */
export class RedisFleetMembership implements FleetMembership {
  private readonly init: RedisFleetMembershipInit
  private readonly log: Logger
  private readonly startedAt: number
  private readonly liveMs: number
  private last: WorkerRecord[] | undefined
  private timer: NodeJS.Timeout | undefined
  private beating: Promise<boolean> | undefined
  private running = false
  private stopStateListener: (() => void) | undefined

  constructor (init: RedisFleetMembershipInit) {
    this.init = init
    this.log = init.log.child({ component: 'fleet-membership' })
    this.startedAt = init.startedAt ?? Date.now()
    this.liveMs = MISSED_BEATS * init.heartbeatMs
  }

  /** Announces this worker now, then every heartbeat, and at once whenever Redis returns. */
  start (): void {
    if (this.running) return
    this.running = true
    this.stopStateListener = this.init.redis.onStateChange((up) => {
      if (up) this.beatNow()
    })
    this.beatNow()
  }

  /** Stops heartbeats without leaving: the record expires after three intervals. */
  stop (): void {
    this.running = false
    clearTimeout(this.timer)
    this.timer = undefined
    this.stopStateListener?.()
    this.stopStateListener = undefined
  }

  async leave (): Promise<void> {
    this.stop()
    await this.beating
    const { keys, workerId, redis } = this.init
    const left = await redis.command('membership', async (client) => batchReplies(await client.multi().zrem(keys.workers(), workerId).del(keys.worker(workerId)).exec()))
    if (left.ok) this.last = this.last?.filter((worker) => worker.peerId !== workerId)
  }

  /** This worker's record as of now. */
  self (): WorkerRecord {
    return { name: this.init.workerName, peerId: this.init.workerId, startedAt: this.startedAt, heartbeatAt: Date.now(), ...this.init.record() }
  }

  /** One heartbeat now (the timer's, or Redis's return). True if Redis took it. */
  async beat (): Promise<boolean> {
    this.beating ??= this.announce().finally(() => { this.beating = undefined })
    return await this.beating
  }

  async list (): Promise<FleetWorker[]> {
    const { keys, redis } = this.init
    const read = await redis.command('membership', async (client) => {
      const ids = await client.zrangebyscore(keys.workers(), Date.now() - this.liveMs, '+inf')
      if (ids.length === 0) return { ids, records: [] }
      return { ids, records: await client.mget(ids.map((id) => keys.worker(id))) }
    })
    if (!read.ok) return (this.last ?? [this.self()]).map((worker) => ({ ...worker, stale: true }))
    const workers: WorkerRecord[] = []
    read.value.ids.forEach((peerId, i) => {
      const raw = read.value.records[i]
      // No record: it expired between the two reads, or the worker left. Gone either way.
      if (raw === null || raw === undefined) return
      const record = parseWorkerRecord(raw, peerId)
      if (record === undefined) this.init.metrics?.malformed.inc({ source: 'membership' })
      else workers.push(record)
    })
    workers.sort((a, b) => a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)
    this.last = workers
    this.init.metrics?.fleetWorkers.set(workers.length)
    return workers.map((worker) => ({ ...worker, stale: false }))
  }

  private beatNow (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.beat().catch((err: unknown) => { this.log.error({ err }, 'heartbeat threw') }).finally(() => {
      if (!this.running) return
      clearTimeout(this.timer)
      this.timer = setTimeout(() => { this.beatNow() }, this.init.heartbeatMs)
      this.timer.unref()
    })
  }

  private async announce (): Promise<boolean> {
    const { keys, workerId, redis } = this.init
    const record = this.self()
    const written = await redis.command('membership', async (client) => batchReplies(await client.multi()
      .set(keys.worker(workerId), JSON.stringify(record), 'PX', this.liveMs)
      .zadd(keys.workers(), record.heartbeatAt, workerId)
      .zremrangebyscore(keys.workers(), '-inf', record.heartbeatAt - PRUNE_AFTER_BEATS * this.init.heartbeatMs)
      .exec()))
    if (!written.ok) return false
    const failure = firstBatchError(written.value)
    if (failure !== undefined) {
      redis.failed('membership', failure)
      return false
    }
    // Read the fleet back each beat: keeps the workers gauge and the stale copy current.
    await this.list()
    return true
  }
}
