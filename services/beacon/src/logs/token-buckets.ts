/**
 * One token bucket per key (an author, a peer): `capacity` tokens at most, refilled at
 * `perMinute`; each `take` spends one. A bucket is remembered only while it is not full: a
 * full bucket is what an unknown key gets, so it is forgotten once it would have refilled,
 * and at most `maxKeys` are held (the oldest written go first, which only ever lets that
 * key start again from full).
 */
import { TtlLru } from '../fleet/ttl-lru.ts'

export interface TokenBucketsOptions {
  /** Tokens a bucket holds when full: the burst. */
  capacity: number
  /** Tokens added per minute, up to `capacity`. */
  perMinute: number
  /** Buckets remembered at most. @default 100000 */
  maxKeys?: number
}

interface Bucket {
  tokens: number
  at: number
}

const MINUTE_MS = 60_000

export class TokenBuckets {
  private readonly capacity: number
  private readonly perMs: number
  private readonly buckets: TtlLru<Bucket>

  constructor (options: TokenBucketsOptions) {
    if (!(options.capacity >= 1) || !(options.perMinute > 0)) throw new RangeError(`a token bucket needs capacity ≥ 1 and a positive refill, not ${options.capacity} and ${options.perMinute}/min`)
    this.capacity = options.capacity
    this.perMs = options.perMinute / MINUTE_MS
    this.buckets = new TtlLru(options.maxKeys ?? 100_000)
  }

  /** Buckets refilled at `perMinute` with a burst of ten seconds' worth (at least one): per-client and per-author request rates. */
  static perMinute (perMinute: number): TokenBuckets {
    return new TokenBuckets({ capacity: Math.max(1, Math.ceil(perMinute / 6)), perMinute })
  }

  /** Spends one of `key`'s tokens; false (and nothing spent) when it has none. */
  take (key: string, now = Date.now()): boolean {
    const bucket = this.buckets.get(key, now)
    const tokens = bucket === undefined ? this.capacity : Math.min(this.capacity, bucket.tokens + (now - bucket.at) * this.perMs)
    if (tokens < 1) {
      this.remember(key, tokens, now)
      return false
    }
    this.remember(key, tokens - 1, now)
    return true
  }

  /** How long until `key` has a token again (0 if it has one now). */
  msUntilToken (key: string, now = Date.now()): number {
    const bucket = this.buckets.get(key, now)
    if (bucket === undefined) return 0
    const tokens = Math.min(this.capacity, bucket.tokens + (now - bucket.at) * this.perMs)
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / this.perMs)
  }

  private remember (key: string, tokens: number, now: number): void {
    const untilFull = Math.ceil((this.capacity - tokens) / this.perMs)
    if (untilFull <= 0) this.buckets.delete(key)
    else this.buckets.set(key, { tokens, at: now }, untilFull, now)
  }
}
