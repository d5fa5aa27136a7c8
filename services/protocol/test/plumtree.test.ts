/**
 * Plumtree handlers: one event in, the exact actions out. Neighbours come from HyParView
 * (`befriend`). Trees are per origin: `me` for our own broadcasts, `o` (or `o2`) for a remote
 * origin. A new origin's tree pushes to every neighbour while no tree is kept (§3.4), and a
 * PRUNE naming the origin stops the pushes to its sender. N = 16 gives room for five neighbours.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PayloadTooLargeError } from '../src/overlay/index.ts'
import type { Action, GossipMessage, Topic, TopicConfig, Verdict } from '../src/overlay/index.ts'
import { befriend, receive, send, startedTopic } from './helpers.ts'

const payload = new Uint8Array([1, 2, 3])

/**
 * A topic with neighbours `pushed` and `lazy`: for each origin in `origins`, `lazy` neighbours
 * have pruned us (they get IDs only), the others get payloads.
 */
function tree(pushed: string[], lazy: string[] = [], config?: TopicConfig, origins: string[] = ['me', 'o']): Topic {
  const topic = startedTopic({ networkSize: 16, config })
  befriend(topic, ...pushed, ...lazy)
  for (const peer of lazy) receive(topic, peer, { type: 'prune', origins })
  return topic
}

const gossip = (id: string, round: number, origin = 'o', body = payload): GossipMessage => ({ type: 'gossip', id, round, origin, payload: body })
/** A GRAFT's answer: marked as a repair, so its lateness teaches nobody's GRAFT timeout. */
const repair = (id: string, round: number, origin = 'o', body = payload): GossipMessage => ({ ...gossip(id, round, origin, body), repaired: true })
const flushTimer: Action = { type: 'timer', after: 500, timer: { type: 'ihaveFlush' } }
const flush = (topic: Topic, now = 500): Action[] => topic.handle({ type: 'timer', timer: { type: 'ihaveFlush' } }, now)
const graftTimer = (messageId: string, after: number): Action => ({ type: 'timer', after, timer: { type: 'graft', messageId } })
/** Armed when the cache takes its first payload: the payload's age bound, MESSAGE_CACHE_TTL_MS. */
const expiryTimer = (after = 60_000): Action => ({ type: 'timer', after, timer: { type: 'cacheExpiry' } })
const validated = (topic: Topic, messageId: string, verdict: Verdict, now = 0): Action[] => topic.handle({ type: 'validated', messageId, verdict }, now)
const validate = (messageId: string, from: string, round: number, origin = 'o', body = payload): Action =>
  ({ type: 'validate', messageId, payload: body, from, origin, round })
const deliver = (messageId: string, from: string, round: number, body = payload): Action => ({ type: 'deliver', messageId, payload: body, from, round })
/** Makes `origin`'s tree known (a copy of the shared tree), so its next message is not its first here. */
function known(topic: Topic, origin: string, via = 'a'): void {
  receive(topic, via, { type: 'graft', id: null, origin })
}
/** Receives a first copy and accepts it; returns the actions of the acceptance. */
function receiveValid(topic: Topic, from: string, message: GossipMessage, now = 0): Action[] {
  receive(topic, from, message, now)
  return validated(topic, message.id, 'accept', now)
}

