import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import { BRIDGE_DIRECTIONS, MALFORMED_SOURCES, REDIS_OPERATIONS, RELAY_SLOT_RESULTS, SEEN_CLAIM_RESULTS } from './fleet-metrics-hooks.ts'
import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'

/**
 * Metrics of the fleet state in Redis (DESIGN.md §6, docs/fleet.md). Dashboards and alerts
 * use these names: keep them. Labels are closed sets (fleet/fleet-metrics-hooks.ts), never
 * peer IDs, message IDs or topics. The fleet classes are handed the result as
 * `FleetMetricsHooks`.
 */
export function createFleetMetrics (registry: Registry): FleetMetricsHooks {
  const registers = [registry]

  const redisUp = new Gauge({
    name: 'pharos_redis_up',
    help: 'Whether this worker\'s Redis command connection is ready (1) or not (0: fleet state degrades to local)',
    registers
  })
  redisUp.set(0)

  const redisErrors = new Counter({
    name: 'pharos_redis_errors_total',
    help: 'Redis failures seen by this worker, by operation (connection, seen, membership, peer-views, bans, accounts, bridge, relay-slots)',
    labelNames: ['operation'] as const,
    registers
  })
  // Every series exists from the start, so rate() and alerts see 0 rather than nothing.
  for (const operation of REDIS_OPERATIONS) redisErrors.inc({ operation }, 0)

  const seenClaims = new Counter({
    name: 'pharos_seen_claims_total',
    help: 'Seen-set claims by result: claimed (this worker took the message), seen (already taken), local (Redis unavailable: processed locally)',
    labelNames: ['result'] as const,
    registers
  })
  for (const result of SEEN_CLAIM_RESULTS) seenClaims.inc({ result }, 0)

  const bridgeMessages = new Counter({
    name: 'pharos_gossip_bridge_messages_total',
    help: 'Gossip bridge frames between workers: published by this worker, received from others, dropped (malformed or oversized)',
    labelNames: ['direction'] as const,
    registers
  })
  for (const direction of BRIDGE_DIRECTIONS) bridgeMessages.inc({ direction }, 0)

  const malformed = new Counter({
    name: 'pharos_fleet_malformed_total',
    help: 'Values read from Redis that failed validation and were dropped, by source (membership, peer-views, bans, ban-events, account-events)',
    labelNames: ['source'] as const,
    registers
  })
  for (const source of MALFORMED_SOURCES) malformed.inc({ source }, 0)

  const relaySlots = new Counter({
    name: 'pharos_relay_slots_total',
    help: 'Relay slot requests (per account, fleet-wide) by result: granted, renewed (own slot reused), full (held on other workers), local (Redis unavailable: decided on this worker\'s own slots)',
    labelNames: ['result'] as const,
    registers
  })
  for (const result of RELAY_SLOT_RESULTS) relaySlots.inc({ result }, 0)

  return {
    redisUp,
    redisErrors,
    fleetWorkers: new Gauge({
      name: 'pharos_fleet_workers',
      help: 'Live workers in the fleet (heartbeat within three intervals), as this worker last read them',
      registers
    }),
    seenClaims,
    bridgeMessages,
    fleetPeers: new Gauge({
      name: 'pharos_fleet_peers',
      help: 'Peers this worker holds (connected), as its fleet peer view knows them',
      registers
    }),
    malformed,
    relaySlots
  }
}
