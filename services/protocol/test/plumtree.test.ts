/**
 * Plumtree handlers: one event in, the exact actions out. Neighbours come from HyParView
 * (`befriend`), start eager (§3.4), and a PRUNE from them makes them lazy. N = 16 gives room for
 * five neighbours.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PayloadTooLargeError } from '../src/overlay/index.ts'
import type { Action, Topic, TopicConfig } from '../src/overlay/index.ts'
import { befriend, receive, send, startedTopic } from './helpers.ts'

const payload = new Uint8Array([1, 2, 3])

/** A topic with eager neighbours `eager` and lazy neighbours `lazy`. */
function tree(eager: string[], lazy: string[] = [], config?: TopicConfig): Topic {
  const topic = startedTopic({ networkSize: 16, config })
  befriend(topic, ...eager, ...lazy)
  for (const peer of lazy) receive(topic, peer, { type: 'prune' })
  return topic
}

const flushTimer: Action = { type: 'timer', after: 500, timer: { type: 'ihaveFlush' } }
const flush = (topic: Topic, now = 500): Action[] => topic.handle({ type: 'timer', timer: { type: 'ihaveFlush' } }, now)
const graftTimer = (messageId: string, after: number): Action => ({ type: 'timer', after, timer: { type: 'graft', messageId } })
/** Armed when the cache takes its first payload: the payload's age bound, MESSAGE_CACHE_TTL_MS. */
const expiryTimer: Action = { type: 'timer', after: 60_000, timer: { type: 'cacheExpiry' } }

