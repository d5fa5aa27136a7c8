/**
 * Seeded pseudo-random numbers for the overlay state machines.
 *
 * The protocol core never calls `Math.random()`: every random choice (which peer to evict,
 * where a random walk goes, which peers a shuffle carries) comes from an {@link Rng} passed
 * in by the caller. The simulator seeds one per node, so a run is reproducible from its seed;
 * a production driver seeds one from a cryptographic source at start.
 *
 * The generator is xoshiro128** (Blackman and Vigna, 2018), seeded through splitmix32 so
 * that nearby seeds (0, 1, 2, …) give unrelated streams. It uses 32-bit integer arithmetic
 * only, which JavaScript does exactly.
 */

/** A source of uniformly distributed 32-bit unsigned integers. */
export interface Rng {
  /** Returns an integer in [0, 2^32). */
  nextUint32(): number
}

const TWO_POW_32 = 4294967296

/** One step of splitmix32: a good mixer for turning seeds into generator state. */
function splitmix32(state: number): { state: number, value: number } {
  const next = (state + 0x9e3779b9) | 0
  let z = next
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  z ^= z >>> 16
  return { state: next, value: z >>> 0 }
}

/** xoshiro128**: 128 bits of state, period 2^128 − 1, passes BigCrush. */
export class Xoshiro128 implements Rng {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor(seed: number) {
    let s = seed | 0
    const words: number[] = []
    for (let i = 0; i < 4; i++) {
      const r = splitmix32(s)
      s = r.state
      words.push(r.value)
    }
    this.#a = words[0] ?? 1
    this.#b = words[1] ?? 0
    this.#c = words[2] ?? 0
    this.#d = words[3] ?? 0
    // The all-zero state is the one state xoshiro cannot leave.
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9)
    const t = this.#b << 9
    this.#c ^= this.#a
    this.#d ^= this.#b
    this.#b ^= this.#c
    this.#a ^= this.#d
    this.#c ^= t
    this.#d = rotl(this.#d, 11)
    return result >>> 0
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** Creates a seeded generator. Equal seeds give equal streams. */
export function createRng(seed: number): Rng {
  return new Xoshiro128(seed)
}

/**
 * Derives a seed for a sub-stream (for example one simulated node) from a parent seed and an
 * index, so that every node's stream is independent of how many numbers the others drew.
 */
export function deriveSeed(seed: number, index: number): number {
  const first = splitmix32((seed ^ Math.imul(index + 1, 0x9e3779b1)) | 0)
  return splitmix32(first.value ^ index).value
}

/** A float in [0, 1). */
export function randomFloat(rng: Rng): number {
  return rng.nextUint32() / TWO_POW_32
}

/**
 * An integer in [0, bound). `bound` must be a positive integer below 2^32. The bias of the
 * multiply-and-floor mapping is below bound / 2^32, far below anything the overlay can notice.
 */
export function randomInt(rng: Rng, bound: number): number {
  return Math.floor((rng.nextUint32() / TWO_POW_32) * bound)
}

/** A uniformly chosen element, or `undefined` for an empty list. */
export function pickRandom<T>(rng: Rng, items: readonly T[]): T | undefined {
  if (items.length === 0) return undefined
  return items[randomInt(rng, items.length)]
}

/**
 * Up to `count` distinct elements chosen uniformly without replacement (a partial
 * Fisher–Yates shuffle of a copy). The input is not modified.
 */
export function sampleRandom<T>(rng: Rng, items: readonly T[], count: number): T[] {
  const copy = items.slice()
  const n = Math.min(count, copy.length)
  for (let i = 0; i < n; i++) {
    const j = i + randomInt(rng, copy.length - i)
    const tmp = copy[i] as T
    copy[i] = copy[j] as T
    copy[j] = tmp
  }
  copy.length = n
  return copy
}
