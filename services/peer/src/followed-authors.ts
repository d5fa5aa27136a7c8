/**
 * The authors a peer follows and who listens for their new entries: `sync` fetches their
 * logs, gossip of their entries is taken, and each entry the peer newly keeps is told to the
 * `onEntry` listeners.
 */
import type { EntryBlock } from '@pharos/protocol/log/index.ts'
import type { Logger } from '@libp2p/interface'

export class FollowedAuthors {
  private readonly authors = new Set<string>()
  private readonly listeners = new Set<(block: EntryBlock) => void>()
  private readonly log: Logger

  constructor (log: Logger) {
    this.log = log
  }

  /** Follows `authors`; returns those that were not followed yet. */
  add (authors: readonly string[]): string[] {
    const added = authors.filter((author) => !this.authors.has(author))
    for (const author of authors) this.authors.add(author)
    return added
  }

  delete (authors: readonly string[]): void {
    for (const author of authors) this.authors.delete(author)
  }

  has (author: string): boolean {
    return this.authors.has(author)
  }

  get size (): number {
    return this.authors.size
  }

  list (): string[] {
    return [...this.authors]
  }

  /** Calls `listener` with each new entry of a followed author (from sync or gossip), oldest first. */
  onEntry (listener: (block: EntryBlock) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Tells the listeners of entries newly kept, oldest first; a listener that throws is logged and the rest still hear. */
  emit (blocks: readonly EntryBlock[]): void {
    for (const block of blocks) {
      for (const listener of this.listeners) {
        try {
          listener(block)
        } catch (err) {
          this.log.error('entry listener failed - %e', err)
        }
      }
    }
  }
}
