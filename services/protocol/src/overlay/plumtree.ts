/**
 * Plumtree dissemination (Leitão, Pereira, Rodrigues: "Epidemic Broadcast Trees", SRDS 2007),
 * one instance per topic, IO-free. Section numbers in the comments refer to the paper.
 *
 * Payloads travel along a spanning tree of *eager* links; every other active link is *lazy* and
 * carries only message IDs (IHAVE), batched every {@link PlumtreeConfig.ihaveIntervalMs} (seed).
 * A duplicate payload makes its link lazy (PRUNE); an announced message that does not arrive in
 * time makes the announcer's link eager (GRAFT). The tree is optimised by swapping an eager link
 * for a lazy one whose path is {@link PlumtreeConfig.optimizationThreshold} hops shorter (§3.8).
 *
 * The peer sets always stay within HyParView's active view: the topic calls
 * {@link Plumtree.neighborUp} and {@link Plumtree.neighborDown}.
 */
import {
  GRAFT_RETRY_TIMEOUT_MS,
  GRAFT_TIMEOUT_MS,
  IHAVE_INTERVAL_MS,
  MAX_ANNOUNCERS_PER_MESSAGE,
  MAX_IHAVE_BATCH,
  MAX_MISSING_MESSAGES,
  MAX_PAYLOAD_BYTES,
  MAX_ROUND,
  MESSAGE_CACHE_MAX_BYTES,
  MESSAGE_CACHE_MAX_ENTRIES,
  MESSAGE_CACHE_TTL_MS,
  OPTIMIZATION_THRESHOLD,
  SEEN_MAX_ENTRIES,
  SEEN_TTL_MS
} from './constants.ts'
import { PayloadTooLargeError, requireInteger } from './errors.ts'
import { assertNever } from './messages.ts'
import type { Action, GossipMessage, IHaveEntry, MessageId, PeerKey, PlumtreeMessage } from './messages.ts'

/** Plumtree options. */
export interface PlumtreeConfig {
  /**
   * Period of the lazy-push IHAVE batches.
   * @default 500 (seed)
   */
  ihaveIntervalMs: number
  /**
   * Wait after the first IHAVE of a missing message before the first GRAFT (§3.6).
   * @default 1000 (guess)
   */
  graftTimeoutMs: number
  /**
   * Wait after each GRAFT before asking the next announcer (§3.6).
   * @default 500 (guess)
   */
  graftRetryTimeoutMs: number
  /**
   * Hops a lazy path must save over the eager one for the two to swap (§3.8).
   * @default 4 (seed)
   */
  optimizationThreshold: number
  /**
   * Payloads kept to answer GRAFTs, by count.
   * @default 1024 (guess)
   */
  messageCacheMaxEntries: number
  /**
   * Payloads kept to answer GRAFTs, by their total bytes; the oldest are dropped past it.
   * @default 8388608 (guess: constants.ts)
   */
  messageCacheMaxBytes: number
  /**
   * Payloads kept to answer GRAFTs, by age (ms). A `cacheExpiry` timer enforces it while the
   * topic is quiet.
   * @default 60000 (guess)
   */
  messageCacheTtlMs: number
  /**
   * Message IDs remembered for duplicate detection, by count.
   * @default 65536 (guess)
   */
  seenMaxEntries: number
  /**
   * Message IDs remembered for duplicate detection, by age (ms).
   * @default 300000 (guess)
   */
  seenTtlMs: number
  /**
   * Most IDs per IHAVE message; longer batches are split. Keep it at or below the receivers'
   * wire limit (`maxIHaveEntries`).
   * @default 1024 (guess)
   */
  maxIHaveBatch: number
  /**
   * Most announced-but-missing messages tracked at once.
   * @default 4096 (guess)
   */
  maxMissingMessages: number
  /**
   * Most announcers remembered per missing message.
   * @default 8 (guess)
   */
  maxAnnouncersPerMessage: number
  /**
   * Largest payload this node broadcasts.
   * @default 1048576 (guess)
   */
  maxPayloadBytes: number
  /**
   * Hop counts are clamped to this.
   * @default 1024 (guess)
   */
  maxRound: number
}

