import type { Logger } from '../logging/logger.ts'
import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'
import type { FleetKeys } from './keys.ts'
import type { FleetMembership, FleetWorker } from './membership.ts'
import { MISSED_BEATS } from './membership.ts'
import { batchReplies, firstBatchError } from './redis-connection.ts'
import type { FleetRedis, RedisClient } from './redis-connection.ts'

/** How a peer is connected, told by the worker on connect. */
export interface PeerConnection {
  /** The peer's addresses as this worker knows them (multiaddr strings). */
  addrs: string[]
  /** The transport of the connection (closed set of the worker's, e.g. `tcp`, `websockets`). */
  transport: string
}

/** One peer in one worker's view. */
export interface PeerViewEntry extends PeerConnection {
  connected: boolean
  /** ms since epoch: when it connected if connected, else when it disconnected. */
  lastSeen: number
}

/** One peer in the fleet view: which worker holds (or held) it. */
export interface FleetPeer extends PeerViewEntry {
  peerId: string
  /** The worker's name. */
  worker: string
  workerPeerId: string
}

export interface FleetViewPage {
  peers: FleetPeer[]
  /** Pass back for the next page; absent on the last. */
  cursor?: string
  /** True when Redis could not be read: only this worker's own view is shown. */
  stale: boolean
}

/** A peer another worker holds, to seed a new worker's overlay passive view. */
export interface SeedCandidate {
  peerId: string
  addrs: string[]
  workerPeerId: string
}

/** Which worker holds which peer (DESIGN.md §6). */
export interface PeerViews {
  /** This worker holds `peerId` now (called on connect, and again if its addresses change). */
  connected: (peerId: string, connection: PeerConnection) => void
  /** This worker lost `peerId`; it stays, disconnected, for the retention period. */
  disconnected: (peerId: string) => void
  /** Peers of every live worker, `limit` at a time. Throws InvalidFleetCursorError for a cursor it did not make. */
  fleetView: (page: { limit: number, cursor?: string }) => Promise<FleetViewPage>
  /** Up to `limit` random connected peers, with addresses, held by workers other than `excludeWorker`. */
  seedCandidates: (limit: number, excludeWorker?: string) => Promise<SeedCandidate[]>
  /**
   * Where the fleet last saw `peerId` connected, with its addresses (this worker's view
   * first, then one HGET per live worker), or undefined: so a worker can dial a peer it
   * knows only by ID (a pin origin held by another worker).
   */
  locate: (peerId: string) => Promise<SeedCandidate | undefined>
}

/** The cursor passed to `fleetView` is not one it made. */
export class InvalidFleetCursorError extends Error {
  override readonly name = 'InvalidFleetCursorError'
  constructor () {
    super('not a fleet view cursor (pass back the cursor of the previous page)')
  }
}

/** An entry as stored in Redis (JSON), or undefined if it is not one. */
export function parsePeerViewEntry (raw: string): PeerViewEntry | undefined {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const e = value as Record<string, unknown>
  if (!Array.isArray(e.addrs) || !e.addrs.every((a) => typeof a === 'string')) return undefined
  if (typeof e.transport !== 'string' || typeof e.connected !== 'boolean' || !Number.isFinite(e.lastSeen)) return undefined
  return { addrs: e.addrs as string[], transport: e.transport, connected: e.connected, lastSeen: e.lastSeen as number }
}

function encodeEntry (entry: PeerViewEntry): string {
  return JSON.stringify({ addrs: entry.addrs, transport: entry.transport, connected: entry.connected, lastSeen: entry.lastSeen })
}

/**
 * This worker's own view, in memory: what it tells Redis, and what it answers from when
 * Redis is away. Remembers what changed since the last flush.
 */
export class LocalPeerTable {
  private readonly entries = new Map<string, PeerViewEntry>()
  private changed = new Set<string>()
  private removed = new Set<string>()
  private connectedCount = 0

