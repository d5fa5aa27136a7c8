/**
 * Binary min-heap of simulator events ordered by (time, seq). `seq` is the insertion counter, so
 * events at the same millisecond run in the order they were scheduled: two messages sent on one
 * link arrive in order (links are FIFO streams), and a run is reproducible.
 */
export interface Scheduled {
  readonly time: number
  readonly seq: number
}

export class EventQueue<T extends Scheduled> {
  readonly #heap: T[] = []

  get size(): number {
    return this.#heap.length
  }

  /** Time of the earliest event, or Infinity. */
  peekTime(): number {
    return this.#heap[0]?.time ?? Infinity
  }

  push(event: T): void {
    const heap = this.#heap
    heap.push(event)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = heap[parent] as T
      if (!before(event, p)) break
      heap[i] = p
      i = parent
    }
    heap[i] = event
  }

  pop(): T | undefined {
    const heap = this.#heap
    const top = heap[0]
    const last = heap.pop()
    if (top === undefined || last === undefined || heap.length === 0) return top
    const n = heap.length
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      let child = left
      let c = heap[left] as T
      if (right < n) {
        const r = heap[right] as T
        if (before(r, c)) {
          child = right
          c = r
        }
      }
      if (!before(c, last)) break
      heap[i] = c
      i = child
    }
    heap[i] = last
    return top
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq)
}