describe('Plumtree: broadcast and eager/lazy push (§3.3)', () => {
  it('a broadcast goes in full to every neighbour of our tree, at round 1, naming us as its origin', () => {
    const topic = tree(['a', 'b'])
    assert.deepEqual(topic.broadcast('m1', payload, 0), [
      send('a', gossip('m1', 1, 'me')),
      send('b', gossip('m1', 1, 'me')),
      expiryTimer()
    ])
  })

  it('lazy peers get the ID in the next IHAVE batch', () => {
    const topic = tree(['a'], ['c'])
    assert.deepEqual(topic.broadcast('m1', payload, 0), [
      send('a', gossip('m1', 1, 'me')),
      flushTimer,
      expiryTimer()
    ])
    assert.deepEqual(flush(topic), [send('c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] })])
    assert.deepEqual(flush(topic, 1000), [], 'the queue was emptied')
  })

  it('one batch timer covers every announcement queued in its interval', () => {
    const topic = tree([], ['c'])
    assert.deepEqual(topic.broadcast('m1', payload, 0), [flushTimer, expiryTimer()])
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

describe('Plumtree: validate, then forward (issue 18)', () => {
  it('an unvalidated gossip is neither forwarded nor announced, nor served to a GRAFT', () => {
    const topic = tree(['a', 'b'], ['c'])
    assert.deepEqual(receive(topic, 'a', gossip('m1', 3)), [validate('m1', 'a', 3)], 'handed to the application, nothing else')
    assert.deepEqual(flush(topic), [], 'no announcement')
    assert.deepEqual(receive(topic, 'b', { type: 'graft', id: 'm1', origin: null }), [], 'not served while it is judged')
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] }), [], 'held, so not missing either')
    assert.equal(topic.snapshot().pendingMessages, 1)
    assert.equal(topic.counters().dissemination.delivered, 0)
  })

  it('an accepted one is delivered, goes in full to the pushed neighbours and as IHAVE to the lazy ones, one round further', () => {
    const topic = tree(['a', 'b'], ['c'])
    receive(topic, 'a', gossip('m1', 3))
    assert.deepEqual(validated(topic, 'm1', 'accept'), [
      deliver('m1', 'a', 3),
      send('b', gossip('m1', 4)),
      flushTimer,
      expiryTimer()
    ])
    assert.deepEqual(flush(topic), [send('c', { type: 'ihave', entries: [{ id: 'm1', round: 4 }] })])
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm1', origin: null }), [send('c', repair('m1', 4))], 'and served to a GRAFT')
    assert.equal(topic.snapshot().pendingMessages, 0)
  })

  it('a rejected one produces nothing but the report of the neighbour that sent it', () => {
    const topic = tree(['a', 'b'], ['c'])
    receive(topic, 'a', gossip('m1', 3))
    assert.deepEqual(validated(topic, 'm1', 'reject'), [{ type: 'rejected', messageId: 'm1', from: 'a' }])
    assert.deepEqual(flush(topic), [], 'no announcement')
    assert.equal(topic.snapshot().cachedMessages, 0)
    assert.equal(topic.counters().dissemination.rejected, 1)
  })

  it('a GRAFT for a rejected ID is not answered', () => {
    const topic = tree(['a', 'b'])
    receive(topic, 'a', gossip('m1', 3))
    validated(topic, 'm1', 'reject')
    assert.deepEqual(receive(topic, 'b', { type: 'graft', id: 'm1', origin: null }), [])
    assert.equal(topic.counters().dissemination.graftMisses, 1)
  })

  it('a rejected ID is forgotten: a different copy of it from elsewhere is judged afresh (on `content` an ID names the entry, not its envelope)', () => {
    const topic = tree(['a', 'b'])
    receive(topic, 'a', gossip('m1', 3))
    validated(topic, 'm1', 'reject')
    const other = new Uint8Array([1, 2, 4])
    assert.deepEqual(receive(topic, 'b', gossip('m1', 2, 'o', other)), [validate('m1', 'b', 2, 'o', other)])
    assert.deepEqual(validated(topic, 'm1', 'accept'), [deliver('m1', 'b', 2, other), send('a', gossip('m1', 3, 'o', other)), expiryTimer()])
  })

  it('a copy identical to a rejected one is rejected again unjudged, its sender reported; the ID stays open', () => {
    const topic = tree(['a', 'b', 'c'])
    receive(topic, 'a', gossip('m1', 3))
    validated(topic, 'm1', 'reject')
    assert.deepEqual(receive(topic, 'b', gossip('m1', 2, 'o', new Uint8Array(payload))), [{ type: 'rejected', messageId: 'm1', from: 'b' }], 'equal bytes, not the same buffer')
    assert.deepEqual(receive(topic, 'c', gossip('m1', 2)), [{ type: 'rejected', messageId: 'm1', from: 'c' }])
    const counters = topic.counters().dissemination
    assert.equal(counters.validations, 1)
    assert.equal(counters.rejected, 1)
    assert.equal(counters.rejectedCopies, 2)
    const announced = receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] })
    assert.deepEqual(announced.map((action) => action.type === 'timer' ? action.timer : action), [{ type: 'graft', messageId: 'm1' }], 'still missing: an announcement is followed up')
  })

  it('a GRAFT answered with the rejected copy moves on to the next announcer', () => {
    const topic = tree(['a', 'b', 'c'])
    receive(topic, 'a', gossip('m1', 3))
    receive(topic, 'b', gossip('m1', 3))
    receive(topic, 'c', gossip('m1', 3))
    flush(topic)
    assert.deepEqual(validated(topic, 'm1', 'reject'), [
      { type: 'rejected', messageId: 'm1', from: 'a' },
      send('b', { type: 'graft', id: 'm1', origin: null }),
      graftTimer('m1', 500)
    ])
    assert.deepEqual(receive(topic, 'b', repair('m1', 3)), [{ type: 'rejected', messageId: 'm1', from: 'b' }])
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm1' } }, 500), [
      send('c', { type: 'graft', id: 'm1', origin: null }),
      graftTimer('m1', 500)
    ])
    const valid = new Uint8Array([9])
    assert.deepEqual(receive(topic, 'c', repair('m1', 3, 'o', valid)), [validate('m1', 'c', 3, 'o', valid)], 'a different copy is judged')
  })

  it('rejected copies are remembered within rejectedCacheMaxEntries and rejectedCacheMaxBytes, oldest first', () => {
    const topic = tree(['a', 'b'], [], { plumtree: { rejectedCacheMaxEntries: 2, rejectedCacheMaxBytes: 8 } })
    for (const id of ['m1', 'm2', 'm3']) {
      receive(topic, 'a', gossip(id, 1))
      validated(topic, id, 'reject')
    }
    assert.deepEqual(receive(topic, 'b', gossip('m1', 1)), [validate('m1', 'b', 1)], 'm1 was the oldest of three, over the count bound')
    assert.deepEqual(receive(topic, 'b', gossip('m3', 1)), [{ type: 'rejected', messageId: 'm3', from: 'b' }])
    const big = new Uint8Array(9)
    receive(topic, 'a', gossip('m4', 1, 'o', big))
    validated(topic, 'm4', 'reject')
    assert.deepEqual(receive(topic, 'b', gossip('m4', 1, 'o', big)), [validate('m4', 'b', 1, 'o', big)], 'larger than the byte bound: not remembered')
  })

  it('neighbours that sent the ID while it was judged are asked for their copy if it is rejected', () => {
    const topic = tree(['a', 'b'])
    receive(topic, 'a', gossip('m1', 3))
    assert.deepEqual(receive(topic, 'b', gossip('m1', 2)), [flushTimer], 'a duplicate meanwhile: b is pruned at the next flush')
    assert.deepEqual(validated(topic, 'm1', 'reject'), [
      { type: 'rejected', messageId: 'm1', from: 'a' },
      send('b', { type: 'graft', id: 'm1', origin: null }),
      graftTimer('m1', 500)
    ])
  })

  it('an ignored one goes nowhere and blames nobody; its ID stays seen', () => {
    const topic = tree(['a', 'b'], ['c'])
    receive(topic, 'a', gossip('m1', 3))
    assert.deepEqual(validated(topic, 'm1', 'ignore'), [])
    assert.deepEqual(flush(topic), [])
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] }), [], 'not asked for again')
    assert.equal(topic.counters().dissemination.validationsIgnored, 1)
  })

  it('a verdict on a message not held does nothing', () => {
    const topic = tree(['a'])
    assert.deepEqual(validated(topic, 'nothing', 'accept'), [])
    receiveValid(topic, 'a', gossip('m1', 1))
    assert.deepEqual(validated(topic, 'm1', 'reject'), [], 'judged once')
  })

  it('our own broadcast of a held ID supersedes the held copy', () => {
    const topic = tree(['a', 'b'])
    receive(topic, 'a', gossip('m1', 3))
    assert.deepEqual(topic.broadcast('m1', payload, 0), [send('a', gossip('m1', 1, 'me')), send('b', gossip('m1', 1, 'me')), expiryTimer()])
    assert.deepEqual(validated(topic, 'm1', 'reject'), [], 'the held copy was dropped')
  })

  it('at most maxPendingMessages are held; past it a first receipt is dropped unjudged, as ignored', () => {
    const topic = tree(['a'], [], { plumtree: { maxPendingMessages: 1 } })
    receive(topic, 'a', gossip('m1', 1))
    assert.deepEqual(receive(topic, 'a', gossip('m2', 1)), [])
    assert.equal(topic.counters().dissemination.pendingOverflow, 1)
  })
})

