/**
 * Whether a peer runs, and the signal its background work ends with. The facade
 * (`PharosPeer.start`/`stop`) is the only one that moves it; the modules get the read-only
 * `PeerRun` view and read it when they act (a restart brings a fresh signal).
 */
import { PeerNotStartedError } from './errors.ts'

export type PeerStatus = 'stopped' | 'starting' | 'started' | 'stopping'

/** What the modules may read of the lifecycle. */
export interface PeerRun {
  readonly started: boolean
  /** Aborted on stop: background syncs and fetches end with the peer. */
  readonly signal: AbortSignal
  /** Throws PeerNotStartedError naming `what` unless the peer runs. */
  requireStarted: (what: string) => void
}

export class PeerLifecycle implements PeerRun {
  status: PeerStatus = 'stopped'
  private lifetime = new AbortController()

  get started (): boolean {
    return this.status === 'started'
  }

  get signal (): AbortSignal {
    return this.lifetime.signal
  }

  /** A fresh lifetime for a start. */
  renew (): void {
    this.lifetime = new AbortController()
  }

  /** Ends the background work of this lifetime. */
  end (): void {
    this.lifetime.abort(new PeerNotStartedError('work of a stopped peer'))
  }

  requireStarted (what: string): void {
    if (this.status !== 'started') throw new PeerNotStartedError(what)
  }
}
