/**
 * Fleet state (DESIGN.md §6, docs/fleet.md): what workers share through Redis, or keep in
 * process when there is none. The worker builds one with `startFleetState` (REDIS_URL set)
 * or `startInProcessFleetState`, and uses the `FleetState` interface in both cases.
 */
export { startFleetState } from './fleet-state.ts'
export type { FleetState, FleetStateOptions, InProcessFleetStateOptions, RedisFleetState } from './fleet-state.ts'
export { startInProcessFleetState, LocalBanSync, LocalFleetMembership, LocalGossipBridge, LocalPeerViews, LocalSeenSet } from './in-process-fleet-state.ts'
export { openFleetRedis, RedisBatchRefusedError, RedisCommandTimeoutError } from './redis-connection.ts'
export type { CommandResult, FleetRedis, OpenFleetRedisOptions, RedisClient, RedisMode } from './redis-connection.ts'
export { fleetKeys, SEEN_SHARDS, seenShardOf } from './keys.ts'
export type { FleetKeys } from './keys.ts'
export { RedisSeenSet } from './seen-set.ts'
export type { ClaimResult, RedisSeenSetInit, SeenSet, SeenSetStats, SeenState } from './seen-set.ts'
export { MISSED_BEATS, RedisFleetMembership } from './membership.ts'
export type { FleetMembership, FleetWorker, RedisFleetMembershipInit, WorkerRecord, WorkerRecordFields } from './membership.ts'
export { InvalidFleetCursorError, LocalPeerTable, RedisPeerViews } from './peer-views.ts'
export type { FleetPeer, FleetViewPage, PeerConnection, PeerViewEntry, PeerViews, RedisPeerViewsInit, SeedCandidate } from './peer-views.ts'
export { RedisBanSync } from './ban-sync.ts'
export { LocalAccountSync, parseAccountEvent, RedisAccountSync } from './account-sync.ts'
export type { AccountChange, AccountsChanged, AccountSync, RedisAccountSyncInit } from './account-sync.ts'
export type { BanSync, RedisBanSyncInit } from './ban-sync.ts'
export { decodeBridgeFrame, encodeBridgeFrame, MAX_BRIDGE_FRAME_BYTES, RedisGossipBridge } from './gossip-bridge.ts'
export type { BridgeFrameError, BridgeMessage, GossipBridge, RedisGossipBridgeInit } from './gossip-bridge.ts'
export { BRIDGE_DIRECTIONS, MALFORMED_SOURCES, REDIS_OPERATIONS, RELAY_SLOT_RESULTS, SEEN_CLAIM_RESULTS } from './fleet-metrics-hooks.ts'
export type { BridgeDirection, FleetMetricsHooks, MalformedSource, RedisOperation, RelaySlotResult, SeenClaimResult } from './fleet-metrics-hooks.ts'
export { LocalRelaySlots, RedisRelaySlots } from './relay-slots.ts'
export type { RedisRelaySlotsInit, RelaySlots, RelaySlotsInit, SlotResult } from './relay-slots.ts'