  connected (peerId: string, connection: PeerConnection, now = Date.now()): void {
    const previous = this.entries.get(peerId)
    if (previous?.connected !== true) this.connectedCount++
    this.entries.set(peerId, { addrs: [...connection.addrs], transport: connection.transport, connected: true, lastSeen: now })
    this.changed.add(peerId)
    this.removed.delete(peerId)
  }

  disconnected (peerId: string, now = Date.now()): void {
    const entry = this.entries.get(peerId)
    if (entry === undefined || !entry.connected) return
    this.connectedCount--
    this.entries.set(peerId, { ...entry, connected: false, lastSeen: now })
    this.changed.add(peerId)
  }

  get (peerId: string): PeerViewEntry | undefined {
    return this.entries.get(peerId)
  }

  /** Drops peers disconnected for `retentionMs` or longer. */
  expire (retentionMs: number, now = Date.now()): void {
    for (const [peerId, entry] of this.entries) {
      if (entry.connected || now - entry.lastSeen < retentionMs) continue
      this.entries.delete(peerId)
      this.changed.delete(peerId)
      this.removed.add(peerId)
    }
  }

  /** What changed since the last call (or `all`), and forgets it. */
  takeChanges (): { set: Array<[string, PeerViewEntry]>, removed: string[] } {
    const set: Array<[string, PeerViewEntry]> = []
    for (const peerId of this.changed) {
      const entry = this.entries.get(peerId)
      if (entry !== undefined) set.push([peerId, entry])
    }
    const removed = [...this.removed]
    this.changed = new Set()
    this.removed = new Set()
    return { set, removed }
  }

  /** Every entry, and forgets what changed (a full rewrite covers it). */
  takeAll (): Array<[string, PeerViewEntry]> {
    this.changed = new Set()
    this.removed = new Set()
    return [...this.entries]
  }

  get connectedPeers (): number {
    return this.connectedCount
  }

  get size (): number {
    return this.entries.size
  }

  /** Entries in peer ID order after `after`, `limit` of them, and whether more follow. */
  page (limit: number, after?: string): { entries: Array<[string, PeerViewEntry]>, more: boolean } {
    const sorted = [...this.entries].filter(([peerId]) => after === undefined || peerId > after)
      .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    return { entries: sorted.slice(0, limit), more: sorted.length > limit }
  }
}

type Cursor =
  | { kind: 'redis', worker: string, scan: string, skip: number }
  | { kind: 'local', after: string }

function encodeCursor (cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url')
}

function decodeCursor (raw: string): Cursor {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(raw, 'base64url').toString())
  } catch {
    throw new InvalidFleetCursorError()
  }
  if (typeof value !== 'object' || value === null) throw new InvalidFleetCursorError()
  const c = value as Record<string, unknown>
  if (c.kind === 'redis' && typeof c.worker === 'string' && typeof c.scan === 'string' && /^\d+$/.test(c.scan) && Number.isSafeInteger(c.skip) && (c.skip as number) >= 0) {
    return { kind: 'redis', worker: c.worker, scan: c.scan, skip: c.skip as number }
  }
  if (c.kind === 'local' && typeof c.after === 'string') return { kind: 'local', after: c.after }
  throw new InvalidFleetCursorError()
}

/** A local page of this worker's own view, as FleetPeers. */
export function localViewPage (table: LocalPeerTable, self: { name: string, peerId: string }, limit: number, cursor: string | undefined, stale: boolean): FleetViewPage {
  const decoded = cursor === undefined ? undefined : decodeCursor(cursor)
  const after = decoded?.kind === 'local' ? decoded.after : undefined
  const { entries, more } = table.page(limit, after)
  const peers = entries.map(([peerId, entry]) => ({ peerId, worker: self.name, workerPeerId: self.peerId, ...entry }))
  const last = peers.at(-1)
  return more && last !== undefined ? { peers, cursor: encodeCursor({ kind: 'local', after: last.peerId }), stale } : { peers, stale }
}

