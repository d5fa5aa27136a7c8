import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import { ADMISSION_REFUSALS } from './inbound-admission.ts'
import type { InboundAdmission } from './inbound-admission.ts'

/**
 * Why a connection was refused or closed before it was up: inbound admission's reasons
 * (inbound-admission.ts) and the gater's (connection-gater.ts). A closed set.
 */
export const CONNECTION_REFUSALS = [...ADMISSION_REFUSALS, 'not-ed25519', 'not-registered', 'banned'] as const
export type ConnectionRefusal = typeof CONNECTION_REFUSALS[number]

/** Metrics of the libp2p surface that Pharos adds to libp2p's own. Labels are closed sets. */
export function createNetworkMetrics (registry: Registry) {
  let countReservations: () => number = () => 0
  let admission: Pick<InboundAdmission, 'pending' | 'handshakeRate'> | undefined
  const connectionsRefused = new Counter({
    name: 'pharos_connections_refused_total',
    help: 'Connections refused, or closed before their upgrade finished, by reason: rate-limit (PHAROS_INBOUND_CONNECTIONS_PER_IP_PER_SECOND), source-cap (the source or its /24 or /48 holds its share of slots mid-upgrade), pending-cap (every slot mid-upgrade is held, by networks holding no more than the newcomer\'s), evicted (its slot went to a newcomer from a source holding fewer), slow-upgrade (no complete first message in time, or too few bytes per second), overload (new handshakes shed while the event loop lags), not-ed25519, not-registered (a peer that is neither an account nor a fleet worker, while such peers hold PHAROS_MAX_NON_MEMBER_CONNECTIONS), banned',
    labelNames: ['reason'] as const,
    registers: [registry]
  })
  for (const reason of CONNECTION_REFUSALS) connectionsRefused.inc({ reason }, 0)
  return {
    /** The relay reservation gauge reads the relay server on scrape. */
    countReservationsWith (count: () => number): void { countReservations = count },
    /** The admission gauges read it on scrape. */
    watchAdmission (watched: Pick<InboundAdmission, 'pending' | 'handshakeRate'>): void { admission = watched },
    inboundUpgradesPending: new Gauge({
      name: 'pharos_inbound_upgrades_pending',
      help: 'Inbound connections mid-upgrade (multistream-select, Noise, Yamux) now',
      registers: [registry],
      collect () { this.set(admission?.pending ?? 0) }
    }),
    inboundHandshakeRate: new Gauge({
      name: 'pharos_inbound_handshake_rate',
      help: 'New inbound handshakes admitted per second now: PHAROS_MAX_HANDSHAKES_PER_SECOND while the event loop keeps up, less while it lags (docs/foundation.md, "Admission")',
      registers: [registry],
      collect () { this.set(admission?.handshakeRate ?? 0) }
    }),
    connections: new Gauge({
      name: 'pharos_connections',
      help: 'Open libp2p connections by transport and direction',
      labelNames: ['transport', 'direction'] as const,
      registers: [registry]
    }),
    connectionsOpened: new Counter({
      name: 'pharos_connections_opened_total',
      help: 'libp2p connections opened, by transport and direction',
      labelNames: ['transport', 'direction'] as const,
      registers: [registry]
    }),
    /** Inc with a `ConnectionRefusal`. */
    connectionsRefused,
    listenerErrors: new Counter({
      name: 'pharos_listener_errors_total',
      help: 'Errors of the libp2p TCP and WebSocket listeners\' servers, by transport and code: EMFILE or ENFILE (accept failed, the process is out of file descriptors) or other',
      labelNames: ['transport', 'code'] as const,
      registers: [registry]
    }),
    dialsDenied: new Counter({
      name: 'pharos_dials_denied_total',
      help: 'Dials the gater refused before opening a socket, by why: the range of the address (metadata, link-local, reserved, loopback, private, cgnat), denied-cidr (PHAROS_DIAL_DENY_CIDRS), not-ip (a Unix socket or other non-IP address), unresolvable (a DNS name that did not resolve)',
      labelNames: ['range'] as const,
      registers: [registry]
    }),
    relayReservations: new Gauge({
      name: 'pharos_relay_reservations',
      help: 'Circuit relay v2 reservations currently held',
      registers: [registry],
      collect () { this.set(countReservations()) }
    }),
    relayReservationsLimit: new Gauge({
      name: 'pharos_relay_reservations_limit',
      help: 'PHAROS_RELAY_MAX_RESERVATIONS: relay reservations this worker holds at once before it refuses new ones (outcome "global")',
      registers: [registry]
    }),
    relayReservationRequests: new Counter({
      name: 'pharos_relay_reservation_requests_total',
      help: 'Relay reservation requests by outcome: granted (a new slot), renewed (the peer\'s own slot reused), or the reason it was refused (not-registered, account-slots, global, per-ip, per-peer, no-direct-connection, draining, not-ready)',
      labelNames: ['outcome'] as const,
      registers: [registry]
    })
  }
}

export type NetworkMetrics = ReturnType<typeof createNetworkMetrics>

