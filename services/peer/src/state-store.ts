/**
 * Where a peer keeps its own state between runs: the peers it banned (peer-bans.ts) and the
 * content keys it holds (held-keys.ts).
 * A small named-document store, so any platform can give one: a folder on disk
 * (`fileStateStore`, Node), IndexedDB or localStorage in a browser, an app's own database.
 * Documents are small JSON texts, written whole.
 */
export interface PeerStateStore {
  /** The document `name`, or undefined if none was written. */
  read: (name: string) => Promise<string | undefined>
  /** Replaces the document `name`; resolves once it is kept (a crash after it loses nothing). */
  write: (name: string, text: string) => Promise<void>
}

/** State kept in memory: it lasts as long as the object (the default: one run of the peer). */
export class MemoryStateStore implements PeerStateStore {
  private readonly documents = new Map<string, string>()

  async read (name: string): Promise<string | undefined> {
    return this.documents.get(name)
  }

  async write (name: string, text: string): Promise<void> {
    this.documents.set(name, text)
  }
}
