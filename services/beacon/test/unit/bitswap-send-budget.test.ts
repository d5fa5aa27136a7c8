/**
 * The Bitswap send budget (storage/bitswap-send-budget.ts, issue 17 item 6) on its own: caps
 * per peer and in all, fair shares when the total is contended, and waiters that give up.
 * The Bitswap tests (bitswap-serving-bounds.test.ts) drive it through real peers.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { Registry } from 'prom-client'
import { createLimitMetrics } from '../../src/metrics/limit-metrics.ts'
import { BitswapSendBudget } from '../../src/storage/bitswap-send-budget.ts'
import type { BlockSendGrant } from '@helia/bitswap'

async function peer (): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

function budget (peerBytes: number, totalBytes: number): { budget: BitswapSendBudget, blocked: (limit: string) => Promise<number> } {
  const registry = new Registry()
  const limits = createLimitMetrics(registry)
  return {
    budget: new BitswapSendBudget({ peerBytes, totalBytes, sizeOf: async () => undefined, limits }),
    blocked: async (limit) => (await registry.getSingleMetric('pharos_limit_blocked_total')?.get())?.values.find((value) => value.labels.limit === limit)?.value ?? 0
  }
}

/** Whether `promise` settled by the time queued callbacks ran. */
async function settled (promise: Promise<unknown>): Promise<boolean> {
  let done = false
  promise.then(() => { done = true }, () => { done = true })
  await new Promise((resolve) => setImmediate(resolve))
  return done
}

describe('Bitswap send budget', () => {
  it('holds one peer to its cap, counts the wait, and grants the waiter when room comes back', async () => {
    const { budget: sends, blocked } = budget(100, 1000)
    const a = await peer()
    const first = sends.tryAcquire(a, 60) ?? assert.fail('the first block fits')
    assert.ok(sends.tryAcquire(a, 40) !== undefined, 'the cap itself fits')
    assert.equal(sends.tryAcquire(a, 1), undefined)
    assert.equal(await blocked('PHAROS_BITSWAP_PEER_BYTES_IN_FLIGHT'), 1)
    const waiting = sends.acquire(a, 50)
    assert.equal(await settled(waiting), false)
    first.release()
    first.release() // twice gives back nothing more
    await waiting
    assert.equal(sends.snapshot().bytesInFlight, 90)
    assert.equal(sends.snapshot().peakPeerBytesInFlight, 100)
  })

  it('sends a block larger than the caps alone, once the peer and everyone hold nothing', async () => {
    const { budget: sends } = budget(100, 200)
    const a = await peer()
    const b = await peer()
    const small = sends.tryAcquire(b, 10) ?? assert.fail()
    assert.equal(sends.tryAcquire(a, 500), undefined, 'the total holds something: the big block waits')
    const big = sends.acquire(a, 500)
    small.release()
    const grant = await big
    assert.equal(sends.snapshot().bytesInFlight, 500)
    grant.release()
    assert.equal(sends.snapshot().bytesInFlight, 0)
  })

  it('gives freed room to the waiting peer holding least, not to the first in line', async () => {
    const { budget: sends, blocked } = budget(400, 400)
    const greedy = await peer()
    const modest = await peer()
    const greedyGrants: BlockSendGrant[] = []
    for (let i = 0; i < 3; i++) greedyGrants.push(sends.tryAcquire(greedy, 100) ?? assert.fail())
    const modestGrant = sends.tryAcquire(modest, 100) ?? assert.fail()
    const greedyNext = sends.acquire(greedy, 100)
    const modestNext = sends.acquire(modest, 100)
    assert.equal(await blocked('PHAROS_BITSWAP_BYTES_IN_FLIGHT'), 0, 'acquire itself counts nothing; tryAcquire does')
    modestGrant.release()
    assert.equal(await settled(modestNext), true, 'the peer holding nothing gets the room')
    assert.equal(await settled(greedyNext), false, 'the peer holding 300 waits, though it asked first')
    greedyGrants[0]?.release()
    await greedyNext
  })

  it('lets no newcomer jump a waiter that holds the line for the total, but a peer at its own cap holds no line', async () => {
    const { budget: sends, blocked } = budget(100, 150)
    const a = await peer()
    const b = await peer()
    const c = await peer()
    const aGrant = sends.tryAcquire(a, 100) ?? assert.fail()
    const aWaits = sends.acquire(a, 10) // at its own cap: waits, but holds no line
    assert.ok(sends.tryAcquire(b, 40) !== undefined, 'room in the total, and the only waiter is held by its own cap')
    const bWaits = sends.acquire(b, 30) // does not fit the total (140 + 30 > 150): holds the line
    assert.equal(sends.tryAcquire(c, 5), undefined, 'would fit, but b waits for the total first')
    assert.equal(await blocked('PHAROS_BITSWAP_BYTES_IN_FLIGHT'), 1)
    aGrant.release()
    assert.equal(await settled(bWaits), true)
    assert.equal(await settled(aWaits), true)
  })

  it('forgets a waiter whose signal aborts, and lets the next one through', async () => {
    const { budget: sends } = budget(100, 100)
    const a = await peer()
    const b = await peer()
    const c = await peer()
    const held = sends.tryAcquire(a, 100) ?? assert.fail()
    const controller = new AbortController()
    const bWaits = sends.acquire(b, 100, { signal: controller.signal })
    const cWaits = sends.acquire(c, 50)
    controller.abort(new Error('peer left'))
    await assert.rejects(bWaits, /peer left/)
    held.release()
    await cWaits
    assert.equal(sends.snapshot().bytesInFlight, 50)
    assert.equal(sends.snapshot().peersWaiting, 0)
  })
})