describe('Plumtree: one tree per origin, duplicates and PRUNE (§3.3)', () => {
  it('a duplicate of an origin\'s later message prunes its link in that origin\'s tree: one PRUNE per neighbour at the next flush, naming every origin pruned', () => {
    const topic = tree(['a', 'b'])
    known(topic, 'o')
    known(topic, 'o2')
    receiveValid(topic, 'a', gossip('m1', 1, 'o'))
    receiveValid(topic, 'a', gossip('m2', 1, 'o2'))
    assert.deepEqual(receive(topic, 'b', gossip('m1', 2, 'o')), [flushTimer])
    assert.deepEqual(receive(topic, 'b', gossip('m2', 2, 'o2')), [])
    assert.deepEqual(flush(topic), [send('b', { type: 'prune', origins: ['o', 'o2'] })])
    assert.equal(topic.counters().dissemination.duplicates, 2)
  })

  it('a duplicate of an origin\'s first message prunes its link in the shared tree too, which new origins start from', () => {
    const topic = tree(['a', 'b', 'c'])
    receiveValid(topic, 'a', gossip('m1', 1, 'o'))
    assert.deepEqual(receive(topic, 'c', gossip('m1', 2, 'o')), [flushTimer])
    assert.deepEqual(flush(topic), [send('c', { type: 'prune', origins: ['*', 'o'] })])
    assert.deepEqual([topic.snapshot().eager, topic.snapshot().lazy], [['a', 'b'], ['c']])
    assert.deepEqual(topic.broadcast('m2', payload, 0).filter((action) => action.type === 'send'), [send('a', gossip('m2', 1, 'me')), send('b', gossip('m2', 1, 'me'))])
  })

  it('a PRUNE or GRAFT naming the shared tree takes the link out of it or into it', () => {
    const topic = tree(['a', 'b'])
    receive(topic, 'b', { type: 'prune', origins: ['*'] })
    assert.deepEqual(topic.snapshot().lazy, ['b'])
    assert.deepEqual(topic.broadcast('m1', payload, 0).filter((action) => action.type === 'send'), [send('a', gossip('m1', 1, 'me'))])
    receive(topic, 'b', { type: 'graft', id: null, origin: '*' })
    assert.deepEqual(topic.snapshot().eager, ['a', 'b'])
  })

  it('pruning a link in one origin\'s tree leaves it in the others', () => {
    const topic = tree(['a', 'b', 'c'])
    known(topic, 'o')
    known(topic, 'o2')
    receiveValid(topic, 'a', gossip('m1', 1, 'o'))
    receiveValid(topic, 'a', gossip('m2', 1, 'o2'))
    receive(topic, 'b', { type: 'prune', origins: ['o'] })
    assert.deepEqual(receiveValid(topic, 'a', gossip('m3', 1, 'o')).filter((action) => action.type === 'send'), [send('c', gossip('m3', 2, 'o'))], 'o: b pruned us')
    assert.deepEqual(receiveValid(topic, 'a', gossip('m4', 1, 'o2')).filter((action) => action.type === 'send'), [send('b', gossip('m4', 2, 'o2')), send('c', gossip('m4', 2, 'o2'))], 'o2: b still gets payloads')
  })

  it('the neighbour a message came from first is upstream: its origin\'s later messages are not pushed back to it', () => {
    const topic = tree(['a', 'b'])
    known(topic, 'o')
    receiveValid(topic, 'a', gossip('m1', 1))
    assert.deepEqual(receiveValid(topic, 'b', gossip('m2', 1)), [deliver('m2', 'b', 1), flushTimer], 'a is announced to, not pushed to')
    assert.deepEqual(flush(topic), [send('a', { type: 'ihave', entries: [{ id: 'm2', round: 2 }] })])
  })

  it('a parent\'s duplicate is forgiven once (hysteresis), a second one prunes it', () => {
    const topic = tree(['a', 'b'])
    known(topic, 'o')
    receiveValid(topic, 'a', gossip('m1', 1))
    receiveValid(topic, 'b', gossip('m2', 1))
    flush(topic)
    assert.deepEqual(receive(topic, 'a', gossip('m2', 2)), [], 'a delivered m1 first: one duplicate is its grace')
    assert.equal(topic.counters().dissemination.prunesDeferred, 1)
    assert.deepEqual(receive(topic, 'a', gossip('m1', 2)), [flushTimer])
    assert.deepEqual(flush(topic), [send('a', { type: 'prune', origins: ['o'] })])
  })

  it('an origin\'s tree idle for originTreeIdleMs starts again from the shared tree, and its next message counts as its first', () => {
    const topic = tree(['a', 'b', 'c'], [], { plumtree: { originTreeIdleMs: 1000 } })
    known(topic, 'o')
    receive(topic, 'c', { type: 'prune', origins: ['o'] })
    assert.deepEqual(receiveValid(topic, 'a', gossip('m1', 1), 500).filter((action) => action.type === 'send'), [send('b', gossip('m1', 2))], 'c pruned o: it gets IDs only')
    assert.deepEqual(receiveValid(topic, 'a', gossip('m2', 1), 2000).filter((action) => action.type === 'send'), [send('b', gossip('m2', 2)), send('c', gossip('m2', 2))], 'a fresh copy of the shared tree')
  })

  it('a payload from a peer outside the active view is judged and delivered, but changes no tree', () => {
    const topic = tree(['a'])
    assert.deepEqual(receive(topic, 'x', gossip('m1', 2)), [validate('m1', 'x', 2)])
    assert.deepEqual(validated(topic, 'm1', 'accept'), [deliver('m1', 'x', 2), send('a', gossip('m1', 3)), expiryTimer()])
    assert.deepEqual(receive(topic, 'x', gossip('m1', 2)), [], 'no PRUNE to a non-neighbour')
  })

  it('hop counts are clamped to maxRound', () => {
    const topic = tree(['a', 'b'], [], { plumtree: { maxRound: 10 } })
    assert.deepEqual(receive(topic, 'a', gossip('m1', 50)), [validate('m1', 'a', 10)])
    assert.deepEqual(validated(topic, 'm1', 'accept'), [deliver('m1', 'a', 10), send('b', gossip('m1', 10)), expiryTimer()])
  })

  it('the origin trees kept are bounded; the least recently used goes first', () => {
    const topic = tree(['a', 'b'], [], { plumtree: { maxOriginTrees: 2 } }, [])
    for (const [i, origin] of ['o1', 'o2', 'o3'].entries()) receiveValid(topic, 'a', gossip(`m${i}`, 1, origin))
    assert.equal(topic.snapshot().origins, 2)
    assert.equal(topic.counters().dissemination.treeEvictions, 1)
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
    receiveValid(topic, 'a', gossip('m1', 9))
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] }), [])
  })

  it('when the timer fires, GRAFT the first announcer and wait a shorter time before the next', () => {
    const topic = tree(['a'], ['c', 'd'])
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm9', round: 2 }] })
    receive(topic, 'd', { type: 'ihave', entries: [{ id: 'm9', round: 2 }] })
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm9' } }, 1000), [
      send('c', { type: 'graft', id: 'm9', origin: null }),
      graftTimer('m9', 500)
    ])
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm9' } }, 1500), [
      send('d', { type: 'graft', id: 'm9', origin: null }),
      graftTimer('m9', 500)
    ])
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm9' } }, 2000), [])
    assert.equal(topic.snapshot().missingMessages, 0)
    assert.equal(topic.counters().dissemination.graftsAbandoned, 1)
  })

  it('a message that arrives before the timer needs no GRAFT', () => {
    const topic = tree(['a'], ['c'])
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm9', round: 5 }] })
    receiveValid(topic, 'a', gossip('m9', 5))
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm9' } }, 1000), [])
  })

  it('a copy we asked for is a repair: the grafted neighbour does not become upstream, and is pruned at its next duplicate', () => {
    const topic = tree(['a', 'b'], ['c'])
    receiveValid(topic, 'a', gossip('m1', 1))
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm2', round: 2 }] })
    topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm2' } }, 1000)
    receiveValid(topic, 'c', gossip('m2', 3))
    receiveValid(topic, 'a', gossip('m3', 1))
    flush(topic)
    assert.deepEqual(receive(topic, 'c', gossip('m3', 3)), [flushTimer], 'no grace for c')
    assert.deepEqual(flush(topic), [send('c', { type: 'prune', origins: ['o'] })])
  })

  it('a GRAFT is answered with the cached payload, one round further; only one naming the origin makes its sender pushed to', () => {
    const topic = tree(['a'], ['c'])
    topic.broadcast('m1', payload, 0)
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm1', origin: null }), [send('c', repair('m1', 1, 'me'))])
    assert.deepEqual(topic.broadcast('m2', payload, 0), [send('a', gossip('m2', 1, 'me'))], 'a repair: c still gets IDs only')
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm2', origin: 'me' }), [send('c', repair('m2', 1, 'me'))])
    assert.deepEqual(topic.broadcast('m3', payload, 0), [send('a', gossip('m3', 1, 'me')), send('c', gossip('m3', 1, 'me'))], 'c joined our tree')
  })

  it('an origin\'s messages that come by GRAFT twice in a row make us join the tree of the neighbour that served them', () => {
    const topic = tree(['a'], ['c'])
    receiveValid(topic, 'a', gossip('m0', 1))
    for (const [i, id] of ['m1', 'm2'].entries()) {
      receive(topic, 'c', { type: 'ihave', entries: [{ id, round: 2 }] })
      assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'graft', messageId: id } }, 1000), [send('c', { type: 'graft', id, origin: null }), graftTimer(id, 500)])
      receive(topic, 'c', gossip(id, 3))
      const joined = validated(topic, id, 'accept').filter((action) => action.type === 'send' && action.message.type === 'graft')
      assert.deepEqual(joined, i === 0 ? [] : [send('c', { type: 'graft', id: null, origin: 'o' })], i === 0 ? 'one repair is a loss' : 'two in a row: our path is gone')
    }
  })

  it('a GRAFT for a payload no longer cached is not answered', () => {
    const topic = tree(['a'], ['c'])
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'gone', origin: null }), [])
    assert.equal(topic.counters().dissemination.graftMisses, 1)
  })

  it('a GRAFT without an ID makes its sender pushed to in the origin\'s tree', () => {
    const topic = tree(['a'], ['c'])
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: null, origin: 'me' }), [])
    assert.deepEqual(topic.broadcast('m1', payload, 0), [send('a', gossip('m1', 1, 'me')), send('c', gossip('m1', 1, 'me')), expiryTimer()])
  })

  it('control messages from outside the active view are ignored', () => {
    const topic = tree(['a'])
    assert.deepEqual(receive(topic, 'x', { type: 'ihave', entries: [{ id: 'm9', round: 1 }] }), [])
    assert.deepEqual(receive(topic, 'x', { type: 'graft', id: null, origin: 'me' }), [])
    assert.deepEqual(receive(topic, 'x', { type: 'prune', origins: ['me'] }), [])
    assert.deepEqual(topic.snapshot().eager, ['a'])
    assert.equal(topic.counters().dissemination.ignored, 3)
  })

  it('at most maxMissingMessages announced messages are tracked', () => {
    const topic = tree(['a'], ['c'], { plumtree: { maxMissingMessages: 1 } })
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'x1', round: 1 }, { id: 'x2', round: 1 }] }), [graftTimer('x1', 1000)])
    assert.equal(topic.counters().dissemination.missingOverflow, 1)
  })
})

