/** The seeded RNG: reproducible, independent streams, uniform enough for the overlay's choices. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createRng, deriveSeed, pickRandom, randomFloat, randomInt, sampleRandom } from '../src/overlay/index.ts'

/** Reference in BigInt arithmetic, written from the published algorithms, not from rng.ts. */
function reference(seed: number, n: number): number[] {
  const M = 0xffff_ffffn
  const mul = (a: bigint, b: bigint): bigint => (a * b) & M
  const rotl = (x: bigint, k: bigint): bigint => ((x << k) | (x >> (32n - k))) & M
  let state = BigInt(seed >>> 0)
  const splitmix = (): bigint => {
    state = (state + 0x9e3779b9n) & M
    let z = state
    z = mul(z ^ (z >> 16n), 0x85ebca6bn)
    z = mul(z ^ (z >> 13n), 0xc2b2ae35n)
    return z ^ (z >> 16n)
  }
  const s = [splitmix(), splitmix(), splitmix(), splitmix()]
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const [s0, s1, s2, s3] = s as [bigint, bigint, bigint, bigint]
    out.push(Number(mul(rotl(mul(s1, 5n), 7n), 9n)))
    const t = (s1 << 9n) & M
    const n2 = s2 ^ s0
    const n3 = s3 ^ s1
    s[1] = s1 ^ n2
    s[0] = s0 ^ n3
    s[2] = n2 ^ t
    s[3] = rotl(n3, 11n)
  }
  return out
}

function draw(seed: number, n: number): number[] {
  const rng = createRng(seed)
  return Array.from({ length: n }, () => rng.nextUint32())
}

describe('rng', () => {
  it('equal seeds give equal streams; different seeds differ', () => {
    assert.deepEqual(draw(42, 100), draw(42, 100))
    assert.notDeepEqual(draw(42, 100), draw(43, 100))
  })

  it('matches a BigInt transcription of splitmix32 seeding and the xoshiro128** reference (C, Blackman & Vigna)', () => {
    for (const seed of [0, 1, 0x5eed, 0xffff_ffff]) {
      assert.deepEqual(draw(seed, 1000), reference(seed, 1000), `seed ${seed}`)
    }
  })

  it('every output is a 32-bit unsigned integer', () => {
    for (const x of draw(7, 10_000)) assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 32)
  })

  it('derived seeds are distinct for distinct indices', () => {
    const seeds = new Set(Array.from({ length: 10_000 }, (_, i) => deriveSeed(1, i)))
    assert.equal(seeds.size, 10_000)
  })

  it('randomInt covers [0, bound) evenly', () => {
    const rng = createRng(3)
    const counts = new Array<number>(10).fill(0)
    for (let i = 0; i < 100_000; i++) {
      const k = randomInt(rng, 10)
      counts[k] = (counts[k] ?? 0) + 1
    }
    for (const c of counts) assert.ok(c > 9_500 && c < 10_500, `bucket count ${c} is far from 10000`)
  })

  it('randomFloat stays in [0, 1)', () => {
    const rng = createRng(4)
    for (let i = 0; i < 10_000; i++) {
      const x = randomFloat(rng)
      assert.ok(x >= 0 && x < 1)
    }
  })

  it('sampleRandom returns distinct elements, at most as many as there are, and leaves its input alone', () => {
    const rng = createRng(5)
    const items = ['a', 'b', 'c', 'd', 'e']
    const sample = sampleRandom(rng, items, 3)
    assert.equal(sample.length, 3)
    assert.equal(new Set(sample).size, 3)
    for (const x of sample) assert.ok(items.includes(x))
    assert.deepEqual(items, ['a', 'b', 'c', 'd', 'e'])
    assert.equal(sampleRandom(rng, items, 9).length, 5)
    assert.equal(pickRandom(rng, []), undefined)
  })
})