export interface RedisPeerViewsInit {
  redis: FleetRedis
  keys: FleetKeys
  workerId: string
  workerName: string
  /** Live workers, whose views `fleetView` and `seedCandidates` read. */
  membership: Pick<FleetMembership, 'list'>
  /** Changes are flushed this often (PHAROS_FLEET_HEARTBEAT_MS); the hash lives three of these past the last flush. */
  heartbeatMs: number
  /** PHAROS_PEER_VIEW_RETENTION_MS. */
  retentionMs: number
  log: Logger
  metrics?: Pick<FleetMetricsHooks, 'fleetPeers' | 'malformed'>
}

/** Fields per HSET/HDEL command, so no single command holds Redis long (guess). */
const FIELDS_PER_COMMAND = 500
/** HSCAN COUNT when reading a view (a hint to Redis; guess). */
const SCAN_COUNT = 500

/** A flat `[field, value, field, value, ...]` reply as pairs (RESP2 shape); tolerant of nested pairs. */
function pairsOf (reply: unknown): Array<[string, string]> {
  if (!Array.isArray(reply)) return []
  const pairs: Array<[string, string]> = []
  if (reply.every((item) => Array.isArray(item))) {
    for (const item of reply as unknown[][]) if (typeof item[0] === 'string' && typeof item[1] === 'string') pairs.push([item[0], item[1]])
    return pairs
  }
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const field: unknown = reply[i]
    const value: unknown = reply[i + 1]
    if (typeof field === 'string' && typeof value === 'string') pairs.push([field, value])
  }
  return pairs
}

/**
 * Peer views in Redis: one HASH per worker (`{peers:<workerPeerId>}`), peer ID → JSON
 * entry. Changes are flushed every heartbeat in one pipeline; the hash's TTL (three
 * heartbeats) is renewed by each flush, so a dead worker's view expires with its
 * membership. After a failed flush, at start, and whenever Redis returns, the whole local
 * view is rewritten in one MULTI (resync). Reads never make a round trip per peer.
 */
export class RedisPeerViews implements PeerViews {
  private readonly init: RedisPeerViewsInit
  private readonly log: Logger
  private readonly table = new LocalPeerTable()
  private readonly viewTtlMs: number
  /** Redis may not hold what the table does: rewrite it all on the next flush. */
  private resync = true
  private flushing: Promise<boolean> | undefined
  private nextFlush: Promise<boolean> | undefined
  private timer: NodeJS.Timeout | undefined
  private stopStateListener: (() => void) | undefined

  constructor (init: RedisPeerViewsInit) {
    this.init = init
    this.log = init.log.child({ component: 'fleet-peer-views' })
    this.viewTtlMs = MISSED_BEATS * init.heartbeatMs
  }

  /** Flushes every heartbeat, and rewrites the view at once whenever Redis returns. */
  start (): void {
    if (this.timer !== undefined) return
    this.stopStateListener = this.init.redis.onStateChange((up) => {
      this.resync = true
      if (up) this.flush().catch((err: unknown) => { this.log.error({ err }, 'peer view resync threw') })
    })
    this.timer = setInterval(() => {
      this.flush().catch((err: unknown) => { this.log.error({ err }, 'peer view flush threw') })
    }, this.init.heartbeatMs)
    this.timer.unref()
    this.flush().catch((err: unknown) => { this.log.error({ err }, 'peer view flush threw') })
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.stopStateListener?.()
    this.stopStateListener = undefined
  }

  /** Removes this worker's view from Redis (graceful stop: it holds no peers any more). */
  async remove (): Promise<void> {
    this.stop()
    await this.flushing
    await this.init.redis.command('peer-views', async (client) => await client.del(this.init.keys.peerView(this.init.workerId)))
  }

  connected (peerId: string, connection: PeerConnection): void {
    this.table.connected(peerId, connection)
    this.init.metrics?.fleetPeers.set(this.table.connectedPeers)
  }

  disconnected (peerId: string): void {
    this.table.disconnected(peerId)
    this.init.metrics?.fleetPeers.set(this.table.connectedPeers)
  }