describe('Plumtree: the GRAFT timeout adapts to how late eager copies come', () => {
  /** m is announced by c at `at`, and its eager copy comes from a at `arrives`; returns the timer the next announcement arms. */
  const lateCopy = (topic: Topic, id: string, at: number, arrives: number, repaired = false): void => {
    receive(topic, 'c', { type: 'ihave', entries: [{ id, round: 1 }] }, at)
    receive(topic, 'a', repaired ? repair(id, 2) : gossip(id, 2), arrives)
    validated(topic, id, 'accept', arrives)
  }

  it('an eager copy 3 s after its IHAVE makes the next GRAFT wait a quarter longer than that', () => {
    const topic = tree(['a'], ['c'])
    lateCopy(topic, 'm1', 0, 3000)
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm2', round: 1 }] }, 3100), [graftTimer('m2', 3750)])
  })

  it('a copy that was itself repaired upstream teaches nothing (its lateness is a GRAFT\'s, not a queue\'s)', () => {
    const topic = tree(['a'], ['c'])
    lateCopy(topic, 'm1', 0, 3000, true)
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm2', round: 1 }] }, 3100), [graftTimer('m2', 1000)])
  })

  it('the eager copy of a message already fetched by GRAFT shows how late it was', () => {
    const topic = tree(['a'], ['c'])
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] }, 0)
    topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm1' } }, 1000)
    receive(topic, 'c', repair('m1', 2), 1100)
    validated(topic, 'm1', 'accept', 1100)
    receive(topic, 'a', gossip('m1', 2), 2000)
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm2', round: 1 }] }, 2100), [graftTimer('m2', 2500)])
  })

  it('lateness is forgotten after about 30 s, and the wait never passes maxGraftTimeoutMs', () => {
    const topic = tree(['a'], ['c'], { plumtree: { maxGraftTimeoutMs: 3000 } })
    lateCopy(topic, 'm1', 0, 8000)
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm2', round: 1 }] }, 8100), [graftTimer('m2', 3000)])
    assert.deepEqual(receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm3', round: 1 }] }, 40_000), [graftTimer('m3', 1000)])
  })
})

