import { peerIdFromString } from '@libp2p/peer-id'
import type { SqlQueryable } from '../storage/sql.ts'

/**
 * Why a peer is banned. A closed set: it labels `pharos_bans_total`.
 * - `bad-signature`: the peer sent a log entry whose signature does not hold (DESIGN.md §4).
 * - `admin`: an operator banned it through `POST /v1/bans`.
 */
export type BanReason = 'bad-signature' | 'admin'
export const BAN_REASONS = ['bad-signature', 'admin'] as const satisfies readonly BanReason[]

export interface Ban {
  peer: string
  reason: BanReason
  detail: string
  /** What proves the ban, e.g. the entry block whose signature failed. */
  evidence: Uint8Array | null
  /**
   * For a `bad-signature` ban: the publish envelope the banned peer signed around the
   * evidence, so anyone can check the ban again — the envelope's signature holds for the
   * banned peer, and the entry inside it (the evidence) fails its author's signature.
   */
  envelope: Uint8Array | null
  /** A worker's peer ID for automatic bans, or "admin". */
  bannedBy: string
  createdAt: Date
}

export interface NewBan {
  peer: string
  reason: BanReason
  detail: string
  evidence?: Uint8Array
  /** The signed envelope that makes the peer answerable for the evidence (see Ban.envelope). */
  envelope?: Uint8Array
  bannedBy: string
}

/**
 * How this worker learnt of a ban:
 * - `created`: this BanList wrote it (count it once, here);
 * - `learnt`: found in Postgres, written by another worker (on refresh, or a `ban` that
 *   found the row already there);
 * - `remote`: told by a fleet channel through `learn` (Redis, once it carries bans).
 */
export type BanOrigin = 'created' | 'learnt' | 'remote'

export interface BanEvent {
  reason: BanReason
  origin: BanOrigin
}

export interface BanListOptions {
  /**
   * How often `start` reloads the set from Postgres, where other workers' bans land.
   * @default 30000 (the worker passes PHAROS_ACCOUNTS_REFRESH_MS)
   */
  refreshMs?: number
  /** Told when a timed refresh fails; the set in memory stays as it was. */
  onRefreshError?: (err: unknown) => void
}

/** The peer ID is not one a ban can name: unparseable, or not an ed25519 identity. */
export class InvalidBanPeerError extends Error {
  override readonly name = 'InvalidBanPeerError'
}

/**
 * The peer ID in its one canonical string form (base58btc), so a ban written as a CIDv1
 * and the gater's `peer.toString()` agree. Throws InvalidBanPeerError for anything that is
 * not an ed25519 peer ID: the gater refuses every other identity already.
 */
export function canonicalBanPeer (peer: string): string {
  let parsed
  try {
    parsed = peerIdFromString(peer)
  } catch {
    throw new InvalidBanPeerError(`${peer} is not a peer ID`)
  }
  if (parsed.type !== 'Ed25519') throw new InvalidBanPeerError(`${peer} is a ${parsed.type} peer ID; only ed25519 peers can connect, so only they are banned`)
  return parsed.toString()
}

interface BanRow {
  peer: string
  reason: BanReason
  detail: string
  evidence: Uint8Array | null
  envelope: Uint8Array | null
  banned_by: string
  created_at: Date
}

const BAN_COLUMNS = 'peer, reason, detail, evidence, envelope, banned_by, created_at'

function banOf (row: BanRow): Ban {
  return {
    peer: row.peer,
    reason: row.reason,
    detail: row.detail,
    evidence: row.evidence === null ? null : new Uint8Array(row.evidence),
    envelope: row.envelope === null ? null : new Uint8Array(row.envelope),
    bannedBy: row.banned_by,
    createdAt: row.created_at
  }
}

/**
 * Banned peers, fleet-wide and persisted (DESIGN.md §4, §6). Postgres is the source of
 * truth; `isBanned` answers from a set in memory, because the connection gater asks on
 * every connection and cannot wait. The set follows this worker's own bans at once and
 * other workers' bans on each refresh (every `refreshMs`). In a fleet, Redis shortens that
 * delay (fleet/ban-sync.ts): the worker publishes `onBan` events with origin `created` and
 * lifts from `onLift`, and the other workers `learn` and `forget` them at once.
 */
export class BanList {
  private readonly db: SqlQueryable
  private readonly refreshMs: number
  private readonly onRefreshError: (err: unknown) => void
  private banned = new Set<string>()
  private readonly listeners = new Set<(peer: string, event: BanEvent) => void>()
  private readonly liftListeners = new Set<(peer: string) => void>()
  private timer: ReturnType<typeof setInterval> | undefined
  private refreshing: Promise<void> | undefined
  private madeMeanwhile: Array<[string, boolean]> | undefined

  constructor (db: SqlQueryable, options: BanListOptions = {}) {
    this.db = db
    this.refreshMs = options.refreshMs ?? 30_000
    this.onRefreshError = options.onRefreshError ?? (() => {})
  }