  /** Peers in this worker's table, connected or retained. */
  get localSize (): number {
    return this.table.size
  }

  /**
   * Sends what changed (or everything, after a resync is due) now. True if Redis holds
   * this worker's view afterwards. Calls made while one runs are served by one more run.
   */
  async flush (): Promise<boolean> {
    if (this.flushing !== undefined) {
      // The run under way may have read the table before this call's change: one more run
      // after it serves every call made meanwhile.
      this.nextFlush ??= this.flushing.then(async () => {
        this.nextFlush = undefined
        return await this.flush()
      })
      return await this.nextFlush
    }
    this.flushing = this.flushOnce().finally(() => { this.flushing = undefined })
    return await this.flushing
  }

  async fleetView (page: { limit: number, cursor?: string }): Promise<FleetViewPage> {
    const limit = Math.max(1, Math.floor(page.limit))
    const cursor = page.cursor === undefined ? undefined : decodeCursor(page.cursor)
    const workers = await this.init.membership.list()
    if (cursor?.kind === 'local' || workers.some((worker) => worker.stale)) return this.localPage(limit, page.cursor)
    const read = await this.init.redis.command('peer-views', async (client) => await this.readPage(client, workers, limit, cursor))
    return read.ok ? read.value : this.localPage(limit, undefined)
  }

