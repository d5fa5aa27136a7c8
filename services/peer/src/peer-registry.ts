/**
 * The peer's copy of the registry of accounts (docs/registry.md), and the gate of its overlay
 * views built on it: only registered accounts (and the peer's own beacons) enter its active
 * and passive views; any other peer is refused with `not-registered`, the reason a beacon
 * gives. N, the registry's count, sizes the views, and they resize as it changes.
 *
 * The copy comes from the peer's beacons over `/<network>/registry/1.0.0`: a snapshot at
 * start, then the changes since its cursor every `registryRefreshMs` and whenever a beacon
 * (re)connects. Every page is verified (services/protocol registry.ts) against the fleet's
 * registry key: `PharosPeerInit.registryKey` if the app gives it, else the key that signed
 * the first page the peer took (trust on first use, for this run of the peer), which every
 * later page must match.
 *
 * Before the first copy arrives the peer admits only its beacons. A peer whose beacons serve
 * no registry (no bootstrap list, or other peers used as bootstrap) cannot learn one: it gates
 * nothing, as before the registry existed, and says so in its debug log.
 */
import { RegistryClient } from '@pharos/net/clients/registry-client.ts'
import type { AdmitDecision, OverlayDriver } from '@pharos/net/overlay/overlay-driver.ts'
import { RegistryReplica } from '@pharos/protocol/registry/index.ts'
import type { BeaconContact, BeaconSessions } from './beacon-sessions.ts'
import type { PeerRun } from './lifecycle.ts'
import type { AbortOptions, Libp2p, Logger, PeerId } from '@libp2p/interface'

/** Pages taken in one refresh at most: a 200,000-account snapshot at 1,000 a page, and its changes (guess). */
const MAX_PAGES_PER_REFRESH = 256

/** Where the peer's gate stands. */
export type RegistryGate =
  /** No copy yet: only the peer's beacons are admitted. */
  | 'waiting'
  /** A verified copy: registered accounts and the peer's beacons are admitted. */
  | 'registry'
  /** No beacon of this peer serves a registry: everyone is admitted. */
  | 'open'

/** What the app can read of the peer's registry (`PharosPeer.registry()`). */
export interface RegistryStatus {
  gate: RegistryGate
  /** N as the last page said; before the first copy, the init's `networkSize`. */
  networkSize: number
  /** Accounts in the copy. */
  accounts: number
  /** The fleet's registry key the copy is verified against, once known. */
  signer?: string
}

export interface PeerRegistryInit {
  network: string
  beacons: readonly BeaconContact[]
  /** The fleet's registry key (a peer ID) pages must be signed by. @default the first page's signer */
  registryKey?: string
  /** N until the first copy. */
  networkSize: number
  log: Logger
}

export class PeerRegistry {
  private readonly init: PeerRegistryInit
  private readonly replica = new RegistryReplica()
  private signer: string | undefined
  private gate: RegistryGate = 'waiting'
  private wired: { client: RegistryClient, sessions: BeaconSessions, overlay: Pick<OverlayDriver, 'setNetworkSize'>, run: PeerRun } | undefined
  private refreshing: Promise<void> | undefined

  constructor (init: PeerRegistryInit) {
    this.init = init
    this.signer = init.registryKey
  }

  /** Gives the registry what it asks through; called once the node is built. */
  wire (libp2p: Pick<Libp2p, 'dialProtocol'>, sessions: BeaconSessions, overlay: Pick<OverlayDriver, 'setNetworkSize'>, run: PeerRun, requestMs: number): void {
    this.wired = { client: new RegistryClient(libp2p, this.init.network, requestMs), sessions, overlay, run }
  }

  /** The overlay's admission rule (OverlayInit.admit): the gate above. */
  admit (peer: PeerId): AdmitDecision {
    if (this.gate === 'open' || this.isBeacon(peer)) return { admitted: true }
    if (this.gate === 'registry' && this.replica.isRegistered(peer.toString())) return { admitted: true }
    return { admitted: false, reason: 'not-registered' }
  }

  status (): RegistryStatus {
    return {
      gate: this.gate,
      networkSize: this.replica.ready ? this.replica.count : this.init.networkSize,
      accounts: this.replica.held,
      ...(this.signer === undefined ? {} : { signer: this.signer })
    }
  }

  /** Whether `peerId` is in the copy (undefined: no copy to say). */
  isRegistered (peerId: string): boolean | undefined {
    return this.replica.ready ? this.replica.isRegistered(peerId) : undefined
  }

  private isBeacon (peer: PeerId): boolean {
    return this.init.beacons.some((beacon) => beacon.peer.equals(peer))
  }

  /**
   * Brings the copy up to date from a connected beacon (the first that answers with a
   * verified page). A refresh under way is shared. Never throws for a beacon's failure: the
   * copy stays as it was, and the next refresh tries again.
   */
  async refresh (options: AbortOptions = {}): Promise<void> {
    this.refreshing ??= this.pull(options).finally(() => { this.refreshing = undefined })
    await this.refreshing
  }

  private async pull (options: AbortOptions): Promise<void> {
    const wired = this.wired
    if (wired === undefined) return
    if (this.init.beacons.length === 0) {
      this.open('no beacons to ask')
      return
    }
    const beacons = await wired.sessions.connected(options).catch(() => [])
    let unsupported = 0
    for (const beacon of beacons) {
      try {
        await this.pullFrom(beacon, wired.client, options)
        this.gate = 'registry'
        wired.overlay.setNetworkSize(Math.max(1, this.replica.count))
        return
      } catch (err) {
        if (options.signal?.aborted === true) throw err
        if ((err as Error).name === 'UnsupportedProtocolError') unsupported++
        this.init.log('registry from %p not taken - %e', beacon, err)
      }
    }
    if (beacons.length > 0 && unsupported === beacons.length && !this.replica.ready) this.open('no beacon serves a registry')
  }

  private open (why: string): void {
    if (this.gate === 'waiting') this.init.log('overlay views admit every peer: %s', why)
    this.gate = 'open'
  }

  /** Pages from one beacon until the copy is current; a failed page leaves the copy as it was before it. */
  private async pullFrom (beacon: PeerId, client: RegistryClient, options: AbortOptions): Promise<void> {
    for (let pages = 0; pages < MAX_PAGES_PER_REFRESH; pages++) {
      const request = this.replica.nextRequest()
      const page = await client.fetchPage(beacon, request, { ...options, ...(this.signer === undefined ? {} : { signer: this.signer }) })
      if (this.signer === undefined) {
        // Trust on first use: this key now signs every page this peer takes.
        this.signer = page.signer
        this.init.log('registry key %s taken from beacon %p (first use)', page.signer, beacon)
      }
      const applied = this.replica.apply(request, page)
      if (!applied.more) return
    }
  }
}