  /** Loads the set, then reloads it every `refreshMs` until `stop`. */
  async start (): Promise<void> {
    await this.refresh()
    if (this.timer !== undefined) return
    this.timer = setInterval(() => { this.refresh().catch(this.onRefreshError) }, this.refreshMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Synchronous, from memory: what the connection gater calls. */
  isBanned (peer: string): boolean {
    return this.banned.has(peer)
  }

  /** Peers banned, as this worker knows them. */
  get size (): number {
    return this.banned.size
  }

  /**
   * Called for every peer that enters this worker's set, however it was learnt (the worker
   * hangs up on it). Peers already banned when the listener is added are not replayed.
   */
  onBan (listener: (peer: string, event: BanEvent) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /**
   * Reloads the set from Postgres; peers new to it are announced through `onBan`. Calls made
   * while one runs share it.
   */
  async refresh (): Promise<void> {
    this.refreshing ??= this.reload().finally(() => { this.refreshing = undefined })
    await this.refreshing
  }

  private async reload (): Promise<void> {
    // Bans and unbans made here while the query runs may be missing from its answer; they
    // are replayed on top of it, so a ban made a moment ago is never forgotten.
    const madeMeanwhile: Array<[string, boolean]> = []
    this.madeMeanwhile = madeMeanwhile
    try {
      const { rows } = await this.db.query<{ peer: string, reason: BanReason }>('SELECT peer, reason FROM bans')
      const previous = this.banned
      const next = new Set(rows.map((row) => row.peer))
      for (const [peer, banned] of madeMeanwhile) {
        if (banned) next.add(peer)
        else next.delete(peer)
      }
      this.banned = next
      for (const row of rows) if (next.has(row.peer) && !previous.has(row.peer)) this.notify(row.peer, { reason: row.reason, origin: 'learnt' })
    } finally {
      this.madeMeanwhile = undefined
    }
  }

  /**
   * Bans a peer fleet-wide. Returns true if this call banned it, false if it already was
   * (the first ban's reason and evidence are kept). Throws InvalidBanPeerError for a peer
   * ID that is not ed25519.
   */
  async ban (ban: NewBan): Promise<boolean> {
    const peer = canonicalBanPeer(ban.peer)
    const inserted = await this.db.query<{ reason: BanReason }>(
      'INSERT INTO bans (peer, reason, detail, evidence, envelope, banned_by) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (peer) DO NOTHING RETURNING reason',
      [peer, ban.reason, ban.detail, ban.evidence ?? null, ban.envelope ?? null, ban.bannedBy])
    const created = inserted.rows[0] !== undefined
    // Already banned (perhaps by another worker a moment ago): read the ban that stands.
    const row = inserted.rows[0] ?? (await this.db.query<{ reason: BanReason }>('SELECT reason FROM bans WHERE peer = $1', [peer])).rows[0]
    // Lifted again between the two statements: it stands lifted.
    if (row === undefined) return false
    this.madeMeanwhile?.push([peer, true])
    if (!this.banned.has(peer)) {
      this.banned.add(peer)
      this.notify(peer, { reason: row.reason, origin: created ? 'created' : 'learnt' })
    }
    return created
  }

  /** Lifts a ban; false if the peer was not banned. */
  async unban (peer: string): Promise<boolean> {
    let canonical = peer
    try {
      canonical = canonicalBanPeer(peer)
    } catch {
      // Not a peer ID a ban could name: nothing to lift, unless a row holds it verbatim.
    }
    const { rowCount } = await this.db.query('DELETE FROM bans WHERE peer = $1', [canonical])
    this.madeMeanwhile?.push([canonical, false])
    this.banned.delete(canonical)
    if (rowCount > 0) for (const listener of this.liftListeners) listener(canonical)
    return rowCount > 0
  }

  /** Called when this worker lifts a ban (not for lifts learnt from elsewhere). */
  onLift (listener: (peer: string) => void): () => void {
    this.liftListeners.add(listener)
    return () => { this.liftListeners.delete(listener) }
  }

  /** A lift heard from a fleet channel: it takes effect here at once; refreshes agree. */
  forget (peer: string): void {
    this.madeMeanwhile?.push([peer, false])
    this.banned.delete(peer)
  }

  /**
   * A ban heard from a fleet channel rather than Postgres: it takes effect here at once and
   * is announced with origin `remote`. The next refresh confirms or drops it.
   */
  learn (peer: string, reason: BanReason): void {
    this.madeMeanwhile?.push([peer, true])
    if (this.banned.has(peer)) return
    this.banned.add(peer)
    this.notify(peer, { reason, origin: 'remote' })
  }

  async get (peer: string): Promise<Ban | undefined> {
    const { rows } = await this.db.query<BanRow>(`SELECT ${BAN_COLUMNS} FROM bans WHERE peer = $1`, [peer])
    const row = rows[0]
    return row === undefined ? undefined : banOf(row)
  }

  /** Bans in peer ID order, `limit` at a time, after the peer `after`. */
  async list (page: { limit: number, after?: string }): Promise<{ bans: Ban[], next?: string }> {
    const { rows } = await this.db.query<BanRow>(
      `SELECT ${BAN_COLUMNS} FROM bans WHERE ($1::text IS NULL OR peer > $1) ORDER BY peer LIMIT $2`,
      [page.after ?? null, page.limit + 1])
    const bans = rows.slice(0, page.limit).map(banOf)
    const last = bans.at(-1)
    return rows.length > page.limit && last !== undefined ? { bans, next: last.peer } : { bans }
  }

  /** Which of `peers` are banned in Postgres (the source of truth), as of now. */
  async standing (peers: readonly string[]): Promise<Set<string>> {
    if (peers.length === 0) return new Set()
    const { rows } = await this.db.query<{ peer: string }>('SELECT peer FROM bans WHERE peer = ANY($1::text[])', [peers])
    return new Set(rows.map((row) => row.peer))
  }

  /** Bans in Postgres, fleet-wide. */
  async count (): Promise<number> {
    const { rows } = await this.db.query<{ count: number }>('SELECT count(*)::int8 AS count FROM bans')
    return rows[0]?.count ?? 0
  }

  private notify (peer: string, event: BanEvent): void {
    for (const listener of this.listeners) listener(peer, event)
  }
}