  async seedCandidates (limit: number, excludeWorker = this.init.workerId): Promise<SeedCandidate[]> {
    if (limit <= 0) return []
    const workers = (await this.init.membership.list()).filter((worker) => !worker.stale && worker.peerId !== excludeWorker)
    // Ask each worker for more than needed: disconnected and address-less entries are skipped.
    const ask = Math.min(limit * 2, 1000)
    const replies = await Promise.all(workers.map(async (worker) => ({
      worker,
      read: await this.init.redis.command('peer-views', async (client) => await client.hrandfield(this.init.keys.peerView(worker.peerId), ask, 'WITHVALUES'))
    })))
    const candidates = new Map<string, SeedCandidate>()
    for (const { worker, read } of replies) {
      if (!read.ok) continue
      for (const [peerId, raw] of pairsOf(read.value)) {
        const entry = parsePeerViewEntry(raw)
        if (entry === undefined) {
          this.init.metrics?.malformed.inc({ source: 'peer-views' })
          continue
        }
        if (!entry.connected || entry.addrs.length === 0 || peerId === excludeWorker) continue
        candidates.set(peerId, { peerId, addrs: entry.addrs, workerPeerId: worker.peerId })
      }
    }
    const shuffled = [...candidates.values()]
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      const swap = shuffled[i] as SeedCandidate
      shuffled[i] = shuffled[j] as SeedCandidate
      shuffled[j] = swap
    }
    return shuffled.slice(0, limit)
  }

  async locate (peerId: string): Promise<SeedCandidate | undefined> {
    const own = this.table.get(peerId)
    if (own?.connected === true && own.addrs.length > 0) return { peerId, addrs: own.addrs, workerPeerId: this.init.workerId }
    const workers = (await this.init.membership.list()).filter((worker) => !worker.stale && worker.peerId !== this.init.workerId)
    const replies = await Promise.all(workers.map(async (worker) => ({
      worker,
      read: await this.init.redis.command('peer-views', async (client) => await client.hget(this.init.keys.peerView(worker.peerId), peerId))
    })))
    for (const { worker, read } of replies) {
      if (!read.ok || read.value === null) continue
      const entry = parsePeerViewEntry(read.value)
      if (entry === undefined) {
        this.init.metrics?.malformed.inc({ source: 'peer-views' })
        continue
      }
      if (entry.connected && entry.addrs.length > 0) return { peerId, addrs: entry.addrs, workerPeerId: worker.peerId }
    }
    return undefined
  }

  private localPage (limit: number, cursor: string | undefined): FleetViewPage {
    return localViewPage(this.table, { name: this.init.workerName, peerId: this.init.workerId }, limit, cursor, true)
  }

  /**
   * One page across the live workers, in peer ID order of worker, HSCAN order within one.
   * A cursor is (worker, HSCAN cursor, entries of that batch already returned): HSCAN gives
   * the same batch for the same cursor while the hash does not change, so a page ends
   * exactly at `limit`. Like any SCAN, a view changing meanwhile may repeat or miss a peer.
   */
  private async readPage (client: RedisClient, all: FleetWorker[], limit: number, cursor: Cursor | undefined): Promise<FleetViewPage> {
    const workers = [...all].sort((a, b) => a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)
    let index = 0
    let scan = '0'
    let skip = 0
    if (cursor?.kind === 'redis') {
      index = workers.findIndex((worker) => worker.peerId >= cursor.worker)
      if (index === -1) index = workers.length
      else if (workers[index]?.peerId === cursor.worker) ({ scan, skip } = cursor)
    }
    const peers: FleetPeer[] = []
    while (index < workers.length) {
      const worker = workers[index] as FleetWorker
      if (peers.length >= limit) return { peers, cursor: encodeCursor({ kind: 'redis', worker: worker.peerId, scan, skip: 0 }), stale: false }
      const [next, flat] = await client.hscan(this.init.keys.peerView(worker.peerId), scan, 'COUNT', SCAN_COUNT)
      const batch = pairsOf(flat)
      const room = limit - peers.length
      const take = batch.slice(skip, skip + room)
      for (const [peerId, raw] of take) {
        const entry = parsePeerViewEntry(raw)
        if (entry === undefined) this.init.metrics?.malformed.inc({ source: 'peer-views' })
        else peers.push({ peerId, worker: worker.name, workerPeerId: worker.peerId, ...entry })
      }
      if (skip + take.length < batch.length) {
        return { peers, cursor: encodeCursor({ kind: 'redis', worker: worker.peerId, scan, skip: skip + take.length }), stale: false }
      }
      skip = 0
      if (next === '0') {
        index++
        scan = '0'
      } else {
        scan = next
      }
    }
    return { peers, stale: false }
  }

  private async flushOnce (): Promise<boolean> {
    const { redis, keys, workerId, retentionMs } = this.init
    this.table.expire(retentionMs)
    if (!redis.isUp()) {
      // Changes pile up in the table; the rewrite when Redis returns carries them all.
      this.resync = true
      return false
    }
    const key = keys.peerView(workerId)
    const full = this.resync
    this.resync = false
    const changes = full ? { set: this.table.takeAll(), removed: [] } : this.table.takeChanges()
    const written = await redis.command('peer-views', async (client) => {
      // A rewrite is one MULTI, so readers never see the view half gone; an update is a
      // plain pipeline. One key, so one slot either way.
      const batch = full ? client.multi().del(key) : client.pipeline()
      for (let i = 0; i < changes.removed.length; i += FIELDS_PER_COMMAND) batch.hdel(key, ...changes.removed.slice(i, i + FIELDS_PER_COMMAND))
      for (let i = 0; i < changes.set.length; i += FIELDS_PER_COMMAND) {
        const fields: string[] = []
        for (const [peerId, entry] of changes.set.slice(i, i + FIELDS_PER_COMMAND)) fields.push(peerId, encodeEntry(entry))
        batch.hset(key, ...fields)
      }
      batch.pexpire(key, this.viewTtlMs)
      return batchReplies(await batch.exec())
    })
    const failure = written.ok ? firstBatchError(written.value) : undefined
    if (failure !== undefined) redis.failed('peer-views', failure)
    if (!written.ok || failure !== undefined) {
      // What was taken is no longer marked changed: only a rewrite restores it.
      this.resync = true
      return false
    }
    // PEXPIRE answers 0 when the key was gone: the view expired (this worker stalled for
    // longer than its TTL) or Redis lost it, and an update would leave only its changes.
    // Rewrite it whole now.
    if (!full && written.value.at(-1)?.[1] === 0) {
      this.resync = true
      return await this.flushOnce()
    }
    return true
  }
}
