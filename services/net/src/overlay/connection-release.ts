/**
 * Connections the overlay opened, closed again once nothing needs them.
 *
 * HyParView opens a connection for every NEIGHBOR request, every SHUFFLEREPLY to a shuffle's
 * origin and every link to a peer named in a walk, and most of those peers never become (or
 * soon stop being) neighbours. Left open, the connections pile up: in the 20-peer overlay of
 * overlay-libp2p.test.ts each peer held 19.8 connections on average a minute after joining,
 * for 5 neighbours (docs/overlay-driver.md, "Connections").
 *
 * What is closed is decided from what libp2p itself says uses a connection, never guessed:
 * - only a connection this overlay dialled (`adopt`), outbound; one the remote opened to us is
 *   the remote's to close, and one another part of the node dialled (the SDK's beacons, the
 *   ancestor fetcher, Bitswap) is never adopted;
 * - not while the overlay needs the peer (a neighbour or a pending request in any topic, a link
 *   of ours opening or open, a bootstrap contact: the driver's `needed`);
 * - not while any stream is open on it (`connection.streams`: the remote's overlay link,
 *   Bitswap, sync, identify, any protocol);
 * - not while the peer carries any tag in the peer store: tags are how libp2p's parts mark a
 *   peer worth keeping (`keep-alive-circuit-relay` for a relay we hold a reservation at, the
 *   bootstrap module's tag, an application's own);
 * - only after all of that held at every sweep for `graceMs`.
 */
import type { Connection, PeerId, PeerStore } from '@libp2p/interface'

export interface ConnectionReleaseInit {
  /** An adopted connection is closed once it has been unneeded for this long (ms). */
  graceMs: number
  /** Whether the overlay still needs the peer (by its key, the peer ID string). */
  needed: (peer: string) => boolean
  peerStore: Pick<PeerStore, 'get'>
  log: (format: string, ...args: unknown[]) => void
}

interface Owned {
  readonly connection: Connection
  /** Since when every sweep found it unneeded (undefined: needed at the last sweep). */
  idleSince: number | undefined
}

export class ConnectionRelease {
  readonly #init: ConnectionReleaseInit
  readonly #owned = new Map<string, Owned>()
  #released = 0
  #adopted = 0

  constructor (init: ConnectionReleaseInit) {
    this.#init = init
  }

  /**
   * A connection `openConnection` gave the overlay. Adopted only if the overlay's own dial made
   * it: outbound, and not among the connections to the peer before the dial (`before`, their
   * IDs): libp2p hands back an existing connection rather than dialling again.
   */
  adopt (connection: Connection, before: ReadonlySet<string>): void {
    if (connection.direction !== 'outbound' || before.has(connection.id) || this.#owned.has(connection.id)) return
    this.#adopted++
    this.#owned.set(connection.id, { connection, idleSince: undefined })
  }

  /**
   * Closes every adopted connection that has been unneeded for the grace period. Call it
   * periodically; it reads the peer store, so the final checks are repeated after that read.
   */
  async sweep (now: number): Promise<void> {
    for (const [id, owned] of [...this.#owned]) {
      const { connection } = owned
      if (connection.status !== 'open') {
        this.#owned.delete(id)
        continue
      }
      if (this.#inUse(connection)) {
        owned.idleSince = undefined
        continue
      }
      owned.idleSince ??= now
      if (now - owned.idleSince < this.#init.graceMs) continue
      if (await this.#tagged(connection.remotePeer)) {
        owned.idleSince = undefined
        continue
      }
      // The peer store read yielded: a link may have started on this connection meanwhile.
      if (connection.status !== 'open' || this.#inUse(connection)) {
        owned.idleSince = undefined
        continue
      }
      this.#owned.delete(id)
      this.#released++
      this.#init.log('closing connection %s to %p: unused by the overlay and by anything else for %d ms', id, connection.remotePeer, now - owned.idleSince)
      connection.close().catch((err: unknown) => {
        this.#init.log('closing unused connection %s failed - %e', id, err)
        connection.abort(err instanceof Error ? err : new Error(String(err)))
      })
    }
  }

  /** Connections held now that the overlay opened. */
  get held (): number {
    return this.#owned.size
  }

  /** Connections adopted and closed since start. */
  get counts (): { adopted: number, released: number } {
    return { adopted: this.#adopted, released: this.#released }
  }

  clear (): void {
    this.#owned.clear()
  }

  #inUse (connection: Connection): boolean {
    return connection.streams.length > 0 || this.#init.needed(connection.remotePeer.toString())
  }

  async #tagged (peer: PeerId): Promise<boolean> {
    try {
      return (await this.#init.peerStore.get(peer)).tags.size > 0
    } catch {
      return false // not in the peer store: nobody tagged it
    }
  }
}
