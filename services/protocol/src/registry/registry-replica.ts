/**
 * A peer's copy of the registry, kept from verified pages (registry.ts) with no I/O: the
 * asker (the peer SDK) asks for `nextRequest()`, verifies the answer, and hands it to
 * `apply`. The copy answers `isRegistered` and N (`count`) once a whole snapshot has been
 * taken (`ready`); until then it has no opinion, and the peer decides what to admit.
 *
 * A snapshot in several pages is gathered apart from the copy in use, and swapped in whole
 * once its last page arrives; the changes since its first page's cursor then complete it
 * (a page fetched later may already hold a change, which is harmless: changes are states).
 */
import type { RegistryPage, RegistryRequest } from './registry.ts'
import { DEFAULT_REGISTRY_PAGE } from './registry.ts'

/** A page that does not follow from the request it answers. */
export class RegistryOutOfOrderError extends Error {
  override readonly name = 'RegistryOutOfOrderError'
}

/** What applying a page did: `more` asks for another page at once. */
export interface RegistryApplied {
  /** The copy changed: accounts came or went, or N changed. */
  changed: boolean
  /** Another request is due now (a snapshot's next page, or more changes). */
  more: boolean
}

export class RegistryReplica {
  private members = new Set<string>()
  private cursor: string | undefined
  private size = 0
  /** A snapshot being gathered: its first page's cursor and the accounts so far. */
  private pending: { cursor: string, members: Set<string>, last: string | null } | undefined
  private readonly pageSize: number

  constructor (options: { pageSize?: number } = {}) {
    this.pageSize = options.pageSize ?? DEFAULT_REGISTRY_PAGE
  }

  /** Whether a whole snapshot has been taken: until then the copy says nothing. */
  get ready (): boolean {
    return this.cursor !== undefined
  }

  /** N: the registered accounts, as the last page said (0 before the first). */
  get count (): number {
    return this.size
  }

  /** Accounts in the copy. */
  get held (): number {
    return this.members.size
  }

  isRegistered (peerId: string): boolean {
    return this.members.has(peerId)
  }

  /** The request to send next: the snapshot's next page, or the changes since the copy's cursor. */
  nextRequest (): RegistryRequest {
    if (this.pending !== undefined) return { cursor: null, after: this.pending.last, limit: this.pageSize }
    return { cursor: this.cursor ?? null, after: null, limit: this.pageSize }
  }

  /**
   * Takes a verified page that answers `request`. Throws RegistryOutOfOrderError for a page
   * that cannot answer it (a continuation page that restarts the snapshot, say).
   */
  apply (request: RegistryRequest, page: RegistryPage): RegistryApplied {
    const countBefore = this.size
    if (page.kind === 'snapshot') {
      if (request.after === null) {
        this.pending = { cursor: page.cursor, members: new Set(), last: null }
      } else if (this.pending === undefined || this.pending.last !== request.after) {
        throw new RegistryOutOfOrderError('a snapshot page that continues no snapshot being taken')
      }
      const pending = this.pending
      if (pending === undefined) throw new RegistryOutOfOrderError('no snapshot being taken')
      for (const account of page.accounts) {
        if (pending.last !== null && account <= pending.last) throw new RegistryOutOfOrderError('snapshot accounts out of order')
        pending.members.add(account)
        pending.last = account
      }
      this.size = page.count
      if (page.more && page.accounts.length > 0) return { changed: this.size !== countBefore, more: true }
      const before = this.members
      this.members = pending.members
      this.cursor = pending.cursor
      this.pending = undefined
      const changed = this.size !== countBefore || !sameSet(before, this.members)
      // Changes made while the pages were fetched: ask for them now when there were pages.
      return { changed, more: request.after !== null }
    }
    if (request.cursor === null || this.pending !== undefined) throw new RegistryOutOfOrderError('changes that answer no change request')
    let changed = false
    for (const account of page.accounts) {
      if (!this.members.has(account)) { this.members.add(account); changed = true }
    }
    for (const account of page.removed) {
      if (this.members.delete(account)) changed = true
    }
    this.cursor = page.cursor
    this.size = page.count
    return { changed: changed || this.size !== countBefore, more: page.more }
  }
}

function sameSet (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false
  for (const item of a) if (!b.has(item)) return false
  return true
}
