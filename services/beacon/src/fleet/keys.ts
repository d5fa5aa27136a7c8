/**
 * Every Redis key and channel name of the fleet, built from the configured prefix
 * (PHAROS_REDIS_PREFIX, default `pharos:`) in this one place; docs/fleet.md lists the same.
 *
 * Keys that one command, MULTI or pipeline touches together carry the same Redis Cluster
 * hash tag (the first `{...}` of a key), so they land in one slot: on a single Redis a tag
 * is just part of the name, on a Cluster it is what keeps those commands legal (no
 * CROSSSLOT). The prefix holds no braces (the config refuses them), so the tag written
 * here is always the key's first one.
 *
 * Channels are not keys: classic PUBLISH reaches every subscriber on every Cluster node,
 * so they need no tag.
 */

/**
 * Seen message IDs are spread over this many hash-tagged shards: one pipeline per shard
 * keeps a Cluster legal and spreads the load over its nodes. Every worker of a fleet must
 * agree on it (it decides an ID's key), so it is a constant, not an option (guess: 16 shards
 * cover clusters of up to 16 primaries evenly enough).
 */
export const SEEN_SHARDS = 16

export interface FleetKeys {
  readonly prefix: string
  /** STRING per message ID, `<workerId>` while claimed, `done` once handled; PX TTL. Tag `{seen:<shard>}`. */
  seen: (shard: number, messageId: string) => string
  /** ZSET of worker peer IDs scored by their last heartbeat (ms since epoch). Tag `{fleet}`. */
  workers: () => string
  /** STRING, one worker's JSON record; PX 3 × heartbeat. Tag `{fleet}`, with the index. */
  worker: (workerPeerId: string) => string
  /** HASH, one worker's peer view: peer ID → JSON entry; PX TTL renewed by its flushes. Tag `{peers:<workerPeerId>}`. */
  peerView: (workerPeerId: string) => string
  /** HASH of banned peers: peer ID → JSON `{ reason, by, at }`; no TTL (Postgres is the durable copy). Tag `{bans}`. */
  bans: () => string
  /** Channel: JSON ban and unban events. */
  banEvents: () => string
  /** Channel: JSON account events (account-sync.ts): which account was added or removed, by which worker. */
  accountEvents: () => string
  /** Channel: binary gossip bridge frames (gossip-bridge.ts). */
  bridge: () => string
  /** ZSET, one account's relay slots: worker peer ID → slot expiry (ms since epoch); PX reservation TTL. Tag `{relay:<account>}`. */
  relaySlots: (account: string) => string
}

export function fleetKeys (prefix: string): FleetKeys {
  if (prefix.includes('{') || prefix.includes('}')) throw new RangeError(`Redis prefix ${prefix} holds a brace; hash tags follow the prefix`)
  return {
    prefix,
    seen: (shard, messageId) => `${prefix}{seen:${shard}}:${messageId}`,
    workers: () => `${prefix}{fleet}:workers`,
    worker: (workerPeerId) => `${prefix}{fleet}:worker:${workerPeerId}`,
    peerView: (workerPeerId) => `${prefix}{peers:${workerPeerId}}:view`,
    bans: () => `${prefix}{bans}:peers`,
    banEvents: () => `${prefix}bans`,
    accountEvents: () => `${prefix}accounts`,
    bridge: () => `${prefix}bridge`,
    relaySlots: (account) => `${prefix}{relay:${account}}:slots`
  }
}

/**
 * The shard of a message ID: FNV-1a (32 bit) of its UTF-16 code units, modulo SEEN_SHARDS.
 * Any worker computes the same shard for the same ID, which is all that matters.
 */
export function seenShardOf (messageId: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < messageId.length; i++) {
    hash ^= messageId.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % SEEN_SHARDS
}
