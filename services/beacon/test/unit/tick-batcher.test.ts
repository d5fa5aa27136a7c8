import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { TickBatcher } from '../../src/storage/tick-batcher.ts'
import type { TickBatcherInit } from '../../src/storage/tick-batcher.ts'

/** A batcher of numbers that doubles each one, recording every batch it ran. */
function doubler (init: Partial<TickBatcherInit<number, number>> = {}): { batcher: TickBatcher<number, number>, batches: number[][] } {
  const batches: number[][] = []
  const batcher = new TickBatcher<number, number>({
    maxItems: 100,
    run: async (items) => {
      batches.push(items)
      return items.map((item) => ({ status: 'fulfilled', value: item * 2 }))
    },
    ...init
  })
  return { batcher, batches }
}

describe('TickBatcher', () => {
  it('runs the calls of one turn of the event loop as one batch, and each caller gets its own result', async () => {
    const { batcher, batches } = doubler()
    const results = await Promise.all([1, 2, 3].map(async (n) => await batcher.submit(n)))
    assert.deepEqual(results, [2, 4, 6])
    assert.deepEqual(batches, [[1, 2, 3]])
    // A later turn is a later batch.
    assert.equal(await batcher.submit(4), 8)
    assert.deepEqual(batches, [[1, 2, 3], [4]])
  })

  it('sends a full batch at once and starts the next, by items and by bytes; an item of maxBytes goes alone', async () => {
    const byItems = doubler({ maxItems: 2 })
    await Promise.all([1, 2, 3, 4, 5].map(async (n) => await byItems.batcher.submit(n)))
    assert.deepEqual(byItems.batches, [[1, 2], [3, 4], [5]])

    const byBytes = doubler({ maxBytes: 10, sizeOf: (n) => n })
    await Promise.all([3, 4, 5, 10, 1].map(async (n) => await byBytes.batcher.submit(n)))
    assert.deepEqual(byBytes.batches, [[3, 4], [5], [10], [1]])
  })

  it('keeps outcomes apart: one rejected item fails only its caller; a run that throws fails its whole batch only', async () => {
    const batcher = new TickBatcher<number, number>({
      maxItems: 100,
      run: async (items) => {
        if (items.includes(13)) throw new Error('the whole batch failed')
        return items.map((item) => item === 7 ? { status: 'rejected', reason: new Error(`no ${item}`) } : { status: 'fulfilled', value: item })
      }
    })
    const outcomes = await Promise.allSettled([6, 7, 8].map(async (n) => await batcher.submit(n)))
    assert.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'rejected', 'fulfilled'])
    await assert.rejects(batcher.submit(13), /the whole batch failed/)
    assert.equal(await batcher.submit(9), 9)
  })

  it('answers an item early when run says so, and ignores its later outcome', async () => {
    let finish = (): void => {}
    const held = new Promise<void>((resolve) => { finish = resolve })
    const batcher = new TickBatcher<number, string>({
      maxItems: 100,
      run: async (items, answer) => {
        answer(0, { status: 'fulfilled', value: 'early' })
        await held
        return items.map(() => ({ status: 'fulfilled', value: 'late' }))
      }
    })
    const first = batcher.submit(1)
    const second = batcher.submit(2)
    assert.equal(await first, 'early')
    finish()
    assert.equal(await second, 'late')
  })

  it('answers an aborted caller with its reason, before or after its batch is sent, and leaves the rest', async () => {
    let finish = (): void => {}
    const held = new Promise<void>((resolve) => { finish = resolve })
    const batches: number[][] = []
    const batcher = new TickBatcher<number, number>({
      maxItems: 100,
      run: async (items) => {
        batches.push(items)
        await held
        return items.map((item) => ({ status: 'fulfilled', value: item }))
      }
    })
    const already = AbortSignal.abort(new Error('aborted before submit'))
    await assert.rejects(batcher.submit(0, already), /aborted before submit/)

    const beforeSend = new AbortController()
    const inFlight = new AbortController()
    const calls = [batcher.submit(1), batcher.submit(2, beforeSend.signal), batcher.submit(3, inFlight.signal)]
    beforeSend.abort(new Error('aborted while waiting'))
    await assert.rejects(calls[1] ?? Promise.resolve(), /aborted while waiting/)
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(batches, [[1, 3]], 'the caller aborted before the batch was sent is not in it')
    inFlight.abort(new Error('aborted in flight'))
    await assert.rejects(calls[2] ?? Promise.resolve(), /aborted in flight/)
    finish()
    assert.equal(await calls[0], 1)
  })
})
