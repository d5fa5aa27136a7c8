import type { BanReason } from '../bans/ban-list.ts'
import { LocalAccountSync } from './account-sync.ts'
import type { BanSync } from './ban-sync.ts'
import type { FleetState, InProcessFleetStateOptions } from './fleet-state.ts'
import type { BridgeMessage, GossipBridge } from './gossip-bridge.ts'
import type { FleetMembership, FleetWorker, WorkerRecordFields } from './membership.ts'
import { LocalPeerTable, localViewPage } from './peer-views.ts'
import type { FleetViewPage, PeerConnection, PeerViews, SeedCandidate } from './peer-views.ts'
import { LocalRelaySlots } from './relay-slots.ts'
import type { ClaimResult, SeenSet, SeenState } from './seen-set.ts'
import { TtlLru } from './ttl-lru.ts'
import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'

/**
 * IDs the in-process seen set holds at most (guess: 10 minutes of ~300 messages/s). Past
 * it the oldest are forgotten early; Postgres unique keys still stop duplicates.
 */
const IN_PROCESS_SEEN_ENTRIES = 200_000

/** The seen set of a worker alone: a TTL map. */
export class LocalSeenSet implements SeenSet {
  private readonly entries = new TtlLru<'claimed' | 'done'>(IN_PROCESS_SEEN_ENTRIES)
  private readonly seenTtlMs: number
  private readonly claimTtlMs: number
  private readonly metrics: Pick<FleetMetricsHooks, 'seenClaims'> | undefined

  constructor (options: { seenTtlMs: number, claimTtlMs: number, metrics?: Pick<FleetMetricsHooks, 'seenClaims'> }) {
    this.seenTtlMs = options.seenTtlMs
    this.claimTtlMs = options.claimTtlMs
    this.metrics = options.metrics
  }

  async claim (messageId: string): Promise<ClaimResult> {
    const result: ClaimResult = this.entries.get(messageId) === undefined ? 'claimed' : 'seen'
    if (result === 'claimed') this.entries.set(messageId, 'claimed', this.claimTtlMs)
    this.metrics?.seenClaims.inc({ result })
    return result
  }

  async claimMany (messageIds: readonly string[]): Promise<ClaimResult[]> {
    return await Promise.all(messageIds.map(async (messageId) => await this.claim(messageId)))
  }

  async complete (messageId: string): Promise<void> {
    this.entries.set(messageId, 'done', this.seenTtlMs)
  }

  async states (messageIds: readonly string[]): Promise<Map<string, SeenState>> {
    return new Map(messageIds.map((id) => [id, this.entries.get(id) ?? 'absent']))
  }
}

/** Membership of a worker alone: itself. */
export class LocalFleetMembership implements FleetMembership {
  private readonly self: () => FleetWorker

  constructor (options: { workerId: string, workerName: string, record: () => WorkerRecordFields, metrics?: Pick<FleetMetricsHooks, 'fleetWorkers'> }) {
    const startedAt = Date.now()
    this.self = () => ({ name: options.workerName, peerId: options.workerId, startedAt, heartbeatAt: Date.now(), ...options.record(), stale: false })
    options.metrics?.fleetWorkers.set(1)
  }

  async list (): Promise<FleetWorker[]> {
    return [this.self()]
  }

  async leave (): Promise<void> {}
}

/**
 * Expiring disconnected peers scans the whole table: do it at most this often, not on every
 * disconnect, which made a burst of disconnects quadratic (500 at 10k peers: 5M steps).
 * Retention is minutes, so a second late is nothing (guess).
 */
const EXPIRE_EVERY_MS = 1000

/** Peer views of a worker alone: its own table, retention applied as it is read. */
export class LocalPeerViews implements PeerViews {
  private readonly table = new LocalPeerTable()
  private lastExpiry = 0
  private readonly self: { name: string, peerId: string }
  private readonly retentionMs: number
  private readonly metrics: Pick<FleetMetricsHooks, 'fleetPeers'> | undefined

  constructor (options: { workerId: string, workerName: string, retentionMs: number, metrics?: Pick<FleetMetricsHooks, 'fleetPeers'> }) {
    this.self = { name: options.workerName, peerId: options.workerId }
    this.retentionMs = options.retentionMs
    this.metrics = options.metrics
  }

  connected (peerId: string, connection: PeerConnection): void {
    this.table.connected(peerId, connection)
    this.metrics?.fleetPeers.set(this.table.connectedPeers)
  }

  disconnected (peerId: string): void {
    this.table.disconnected(peerId)
    const now = Date.now()
    if (now - this.lastExpiry >= EXPIRE_EVERY_MS) {
      this.lastExpiry = now
      this.table.expire(this.retentionMs, now)
    }
    this.metrics?.fleetPeers.set(this.table.connectedPeers)
  }

  async locate (peerId: string): Promise<SeedCandidate | undefined> {
    const entry = this.table.get(peerId)
    return entry?.connected === true && entry.addrs.length > 0 ? { peerId, addrs: entry.addrs, workerPeerId: this.self.peerId } : undefined
  }

  async fleetView (page: { limit: number, cursor?: string }): Promise<FleetViewPage> {
    this.table.expire(this.retentionMs)
    return localViewPage(this.table, this.self, Math.max(1, Math.floor(page.limit)), page.cursor, false)
  }

  /** No other worker: nobody to seed from. */
  async seedCandidates (_limit: number, _excludeWorker?: string): Promise<SeedCandidate[]> {
    return []
  }
}

/** Bans of a worker alone: BanList already has them; nobody else to tell. */
export class LocalBanSync implements BanSync {
  async announce (_peer: string, _reason: BanReason): Promise<boolean> { return false }
  async unannounce (_peer: string): Promise<boolean> { return false }
  onRemoteBan (_listener: (peer: string, reason: BanReason) => void): () => void { return () => {} }
  onRemoteUnban (_listener: (peer: string) => void): () => void { return () => {} }
}

/** The bridge of a worker alone: no other worker to deliver to. */
export class LocalGossipBridge implements GossipBridge {
  async publish (_topic: string, _messageId: string, _payload: Uint8Array): Promise<boolean> { return false }
  onMessage (_listener: (message: BridgeMessage) => void): () => void { return () => {} }
}

/**
 * Fleet state of a worker without Redis (embedded, or Postgres alone: one worker per
 * database, which single-worker-lock.ts enforces). The same interfaces as the Redis
 * state, so the worker is wired one way in every mode.
 */
export function startInProcessFleetState (options: InProcessFleetStateOptions): FleetState {
  const { workerId, workerName, metrics } = options
  return {
    mode: 'in-process',
    redis: undefined,
    seen: new LocalSeenSet({ seenTtlMs: options.seenTtlMs, claimTtlMs: options.seenClaimTtlMs, metrics }),
    membership: new LocalFleetMembership({ workerId, workerName, record: options.record, metrics }),
    peerViews: new LocalPeerViews({ workerId, workerName, retentionMs: options.peerViewRetentionMs, metrics }),
    bans: new LocalBanSync(),
    accounts: new LocalAccountSync(),
    bridge: new LocalGossipBridge(),
    relaySlots: new LocalRelaySlots({ workerId, ...options.relaySlots, metrics }),
    async stop () {}
  }
}