describe('Plumtree: the shared tree (first messages)', () => {
  it('a first message fetched by GRAFT joins the shared tree through the neighbour that served it', () => {
    const topic = tree(['a'], ['c'])
    receive(topic, 'c', { type: 'prune', origins: ['*'] })
    receive(topic, 'c', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] })
    topic.handle({ type: 'timer', timer: { type: 'graft', messageId: 'm1' } }, 1000)
    receive(topic, 'c', repair('m1', 2, 'new-origin'), 1100)
    assert.deepEqual(validated(topic, 'm1', 'accept', 1100).filter((action) => action.type === 'send' && action.message.type === 'graft'),
      [send('c', { type: 'graft', id: null, origin: '*' })])
    assert.deepEqual(topic.snapshot().eager, ['a', 'c'])
  })

  it('a shared link that brought a first message first gets one duplicate\'s grace; a new one none', () => {
    const topic = tree(['a', 'b', 'c'])
    receiveValid(topic, 'a', gossip('m1', 1, 'o1'))
    receiveValid(topic, 'b', gossip('m2', 1, 'o2'))
    flush(topic)
    assert.deepEqual(receive(topic, 'c', gossip('m2', 2, 'o2')), [flushTimer], 'c never brought a first message: pruned at once')
    assert.deepEqual(flush(topic), [send('c', { type: 'prune', origins: ['*', 'o2'] })])
    receiveValid(topic, 'b', gossip('m3', 1, 'o3'))
    flush(topic)
    assert.deepEqual(receive(topic, 'a', gossip('m3', 2, 'o3')), [flushTimer], 'a brought m1 first: its duplicate costs it o3\'s tree only')
    assert.deepEqual(flush(topic), [send('a', { type: 'prune', origins: ['o3'] })])
    assert.deepEqual(topic.snapshot().eager, ['a', 'b'])
    receiveValid(topic, 'b', gossip('m4', 1, 'o4'))
    flush(topic)
    receive(topic, 'a', gossip('m4', 2, 'o4'))
    assert.deepEqual(flush(topic), [send('a', { type: 'prune', origins: ['*', 'o4'] })], 'a second one in a row: out of the shared tree')
    assert.deepEqual(topic.snapshot().eager, ['b'])
  })
})

