/**
 * A bounded map whose entries expire: a Map in write order, so the oldest write is evicted
 * first when full and expired entries are dropped as they are met. Every entry of one
 * cache has a TTL of the same order, so write order is close to expiry order.
 */
export class TtlLru<V> {
  private readonly maxEntries: number
  private readonly entries = new Map<string, { value: V, expiresAt: number }>()

  constructor (maxEntries: number) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new RangeError(`maxEntries must be a positive integer, not ${maxEntries}`)
    this.maxEntries = maxEntries
  }

  get (key: string, now = Date.now()): V | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      this.entries.delete(key)
      return undefined
    }
    return entry.value
  }

  set (key: string, value: V, ttlMs: number, now = Date.now()): void {
    // Delete first so the entry moves to the young end of the write order.
    this.entries.delete(key)
    this.entries.set(key, { value, expiresAt: now + ttlMs })
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break
      this.entries.delete(oldest)
    }
  }

  delete (key: string): void {
    this.entries.delete(key)
  }

  /** Entries held, expired ones not yet met included. */
  get size (): number {
    return this.entries.size
  }
}