describe('Plumtree: broadcast and eager/lazy push (§3.3)', () => {
  it('a broadcast goes in full to every eager peer, at round 1', () => {
    const topic = tree(['a', 'b'])
    assert.deepEqual(topic.broadcast('m1', payload, 0), [
      send('a', { type: 'gossip', id: 'm1', round: 1, payload }),
      send('b', { type: 'gossip', id: 'm1', round: 1, payload }),
      expiryTimer
    ])
  })

  it('lazy peers get the ID in the next IHAVE batch', () => {
    const topic = tree(['a'], ['c'])
    assert.deepEqual(topic.broadcast('m1', payload, 0), [
      send('a', { type: 'gossip', id: 'm1', round: 1, payload }),
      flushTimer,
      expiryTimer
    ])
    assert.deepEqual(flush(topic), [send('c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] })])
    assert.deepEqual(flush(topic, 1000), [], 'the queue was emptied')
  })

  it('one batch timer covers every announcement queued in its interval', () => {
    const topic = tree([], ['c'])
    assert.deepEqual(topic.broadcast('m1', payload, 0), [flushTimer, expiryTimer])
    assert.deepEqual(topic.broadcast('m2', payload, 100), [], 'one expiry timer is pending at a time')
    assert.deepEqual(flush(topic), [send('c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }, { id: 'm2', round: 1 }] })])
  })

  it('a batch longer than maxIHaveBatch is split', () => {
    const topic = tree([], ['c'], { plumtree: { maxIHaveBatch: 2 } })
    for (const id of ['m1', 'm2', 'm3']) topic.broadcast(id, payload, 0)
    assert.deepEqual(flush(topic), [
      send('c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }, { id: 'm2', round: 1 }] }),
      send('c', { type: 'ihave', entries: [{ id: 'm3', round: 1 }] })
    ])
    assert.deepEqual(topic.counters().ihaveBatches, { count: 2, entries: 3, max: 2 })
  })

  it('an ID already seen is not broadcast again', () => {
    const topic = tree(['a'])
    topic.broadcast('m1', payload, 0)
    assert.deepEqual(topic.broadcast('m1', payload, 1), [])
  })

  it('a payload above maxPayloadBytes is a programmer error', () => {
    const topic = tree(['a'], [], { plumtree: { maxPayloadBytes: 2 } })
    assert.throws(() => topic.broadcast('m1', payload, 0), PayloadTooLargeError)
  })
})

describe('Plumtree: receiving GOSSIP (§3.3)', () => {
  it('a first receipt is delivered and pushed on (eager, then lazy), one round further', () => {
    const topic = tree(['a', 'b'], ['c'])
    assert.deepEqual(receive(topic, 'a', { type: 'gossip', id: 'm1', round: 3, payload }), [
      { type: 'deliver', messageId: 'm1', payload, from: 'a', round: 3 },
      send('b', { type: 'gossip', id: 'm1', round: 4, payload }),
      flushTimer,
      expiryTimer
    ])
    assert.deepEqual(flush(topic), [send('c', { type: 'ihave', entries: [{ id: 'm1', round: 4 }] })])
  })

  it('a payload from a lazy peer makes that link eager again', () => {
    const topic = tree(['a'], ['c'])
    receive(topic, 'c', { type: 'gossip', id: 'm1', round: 1, payload })
    assert.deepEqual(topic.snapshot().eager, ['a', 'c'])
  })

  it('a duplicate makes its link lazy: PRUNE to the sender', () => {
    const topic = tree(['a', 'b'])
    receive(topic, 'a', { type: 'gossip', id: 'm1', round: 1, payload })
    assert.deepEqual(receive(topic, 'b', { type: 'gossip', id: 'm1', round: 2, payload }), [send('b', { type: 'prune' })])
    assert.deepEqual(topic.snapshot().lazy, ['b'])
    assert.equal(topic.counters().dissemination.duplicates, 1)
  })

  it('a payload from a peer outside the active view is delivered but changes no link', () => {
    const topic = tree(['a'])
    assert.deepEqual(receive(topic, 'x', { type: 'gossip', id: 'm1', round: 2, payload }), [
      { type: 'deliver', messageId: 'm1', payload, from: 'x', round: 2 },
      send('a', { type: 'gossip', id: 'm1', round: 3, payload }),
      expiryTimer
    ])
    assert.deepEqual(receive(topic, 'x', { type: 'gossip', id: 'm1', round: 2, payload }), [], 'no PRUNE to a non-neighbour')
  })

  it('hop counts are clamped to maxRound', () => {
    const topic = tree(['a', 'b'], [], { plumtree: { maxRound: 10 } })
    assert.deepEqual(receive(topic, 'a', { type: 'gossip', id: 'm1', round: 50, payload }), [
      { type: 'deliver', messageId: 'm1', payload, from: 'a', round: 10 },
      send('b', { type: 'gossip', id: 'm1', round: 10, payload }),
      expiryTimer
    ])
  })
})

describe('Plumtree: IHAVE and GRAFT (§3.6)', () => {
  it('an announced unknown message starts one GRAFT timer, however many announce it', () => {
    const topic = tree(['a'], ['c', 'd'])
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm9', round: 2 }] }), [graftTimer('m9', 1000)])
    assert.deepEqual(receive(topic, 'd', { type: 'ihave', entries: [{ id: 'm9', round: 2 }] }), [])
    assert.equal(topic.snapshot().missingMessages, 1)
  })

  it('an announced message we have is ignored', () => {
    const topic = tree(['a'], ['c'])
    receive(topic, 'a', { type: 'gossip', id: 'm1', round: 9, payload })
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] }), [])
  })

  it('when the timer fires, GRAFT the first announcer (its link turns eager) and wait a shorter time', () => {
    const topic = tree(['a'], ['c', 'd'])
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm9', round: 2 }] })
    receive(topic, 'd', { type: 'ihave', entries: [{ id: 'm9', round: 2 }] })
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm9' } }, 1000), [
      send('c', { type: 'graft', id: 'm9' }),
      graftTimer('m9', 500)
    ])
    assert.deepEqual(topic.snapshot().eager, ['a', 'c'])
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm9' } }, 1500), [
      send('d', { type: 'graft', id: 'm9' }),
      graftTimer('m9', 500)
    ])
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm9' } }, 2000), [])
    assert.equal(topic.snapshot().missingMessages, 0)
    assert.equal(topic.counters().dissemination.graftsAbandoned, 1)
  })

  it('a message that arrives before the timer needs no GRAFT', () => {
    const topic = tree(['a'], ['c'])
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm9', round: 5 }] })
    receive(topic, 'a', { type: 'gossip', id: 'm9', round: 5, payload })
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm9' } }, 1000), [])
  })

  it('a GRAFT makes the link eager and is answered with the cached payload, one round further', () => {
    const topic = tree(['a'], ['c'])
    topic.broadcast('m1', payload, 0)
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm1' }), [send('c', { type: 'gossip', id: 'm1', round: 1, payload })])
    assert.deepEqual(topic.snapshot().eager, ['a', 'c'])
  })

  it('a GRAFT for a payload no longer cached only makes the link eager', () => {
    const topic = tree(['a'], ['c'])
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'gone' }), [])
    assert.deepEqual(topic.snapshot().eager, ['a', 'c'])
    assert.equal(topic.counters().dissemination.graftMisses, 1)
  })

  it('a GRAFT without an ID only makes the link eager', () => {
    const topic = tree(['a'], ['c'])
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: null }), [])
    assert.deepEqual(topic.snapshot().eager, ['a', 'c'])
  })

  it('a PRUNE makes the link lazy', () => {
    const topic = tree(['a', 'b'])
    assert.deepEqual(receive(topic, 'a', { type: 'prune' }), [])
    assert.deepEqual(topic.snapshot().eager, ['b'])
    assert.deepEqual(topic.snapshot().lazy, ['a'])
  })

  it('control messages from outside the active view are ignored', () => {
    const topic = tree(['a'])
    assert.deepEqual(receive(topic, 'x', { type: 'ihave', entries: [{ id: 'm9', round: 1 }] }), [])
    assert.deepEqual(receive(topic, 'x', { type: 'graft', id: null }), [])
    assert.deepEqual(receive(topic, 'x', { type: 'prune' }), [])
    assert.deepEqual(topic.snapshot().eager, ['a'])
    assert.equal(topic.counters().dissemination.ignored, 3)
  })

  it('at most maxMissingMessages announced messages are tracked', () => {
    const topic = tree(['a'], ['c'], { plumtree: { maxMissingMessages: 1 } })
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'x1', round: 1 }, { id: 'x2', round: 1 }] }), [graftTimer('x1', 1000)])
    assert.equal(topic.counters().dissemination.missingOverflow, 1)
  })
})

