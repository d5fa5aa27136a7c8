/**
 * The one interface the worker holds its accounts through (DESIGN.md §3: only registered
 * accounts join the overlay; N is their count), whatever their source:
 *
 * - `postgres` (account-registry.ts): the `accounts` table, written through the admin API;
 * - `file` / `url` (external-accounts.ts): a JSON document the operator maintains elsewhere,
 *   read at start and every PHAROS_ACCOUNTS_REFRESH_MS; the admin API cannot write it.
 *
 * An on-chain registry (the seed's Solana program) is another read-only source behind this
 * interface: see docs/registry.md "Sources of accounts".
 */
import type { Account } from './account-registry.ts'

export type AccountSourceKind = 'postgres' | 'file' | 'url'

/** The admin API tried to change accounts whose source is outside the worker (409). */
export class ExternalAccountSourceError extends Error {
  override readonly name = 'ExternalAccountSourceError'
  readonly source: AccountSourceKind
  constructor (source: AccountSourceKind, where: string) {
    super(`accounts come from an external ${source} source (${where}, PHAROS_ACCOUNTS_SOURCE) and are read-only here: change them there`)
    this.source = source
  }
}

export interface Accounts {
  /** Where the accounts come from. */
  readonly source: AccountSourceKind
  /** N: the registered accounts. */
  readonly count: number
  /** Whether `peerId` (canonical, as libp2p names peers) is a registered account. */
  isRegistered: (peerId: string) => boolean
  /** Every registered account (canonical IDs), in no order. */
  registered: () => Iterable<string>
  /** Reads the source again. */
  refresh: () => Promise<void>
  /** Reads these accounts again (another worker said they changed). */
  reload: (peerIds: readonly string[]) => Promise<void>
  /** Told of each change made through this worker (the admin API), for the fleet. */
  onChange: (listener: (change: { op: 'add' | 'remove', peer: string }) => void) => () => void
  /** Told of the new count whenever it changes. */
  onCountChange: (listener: (count: number) => void) => () => void
  /** Told of the accounts that came or went, however the change was learnt. */
  onMembershipChange: (listener: (peers: readonly string[]) => void) => () => void
  list: (limit: number, after?: string) => Promise<Account[]>
  get: (peerId: string) => Promise<Account | undefined>
  /** Throws ExternalAccountSourceError when the source is not the worker's own. */
  add: (peerId: string, label?: string) => Promise<boolean>
  /** Throws ExternalAccountSourceError when the source is not the worker's own. */
  remove: (peerId: string) => Promise<boolean>
}
