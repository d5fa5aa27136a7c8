/**
 * What the worker serves of its accounts as registry pages (services/protocol registry.ts):
 * snapshot pages of the set in peer ID order, and the changes since a cursor. Changes are
 * journalled here in memory as the accounts learn them (admin API, fleet events, refreshes of
 * any source), each with a sequence number; a cursor is this journal's epoch (random, new at
 * each start) and a sequence number. A cursor of another epoch (another worker, or this one
 * before a restart) or older than the journal keeps gets a fresh snapshot: nothing durable
 * is needed, and a peer that moves between workers pays one snapshot.
 */
import { randomBytes } from 'node:crypto'
import { formatRegistryCursor, parseRegistryCursor } from '@pharos/protocol/registry/index.ts'
import type { RegistryPageBody, RegistryRequest } from '@pharos/protocol/registry/index.ts'
import type { Accounts } from './accounts.ts'

/**
 * Changes kept (guess: a day of a busy network's sign-ups; a peer that was away longer takes
 * a snapshot, which is what it would cost to send that many changes anyway).
 */
export const DEFAULT_JOURNAL_ENTRIES = 10_000

export interface RegistryJournalOptions {
  network: string
  /** @default DEFAULT_JOURNAL_ENTRIES */
  maxEntries?: number
  /** @default Date.now */
  now?: () => number
}

export class RegistryJournal {
  readonly epoch = randomBytes(8).toString('hex')
  private readonly accounts: Pick<Accounts, 'count' | 'isRegistered' | 'registered' | 'onMembershipChange'>
  private readonly network: string
  private readonly maxEntries: number
  private readonly now: () => number
  /** Changed accounts in order; `entries[i]` has sequence number `firstSeq + i`. */
  private entries: string[] = []
  private firstSeq = 1
  private sorted: string[] | undefined
  private readonly stop: () => void

  constructor (accounts: Pick<Accounts, 'count' | 'isRegistered' | 'registered' | 'onMembershipChange'>, options: RegistryJournalOptions) {
    this.accounts = accounts
    this.network = options.network
    this.maxEntries = options.maxEntries ?? DEFAULT_JOURNAL_ENTRIES
    this.now = options.now ?? Date.now
    this.stop = accounts.onMembershipChange((peers) => { this.record(peers) })
  }

  /** The sequence number of the last change journalled (0: none yet). */
  get seq (): number {
    return this.firstSeq + this.entries.length - 1
  }

  close (): void {
    this.stop()
  }

  private record (peers: readonly string[]): void {
    this.sorted = undefined
    this.entries.push(...peers)
    const excess = this.entries.length - this.maxEntries
    if (excess > 0) {
      this.entries = this.entries.slice(excess)
      this.firstSeq += excess
    }
  }

  /** The page that answers `request` (already checked by checkRegistryRequest), unsigned. */
  page (request: RegistryRequest): RegistryPageBody {
    const cursor = formatRegistryCursor(this.epoch, this.seq)
    const base = { network: this.network, count: this.accounts.count, issuedAt: this.now() }
    const since = request.cursor === null ? undefined : parseRegistryCursor(request.cursor)
    // Changes can be told only from a cursor of this epoch that the journal still covers.
    if (since !== undefined && since.epoch === this.epoch && since.seq <= this.seq && since.seq >= this.firstSeq - 1) {
      const first = since.seq - this.firstSeq + 1
      const changed = new Set<string>()
      let last = since.seq
      for (let i = first; i < this.entries.length; i++) {
        const peer = this.entries[i] ?? ''
        if (!changed.has(peer) && changed.size === request.limit) break
        changed.add(peer)
        last = this.firstSeq + i
      }
      const accounts: string[] = []
      const removed: string[] = []
      for (const peer of changed) (this.accounts.isRegistered(peer) ? accounts : removed).push(peer)
      return { ...base, kind: 'changes', cursor: formatRegistryCursor(this.epoch, last), accounts, removed, more: last < this.seq }
    }
    this.sorted ??= [...this.accounts.registered()].sort()
    const sorted = this.sorted
    let start = 0
    if (request.after !== null) {
      let high = sorted.length
      while (start < high) {
        const middle = (start + high) >>> 1
        if ((sorted[middle] ?? '') <= request.after) start = middle + 1
        else high = middle
      }
    }
    const accounts = sorted.slice(start, start + request.limit)
    return { ...base, kind: 'snapshot', cursor, accounts, removed: [], more: start + accounts.length < sorted.length }
  }
}
