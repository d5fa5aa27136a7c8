import type { PeerKey } from './messages.ts'
import { PeerSet } from './peer-set.ts'
import type { Rng } from './rng.ts'

/**
 * HyParView's passive view, remembering who named each entry. An entry that a third party
 * put there (the neighbour that handed us a SHUFFLE, a SHUFFLEREPLY or a FORWARDJOIN) is
 * counted against that neighbour, so a cap can keep one neighbour to a bounded share of the
 * view (see HyParViewConfig.maxPassiveShare). Entries that vouch for themselves (a peer that
 * asked to be our neighbour, one we evicted) and peers learnt out of band have no source and
 * count against nobody.
 */
export class PassiveView {
  readonly #peers = new PeerSet()
  readonly #sourceOf = new Map<PeerKey, PeerKey>()
  readonly #bySource = new Map<PeerKey, PeerSet>()

  get size(): number {
    return this.#peers.size
  }

  has(peer: PeerKey): boolean {
    return this.#peers.has(peer)
  }

  /** The members, in set order. The array is live: copy it before changing the view. */
  values(): readonly PeerKey[] {
    return this.#peers.values()
  }

  /** A uniformly chosen member other than `a` and `b`. */
  random(rng: Rng, a?: PeerKey, b?: PeerKey): PeerKey | undefined {
    return this.#peers.random(rng, a, b)
  }

  /** How many members `source` named. */
  countFrom(source: PeerKey): number {
    return this.#bySource.get(source)?.size ?? 0
  }

  /** A uniformly chosen member that `source` named. */
  randomFrom(rng: Rng, source: PeerKey): PeerKey | undefined {
    return this.#bySource.get(source)?.random(rng)
  }

  /** Adds `peer`, named by `source` (none: it vouched for itself). False if already present. */
  add(peer: PeerKey, source?: PeerKey): boolean {
    if (!this.#peers.add(peer)) return false
    if (source !== undefined) {
      this.#sourceOf.set(peer, source)
      let named = this.#bySource.get(source)
      if (named === undefined) {
        named = new PeerSet()
        this.#bySource.set(source, named)
      }
      named.add(peer)
    }
    return true
  }

  delete(peer: PeerKey): boolean {
    if (!this.#peers.delete(peer)) return false
    const source = this.#sourceOf.get(peer)
    if (source !== undefined) {
      this.#sourceOf.delete(peer)
      const named = this.#bySource.get(source)
      named?.delete(peer)
      if (named?.size === 0) this.#bySource.delete(source)
    }
    return true
  }

  clear(): void {
    this.#peers.clear()
    this.#sourceOf.clear()
    this.#bySource.clear()
  }
}