describe('Plumtree: tree optimisation (§3.8), only on a consistent gain', () => {
  /** c announces each message 4 hops ahead of a's payload. */
  const shorterAhead = (topic: Topic, id: string, lazyRound: number): Action[] => {
    receive(topic, 'c', { type: 'ihave', entries: [{ id, round: lazyRound }] })
    return receiveValid(topic, 'a', gossip(id, 6))
  }

  it('a lazy path at least 4 hops shorter for three messages of an origin in a row swaps with the eager one', () => {
    const topic = tree(['a'], ['c'])
    assert.deepEqual(shorterAhead(topic, 'm1', 2), [deliver('m1', 'a', 6), flushTimer, expiryTimer()], 'once is not enough')
    assert.deepEqual(shorterAhead(topic, 'm2', 2), [deliver('m2', 'a', 6)])
    assert.deepEqual(shorterAhead(topic, 'm3', 2), [
      deliver('m3', 'a', 6),
      send('c', { type: 'graft', id: null, origin: 'o' })
    ])
    assert.deepEqual(flush(topic), [
      send('a', { type: 'prune', origins: ['o'] }),
      send('c', { type: 'ihave', entries: [{ id: 'm1', round: 7 }, { id: 'm2', round: 7 }, { id: 'm3', round: 7 }] })
    ])
    assert.equal(topic.counters().dissemination.treeSwaps, 1)
  })

  it('a message without the gain starts the count again', () => {
    const topic = tree(['a'], ['c'])
    shorterAhead(topic, 'm1', 2)
    shorterAhead(topic, 'm2', 2)
    shorterAhead(topic, 'm3', 3)
    assert.deepEqual(shorterAhead(topic, 'm4', 2), [deliver('m4', 'a', 6)])
    assert.equal(topic.counters().dissemination.treeSwaps, 0)
  })

  it('a lazy path only 3 hops shorter is left alone', () => {
    const topic = tree(['a'], ['c'], { plumtree: { optimizationConsistency: 1 } })
    assert.deepEqual(shorterAhead(topic, 'm5', 3), [deliver('m5', 'a', 6), flushTimer, expiryTimer()])
  })
})

