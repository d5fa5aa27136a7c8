/** The topic's public surface: start, configuration errors, view sizes, snapshot and counters. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  activeViewCapacity,
  createTopic,
  OverlayConfigError,
  SelfContactError,
  TopicNotStartedError
} from '../src/overlay/index.ts'
import { befriend, firstChoice, receive, startedTopic } from './helpers.ts'

describe('topic', () => {
  it('refuses events and broadcasts before start', () => {
    const topic = createTopic({ self: 'me', networkSize: 4, rng: firstChoice })
    assert.throws(() => topic.handle({ type: 'leave' }, 0), TopicNotStartedError)
    assert.throws(() => topic.broadcast('m', new Uint8Array(1), 0), TopicNotStartedError)
    assert.equal(topic.start(0).length, 1)
    assert.deepEqual(topic.start(0), [], 'a second start arms nothing')
  })

  it('sizes the active view floor(log2 N) + 1 and the passive view six times that (seed)', () => {
    assert.deepEqual([1, 2, 3, 4, 7, 8, 1000, 1023, 1024, 1_000_000].map(activeViewCapacity), [1, 2, 2, 3, 3, 4, 10, 10, 11, 20])
    const snapshot = createTopic({ self: 'me', networkSize: 1000, rng: firstChoice }).snapshot()
    assert.deepEqual([snapshot.activeCapacity, snapshot.passiveCapacity], [10, 60])
  })

  it('rejects bad configuration with the key, the value and what is allowed', () => {
    const bad = [
      { hyparview: { passiveRandomWalkLength: 4 } },
      { hyparview: { shuffleTtl: 0 } },
      { hyparview: { highPriorityFraction: 1.5 } },
      { hyparview: { shuffleIntervalMs: 1.5 } },
      { plumtree: { ihaveIntervalMs: 0 } },
      { plumtree: { maxIHaveBatch: -1 } }
    ]
    for (const config of bad) {
      assert.throws(() => createTopic({ self: 'me', networkSize: 4, rng: firstChoice, config }), OverlayConfigError)
    }
    assert.throws(() => createTopic({ self: 'me', networkSize: 0, rng: firstChoice }), (error: unknown) =>
      error instanceof OverlayConfigError && error.key === 'networkSize' && /integer ≥ 1/.test(error.message))
    assert.throws(() => startedTopic().setNetworkSize(0, 0), OverlayConfigError)
  })

  it('cannot join through itself', () => {
    assert.throws(() => startedTopic().handle({ type: 'join', contact: 'me' }, 0), SelfContactError)
  })

  it('ignores messages from itself', () => {
    const topic = startedTopic()
    assert.deepEqual(receive(topic, 'me', { type: 'neighbor', priority: 'high' }), [])
  })

  it('snapshot shows views and peer sets for an admin API', () => {
    const topic = startedTopic()
    befriend(topic, 'a', 'b')
    receive(topic, 'b', { type: 'prune', origins: ['*'] })
    assert.deepEqual(topic.snapshot(), {
      self: 'me',
      networkSize: 4,
      activeCapacity: 3,
      passiveCapacity: 18,
      active: ['a', 'b'],
      passive: [],
      pending: [],
      reconnecting: [],
      eager: ['a'],
      lazy: ['b'],
      origins: 0,
      cachedMessages: 0,
      cachedBytes: 0,
      missingMessages: 0,
      pendingMessages: 0
    })
  })

  it('counts messages by type, sent and received', () => {
    const topic = startedTopic()
    befriend(topic, 'a', 'b')
    topic.broadcast('m1', new Uint8Array(1), 0)
    receive(topic, 'a', { type: 'gossip', id: 'm1', round: 1, origin: 'me', payload: new Uint8Array(1) })
    topic.handle({ type: 'timer', timer: { type: 'ihaveFlush' } }, 500)
    const counters = topic.counters()
    assert.equal(counters.received.neighbor, 2)
    assert.equal(counters.sent.neighborReply, 2)
    assert.equal(counters.sent.gossip, 2)
    assert.equal(counters.received.gossip, 1)
    assert.equal(counters.sent.prune, 1)
    assert.equal(counters.dissemination.duplicates, 1)
    assert.equal(counters.sent.join, 0)
  })
})
