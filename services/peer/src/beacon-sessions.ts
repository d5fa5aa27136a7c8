/**
 * A peer's sessions with its beacons: dialling the bootstrap list at start, reconnecting when
 * a beacon goes away, asking connected beacons in turn (`withBeacon`), joining the overlay
 * through one, and moving to a sibling worker when a beacon drains (docs/fleet.md "Drain").
 */
import { setTimeout as delay } from 'node:timers/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { DrainNotice, OverlayDriver, OverlayRefusedError, PeerAddrs } from '@pharos/net/overlay/overlay-driver.ts'
import { OVERLAY_TOPICS } from '@pharos/net/overlay/topics.ts'
import type { PeerTimeouts } from './constants.ts'
import { InvalidBootstrapAddressError, JoinTimeoutError, NoBeaconError } from './errors.ts'
import { asError, isDefinitive } from './failures.ts'
import type { PeerRun } from './lifecycle.ts'
import type { AbortOptions, Libp2p, Logger, PeerId } from '@libp2p/interface'

/** First wait between attempts to reach another beacon after losing one; doubles up to the max (guess). */
const RECONNECT_BASE_MS = 500
const RECONNECT_MAX_MS = 15_000
/**
 * Passes over the bootstrap list `start()` makes before NoBeaconError, backing off from
 * RECONNECT_BASE_MS with jitter (guess: when a whole app fleet restarts at once, every beacon
 * can be busy accepting for one dial timeout; three passes outlast that and still fail fast
 * against an address where nothing listens).
 */
const START_DIAL_PASSES = 3

/**
 * A beacon: its peer ID and the addresses to dial it on (a bootstrap address, or the
 * addresses a draining beacon gave for a sibling worker; dialled as given, never kept in
 * the peer store).
 */
export interface BeaconContact {
  peer: PeerId
  addrs: Multiaddr[]
}

/** The `/p2p/<peer id>` of a bootstrap address (the last one, for a relayed address). */
export function beaconOf (address: string): BeaconContact {
  let addr: Multiaddr
  try {
    addr = multiaddr(address)
  } catch (err) {
    throw new InvalidBootstrapAddressError(address, `not a multiaddr (${(err as Error).message})`)
  }
  const value = addr.getComponents().filter((component) => component.name === 'p2p').at(-1)?.value
  if (value === undefined) throw new InvalidBootstrapAddressError(address, 'it must end in /p2p/<peer id>')
  try {
    return { addrs: [addr], peer: peerIdFromString(value) }
  } catch {
    throw new InvalidBootstrapAddressError(address, `${value} is not a peer ID`)
  }
}

export interface BeaconSessionsComponents {
  libp2p: Pick<Libp2p, 'dial' | 'getConnections' | 'hangUp' | 'addEventListener' | 'removeEventListener'>
  overlay: Pick<OverlayDriver, 'join' | 'snapshot' | 'onRefused' | 'onDrain' | 'isDeparting'>
  /** The bootstrap beacons, then sibling workers a draining beacon named (the overlay's bootstrap reads the same array). */
  beacons: BeaconContact[]
  /** How many of them to stay connected to (PharosPeerInit.beaconConnections). */
  beaconConnections: number
  timeouts: PeerTimeouts
  run: PeerRun
  log: Logger
}

export class BeaconSessions {
  private readonly components: BeaconSessionsComponents
  /** A reconnect to beacons under way (one at a time). */
  private reconnecting: Promise<void> | undefined

  constructor (components: BeaconSessionsComponents) {
    this.components = components
  }

  /** Whether the peer has any beacon to ask (none when it runs without a bootstrap list). */
  hasBeacons (): boolean {
    return this.components.beacons.length > 0
  }

  isBeacon (peer: PeerId): boolean {
    return this.components.beacons.some((beacon) => beacon.peer.equals(peer))
  }

  /**
   * Listens while the peer runs: a beacon that connects calls `onBeaconConnected` (the peer
   * syncs), one that goes away starts a reconnect, one that drains is moved off. Returns the
   * function that stops listening.
   */
  watch (onBeaconConnected: () => void): () => void {
    const { libp2p, overlay, run } = this.components
    const onConnect = (event: CustomEvent<PeerId>): void => {
      if (run.started && this.isBeacon(event.detail)) onBeaconConnected()
    }
    const onDisconnect = (event: CustomEvent<PeerId>): void => {
      if (run.started && this.isBeacon(event.detail)) this.reconnect()
    }
    libp2p.addEventListener('peer:connect', onConnect)
    libp2p.addEventListener('peer:disconnect', onDisconnect)
    const offDrain = overlay.onDrain((notice) => { this.onBeaconDraining(notice) })
    return () => {
      libp2p.removeEventListener('peer:connect', onConnect)
      libp2p.removeEventListener('peer:disconnect', onDisconnect)
      offDrain()
    }
  }

