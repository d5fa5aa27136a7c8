import { peerIdFromString } from '@libp2p/peer-id'
import { base36 } from 'multiformats/bases/base36'
import type { SqlQueryable } from '../storage/sql.ts'
import type { Accounts } from './accounts.ts'

export interface Account {
  peerId: string
  label: string | null
  createdAt: string
}

/** A peer ID that is not an ed25519 identity cannot be an account. */
export class InvalidAccountIdError extends Error {
  override readonly name = 'InvalidAccountIdError'
}

/**
 * The one form an account ID is stored, compared and shown in: the base58btc peer ID string
 * (`12D3KooW…`), whatever encoding it was given in. The same key also reads as a CIDv1 of
 * codec libp2p-key (`k51…` in base36, `bafz…` in base32), and the gater and overlay name
 * peers in the base58btc form, so an ID kept as written would never match and would count
 * the key twice. Throws InvalidAccountIdError, saying why, for anything that is not an
 * ed25519 peer ID: only ed25519 peers can connect.
 */
export function canonicalAccountId (id: string): string {
  let parsed
  try {
    parsed = peerIdFromString(id)
  } catch {
    throw new InvalidAccountIdError(`${id} is not a peer ID (expected an ed25519 peer ID such as 12D3KooW…, or its CID form k51…/bafz…)`)
  }
  if (parsed.type !== 'Ed25519') throw new InvalidAccountIdError(`${id} is a ${parsed.type} peer ID; accounts are ed25519 keys`)
  return parsed.toString()
}

/** `canonicalAccountId`, or undefined for an ID that cannot be an account. */
export function canonicalOrUndefined (id: string): string | undefined {
  try {
    return canonicalAccountId(id)
  } catch {
    return undefined
  }
}

export interface AccountRegistryOptions {
  /**
   * Told, at each refresh that finds them, of rows whose ID is not an ed25519 peer ID (an
   * external feeder wrote them): they are left out of the registry and of N.
   */
  onInvalidIds?: (ids: string[]) => void
}

/**
 * The registry of accounts whose public key may join the overlay (DESIGN.md §3). Postgres
 * is the source of truth; membership checks read an in-process set that every change made
 * through this registry updates, and `refresh()` reloads (an external feeder's changes
 * arrive through it; other workers' arrive at once through `reload`, the fleet telling which
 * accounts changed, and through `refresh` too). N, the overlay's size estimate, is the account
 * count. Every ID is canonical (`canonicalAccountId`) wherever it enters: the API, and rows
 * a feeder wrote in another encoding, which count once with their canonical twin.
 */
export class AccountRegistry implements Accounts {
  readonly source = 'postgres' as const
  private readonly db: SqlQueryable
  private readonly onInvalidIds: (ids: string[]) => void
  private members = new Set<string>()
  /** Rows stored in another encoding than the canonical one, by canonical ID (a feeder wrote them). */
  private aliases = new Map<string, string[]>()
  private reportedInvalid = ''
  private readonly listeners = new Set<(count: number) => void>()
  private readonly changeListeners = new Set<(change: { op: 'add' | 'remove', peer: string }) => void>()
  private readonly membershipListeners = new Set<(peers: readonly string[]) => void>()
  /**
   * Reloads run one at a time, in order: a full reload that read the table before another
   * reload's change, and stored its snapshot after, would undo that change until the next.
   */
  private reloads: Promise<void> = Promise.resolve()
  /** Accounts other workers changed, to re-read at the next `reload`. */
  private readonly stale = new Set<string>()

  constructor (db: SqlQueryable, options: AccountRegistryOptions = {}) {
    this.db = db
    this.onInvalidIds = options.onInvalidIds ?? (() => {})
  }

  /** Loads the registry; call once at start and whenever other writers may have changed it. */
  async refresh (): Promise<void> {
    await this.exclusively(async () => { await this.loadAll() })
  }

  /**
   * Re-reads the accounts of `peerIds` (canonical IDs, as other workers announce them) from
   * Postgres and takes what it finds: an account another worker registered is admitted, one
   * it removed is refused. The table decides, not the order announcements arrive in. Calls
   * made while one runs are served together by the next.
   */
  async reload (peerIds: readonly string[]): Promise<void> {
    for (const peerId of peerIds) {
      const canonical = canonicalOrUndefined(peerId)
      if (canonical !== undefined) this.stale.add(canonical)
    }
    await this.exclusively(async () => {
      const peers = [...this.stale]
      this.stale.clear()
      if (peers.length === 0) return
      const forms = peers.flatMap((peer) => this.storedForms(peer))
      const { rows } = await this.db.query<{ peer_id: string }>('SELECT peer_id FROM accounts WHERE peer_id = ANY($1::text[])', [forms])
      const found = new Set(rows.map((row) => canonicalOrUndefined(row.peer_id)))
      const before = this.members.size
      const moved: string[] = []
      for (const peer of peers) {
        if (found.has(peer)) {
          if (!this.members.has(peer)) moved.push(peer)
          this.members.add(peer)
        } else {
          if (this.members.delete(peer)) moved.push(peer)
          this.aliases.delete(peer)
        }
      }
      this.moved(moved)
      if (this.members.size !== before) this.notify()
    })
  }

  private async exclusively (work: () => Promise<void>): Promise<void> {
    const run = this.reloads.then(work)
    this.reloads = run.catch(() => {})
    await run
  }

