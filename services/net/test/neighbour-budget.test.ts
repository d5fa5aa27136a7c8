/**
 * The budget and scoring rule of overlay neighbours (neighbour-budget.ts), with time passed in:
 * what each frame costs, which GRAFTs and IHAVEs are refused, how the score decays, and how
 * the back-off grows. The same rule on real libp2p: overlay-budgets.test.ts.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Message } from '@pharos/protocol/overlay/index.ts'
import { DEFAULT_NEIGHBOUR_SCORING, NeighbourLedger } from '../src/overlay/neighbour-budget.ts'

const TOPIC = '/net/content'
const ledgerWith = (budget: ConstructorParameters<typeof NeighbourLedger>[0]['budget'] = {}): NeighbourLedger => new NeighbourLedger({
  budget,
  ihaveIntervalMs: 500,
  maxIHaveBatch: 64,
  announcedMax: 4,
  announcedTtlMs: 60_000
})
const prune: Message = { type: 'prune', origins: ['*'] }
const gossip: Message = { type: 'gossip', id: 'm', round: 1, origin: 'o', payload: new Uint8Array(1) }
const ihave = (...ids: string[]): Message => ({ type: 'ihave', entries: ids.map((id) => ({ id, round: 1 })) })

describe('neighbour budgets', () => {
  it('a control bucket takes its burst at once, then its rate; data frames have a bucket of their own', () => {
    const ledger = ledgerWith({ controlFramesBurst: 5, controlFramesPerSecond: 10, dataFramesBurst: 2, dataFramesPerSecond: 1 })
    for (let i = 0; i < 5; i++) assert.equal(ledger.charge('p', TOPIC, prune, 0), undefined)
    assert.equal(ledger.charge('p', TOPIC, prune, 0), 'control-flood')
    assert.equal(ledger.charge('p', TOPIC, prune, 99), 'control-flood', 'under one token refilled')
    assert.equal(ledger.charge('p', TOPIC, prune, 100), undefined, 'one token after 100 ms at 10/s')
    assert.equal(ledger.charge('p', TOPIC, gossip, 100), undefined, 'the data bucket is untouched by control frames')
    assert.equal(ledger.charge('p', TOPIC, gossip, 100), undefined)
    assert.equal(ledger.charge('p', TOPIC, gossip, 100), 'data-flood')
    assert.equal(ledger.charge('q', TOPIC, gossip, 100), undefined, 'another neighbour has its own buckets')
    assert.deepEqual({ ...ledger.stats(), offences: undefined }, { offences: undefined, dataFramesRefused: 1, controlFramesRefused: 2, scoreDrops: 0 })
  })

  it('IHAVEs come at most once per interval per topic after a burst of 8, carry at most a batch, and spend a data token per ID', () => {
    const ledger = ledgerWith({ dataFramesBurst: 20, dataFramesPerSecond: 1 })
    for (let i = 0; i < 8; i++) assert.equal(ledger.charge('p', TOPIC, ihave(`a${i}`), 0), undefined)
    assert.equal(ledger.charge('p', TOPIC, ihave('b'), 0), 'ihave-flood', 'a ninth at once')
    assert.equal(ledger.charge('p', '/net/sync', ihave('c'), 0), undefined, 'each topic has its own interval')
    assert.equal(ledger.charge('p', TOPIC, ihave('d'), 500), undefined, 'one interval later')
    assert.equal(ledger.charge('p', TOPIC, ihave(...Array.from({ length: 65 }, (_, i) => `e${i}`)), 10_000), 'ihave-flood', 'more IDs than a batch')
    // The refused IHAVEs spent no data token; by t = 10 s the bucket is full again (20).
    assert.equal(ledger.charge('p', TOPIC, ihave(...Array.from({ length: 19 }, (_, i) => `f${i}`)), 10_000), undefined)
    assert.equal(ledger.charge('p', TOPIC, ihave('g', 'h'), 10_000), 'ihave-flood', 'two IDs, one data token left')
    assert.equal(ledger.charge('p', TOPIC, ihave('g', 'h'), 11_000), undefined, 'a second later, two')
    assert.equal(ledger.stats().dataFramesRefused, 1)
  })

  it('an unbudgeted neighbour (a peer\'s own beacon) spends no tokens, but the IHAVE and GRAFT rules still hold for it', () => {
    const ledger = ledgerWith({ controlFramesBurst: 1, dataFramesBurst: 1 })
    for (let i = 0; i < 100; i++) assert.equal(ledger.charge('beacon', TOPIC, prune, 0, true), undefined)
    for (let i = 0; i < 100; i++) assert.equal(ledger.charge('beacon', TOPIC, gossip, 0, true), undefined)
    for (let i = 0; i < 8; i++) assert.equal(ledger.charge('beacon', TOPIC, ihave('a', 'b'), 0, true), undefined)
    assert.equal(ledger.charge('beacon', TOPIC, ihave('c'), 0, true), 'ihave-flood')
    assert.equal(ledger.charge('beacon', TOPIC, { type: 'graft', id: 'never-announced', origin: null }, 0, true), 'unsolicited-graft')
    assert.equal(ledger.stats().controlFramesRefused + ledger.stats().dataFramesRefused, 0)
  })

  it('a GRAFT must ask for an ID we announced to that neighbour, once; one without an ID must follow an ID we announced, one per ID', () => {
    const ledger = ledgerWith()
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: 'x', origin: null }, 0), 'unsolicited-graft', 'never announced')
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: null, origin: '*' }, 0), 'unsolicited-graft', 'no IHAVE of ours yet')
    ledger.announced('p', TOPIC, [{ id: 'x', round: 1 }, { id: 'y', round: 1 }], 0)
    assert.equal(ledger.charge('q', TOPIC, { type: 'graft', id: 'x', origin: null }, 0), 'unsolicited-graft', 'announced to p, not q')
    assert.equal(ledger.charge('p', '/net/sync', { type: 'graft', id: 'x', origin: null }, 0), 'unsolicited-graft', 'announced on another topic')
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: 'x', origin: null }, 0), undefined)
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: 'x', origin: null }, 0), 'unsolicited-graft', 'the same ID twice')
    // One IHAVE batch can make a neighbour swap its tree towards us for each of its IDs (§3.8):
    // seen at 100 messages/s in npm run bench:gossip, where one per IHAVE was too few.
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: null, origin: '*' }, 0), undefined, 'tree repair after an ID we announced')
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: null, origin: '*' }, 0), undefined, 'and after the other')
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: null, origin: '*' }, 0), 'unsolicited-graft', 'two IDs, two repairs')
    // At most announcedMax (4) IDs are remembered per neighbour, and only for announcedTtlMs.
    ledger.announced('p', TOPIC, ['a', 'b', 'c', 'd'].map((id) => ({ id, round: 1 })), 1000)
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: 'y', origin: null }, 1000), 'unsolicited-graft', 'the oldest was let go')
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: 'a', origin: null }, 1000), undefined)
    ledger.announced('p', TOPIC, [{ id: 'e', round: 1 }], 61_000)
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: 'b', origin: null }, 61_000), 'unsolicited-graft', 'past the cache\'s age')
    assert.equal(ledger.charge('p', TOPIC, { type: 'graft', id: 'e', origin: null }, 61_000), undefined)
  })
})

describe('neighbour scores', () => {
  const { weights, threshold, halfLifeMs, backOffMs } = DEFAULT_NEIGHBOUR_SCORING

  it('offences cost their weight; the neighbour is to be dropped once the score is below the threshold', () => {
    const ledger = ledgerWith()
    const needed = Math.floor(-threshold / weights['unsolicited-graft']) + 1 // 11: -110 < -100
    for (let i = 1; i < needed; i++) assert.equal(ledger.penalize('p', 'unsolicited-graft', 0), false, `offence ${i}`)
    assert.equal(ledger.snapshot(0)[0]?.score, -100, 'at the threshold, not below it')
    assert.equal(ledger.penalize('p', 'unsolicited-graft', 0), true)
    assert.equal(ledger.stats().scoreDrops, 1)
    assert.equal(ledger.stats().offences['unsolicited-graft'], needed)
  })

  it('the score halves every half-life, so an honest neighbour that once erred recovers', () => {
    const ledger = ledgerWith()
    for (let i = 0; i < 3; i++) ledger.penalize('p', 'invalid-payload', 0)
    assert.equal(ledger.snapshot(0)[0]?.score, -75)
    assert.equal(ledger.snapshot(halfLifeMs)[0]?.score, -37.5)
    assert.equal(ledger.snapshot(4 * halfLifeMs)[0]?.score, -4.69)
    // After two half-lives the same three offences again do not drop it (-18.75 - 75 > -100).
    for (let i = 0; i < 3; i++) assert.equal(ledger.penalize('p', 'invalid-payload', 2 * halfLifeMs), false)
    assert.equal(ledger.penalize('p', 'invalid-payload', 2 * halfLifeMs), true, 'a fourth within the half-life does')
  })

  it('the back-off doubles with each drop remembered, up to its maximum, and starts over once forgotten', () => {
    const ledger = new NeighbourLedger({ ihaveIntervalMs: 500, maxIHaveBatch: 64, announcedMax: 4, announcedTtlMs: 60_000, scoring: { backOffMaxMs: 4 * backOffMs, backOffMemoryMs: 3_600_000 } })
    let now = 0
    const lengths: number[] = []
    for (let drop = 0; drop < 4; drop++) {
      const until = ledger.backOff('p', now)
      lengths.push(until - now)
      assert.equal(ledger.isBackedOff('p', until - 1), true)
      assert.equal(ledger.isBackedOff('p', until), false)
      now = until + 1000
    }
    assert.deepEqual(lengths, [backOffMs, 2 * backOffMs, 4 * backOffMs, 4 * backOffMs])
    assert.equal(ledger.snapshot(now)[0]?.drops, 4)
    const forgotten = now + 3_600_001
    assert.equal(ledger.backOff('p', forgotten) - forgotten, backOffMs, 'an hour after its last back-off ended, a drop is a first one again')
  })

  it('a neighbour kept out is not dropped again by late offences, and its record outlives the link while it matters', () => {
    const ledger = ledgerWith()
    for (let i = 0; i < 4; i++) ledger.penalize('p', 'invalid-payload', 0)
    assert.equal(ledger.penalize('p', 'invalid-payload', 0), true)
    const until = ledger.backOff('p', 0)
    assert.equal(ledger.penalize('p', 'invalid-payload', 1), false, 'already kept out: no second drop, no longer back-off')
    ledger.forgetIdle(2 * halfLifeMs, () => false)
    assert.equal(ledger.snapshot(2 * halfLifeMs).length, 1, 'its drop is remembered, so is it')
    ledger.charge('q', TOPIC, prune, 0)
    ledger.forgetIdle(2 * halfLifeMs, () => false)
    assert.deepEqual(ledger.snapshot(2 * halfLifeMs).map((state) => state.peer), ['p'], 'a quiet, clean neighbour is forgotten')
    assert.equal(until, backOffMs)
  })
})