export const DEFAULT_PLUMTREE_CONFIG: Readonly<PlumtreeConfig> = Object.freeze({
  ihaveIntervalMs: IHAVE_INTERVAL_MS,
  graftTimeoutMs: GRAFT_TIMEOUT_MS,
  graftRetryTimeoutMs: GRAFT_RETRY_TIMEOUT_MS,
  optimizationThreshold: OPTIMIZATION_THRESHOLD,
  messageCacheMaxEntries: MESSAGE_CACHE_MAX_ENTRIES,
  messageCacheMaxBytes: MESSAGE_CACHE_MAX_BYTES,
  messageCacheTtlMs: MESSAGE_CACHE_TTL_MS,
  seenMaxEntries: SEEN_MAX_ENTRIES,
  seenTtlMs: SEEN_TTL_MS,
  maxIHaveBatch: MAX_IHAVE_BATCH,
  maxMissingMessages: MAX_MISSING_MESSAGES,
  maxAnnouncersPerMessage: MAX_ANNOUNCERS_PER_MESSAGE,
  maxPayloadBytes: MAX_PAYLOAD_BYTES,
  maxRound: MAX_ROUND
})

/** Fills in defaults and checks ranges; throws {@link OverlayConfigError}. */
export function resolvePlumtreeConfig(partial: Partial<PlumtreeConfig> = {}): Readonly<PlumtreeConfig> {
  const config: PlumtreeConfig = { ...DEFAULT_PLUMTREE_CONFIG, ...partial }
  for (const key of Object.keys(DEFAULT_PLUMTREE_CONFIG) as Array<keyof PlumtreeConfig>) {
    requireInteger(`plumtree.${key}`, config[key], 1)
  }
  return Object.freeze(config)
}

interface SeenEntry {
  readonly at: number
}

interface CachedPayload {
  readonly at: number
  readonly round: number
  readonly payload: Uint8Array
}

interface Announcement {
  readonly peer: PeerKey
  readonly round: number
}

/** Read-only view of the dissemination state, for an admin API. */
export interface PlumtreeSnapshot {
  readonly eager: readonly PeerKey[]
  readonly lazy: readonly PeerKey[]
  readonly cachedMessages: number
  /** Bytes of the cached payloads. */
  readonly cachedBytes: number
  readonly missingMessages: number
}

/** Counters kept by the dissemination layer (message counts are kept by the topic). */
export interface PlumtreeStats {
  /** Broadcasts delivered to the application (first receipts). */
  delivered: number
  /** Payloads received again. */
  duplicates: number
  /** GRAFTs that asked for a missing payload. */
  graftRequests: number
  /** GRAFTs for a payload no longer cached. */
  graftMisses: number
  /** Missing messages given up after every announcer was asked. */
  graftsAbandoned: number
  /** Tree optimisations: an eager link swapped for a shorter lazy one (§3.8). */
  treeSwaps: number
  /** IHAVE entries dropped because too many messages were missing. */
  missingOverflow: number
  /** Control messages from peers outside the active view, ignored. */
  ignored: number
  /** Cached payloads dropped before their age because the cache held messageCacheMaxBytes. */
  cacheEvictions: number
  /** Eager neighbours made lazy because the driver could not keep up sending to them. */
  congestions: number
}

export class Plumtree {
  readonly #config: Readonly<PlumtreeConfig>
  readonly #isNeighbor: (peer: PeerKey) => boolean
  readonly #eager = new Set<PeerKey>()
  readonly #lazy = new Set<PeerKey>()
  /** Insertion order is arrival order, so expiry only looks at the front. */
  readonly #seen = new Map<MessageId, SeenEntry>()
  readonly #cache = new Map<MessageId, CachedPayload>()
  #cacheBytes = 0
  /** A `cacheExpiry` timer is pending. */
  #expiryArmed = false
  readonly #missing = new Map<MessageId, Announcement[]>()
  readonly #lazyQueue = new Map<PeerKey, IHaveEntry[]>()
  #flushArmed = false
  readonly stats: PlumtreeStats = {
    delivered: 0, duplicates: 0, graftRequests: 0, graftMisses: 0, graftsAbandoned: 0, treeSwaps: 0, missingOverflow: 0, ignored: 0, cacheEvictions: 0, congestions: 0
  }

  constructor(config: Readonly<PlumtreeConfig>, isNeighbor: (peer: PeerKey) => boolean) {
    this.#config = config
    this.#isNeighbor = isNeighbor
  }