  private async loadAll (): Promise<void> {
    const { rows } = await this.db.query<{ peer_id: string }>('SELECT peer_id FROM accounts')
    const before = this.members.size
    const members = new Set<string>()
    const aliases = new Map<string, string[]>()
    const invalid: string[] = []
    for (const { peer_id: stored } of rows) {
      // Members are canonical IDs, so a row already among them needs no parsing: a refresh
      // parses only rows it has not seen (a parse and re-encode is ~8 µs, and a refresh of
      // 20,000 accounts that parsed them all held the event loop for 167 ms every 30 s).
      const canonical = this.members.has(stored) ? stored : canonicalOrUndefined(stored)
      if (canonical === undefined) {
        invalid.push(stored)
        continue
      }
      members.add(canonical)
      if (canonical !== stored) aliases.set(canonical, [...aliases.get(canonical) ?? [], stored])
    }
    const moved = [...members].filter((peer) => !this.members.has(peer))
    for (const peer of this.members) if (!members.has(peer)) moved.push(peer)
    this.members = members
    this.aliases = aliases
    this.moved(moved)
    // Told once per distinct set, not at every refresh.
    const invalidKey = invalid.sort().join(',')
    if (invalid.length > 0 && invalidKey !== this.reportedInvalid) this.onInvalidIds(invalid)
    this.reportedInvalid = invalidKey
    if (this.members.size !== before) this.notify()
  }

  /** Whether `peerId` (the canonical form, as libp2p names peers) is a registered account. */
  isRegistered (peerId: string): boolean {
    return this.members.has(peerId)
  }

  get count (): number {
    return this.members.size
  }

  registered (): Iterable<string> {
    return this.members.values()
  }

  onMembershipChange (listener: (peers: readonly string[]) => void): () => void {
    this.membershipListeners.add(listener)
    return () => { this.membershipListeners.delete(listener) }
  }

  private moved (peers: readonly string[]): void {
    if (peers.length === 0) return
    for (const listener of this.membershipListeners) listener(peers)
  }

  /**
   * Told of every account this registry added or removed in Postgres (`add`, `remove`: the
   * admin API), so the fleet can be told; not of what `refresh` or `reload` learnt.
   */
  onChange (listener: (change: { op: 'add' | 'remove', peer: string }) => void): () => void {
    this.changeListeners.add(listener)
    return () => { this.changeListeners.delete(listener) }
  }

  /** Called with the new count whenever it changes. */
  onCountChange (listener: (count: number) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Accounts in stored-ID order after `after`, each shown by its canonical ID. */
  async list (limit: number, after?: string): Promise<Account[]> {
    const { rows } = await this.db.query<{ peer_id: string, label: string | null, created_at: Date }>(
      'SELECT peer_id, label, created_at FROM accounts WHERE ($1::text IS NULL OR peer_id > $1) ORDER BY peer_id LIMIT $2',
      [after ?? null, limit])
    return rows.map((row) => ({ peerId: canonicalOrUndefined(row.peer_id) ?? row.peer_id, label: row.label, createdAt: row.created_at.toISOString() }))
  }

  /** The account of `peerId`, given in any encoding; throws InvalidAccountIdError for one that cannot be an account. */
  async get (peerId: string): Promise<Account | undefined> {
    const canonical = canonicalAccountId(peerId)
    const { rows } = await this.db.query<{ peer_id: string, label: string | null, created_at: Date }>(
      'SELECT peer_id, label, created_at FROM accounts WHERE peer_id = ANY($1::text[]) ORDER BY peer_id = $2 DESC, created_at LIMIT 1',
      [this.storedForms(canonical), canonical])
    const row = rows[0]
    return row === undefined ? undefined : { peerId: canonical, label: row.label, createdAt: row.created_at.toISOString() }
  }

  /**
   * Registers an account, stored under its canonical ID; returns false if it already was
   * (in any encoding). Throws InvalidAccountIdError for an ID that cannot be an account.
   */
  async add (peerId: string, label?: string): Promise<boolean> {
    const canonical = canonicalAccountId(peerId)
    const { rowCount } = await this.db.query(
      'INSERT INTO accounts (peer_id, label) VALUES ($1, $2) ON CONFLICT (peer_id) DO NOTHING', [canonical, label ?? null])
    // After any reload under way: one that read the table before this insert must not
    // overwrite it when it stores what it read.
    let known = false
    await this.exclusively(async () => {
      known = this.members.has(canonical)
      this.members.add(canonical)
    })
    if (!known) this.moved([canonical])
    if (!known) this.notify()
    if (rowCount > 0) this.changed({ op: 'add', peer: canonical })
    return rowCount > 0 && !known
  }

  /**
   * Removes an account given in any encoding, with every row a feeder stored for the same
   * key; returns false if there was none. Throws InvalidAccountIdError for an ID that cannot
   * be an account.
   */
  async remove (peerId: string): Promise<boolean> {
    const canonical = canonicalAccountId(peerId)
    const { rowCount } = await this.db.query('DELETE FROM accounts WHERE peer_id = ANY($1::text[])', [this.storedForms(canonical)])
    let removed = false
    await this.exclusively(async () => {
      this.aliases.delete(canonical)
      removed = this.members.delete(canonical)
    })
    if (removed) this.moved([canonical])
    if (removed) this.notify()
    if (rowCount > 0) this.changed({ op: 'remove', peer: canonical })
    return rowCount > 0
  }

  /**
   * The IDs the rows of `canonical` may be stored under: the canonical form, its CID forms
   * in base32 and base36 (what feeders write), and any other the last refresh found.
   */
  private storedForms (canonical: string): string[] {
    const cid = peerIdFromString(canonical).toCID()
    return [...new Set([canonical, cid.toString(), cid.toString(base36), ...this.aliases.get(canonical) ?? []])]
  }

  private changed (change: { op: 'add' | 'remove', peer: string }): void {
    for (const listener of this.changeListeners) listener(change)
  }

  private notify (): void {
    for (const listener of this.listeners) listener(this.members.size)
  }
}