describe('Plumtree: neighbours and bounds', () => {
  it('a neighbour that goes down takes its queued announcements and prunes with it (§3.7)', () => {
    const topic = tree(['a', 'b'], ['c'])
    topic.broadcast('m1', payload, 0)
    receive(topic, 'b', gossip('m1', 2, 'me'))
    topic.handle({ type: 'linkDown', peer: 'c' }, 10)
    topic.handle({ type: 'linkDown', peer: 'b' }, 10)
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
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm1', origin: null }), [])
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm3', origin: null }), [send('c', repair('m3', 1, 'me'))])
  })

  it('the payload cache is bounded by age', () => {
    const topic = tree(['a'], ['c'], { plumtree: { messageCacheTtlMs: 1000 } })
    topic.broadcast('m1', payload, 0)
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm1', origin: null }, 999), [send('c', repair('m1', 1, 'me'))])
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm1', origin: null }, 1000), [])
  })

  it('the payload cache is bounded by bytes: the oldest payloads go first, and are counted', () => {
    const kib = new Uint8Array(1024)
    const topic = tree(['a'], ['c'], { plumtree: { messageCacheMaxBytes: 3 * 1024 } })
    for (const id of ['m1', 'm2', 'm3', 'm4', 'm5']) topic.broadcast(id, kib, 0)
    assert.deepEqual([topic.snapshot().cachedMessages, topic.snapshot().cachedBytes], [3, 3 * 1024], 'never more than the bound')
    assert.equal(topic.counters().dissemination.cacheEvictions, 2)
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm2', origin: null }), [], 'an evicted payload cannot be grafted')
    assert.deepEqual(receive(topic, 'c', { type: 'graft', id: 'm5', origin: null }), [send('c', repair('m5', 1, 'me', kib))])
    // One payload larger than the whole bound is not kept at all.
    topic.broadcast('big', new Uint8Array(4 * 1024), 0)
    assert.equal(topic.snapshot().cachedBytes <= 3 * 1024, true)
  })

  it('a quiet topic releases its cached payloads on time: the expiry timer, not the next message, drops them', () => {
    const topic = tree(['a'], [], { plumtree: { messageCacheTtlMs: 1000, seenTtlMs: 5000 } })
    const first = topic.broadcast('m1', payload, 0)
    assert.deepEqual(first.filter((action) => action.type === 'timer'), [expiryTimer(1000)])
    topic.broadcast('m2', payload, 400)
    // Nothing arrives any more; only the timers the topic asked for fire.
    const second = topic.handle({ type: 'timer', timer: { type: 'cacheExpiry' } }, 1000)
    assert.deepEqual(topic.snapshot().cachedMessages, 1, 'm1 expired at its TTL, m2 not yet')
    assert.deepEqual(second, [expiryTimer(400)], 're-armed for m2')
    const third = topic.handle({ type: 'timer', timer: { type: 'cacheExpiry' } }, 1400)
    assert.deepEqual([topic.snapshot().cachedMessages, topic.snapshot().cachedBytes], [0, 0], 'a quiet topic holds no payload past its TTL')
    assert.deepEqual(third, [expiryTimer(3600)], 'then once more for the seen IDs')
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'cacheExpiry' } }, 5400), [], 'and none once both are empty')
    assert.deepEqual(topic.broadcast('m1', payload, 5400).filter((action) => action.type === 'send').length, 1, 'm1 is new again')
  })

  it('a payload cached while only the seen IDs\' later timer is pending gets its own, earlier one', () => {
    const topic = tree(['a'], [], { plumtree: { messageCacheTtlMs: 1000, seenTtlMs: 5000 } })
    topic.broadcast('m1', payload, 0)
    assert.deepEqual(topic.handle({ type: 'timer', timer: { type: 'cacheExpiry' } }, 1000), [expiryTimer(4000)], 'the seen ID\'s timer')
    assert.deepEqual(topic.broadcast('m2', payload, 1100).filter((action) => action.type === 'timer'), [expiryTimer(1000)], 'm2 expires before that')
  })

  it('a congested neighbour is pushed to in no tree, without a PRUNE, and its GRAFT naming an origin makes it pushed to again there', () => {
    const topic = tree(['a', 'b'])
    topic.broadcast('m0', payload, 0)
    assert.deepEqual(topic.handle({ type: 'congested', peer: 'a' }, 0), [], 'nothing is sent to a neighbour that cannot keep up')
    assert.deepEqual(topic.broadcast('m1', payload, 0), [send('b', gossip('m1', 1, 'me')), flushTimer], 'a gets the ID only')
    assert.deepEqual(flush(topic), [send('a', { type: 'ihave', entries: [{ id: 'm1', round: 1 }] })])
    assert.deepEqual(receive(topic, 'a', { type: 'graft', id: 'm1', origin: 'me' }), [send('a', repair('m1', 1, 'me'))])
    assert.deepEqual(topic.broadcast('m2', payload, 0).filter((action) => action.type === 'send'), [send('a', gossip('m2', 1, 'me')), send('b', gossip('m2', 1, 'me'))])
    assert.equal(topic.counters().dissemination.congestions, 1)
    assert.deepEqual(topic.handle({ type: 'congested', peer: 'x' }, 0), [])
    assert.equal(topic.counters().dissemination.congestions, 1, 'a peer that is pushed to nowhere is not counted')
  })

  it('seen IDs are bounded by age: after seenTtlMs an ID counts as new', () => {
    const topic = tree(['a'], [], { plumtree: { seenTtlMs: 1000 } })
    receiveValid(topic, 'a', gossip('m1', 1), 0)
    assert.deepEqual(receive(topic, 'a', gossip('m1', 1), 999), [], 'a duplicate from the parent: its grace')
    assert.deepEqual(receive(topic, 'a', gossip('m1', 1), 1000), [validate('m1', 'a', 1)])
  })

  it('seen IDs are bounded by count', () => {
    const topic = tree(['a'], [], { plumtree: { seenMaxEntries: 2, messageCacheMaxEntries: 2 } })
    for (const id of ['m1', 'm2', 'm3']) receiveValid(topic, 'a', gossip(id, 1))
    assert.equal(receive(topic, 'a', gossip('m1', 1))[0]?.type, 'validate')
  })
})
