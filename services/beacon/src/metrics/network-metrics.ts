import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'

/** Metrics of the libp2p surface that Pharos adds to libp2p's own. Labels are closed sets. */
export function createNetworkMetrics (registry: Registry) {
  let countReservations: () => number = () => 0
  return {
    /** The relay reservation gauge reads the relay server on scrape. */
    countReservationsWith (count: () => number): void { countReservations = count },
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
    connectionsRefused: new Counter({
      name: 'pharos_connections_refused_total',
      help: 'Connections refused by the gater, by reason',
      labelNames: ['reason'] as const,
      registers: [registry]
    }),
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
    relayReservationRequests: new Counter({
      name: 'pharos_relay_reservation_requests_total',
      help: 'Relay reservation requests by outcome: granted (a new slot), renewed (the peer\'s own slot reused), or the reason it was refused (not-registered, account-slots, global, per-ip, per-peer, no-direct-connection, draining, not-ready)',
      labelNames: ['outcome'] as const,
      registers: [registry]
    })
  }
}

export type NetworkMetrics = ReturnType<typeof createNetworkMetrics>