  /**
   * Dials bootstrap beacons until `beaconConnections` are connected: all at once when every
   * beacon is wanted, else one after another in list order. Resolves with the connected
   * beacons, or throws NoBeaconError naming why each dial failed.
   */
  private async dial (options: AbortOptions): Promise<PeerId[]> {
    const { libp2p, beacons, beaconConnections, timeouts } = this.components
    const dial = async ({ addrs, peer }: BeaconContact): Promise<PeerId> => {
      const timeout = AbortSignal.timeout(timeouts.dialMs)
      await libp2p.dial(addrs, { signal: options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]) })
      return peer
    }
    const connected = this.open()
    const failures: string[] = []
    const untried = beacons.filter(({ peer }) => !connected.some((open) => open.equals(peer)) && !this.isDraining(peer))
    if (beaconConnections >= beacons.length) {
      const results = await Promise.allSettled(untried.map(dial))
      results.forEach((result, i) => {
        if (result.status === 'fulfilled') connected.push(result.value)
        else failures.push(`${untried[i]?.addrs.join(' or ') ?? '?'}: ${asError(result.reason).message}`)
      })
    } else {
      for (const beacon of untried) {
        if (connected.length >= beaconConnections) break
        try {
          connected.push(await dial(beacon))
        } catch (err) {
          options.signal?.throwIfAborted()
          failures.push(`${beacon.addrs.join(' or ')}: ${asError(err).message}`)
        }
      }
    }
    options.signal?.throwIfAborted()
    if (connected.length === 0) throw new NoBeaconError(`could not dial any bootstrap beacon (${failures.join('; ')})`)
    return connected
  }

  /** `dial`, retried START_DIAL_PASSES times while no beacon at all answers. */
  async dialAtStart (options: AbortOptions): Promise<PeerId[]> {
    for (let pass = 1; ; pass++) {
      try {
        return await this.dial(options)
      } catch (err) {
        if (!(err instanceof NoBeaconError) || pass >= START_DIAL_PASSES) throw err
        this.components.log('no bootstrap beacon answered (pass %d of %d) - %e', pass, START_DIAL_PASSES, err)
        // Jitter spreads a herd of peers that all failed together over the next pass.
        await delay(RECONNECT_BASE_MS * 2 ** (pass - 1) * (1 + Math.random()), undefined, options)
      }
    }
  }

  private open (): PeerId[] {
    const { libp2p, beacons } = this.components
    return beacons.filter(({ peer }) => libp2p.getConnections(peer).some((connection) => connection.status === 'open')).map(({ peer }) => peer)
  }

  /**
   * A beacon went away: dial the next ones until `beaconConnections` are connected again
   * (backing off while none answers), and rejoin the overlay through them if the peer has
   * no neighbour left. Runs in the background until it succeeds or the peer stops.
   */
  private reconnect (): void {
    const { overlay, beaconConnections, run, log } = this.components
    this.reconnecting ??= (async () => {
      const signal = run.signal
      for (let attempt = 0; run.started && this.open().length < beaconConnections; attempt++) {
        try {
          const connected = await this.dial({ signal })
          if ((overlay.snapshot().content?.active.length ?? 0) === 0) await this.joinOverlay(connected, { signal })
          if (connected.length >= beaconConnections) break
        } catch (err) {
          if (signal.aborted) return
          log('reconnecting to a beacon failed (attempt %d) - %e', attempt + 1, err)
        }
        await delay(Math.min(RECONNECT_BASE_MS * 2 ** attempt, RECONNECT_MAX_MS), undefined, { signal }).catch(() => {})
      }
    })().finally(() => { this.reconnecting = undefined })
  }

  /** Beacons with an open connection now; redials the bootstrap list if there are none. */
  async connected (options: AbortOptions): Promise<PeerId[]> {
    const open = this.open()
    if (open.length > 0 || this.components.beacons.length === 0) return open
    return await this.dial(options)
  }

  /**
   * Joins every overlay topic through the first of `beacons` and waits (at most
   * `timeouts.joinMs`) until the content topic has an active neighbour. Throws the
   * OverlayRefusedError of a beacon that refuses the peer, or JoinTimeoutError.
   */
  async joinOverlay (beacons: PeerId[], options: AbortOptions): Promise<void> {
    const { overlay, timeouts } = this.components
    const contact = beacons[0]
    if (contact === undefined) throw new NoBeaconError('no beacon to join through')
    let refusal: OverlayRefusedError | undefined
    const off = overlay.onRefused((error) => { if (this.isBeacon(peerIdFromString(error.peer))) refusal ??= error })
    try {
      for (const topic of OVERLAY_TOPICS) overlay.join(topic, contact)
      const deadline = Date.now() + timeouts.joinMs
      for (;;) {
        if (refusal !== undefined) throw refusal
        if ((overlay.snapshot().content?.active.length ?? 0) > 0) return
        if (Date.now() >= deadline) throw new JoinTimeoutError(timeouts.joinMs)
        await delay(50, undefined, options)
      }
    } finally {
      off()
    }
  }

  /**
   * Runs `ask` against each connected beacon in turn until one answers. A definitive refusal
   * (bad request, key denied) or the caller's abort ends the search; other failures (a
   * beacon that is down, malformed or unavailable) move on to the next beacon.
   */
  async withBeacon<T> (what: string, options: AbortOptions, ask: (beacon: PeerId) => Promise<T>): Promise<T> {
    const beacons = await this.connected(options)
    if (beacons.length === 0) throw new NoBeaconError(`${what}: no bootstrap beacons configured`)
    let last: unknown
    for (const beacon of beacons) {
      try {
        return await ask(beacon)
      } catch (err) {
        if (options.signal?.aborted === true || isDefinitive(err)) throw err
        this.components.log('%s with beacon %p failed - %e', what, beacon, err)
        last = err
      }
    }
    throw last
  }

  // ---- a beacon that drains -----------------------------------------------------------------

  /** A beacon that said it is draining is not dialled for a minute (the overlay driver keeps that record). */
  private isDraining (peer: PeerId): boolean {
    return this.components.overlay.isDeparting(peer.toString())
  }

  /**
   * One of our beacons is draining (its worker is stopping) and names sibling workers to
   * move to (docs/fleet.md "Drain"): dial them, join the overlay through one, then hang up
   * on the draining beacon, which is waiting for exactly that before it closes. So the
   * overlay never has to notice a dead link. A node that is not one of our beacons (a
   * worker the overlay linked us to) cannot send us elsewhere: we only hang up on it, as it
   * waits for that too, and the overlay has already dropped it.
   */
  private onBeaconDraining ({ from, siblings }: DrainNotice): void {
    const { libp2p, run, log } = this.components
    if (!run.started) return
    if (!this.isBeacon(from)) {
      void libp2p.hangUp(from, { signal: run.signal }).catch((err: unknown) => { log('hanging up on draining node %p failed - %e', from, err) })
      return
    }
    void this.moveOffBeacon(from, siblings).catch((err: unknown) => { log('moving off draining beacon %p failed - %e', from, err) })
  }

  private async moveOffBeacon (draining: PeerId, siblings: readonly PeerAddrs[]): Promise<void> {
    const { libp2p, overlay, beaconConnections, timeouts, run, log } = this.components
    const signal = AbortSignal.any([run.signal, AbortSignal.timeout(timeouts.dialMs + timeouts.joinMs)])
    const others = (): PeerId[] => this.open().filter((peer) => !this.isDraining(peer))
    const contacts: PeerId[] = []
    for (const sibling of siblings) {
      if (others().length >= beaconConnections) break
      const beacon = this.adoptBeacon(sibling)
      if (beacon === undefined || this.isDraining(beacon.peer)) continue
      try {
        await libp2p.dial(beacon.addrs, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeouts.dialMs)]) })
        contacts.push(beacon.peer)
      } catch (err) {
        signal.throwIfAborted()
        log('sibling %s named by draining beacon %p did not answer - %e', sibling.peerId, draining, err)
      }
    }
    const contact = contacts[0] ?? others()[0]
    if (contact !== undefined) {
      // Join through the sibling even with neighbours left: the draining beacon is likely one.
      for (const topic of OVERLAY_TOPICS) overlay.join(topic, contact)
      const linked = (): boolean => overlay.snapshot().content?.active.some((peer) => peer !== draining.toString()) ?? false
      while (!linked() && !signal.aborted) await delay(50, undefined, { signal }).catch(() => {})
    }
    await libp2p.hangUp(draining, { signal: run.signal })
  }

  /**
   * A sibling worker named by a draining beacon becomes one of ours (kept after the ones we
   * were given), with every address the beacon gave for it (each must name the sibling, or
   * name no peer). Undefined when none of them is usable.
   */
  private adoptBeacon (sibling: PeerAddrs): BeaconContact | undefined {
    const { beacons } = this.components
    const known = beacons.find(({ peer }) => peer.toString() === sibling.peerId)
    if (known !== undefined) return known
    let peer: PeerId
    try {
      peer = peerIdFromString(sibling.peerId)
    } catch {
      return undefined
    }
    const addrs = sibling.multiaddrs.flatMap((text) => {
      try {
        const addr = multiaddr(text)
        const named = addr.getComponents().filter((component) => component.name === 'p2p').at(-1)?.value
        if (named === undefined) return [addr.encapsulate(`/p2p/${sibling.peerId}`)]
        return named === sibling.peerId ? [addr] : []
      } catch {
        return []
      }
    })
    if (addrs.length === 0) return undefined
    const beacon = { peer, addrs }
    beacons.push(beacon)
    return beacon
  }
}
