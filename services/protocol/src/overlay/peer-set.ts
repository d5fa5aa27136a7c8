import type { PeerKey } from './messages.ts'
import { randomInt } from './rng.ts'
import type { Rng } from './rng.ts'

/**
 * A set of peers with O(1) add, delete and uniform random choice: an array plus an index.
 * Deletion moves the last element into the hole, so the order is deterministic but not
 * insertion order. Views are small (tens of peers); this keeps random choice allocation-free.
 */
export class PeerSet {
  readonly #items: PeerKey[] = []
  readonly #index = new Map<PeerKey, number>()

  get size(): number {
    return this.#items.length
  }

  has(peer: PeerKey): boolean {
    return this.#index.has(peer)
  }

  /** Returns false if the peer was already present. */
  add(peer: PeerKey): boolean {
    if (this.#index.has(peer)) return false
    this.#index.set(peer, this.#items.length)
    this.#items.push(peer)
    return true
  }

  /** Returns false if the peer was absent. */
  delete(peer: PeerKey): boolean {
    const at = this.#index.get(peer)
    if (at === undefined) return false
    const last = this.#items.pop() as PeerKey
    if (last !== peer) {
      this.#items[at] = last
      this.#index.set(last, at)
    }
    this.#index.delete(peer)
    return true
  }

  clear(): void {
    this.#items.length = 0
    this.#index.clear()
  }

  /** The members, in set order. The array is live: copy it before changing the set. */
  values(): readonly PeerKey[] {
    return this.#items
  }

  /** A uniformly chosen member other than `a` and `b`, or undefined if there is none. */
  random(rng: Rng, a?: PeerKey, b?: PeerKey): PeerKey | undefined {
    const items = this.#items
    let excluded = 0
    if (a !== undefined && this.#index.has(a)) excluded++
    if (b !== undefined && b !== a && this.#index.has(b)) excluded++
    const candidates = items.length - excluded
    if (candidates <= 0) return undefined
    let k = randomInt(rng, candidates)
    for (const peer of items) {
      if (peer === a || peer === b) continue
      if (k === 0) return peer
      k--
    }
    return undefined
  }
}
