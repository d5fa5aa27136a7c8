/**
 * Keys in arrival order, for expiring the oldest entries of a map. A JavaScript Map is ordered
 * too, but deleting at its front and then iterating from its start walks every deleted slot
 * until the map is rehashed: at 100 messages a second, expiring the payload cache that way cost
 * more than all of Plumtree's other work (measured in the simulator). This queue pops in O(1).
 *
 * Each entry carries the time it arrived and the sequence number its map entry was stored with;
 * a key stored again (or deleted) leaves a stale entry here, which the owner recognises by the
 * number and skips. Stamps and times are kept in typed arrays: a simulated node holds thousands
 * of entries, and a thousand nodes' worth of plain arrays kept the garbage collector busy.
 */
export class ArrivalQueue<K> {
  #keys: K[] = []
  #stamps = new Float64Array(16)
  #times = new Float64Array(16)
  #head = 0

  get length(): number {
    return this.#keys.length - this.#head
  }

  push(key: K, stamp: number, at: number): void {
    const index = this.#keys.length
    if (index >= this.#stamps.length) {
      this.#stamps = grow(this.#stamps)
      this.#times = grow(this.#times)
    }
    this.#keys.push(key)
    this.#stamps[index] = stamp
    this.#times[index] = at
  }

  /** The oldest key (check `length` first). */
  headKey(): K {
    return this.#keys[this.#head] as K
  }

  /** The oldest key's stamp (check `length` first). */
  headStamp(): number {
    return this.#stamps[this.#head] as number
  }

  /** When the oldest key arrived (check `length` first). */
  headTime(): number {
    return this.#times[this.#head] as number
  }

  shift(): void {
    if (this.#head >= this.#keys.length) return
    this.#head++
    // Compact once the consumed prefix is most of the entries, so memory stays O(live entries).
    if (this.#head >= 1024 && this.#head * 2 >= this.#keys.length) {
      const live = this.#keys.length - this.#head
      this.#keys = this.#keys.slice(this.#head)
      this.#stamps.copyWithin(0, this.#head, this.#head + live)
      this.#times.copyWithin(0, this.#head, this.#head + live)
      this.#head = 0
    }
  }
}

function grow(array: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> {
  const bigger = new Float64Array(array.length * 2)
  bigger.set(array)
  return bigger
}
