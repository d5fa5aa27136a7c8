import { transportOf, hostOf } from './multiaddr-parts.ts'
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

export type ReservationDecision =
  | { allowed: true }
  | { allowed: false, reason: 'global' | 'per-ip' | 'per-peer' | 'no-direct-connection' }

/** What the policy reads from the running node; a narrow view, so tests need no relay. */
export interface ReservationView {
  /** Current reservations: the peer and the address it reserved from. */
  reservations (): Iterable<[PeerId, { addr: Multiaddr }]>
  connections (peer: PeerId): Connection[]
}

/**
 * Decides reservation requests before the relay server sees them (it is consulted through
 * the connection gater's `denyInboundRelayReservation`). The stock server only caps the
 * total; a beacon also needs per-IP and per-peer bounds so one host or one peer in a renew
 * loop cannot take every slot or burn CPU on signed vouchers.
 */
export class RelayReservationPolicy {
  private readonly limits: RelayReservationLimits
  private readonly now: () => number
  private view: ReservationView | undefined
  /** Per peer: times of its recent reservation requests, oldest first. */
  private readonly requests = new Map<string, number[]>()

  constructor (limits: RelayReservationLimits, now: () => number = Date.now) {
    this.limits = limits
    this.now = now
  }

  attach (view: ReservationView): void {
    this.view = view
  }

  decide (peer: PeerId): ReservationDecision {
    const view = this.view
    if (view === undefined) return { allowed: false, reason: 'global' }
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

    recent.push(now)
    this.requests.set(key, recent)
    this.forgetIdlePeers(now)
    return { allowed: true }
  }

  private forgetIdlePeers (now: number): void {
    // Bound the map: sweep only when it has grown well past the reservations it can back.
    if (this.requests.size <= 4 * Math.max(this.limits.maxReservations, 1024)) return
    for (const [key, times] of this.requests) {
      if (times.every((at) => now - at >= this.limits.reservationTtlMs)) this.requests.delete(key)
    }
  }
}
