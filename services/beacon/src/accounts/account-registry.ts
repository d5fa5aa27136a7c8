import { peerIdFromString } from '@libp2p/peer-id'
import type { SqlQueryable } from '../storage/sql.ts'

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
 * The registry of accounts whose public key may join the overlay (DESIGN.md §3). Postgres
 * is the source of truth; membership checks read an in-process set that every change made
 * through this registry updates, and `refresh()` reloads (other workers' changes arrive
 * through it). N, the overlay's size estimate, is the account count.
 */
export class AccountRegistry {
  private readonly db: SqlQueryable
  private members = new Set<string>()
  private readonly listeners = new Set<(count: number) => void>()

  constructor (db: SqlQueryable) {
    this.db = db
  }

  /** Loads the registry; call once at start and whenever other writers may have changed it. */
  async refresh (): Promise<void> {
    const { rows } = await this.db.query<{ peer_id: string }>('SELECT peer_id FROM accounts')
    const before = this.members.size
    this.members = new Set(rows.map((row) => row.peer_id))
    if (this.members.size !== before) this.notify()
  }

  isRegistered (peerId: string): boolean {
    return this.members.has(peerId)
  }

  get count (): number {
    return this.members.size
  }

  /** Called with the new count whenever it changes. */
  onCountChange (listener: (count: number) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  async list (limit: number, after?: string): Promise<Account[]> {
    const { rows } = await this.db.query<{ peer_id: string, label: string | null, created_at: Date }>(
      'SELECT peer_id, label, created_at FROM accounts WHERE ($1::text IS NULL OR peer_id > $1) ORDER BY peer_id LIMIT $2',
      [after ?? null, limit])
    return rows.map((row) => ({ peerId: row.peer_id, label: row.label, createdAt: row.created_at.toISOString() }))
  }

  async get (peerId: string): Promise<Account | undefined> {
    const { rows } = await this.db.query<{ peer_id: string, label: string | null, created_at: Date }>(
      'SELECT peer_id, label, created_at FROM accounts WHERE peer_id = $1', [peerId])
    const row = rows[0]
    return row === undefined ? undefined : { peerId: row.peer_id, label: row.label, createdAt: row.created_at.toISOString() }
  }

  /** Registers an account; returns false if it already was. */
  async add (peerId: string, label?: string): Promise<boolean> {
    assertEd25519(peerId)
    const { rowCount } = await this.db.query(
      'INSERT INTO accounts (peer_id, label) VALUES ($1, $2) ON CONFLICT (peer_id) DO NOTHING', [peerId, label ?? null])
    this.members.add(peerId)
    if (rowCount > 0) this.notify()
    return rowCount > 0
  }

  /** Removes an account; returns false if there was none. */
  async remove (peerId: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM accounts WHERE peer_id = $1', [peerId])
    this.members.delete(peerId)
    if (rowCount > 0) this.notify()
    return rowCount > 0
  }

  private notify (): void {
    for (const listener of this.listeners) listener(this.members.size)
  }
}

function assertEd25519 (peerId: string): void {
  let type: string
  try {
    type = peerIdFromString(peerId).type
  } catch {
    throw new InvalidAccountIdError(`${peerId} is not a peer ID`)
  }
  if (type !== 'Ed25519') throw new InvalidAccountIdError(`${peerId} is a ${type} peer ID; accounts are ed25519 keys`)
}
