/**
 * What Plumtree remembers of messages: the IDs it has seen (for duplicates) and the payloads it
 * accepted (to answer GRAFTs), each bounded by count and age, payloads by bytes too, oldest
 * first. Expiry runs on every message, so it is made cheap: nothing happens until the next
 * entry is due or a bound is passed, and the oldest entries come off arrival queues, not off the
 * front of a Map (which walks every deleted slot until it is rehashed: at 100 messages a second
 * that cost more than the rest of Plumtree, measured in the simulator).
 */
import { ArrivalQueue } from './arrival-queue.ts'
import type { MessageId, PeerKey } from './messages.ts'

/** An accepted payload, kept for GRAFTs. */
export interface CachedPayload {
  readonly at: number
  /** Its stamp in the arrival queue. */
  readonly stamp: number
  readonly round: number
  readonly origin: PeerKey
  readonly payload: Uint8Array
}

export interface MessageStoreBounds {
  readonly seenMaxEntries: number
  readonly seenTtlMs: number
  readonly messageCacheMaxEntries: number
  readonly messageCacheMaxBytes: number
  readonly messageCacheTtlMs: number
}

export class MessageStore {
  readonly #bounds: MessageStoreBounds
  /** IDs seen, each with its stamp in `#seenOrder`, which has them oldest first. */
  readonly #seen = new Map<MessageId, number>()
  readonly #seenOrder = new ArrivalQueue<MessageId>()
  readonly #cache = new Map<MessageId, CachedPayload>()
  readonly #cacheOrder = new ArrivalQueue<MessageId>()
  /** Stamps entries of the two queues above. */
  #stamp = 0
  /** No seen ID or cached payload reaches its age bound before this. */
  #nextAgeExpiry = Infinity
  #cacheBytes = 0
  /** Cached payloads dropped before their age because the cache held messageCacheMaxBytes. */
  evictions = 0

  constructor(bounds: MessageStoreBounds) {
    this.#bounds = bounds
  }

  get cachedMessages(): number {
    return this.#cache.size
  }

  get cachedBytes(): number {
    return this.#cacheBytes
  }

  hasSeen(id: MessageId): boolean {
    return this.#seen.has(id)
  }

  see(id: MessageId, now: number): void {
    const stamp = this.#stamp++
    this.#seen.set(id, stamp)
    this.#seenOrder.push(id, stamp, now)
    this.#nextAgeExpiry = Math.min(this.#nextAgeExpiry, now + this.#bounds.seenTtlMs)
  }

  /** Forgets a seen ID (a rejected message's: a valid copy may still come under it). */
  unsee(id: MessageId): void {
    this.#seen.delete(id)
  }

  cached(id: MessageId): CachedPayload | undefined {
    return this.#cache.get(id)
  }

  /** Caches an accepted payload for GRAFTs (its ID is already seen). */
  cache(id: MessageId, round: number, origin: PeerKey, payload: Uint8Array, now: number): void {
    // The ID may still be cached after its seen entry expired (a seenTtlMs below the cache's).
    const previous = this.#cache.get(id)
    if (previous !== undefined) {
      this.#cache.delete(id)
      this.#cacheBytes -= previous.payload.length
    }
    const stamp = this.#stamp++
    this.#cache.set(id, { at: now, stamp, round, origin, payload })
    this.#cacheOrder.push(id, stamp, now)
    this.#nextAgeExpiry = Math.min(this.#nextAgeExpiry, now + this.#bounds.messageCacheTtlMs)
    this.#cacheBytes += payload.length
    this.expire(now)
  }

  /**
   * Drops the oldest entries past their age or beyond the count bound, and cached payloads
   * beyond the byte bound, oldest first.
   */
  expire(now: number): void {
    const { seenTtlMs, seenMaxEntries, messageCacheTtlMs, messageCacheMaxEntries, messageCacheMaxBytes } = this.#bounds
    // Called for every message: most calls find nothing to do, and return here.
    if (now < this.#nextAgeExpiry && this.#seen.size <= seenMaxEntries && this.#cache.size <= messageCacheMaxEntries && this.#cacheBytes <= messageCacheMaxBytes) return
    while (this.#seenOrder.length > 0) {
      const id = this.#seenOrder.headKey()
      if (this.#seen.get(id) === this.#seenOrder.headStamp()) {
        if (this.#seen.size <= seenMaxEntries && now - this.#seenOrder.headTime() < seenTtlMs) break
        this.#seen.delete(id)
      }
      this.#seenOrder.shift()
    }
    while (this.#cacheOrder.length > 0) {
      const id = this.#cacheOrder.headKey()
      const entry = this.#cache.get(id)
      if (entry !== undefined && entry.stamp === this.#cacheOrder.headStamp()) {
        const overBytes = this.#cacheBytes > messageCacheMaxBytes
        if (!overBytes && this.#cache.size <= messageCacheMaxEntries && now - entry.at < messageCacheTtlMs) break
        if (overBytes && now - entry.at < messageCacheTtlMs) this.evictions++
        this.#cache.delete(id)
        this.#cacheBytes -= entry.payload.length
      }
      this.#cacheOrder.shift()
    }
    // The heads may be stale queue entries, older than the live ones: that only brings the next
    // check forward.
    this.#nextAgeExpiry = Math.min(
      this.#seenOrder.length > 0 ? this.#seenOrder.headTime() + seenTtlMs : Infinity,
      this.#cacheOrder.length > 0 ? this.#cacheOrder.headTime() + messageCacheTtlMs : Infinity
    )
  }

  /**
   * When the oldest cached payload reaches its age bound or, once none is left, the oldest seen
   * ID; undefined when both are empty.
   */
  nextDue(): number | undefined {
    const oldestPayload = oldest((id) => this.#cache.get(id)?.stamp, this.#cacheOrder)
    if (oldestPayload !== undefined) return oldestPayload + this.#bounds.messageCacheTtlMs
    const oldestSeen = oldest((id) => this.#seen.get(id), this.#seenOrder)
    return oldestSeen === undefined ? undefined : oldestSeen + this.#bounds.seenTtlMs
  }
}

/** When the oldest live entry of a map arrived, per its arrival queue, skipping (and dropping) stale queue entries. */
function oldest(stampOf: (id: MessageId) => number | undefined, order: ArrivalQueue<MessageId>): number | undefined {
  while (order.length > 0) {
    if (stampOf(order.headKey()) === order.headStamp()) return order.headTime()
    order.shift()
  }
  return undefined
}
