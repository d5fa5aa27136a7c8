/**
 * The peers this peer has banned, kept across restarts in its state store (DESIGN.md §4:
 * "a peer that sends an entry with a bad signature is banned", as beacons do). A ban is for
 * the **signer** of the envelope a forged entry arrived in (it vouched for the entry), never
 * the neighbour that forwarded it: Plumtree forwards payloads unchanged, so the envelope names
 * the one who put the entry on the overlay.
 *
 * A banned peer is refused by the connection gater (no dial to it, no inbound connection
 * from it), by the overlay's admission (`banned`), and its envelopes are not forwarded.
 * Bans are local: this peer's own decision, not told to anyone.
 */
import type { PeerStateStore } from './state-store.ts'

/** The state document bans are kept in. */
const BANS_DOCUMENT = 'bans'
/**
 * Bans kept at most; past it the oldest go (guess: far more forgers than an app meets, and a
 * document that stays a few hundred KiB).
 */
export const MAX_BANS = 4096

export type PeerBanReason = 'bad-signature'

export interface PeerBan {
  peer: string
  reason: PeerBanReason
  /** What was forged: the entry's CID and claimed author, and why its signature failed. */
  detail: string
  /** When, ms since the epoch. */
  at: number
}

/** The bans document could not be read as one. */
export class BanStoreError extends Error {
  override readonly name = 'BanStoreError'
}

export class PeerBans {
  private readonly store: PeerStateStore
  private readonly bans = new Map<string, PeerBan>()
  private readonly listeners = new Set<(ban: PeerBan) => void>()
  /** Writes run one after another, each writing the whole list as it then is. */
  private writing: Promise<void> = Promise.resolve()

  constructor (store: PeerStateStore) {
    this.store = store
  }

  /** Reads the bans kept by earlier runs. Throws BanStoreError for a document that is not a ban list. */
  async load (): Promise<void> {
    const text = await this.store.read(BANS_DOCUMENT)
    if (text === undefined) return
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (err) {
      throw new BanStoreError(`the bans document is not JSON: ${(err as Error).message}`)
    }
    if (!Array.isArray(value)) throw new BanStoreError('the bans document must be a list of { peer, reason, detail, at }')
    for (const item of value as unknown[]) {
      const ban = item as Partial<PeerBan>
      if (typeof ban.peer !== 'string' || ban.reason !== 'bad-signature' || typeof ban.detail !== 'string' || typeof ban.at !== 'number') {
        throw new BanStoreError('the bans document must be a list of { peer, reason, detail, at }')
      }
      this.bans.set(ban.peer, { peer: ban.peer, reason: ban.reason, detail: ban.detail, at: ban.at })
    }
  }

  isBanned (peer: string): boolean {
    return this.bans.has(peer)
  }

  list (): PeerBan[] {
    return [...this.bans.values()]
  }

  /** Told of each new ban (the peer hangs up on the banned one). */
  onBan (listener: (ban: PeerBan) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Bans `peer`; resolves once the ban is kept in the store. A peer banned already keeps its first ban. */
  async ban (ban: PeerBan): Promise<void> {
    if (this.bans.has(ban.peer)) return
    this.bans.set(ban.peer, ban)
    if (this.bans.size > MAX_BANS) {
      const oldest = this.bans.keys().next().value
      if (oldest !== undefined) this.bans.delete(oldest)
    }
    for (const listener of this.listeners) listener(ban)
    const write = this.writing.then(async () => { await this.store.write(BANS_DOCUMENT, JSON.stringify(this.list())) })
    this.writing = write.catch(() => {})
    await write
  }
}
