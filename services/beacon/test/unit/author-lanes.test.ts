/**
 * The CPU budget of fetched entries (author-lanes.ts), on its own: one author's backlog is
 * served in slices that yield to the event loop, and an author that arrives later runs after
 * at most one slice of the backlog, not after all of it. The tasks are pure microtask work
 * (no I/O), so the only way anything else runs in between is the lanes yielding. Also the
 * token buckets behind the per-author and per-peer rate limits.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AuthorLanes } from '../../src/logs/author-lanes.ts'
import { TokenBuckets } from '../../src/logs/token-buckets.ts'

/** Counts turns of the event loop's check phase while `work` runs: what a yield lets through. */
async function withTicker<T> (work: (ticks: () => number) => Promise<T>): Promise<T> {
  let ticks = 0
  let running = true
  const tick = (): void => {
    ticks++
    if (running) setImmediate(tick)
  }
  setImmediate(tick)
  try {
    return await work(() => ticks)
  } finally {
    running = false
  }
}

describe('author lanes', () => {
  it('serves a later author after one slice of a backlog, and yields to the event loop between slices', async () => {
    const lanes = new AuthorLanes({ concurrency: 1, slice: 8 })
    const order: string[] = []
    const tickAt: number[] = []
    await withTicker(async (ticks) => {
      const task = (name: string) => async (): Promise<string> => {
        order.push(name)
        tickAt.push(ticks())
        return name
      }
      const backlog = Array.from({ length: 200 }, async (_, i) => await lanes.run('author-a', task(`a${i}`)))
      const later = Array.from({ length: 3 }, async (_, i) => await lanes.run('author-b', task(`b${i}`)))
      assert.deepEqual(await Promise.all(later), ['b0', 'b1', 'b2'], 'each task settles with its own result')
      await Promise.all(backlog)
    })
    assert.equal(order.length, 203)
    // b waited for the slice of a that was running when it arrived, then had its turn.
    assert.deepEqual(order.slice(0, 11), ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'b0', 'b1', 'b2'])
    assert.deepEqual(order.filter((name) => name.startsWith('a')), Array.from({ length: 200 }, (_, i) => `a${i}`), 'one lane keeps its order')
    // At most one slice runs between two turns of the event loop.
    const perTick = new Map<number, number>()
    for (const tick of tickAt) perTick.set(tick, (perTick.get(tick) ?? 0) + 1)
    assert.ok(Math.max(...perTick.values()) <= 8, `at most a slice per turn, got ${Math.max(...perTick.values())}`)
    assert.ok(perTick.size >= 200 / 8, 'the backlog was spread over many turns')
    assert.equal(lanes.pending, 0)
  })

  it('runs lanes side by side up to the concurrency, one task at a time within a lane', async () => {
    const lanes = new AuthorLanes({ concurrency: 2, slice: 4 })
    let running = 0
    let most = 0
    const perLane = new Map<string, number>()
    const task = (lane: string) => async (): Promise<void> => {
      running++
      perLane.set(lane, (perLane.get(lane) ?? 0) + 1)
      most = Math.max(most, running)
      assert.equal(perLane.get(lane), 1, `${lane} runs one task at a time`)
      await new Promise((resolve) => setTimeout(resolve, 1))
      perLane.set(lane, (perLane.get(lane) ?? 1) - 1)
      running--
    }
    await Promise.all(['a', 'b', 'c'].flatMap((lane) => Array.from({ length: 10 }, async () => { await lanes.run(lane, task(lane)) })))
    assert.equal(most, 2)
  })

  it('a task that throws rejects its own promise only', async () => {
    const lanes = new AuthorLanes({ concurrency: 1, slice: 2 })
    const failing = lanes.run('a', async () => { throw new Error('boom') })
    const fine = lanes.run('a', async () => 'ok')
    await assert.rejects(failing, /boom/)
    assert.equal(await fine, 'ok')
  })
})

describe('token buckets', () => {
  it('lets a burst through, then one per refill interval, per key', () => {
    const buckets = new TokenBuckets({ capacity: 3, perMinute: 6 })
    const t0 = 1_000_000
    assert.deepEqual([1, 2, 3, 4].map(() => buckets.take('a', t0)), [true, true, true, false])
    assert.equal(buckets.take('b', t0), true, 'another key has its own bucket')
    assert.equal(buckets.take('a', t0 + 9_999), false, 'one token takes 10 s at 6 a minute')
    assert.equal(buckets.take('a', t0 + 10_000), true)
    assert.equal(buckets.take('a', t0 + 10_000), false)
    assert.deepEqual([1, 2, 3, 4].map(() => buckets.take('a', t0 + 600_000)), [true, true, true, false], 'refills up to the burst, no further')
  })
})
