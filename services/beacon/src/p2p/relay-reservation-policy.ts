import { transportOf, hostOf } from './multiaddr-parts.ts'
import type { RelaySlots } from '../fleet/relay-slots.ts'
import type { Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** Limits on circuit relay v2 reservations, beyond the relay server's own global cap. */
export interface RelayReservationLimits {
  /** Reservations held at once over all peers. */
  maxReservations: number
  /** Reservations held at once by peers connected from one IP. */
  maxReservationsPerIp: number
  /** Reservation requests (new or renewed) one peer may make per `reservationTtlMs`. */
  maxReservationsPerPeer: number
  reservationTtlMs: number
}

/** Why a request was refused: the `outcome` label of `pharos_relay_reservation_requests_total`. */
export type ReservationRefusal =
  | 'not-registered' | 'account-slots' | 'global' | 'per-ip' | 'per-peer' | 'no-direct-connection' | 'draining' | 'not-ready'

/** `renewal`: the peer already held a reservation here, so it took no new slot. */
export type ReservationDecision =
  | { allowed: true, renewal: boolean }
  | { allowed: false, reason: ReservationRefusal }

/** What the policy reads from the running node; a narrow view, so tests need no relay. */
export interface ReservationView {
  /** Current reservations: the peer and the address it reserved from. */
  reservations (): Iterable<[PeerId, { addr: Multiaddr }]>
  connections (peer: PeerId): Connection[]
}

export interface RelayReservationPolicyInit {
  limits: RelayReservationLimits
  /** Whether a peer is a registered account: only accounts get reservations. */
  isRegistered: (peer: PeerId) => boolean
  /** @default Date.now */
  now?: () => number
}

/**
 * Decides reservation requests before the relay server sees them (it is consulted through
 * the connection gater's `denyInboundRelayReservation`). Only registered accounts get a
 * reservation, and each account at most `PHAROS_RELAY_SLOTS_PER_ACCOUNT` over the fleet
 * (`RelaySlots`, in Redis). The stock server only caps the total; a beacon also needs
 * per-IP and per-peer bounds so one host or one peer in a renew loop cannot take every
 * slot or burn CPU on signed vouchers. Cheap local checks come first, Redis last.
 */
export class RelayReservationPolicy {
  private readonly limits: RelayReservationLimits
  private readonly isRegistered: (peer: PeerId) => boolean
  private readonly now: () => number
  private view: ReservationView | undefined
  private slots: RelaySlots | undefined
  private draining = false
  /** Per peer: times of its recent reservation requests, oldest first. */
  private readonly requests = new Map<string, number[]>()

  constructor (init: RelayReservationPolicyInit) {
    this.limits = init.limits
    this.isRegistered = init.isRegistered
    this.now = init.now ?? Date.now
  }

  attach (view: ReservationView): void {
    this.view = view
  }

  /** The fleet's slot counts; requests are refused (`not-ready`) until they are given. */
  useSlots (slots: RelaySlots): void {
    this.slots = slots
  }

  /** A draining worker takes no new reservations and renews none: its clients are moving. */
  startDraining (): void {
    this.draining = true
  }

  async decide (peer: PeerId): Promise<ReservationDecision> {
    const view = this.view
    const slots = this.slots
    if (view === undefined || slots === undefined) return { allowed: false, reason: 'not-ready' }
    if (this.draining) return { allowed: false, reason: 'draining' }
    if (!this.isRegistered(peer)) return { allowed: false, reason: 'not-registered' }
    const key = peer.toString()
    const now = this.now()

    const recent = (this.requests.get(key) ?? []).filter((at) => now - at < this.limits.reservationTtlMs)
    if (recent.length >= this.limits.maxReservationsPerPeer) {
      this.requests.set(key, recent)
      return { allowed: false, reason: 'per-peer' }
    }

    const direct = view.connections(peer).find((connection) => transportOf(connection.remoteAddr) !== 'circuit')
    const ip = direct === undefined ? undefined : hostOf(direct.remoteAddr)
    if (ip === undefined) return { allowed: false, reason: 'no-direct-connection' }

    let total = 0
    let fromIp = 0
    let renewing = false
    for (const [holder, reservation] of view.reservations()) {
      if (holder.equals(peer)) { renewing = true; continue }
      total++
      if (hostOf(reservation.addr) === ip) fromIp++
    }
    // A renewal replaces the peer's own reservation, so it never needs a new slot.
    if (!renewing && total >= this.limits.maxReservations) return { allowed: false, reason: 'global' }
    if (!renewing && fromIp >= this.limits.maxReservationsPerIp) return { allowed: false, reason: 'per-ip' }

    const slot = await slots.reserve(key, now)
    if (slot === 'full') return { allowed: false, reason: 'account-slots' }

    recent.push(now)
    this.requests.set(key, recent)
    this.forgetIdlePeers(now)
    return { allowed: true, renewal: renewing || slot === 'renewed' }
  }

  /**
   * Gives back the slots of reservations the relay server no longer holds: expired, or
   * dropped when the voucher could not be sent. Run it periodically.
   */
  async reconcile (): Promise<number> {
    const view = this.view
    const slots = this.slots
    if (view === undefined || slots === undefined) return 0
    const holding = new Set<string>()
    for (const [holder] of view.reservations()) holding.add(holder.toString())
    const gone = [...slots.held().keys()].filter((account) => !holding.has(account))
    if (gone.length > 0) await slots.release(gone)
    return gone.length
  }

  private forgetIdlePeers (now: number): void {
    // Bound the map: sweep only when it has grown well past the reservations it can back.
    if (this.requests.size <= 4 * Math.max(this.limits.maxReservations, 1024)) return
    for (const [key, times] of this.requests) {
      if (times.every((at) => now - at >= this.limits.reservationTtlMs)) this.requests.delete(key)
    }
  }
}