  /** A new active neighbour starts eager (§3.4): the first duplicate will prune it. */
  neighborUp(peer: PeerKey): void {
    this.#lazy.delete(peer)
    this.#eager.add(peer)
  }

  /** §3.7: forget a departed neighbour, its queued announcements and its announcements to us. */
  neighborDown(peer: PeerKey): void {
    this.#eager.delete(peer)
    this.#lazy.delete(peer)
    this.#lazyQueue.delete(peer)
    for (const [id, announcers] of this.#missing) {
      const kept = announcers.filter((a) => a.peer !== peer)
      if (kept.length !== announcers.length) this.#missing.set(id, kept)
    }
  }

  /**
   * §3.3 broadcast: eager push to eager peers, lazy push to lazy ones. Our own broadcasts are not
   * delivered back to us. Returns false (and does nothing) if the ID was already seen.
   */
  broadcast(id: MessageId, payload: Uint8Array, now: number, out: Action[]): boolean {
    if (payload.length > this.#config.maxPayloadBytes) throw new PayloadTooLargeError(payload.length, this.#config.maxPayloadBytes)
    this.#expire(now)
    if (this.#seen.has(id)) return false
    this.#remember(id, 0, payload, now)
    this.#push(id, 1, payload, undefined, out)
    this.#armExpiry(now, out)
    return true
  }

  /** The `cacheExpiry` timer: drop what outlived its age bound, and arm the timer for the next. */
  onCacheExpiry(now: number, out: Action[]): void {
    this.#expiryArmed = false
    this.#expire(now)
    this.#armExpiry(now, out)
  }

  /**
   * The driver cannot keep up sending to `peer`: no more eager pushes to it. Lazy push still
   * announces every message, so nothing is lost to it; its GRAFT makes the link eager again
   * (§3.6), which is what a neighbour that reads again does.
   */
  congested(peer: PeerKey): void {
    if (!this.#eager.has(peer)) return
    this.#makeLazy(peer)
    this.stats.congestions++
  }

  /** `neighbor` is whether `from` is in the active view (the topic asks HyParView). */
  handleMessage(from: PeerKey, message: PlumtreeMessage, neighbor: boolean, now: number, out: Action[]): void {
    this.#expire(now)
    if (message.type === 'gossip') {
      this.#onGossip(from, message, neighbor, now, out)
      return
    }
    if (!neighbor) {
      // Control messages only make sense on an active link; one may still be in flight after
      // the link was dropped.
      this.stats.ignored++
      return
    }
    switch (message.type) {
      case 'ihave': this.#onIHave(from, message.entries, out); return
      case 'graft': this.#onGraft(from, message.id, out); return
      case 'prune': this.#onPrune(from); return
      default: assertNever(message)
    }
  }

  /** The IHAVE batch timer: send every queued announcement, split at maxIHaveBatch. */
  onIHaveFlush(out: Action[]): void {
    this.#flushArmed = false
    const max = this.#config.maxIHaveBatch
    for (const [peer, entries] of this.#lazyQueue) {
      if (entries.length <= max) {
        out.push({ type: 'send', to: peer, message: { type: 'ihave', entries } })
        continue
      }
      for (let i = 0; i < entries.length; i += max) {
        out.push({ type: 'send', to: peer, message: { type: 'ihave', entries: entries.slice(i, i + max) } })
      }
    }
    this.#lazyQueue.clear()
  }

  /**
   * §3.6: an announced message has not arrived. GRAFT the next announcer still in the active view
   * (making its link eager) and wait a shorter time before asking the one after.
   */
  onGraftTimer(id: MessageId, out: Action[]): void {
    const announcers = this.#missing.get(id)
    if (announcers === undefined) return
    let next = announcers.shift()
    while (next !== undefined && !this.#isNeighbor(next.peer)) next = announcers.shift()
    if (next === undefined) {
      this.#missing.delete(id)
      this.stats.graftsAbandoned++
      return
    }
    this.#makeEager(next.peer)
    this.stats.graftRequests++
    out.push({ type: 'send', to: next.peer, message: { type: 'graft', id } })
    out.push({ type: 'timer', after: this.#config.graftRetryTimeoutMs, timer: { type: 'graft', messageId: id } })
  }

  snapshot(): PlumtreeSnapshot {
    return {
      eager: [...this.#eager],
      lazy: [...this.#lazy],
      cachedMessages: this.#cache.size,
      cachedBytes: this.#cacheBytes,
      missingMessages: this.#missing.size
    }
  }

  // ---- message handlers ----------------------------------------------------------------------

  /**
   * §3.3: deliver and forward a first receipt; a duplicate closes a cycle, so its link goes lazy.
   * A payload from a peer outside the active view (sent just before the link was dropped) is
   * still delivered, but changes no peer set.
   */
  #onGossip(from: PeerKey, message: GossipMessage, neighbor: boolean, now: number, out: Action[]): void {
    const { id, payload } = message
    if (this.#seen.has(id)) {
      this.stats.duplicates++
      if (neighbor) {
        this.#makeLazy(from)
        out.push({ type: 'send', to: from, message: { type: 'prune' } })
      }
      return
    }
    const round = Math.min(message.round, this.#config.maxRound)
    const announcers = this.#missing.get(id)
    this.#missing.delete(id)
    this.#remember(id, round, payload, now)
    this.stats.delivered++
    out.push({ type: 'deliver', messageId: id, payload, from, round })
    if (neighbor) this.#makeEager(from)
    this.#push(id, round + 1, payload, from, out)
    // §3.8 (the paper's place for it): IHAVEs that arrived before the payload.
    if (neighbor && announcers !== undefined) {
      let best: Announcement | undefined
      for (const a of announcers) {
        if (a.peer !== from && this.#lazy.has(a.peer) && (best === undefined || a.round < best.round)) best = a
      }
      if (best !== undefined) this.#optimize(best.peer, best.round, from, round, out)
    }
    this.#armExpiry(now, out)
  }

  /**
   * §3.6: remember announcers of messages we lack and start a GRAFT timer for each new one.
   * Announcements of messages we already have are ignored. The seed's wording would also swap
   * links when such a late IHAVE shows a shorter path, but by then (up to a batch interval later,
   * with other nodes swapping too) the tree may have changed, and the swap can split it: measured,
   * a settled 1,000-node overlay (seed 2) broke into a forest, RMR 0.25, p99 latency 3 s. Only the
   * paper's rule (§3.8, at first receipt) is used.
   */
  #onIHave(from: PeerKey, entries: readonly IHaveEntry[], out: Action[]): void {
    for (const entry of entries) {
      if (this.#seen.has(entry.id)) continue
      const round = Math.min(entry.round, this.#config.maxRound)
      let announcers = this.#missing.get(entry.id)
      if (announcers === undefined) {
        if (this.#missing.size >= this.#config.maxMissingMessages) {
          this.stats.missingOverflow++
          continue
        }
        announcers = []
        this.#missing.set(entry.id, announcers)
        out.push({ type: 'timer', after: this.#config.graftTimeoutMs, timer: { type: 'graft', messageId: entry.id } })
      }
      if (announcers.length < this.#config.maxAnnouncersPerMessage && !announcers.some((a) => a.peer === from)) {
        announcers.push({ peer: from, round })
      }
    }
  }

  /** §3.6: the sender makes its link to us eager; with an ID it also wants that payload. */
  #onGraft(from: PeerKey, id: MessageId | null, out: Action[]): void {
    this.#makeEager(from)
    if (id === null) return
    const cached = this.#cache.get(id)
    if (cached === undefined) {
      this.stats.graftMisses++
      return
    }
    const message: GossipMessage = { type: 'gossip', id, round: Math.min(cached.round + 1, this.#config.maxRound), payload: cached.payload }
    out.push({ type: 'send', to: from, message })
  }

  /** §3.3: the sender got a duplicate from us; the link is lazy from now on. */
  #onPrune(from: PeerKey): void {
    this.#makeLazy(from)
  }

  // ---- helpers -------------------------------------------------------------------------------

  /**
   * §3.8: the lazy `shorter` peer announced message `id` at `round` hops before the payload came
   * from `longer` at `payloadRound`; if that saves at least the threshold, GRAFT `shorter` (without
   * asking for a payload) and PRUNE `longer`. The tree stays a tree: `shorter` cannot be below us,
   * since it had the message in fewer hops than we did.
   */
  #optimize(shorter: PeerKey, round: number, longer: PeerKey, payloadRound: number, out: Action[]): void {
    if (payloadRound - round < this.#config.optimizationThreshold) return
    this.stats.treeSwaps++
    this.#makeEager(shorter)
    out.push({ type: 'send', to: shorter, message: { type: 'graft', id: null } })
    this.#makeLazy(longer)
    out.push({ type: 'send', to: longer, message: { type: 'prune' } })
  }

  /** Eager push to every eager peer and queue announcements for every lazy one, except `except`. */
  #push(id: MessageId, round: number, payload: Uint8Array, except: PeerKey | undefined, out: Action[]): void {
    const hops = Math.min(round, this.#config.maxRound)
    if (this.#eager.size > 0) {
      const message: GossipMessage = { type: 'gossip', id, round: hops, payload }
      for (const peer of this.#eager) {
        if (peer !== except) out.push({ type: 'send', to: peer, message })
      }
    }
    if (this.#lazy.size === 0) return
    const entry: IHaveEntry = { id, round: hops }
    let queued = false
    for (const peer of this.#lazy) {
      if (peer === except) continue
      const queue = this.#lazyQueue.get(peer)
      if (queue === undefined) this.#lazyQueue.set(peer, [entry])
      else queue.push(entry)
      queued = true
    }
    if (queued && !this.#flushArmed) {
      this.#flushArmed = true
      out.push({ type: 'timer', after: this.#config.ihaveIntervalMs, timer: { type: 'ihaveFlush' } })
    }
  }

  #makeEager(peer: PeerKey): void {
    this.#lazy.delete(peer)
    this.#eager.add(peer)
  }

  #makeLazy(peer: PeerKey): void {
    this.#eager.delete(peer)
    this.#lazy.add(peer)
  }

  #remember(id: MessageId, round: number, payload: Uint8Array, now: number): void {
    this.#seen.set(id, { at: now })
    // The ID may still be cached after its seen entry expired (a seenTtlMs below the cache's).
    const previous = this.#cache.get(id)
    if (previous !== undefined) {
      this.#cache.delete(id)
      this.#cacheBytes -= previous.payload.length
    }
    this.#cache.set(id, { at: now, round, payload })
    this.#cacheBytes += payload.length
    this.#expire(now)
  }

  /**
   * Drops the oldest entries past their age or beyond the count bound, and cached payloads
   * beyond the byte bound (both maps are in arrival order).
   */
  #expire(now: number): void {
    const { seenTtlMs, seenMaxEntries, messageCacheTtlMs, messageCacheMaxEntries, messageCacheMaxBytes } = this.#config
    for (const [id, entry] of this.#seen) {
      if (this.#seen.size <= seenMaxEntries && now - entry.at < seenTtlMs) break
      this.#seen.delete(id)
    }
    for (const [id, entry] of this.#cache) {
      const overBytes = this.#cacheBytes > messageCacheMaxBytes
      if (!overBytes && this.#cache.size <= messageCacheMaxEntries && now - entry.at < messageCacheTtlMs) break
      if (overBytes && now - entry.at < messageCacheTtlMs) this.stats.cacheEvictions++
      this.#cache.delete(id)
      this.#cacheBytes -= entry.payload.length
    }
  }

  /**
   * Arms one `cacheExpiry` timer for when the oldest cached payload (or, once none is left,
   * the oldest remembered ID) outlives its age bound, so both are released on time even if
   * no message ever arrives again. At most one is pending; none while both are empty. Timers
   * are at least a tenth of the payload TTL apart, so a busy topic does not arm one per
   * message: a payload may outlive its TTL by that much.
   */
  #armExpiry(now: number, out: Action[]): void {
    if (this.#expiryArmed) return
    const oldestPayload = this.#cache.values().next().value
    const oldestSeen = this.#seen.values().next().value
    const due = oldestPayload !== undefined
      ? oldestPayload.at + this.#config.messageCacheTtlMs
      : oldestSeen === undefined ? undefined : oldestSeen.at + this.#config.seenTtlMs
    if (due === undefined) return
    this.#expiryArmed = true
    const granularity = Math.max(1, Math.ceil(this.#config.messageCacheTtlMs / 10))
    out.push({ type: 'timer', after: Math.max(granularity, due - now), timer: { type: 'cacheExpiry' } })
  }
}
