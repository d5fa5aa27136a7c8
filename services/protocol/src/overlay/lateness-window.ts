/**
 * How late eager copies have been recently: the most any came after the first IHAVE of the
 * same message, over a sliding window. Plumtree waits at least that long (with a margin) before
 * it GRAFTs an announced message, so that a node whose eager path is slow (a loaded worker, a
 * queue behind a busy link) is not taken for a lost copy. The paper (§3.6) fixes the timeout at
 * deployment ("the diameter of the overlay and a target recovery latency"); measured on 100
 * libp2p nodes at 50 messages a second, a fixed 1 s timeout pulled copies that were late, not
 * lost, and each pull added a tree link.
 *
 * The window is kept as the maximum per bucket of `bucketMs`, over `buckets` buckets: old
 * lateness is forgotten within `bucketMs × buckets`, and reading it is O(buckets).
 */
export class LatenessWindow {
  readonly #bucketMs: number
  readonly #maxima: Float64Array
  /** The bucket (time ÷ bucketMs) each slot holds. */
  readonly #indices: Float64Array

  constructor(bucketMs: number, buckets: number) {
    this.#bucketMs = bucketMs
    this.#maxima = new Float64Array(buckets)
    this.#indices = new Float64Array(buckets).fill(-1)
  }

  /** An eager copy came `lateMs` after the first announcement of its message, at `now`. */
  record(now: number, lateMs: number): void {
    const bucket = Math.floor(now / this.#bucketMs)
    const slot = bucket % this.#maxima.length
    if (this.#indices[slot] !== bucket) {
      this.#indices[slot] = bucket
      this.#maxima[slot] = 0
    }
    this.#maxima[slot] = Math.max(this.#maxima[slot] as number, lateMs)
  }

  /** The most any copy was late within the window ending at `now` (0 if none was). */
  max(now: number): number {
    const bucket = Math.floor(now / this.#bucketMs)
    let max = 0
    for (let slot = 0; slot < this.#maxima.length; slot++) {
      const index = this.#indices[slot] as number
      if (index >= 0 && bucket - index < this.#maxima.length) max = Math.max(max, this.#maxima[slot] as number)
    }
    return max
  }
}