describe('Plumtree: tree optimisation (§3.8)', () => {
  it('a lazy path at least 4 hops shorter swaps with the eager one: GRAFT the lazy peer, PRUNE the eager one', () => {
    const topic = tree(['a'], ['c'])
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm5', round: 2 }] })
    assert.deepEqual(receive(topic, 'a', { type: 'gossip', id: 'm5', round: 6, payload }), [
      { type: 'deliver', messageId: 'm5', payload, from: 'a', round: 6 },
      flushTimer,
      send('c', { type: 'graft', id: null }),
      send('a', { type: 'prune' }),
      expiryTimer
    ])
    assert.deepEqual(topic.snapshot().eager, ['c'])
    assert.deepEqual(topic.snapshot().lazy, ['a'])
    assert.equal(topic.counters().dissemination.treeSwaps, 1)
  })

  it('a lazy path only 3 hops shorter is left alone', () => {
    const topic = tree(['a'], ['c'])
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm5', round: 3 }] })
    assert.deepEqual(receive(topic, 'a', { type: 'gossip', id: 'm5', round: 6, payload }), [
      { type: 'deliver', messageId: 'm5', payload, from: 'a', round: 6 },
      flushTimer,
      expiryTimer
    ])
  })
})

describe('Plumtree: neighbours and bounds', () => {
  it('a neighbour that goes down takes its queued announcements with it (§3.7)', () => {
    const topic = tree(['a'], ['c'])
    topic.broadcast('m1', payload, 0)
    topic.handle({ type: 'linkDown', peer: 'c' }, 10)
    assert.deepEqual(flush(topic), [])
  })

  it('an announcer that goes down is not grafted', () => {
    const topic = tree(['a'], ['c'])
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm9', round: 2 }] })
    topic.handle({ type: 'linkDown', peer: 'c' }, 10)
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm9' } }, 1000), [])
  })

  it('the payload cache is bounded by count', () => {
    const topic = tree(['a'], ['c'], { plumtree: { messageCacheMaxEntries: 2 } })
    for (const id of ['m1', 'm2', 'm3']) topic.broadcast(id, payload, 0)
    assert.equal(topic.snapshot().cachedMessages, 2)
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm1' }), [])
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm3' }), [send('c', { type: 'gossip', id: 'm3', round: 1, payload })])
  })

  it('the payload cache is bounded by age', () => {
    const topic = tree(['a'], ['c'], { plumtree: { messageCacheTtlMs: 1000 } })
    topic.broadcast('m1', payload, 0)
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm1' }, 999), [send('c', { type: 'gossip', id: 'm1', round: 1, payload })])
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm1' }, 1000), [])
  })

  it('the payload cache is bounded by bytes: the oldest payloads go first, and are counted', () => {
    const kib = new Uint8Array(1024)
    const topic = tree(['a'], ['c'], { plumtree: { messageCacheMaxBytes: 3 * 1024 } })
    for (const id of ['m1', 'm2', 'm3', 'm4', 'm5']) topic.broadcast(id, kib, 0)
    assert.deepEqual([topic.snapshot().cachedMessages, topic.snapshot().cachedBytes], [3, 3 * 1024], 'never more than the bound')
    assert.equal(topic.counters().dissemination.cacheEvictions, 2)
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm2' }), [], 'an evicted payload cannot be grafted')
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm5' }), [send('c', { type: 'gossip', id: 'm5', round: 1, payload: kib })])
    // One payload larger than the whole bound is not kept at all.
    topic.broadcast('big', new Uint8Array(4 * 1024), 0)
    assert.equal(topic.snapshot().cachedBytes <= 3 * 1024, true)
  })

  it('a quiet topic releases its cached payloads on time: the expiry timer, not the next message, drops them', () => {
    const topic = tree(['a'], [], { plumtree: { messageCacheTtlMs: 1000, seenTtlMs: 5000 } })
    const first = topic.broadcast('m1', payload, 0)
    assert.deepEqual(first.filter((action) => action.type === 'timer'), [{ type: 'timer', after: 1000, timer: { type: 'cacheExpiry' } }])
    topic.broadcast('m2', payload, 400)
    // Nothing arrives any more; only the timers the topic asked for fire.
    const second = topic.handle({ type: 'timer', timer: { type: 'cacheExpiry' } }, 1000)
    assert.deepEqual(topic.snapshot().cachedMessages, 1, 'm1 expired at its TTL, m2 not yet')
    assert.deepEqual(second, [{ type: 'timer', after: 400, timer: { type: 'cacheExpiry' } }], 're-armed for m2')
    const third = topic.handle({ type: 'timer', timer: { type: 'cacheExpiry' } }, 1400)
    assert.deepEqual([topic.snapshot().cachedMessages, topic.snapshot().cachedBytes], [0, 0], 'a quiet topic holds no payload past its TTL')
    assert.deepEqual(third, [{ type: 'timer', after: 3600, timer: { type: 'cacheExpiry' } }], 'then once more for the seen IDs')
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'cacheExpiry' } }, 5400), [], 'and none once both are empty')
    assert.deepEqual(topic.broadcast('m1', payload, 5400).filter((action) => action.type === 'send').length, 1, 'm1 is new again')
  })

  it('a congested eager neighbour is made lazy without a PRUNE, and its GRAFT makes it eager again', () => {
    const topic = tree(['a', 'b'])
    assert.deepEqual(topic.handle({ type: 'congested', peer: 'a' }, 0), [], 'nothing is sent to a neighbour that cannot keep up')
    assert.deepEqual([topic.snapshot().eager, topic.snapshot().lazy], [['b'], ['a']])
    assert.deepEqual(topic.broadcast('m1', payload, 0), [
      send('b', { type: 'gossip', id: 'm1', round: 1, payload }),
      flushTimer,
      expiryTimer
    ], 'a gets the ID only')
    assert.deepEqual(flush(topic), [send('a', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] })])
    assert.deepEqual(receive(topic, 'a', { type: 'graft', id: 'm1' }), [send('a', { type: 'gossip', id: 'm1', round: 1, payload })])
    assert.deepEqual(topic.snapshot().eager, ['b', 'a'])
    assert.equal(topic.counters().dissemination.congestions, 1)
    assert.deepEqual(topic.handle({ type: 'congested', peer: 'x' }, 0), [])
    assert.deepEqual(topic.snapshot().lazy, [], 'a peer that is not eager is not made lazy')
  })

  it('seen IDs are bounded by age: after seenTtlMs an ID counts as new', () => {
    const topic = tree(['a'], [], { plumtree: { seenTtlMs: 1000 } })
    receive(topic, 'a', { type: 'gossip', id: 'm1', round: 1, payload }, 0)
    assert.deepEqual(receive(topic, 'a', { type: 'gossip', id: 'm1', round: 1, payload }, 999), [send('a', { type: 'prune' })])
    receive(topic, 'a', { type: 'graft', id: null }, 1000)
    assert.deepEqual(receive(topic, 'a', { type: 'gossip', id: 'm1', round: 1, payload }, 1000), [
      { type: 'deliver', messageId: 'm1', payload, from: 'a', round: 1 }
    ])
  })

  it('seen IDs are bounded by count', () => {
    const topic = tree(['a'], [], { plumtree: { seenMaxEntries: 2, messageCacheMaxEntries: 2 } })
    for (const id of ['m1', 'm2', 'm3']) receive(topic, 'a', { type: 'gossip', id, round: 1, payload })
    assert.equal(receive(topic, 'a', { type: 'gossip', id: 'm1', round: 1, payload })[0]?.type, 'deliver')
  })
})
