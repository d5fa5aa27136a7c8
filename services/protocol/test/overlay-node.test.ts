/**
 * The multi-topic node: routing, the rejoin rule, the address-lookup back-off, the departing
 * record and the bounds of its maps. One event in, the exact actions out.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createOverlayNode, OverlayConfigError, UnknownTopicError } from '../src/overlay/index.ts'
import type { OverlayNode, OverlayNodeAction, OverlayNodeConfig, PeerKey } from '../src/overlay/index.ts'

const A = '/net/a'
const B = '/net/b'

function startedNode(options: { bootstrap?: () => readonly PeerKey[], config?: Partial<OverlayNodeConfig> } = {}): OverlayNode {
  const node = createOverlayNode({ self: 'me', topics: [A, B], networkSize: 4, seed: 1, ...options })
  node.start(0)
  return node
}

/** `peer` asks to be our neighbour on `topic` with high priority, which is always accepted. */
function befriend(node: OverlayNode, topic: string, peer: PeerKey, now = 0): OverlayNodeAction[] {
  return node.handle({ type: 'frame', topic, from: peer, message: { type: 'neighbor', priority: 'high' } }, now)
}

const joinActions = (topic: string, contact: PeerKey, request: number): OverlayNodeAction[] => [
  { type: 'connect', peer: contact, topic },
  { type: 'send', to: contact, message: { type: 'join' }, topic },
  { type: 'timer', after: 5000, timer: { type: 'neighborTimeout', peer: contact, request }, topic }
]

describe('overlay node', () => {
  it('starts every topic, each action tagged with its topic', () => {
    const node = createOverlayNode({ self: 'me', topics: [A, B], networkSize: 4, seed: 1 })
    const actions = node.start(0)
    assert.deepEqual(actions.map((action) => [action.type, 'topic' in action ? action.topic : undefined]), [['timer', A], ['timer', B]])
    assert.deepEqual(node.start(0), [], 'a second start arms nothing')
    assert.deepEqual(node.topicNames, [A, B])
  })

  it('routes a frame to the topic it names, and only that topic', () => {
    const node = startedNode()
    assert.deepEqual(befriend(node, B, 'x'), [
      { type: 'connect', peer: 'x', topic: B },
      { type: 'neighborUp', peer: 'x', topic: B },
      { type: 'send', to: 'x', message: { type: 'neighborReply', accepted: true }, topic: B }
    ])
    assert.deepEqual(node.topic(B)?.snapshot().active, ['x'])
    assert.deepEqual(node.topic(A)?.snapshot().active, [])
    assert.equal(node.isNeighbor('x'), true)
    assert.equal(node.isLinked('x'), true)
    assert.equal(node.isLinked('y'), false)
  })

  it('reports a frame for a topic it is not in, and changes nothing', () => {
    const node = startedNode()
    assert.deepEqual(befriend(node, '/net/other', 'x'), [{ type: 'unknownTopic', topic: '/net/other', from: 'x' }])
    assert.equal(node.isNeighbor('x'), false)
    assert.equal(node.counters().unknownTopic, 1)
    assert.throws(() => node.broadcast('/net/other', 'm', new Uint8Array(1), 0), UnknownTopicError)
  })

  it('rejoins a topic whose active view stayed empty for the interval, and not before', () => {
    const node = startedNode({ bootstrap: () => ['boot'] })
    befriend(node, B, 'x')
    assert.deepEqual(node.handle({ type: 'tick' }, 1000), [], 'the first tick that sees A empty starts the wait')
    assert.deepEqual(node.handle({ type: 'tick' }, 5999), [], 'not before the interval')
    assert.deepEqual(node.handle({ type: 'tick' }, 6000), [{ type: 'rejoin', topic: A, contact: 'boot' }, ...joinActions(A, 'boot', 1)], 'only A, which is empty, rejoins')
    node.handle({ type: 'timer', topic: A, timer: { type: 'neighborTimeout', peer: 'boot', request: 1 } }, 10_000)
    assert.deepEqual(node.handle({ type: 'tick' }, 10_999), [], 'the join went unanswered; the wait started again at the rejoin')
    assert.deepEqual(node.handle({ type: 'tick' }, 11_000), [{ type: 'rejoin', topic: A, contact: 'boot' }, ...joinActions(A, 'boot', 2)])
    assert.equal(node.counters().rejoins, 2)
  })

  it('starts the wait again once the view was not empty at a tick', () => {
    const node = startedNode({ bootstrap: () => ['boot'] })
    befriend(node, B, 'x')
    node.handle({ type: 'tick' }, 0)
    befriend(node, A, 'y', 1000)
    assert.deepEqual(node.handle({ type: 'tick' }, 2000), [])
    node.handle({ type: 'linkDown', peer: 'y' }, 2500)
    assert.deepEqual(node.handle({ type: 'tick' }, 5000), [], 'empty again: the wait starts at this tick')
    assert.deepEqual(node.handle({ type: 'tick' }, 9999), [])
    assert.equal(node.handle({ type: 'tick' }, 10_000)[0]?.type, 'rejoin')
  })

  it('rejoins through a bootstrap contact that is neither itself nor departing, and waits for one', () => {
    let contacts: PeerKey[] = ['me']
    const node = startedNode({ bootstrap: () => contacts })
    befriend(node, B, 'x')
    node.handle({ type: 'draining', peer: 'gone' }, 0)
    node.handle({ type: 'tick' }, 0)
    assert.deepEqual(node.handle({ type: 'tick' }, 5000), [], 'no contact: no rejoin')
    contacts = ['me', 'gone', 'boot']
    assert.deepEqual(node.handle({ type: 'tick' }, 6000), [{ type: 'rejoin', topic: A, contact: 'boot' }, ...joinActions(A, 'boot', 1)], 'the wait was not reset by the rejoin that could not be made')
  })

  it('looks a peer up through whoever named it, then the bootstrap contacts, and backs off after each miss', () => {
    const node = startedNode({ bootstrap: () => ['boot', 'p'], config: { unreachableFirstMs: 1000, unreachableGrowth: 2, unreachableMaxMs: 3000 } })
    node.handle({ type: 'frame', topic: A, from: 'x', message: { type: 'forwardJoin', peer: 'p', ttl: 3 } }, 0)
    assert.deepEqual(node.handle({ type: 'addressesNeeded', peer: 'p' }, 0), [{ type: 'lookup', peer: 'p', ask: ['x', 'boot'] }], 'never the peer itself')
    node.handle({ type: 'lookupDone', peer: 'p', found: false }, 0)
    assert.deepEqual(node.handle({ type: 'addressesNeeded', peer: 'p' }, 999), [{ type: 'unreachable', peer: 'p', until: 1000 }])
    assert.equal(node.handle({ type: 'addressesNeeded', peer: 'p' }, 1000)[0]?.type, 'lookup')
    node.handle({ type: 'lookupDone', peer: 'p', found: false }, 1000)
    assert.deepEqual(node.handle({ type: 'addressesNeeded', peer: 'p' }, 2999), [{ type: 'unreachable', peer: 'p', until: 3000 }], 'the wait doubled')
    node.handle({ type: 'lookupDone', peer: 'p', found: false }, 3000)
    assert.deepEqual(node.handle({ type: 'addressesNeeded', peer: 'p' }, 3000), [{ type: 'unreachable', peer: 'p', until: 6000 }], 'capped at unreachableMaxMs')
    node.handle({ type: 'lookupDone', peer: 'p', found: false }, 6000)
    assert.deepEqual(node.handle({ type: 'addressesNeeded', peer: 'p' }, 6000), [{ type: 'unreachable', peer: 'p', until: 9000 }])
    node.handle({ type: 'lookupDone', peer: 'p', found: true }, 9000)
    assert.equal(node.handle({ type: 'addressesNeeded', peer: 'p' }, 9000)[0]?.type, 'lookup', 'found: the back-off is forgotten')
    node.handle({ type: 'lookupDone', peer: 'p', found: false }, 9000)
    assert.deepEqual(node.handle({ type: 'addressesNeeded', peer: 'p' }, 9000), [{ type: 'unreachable', peer: 'p', until: 10_000 }], 'and starts again from the first wait')
    assert.deepEqual(node.counters(), { unknownTopic: 0, rejoins: 0, lookups: 3, lookupsSkipped: 5, departingRefused: 0 })
  })

  it('drops a draining node from every topic and opens no link to it until its deadline', () => {
    const node = startedNode()
    befriend(node, A, 'x')
    assert.deepEqual(node.handle({ type: 'draining', peer: 'x' }, 0), [
      { type: 'dropLinks', peer: 'x' },
      { type: 'neighborDown', peer: 'x', topic: A },
      { type: 'disconnect', peer: 'x', topic: A }
    ])
    assert.deepEqual(node.handle({ type: 'draining', peer: 'x' }, 1), [], 'told twice: nothing more')
    assert.deepEqual(node.handle({ type: 'join', topic: A, contact: 'x' }, 59_999), [
      { type: 'timer', after: 5000, timer: { type: 'neighborTimeout', peer: 'x', request: 1 }, topic: A },
      { type: 'disconnect', peer: 'x', topic: A }
    ], 'neither a connect nor a send to it: the topic is told the link failed, and lets it go')
    assert.equal(node.isLinked('x'), false)
    assert.equal(node.counters().departingRefused, 2)
    assert.equal(node.isDeparting('x', 59_999), true)
    assert.equal(node.isDeparting('x', 60_000), false)
    assert.deepEqual(node.handle({ type: 'join', topic: A, contact: 'x' }, 60_000), joinActions(A, 'x', 2), 'past the deadline it is linked to again')
  })

  it('forgets expired departing records at a tick', () => {
    const node = startedNode({ config: { departingMs: 100 } })
    node.handle({ type: 'draining', peer: 'x' }, 0)
    node.handle({ type: 'tick' }, 99)
    assert.equal(node.sizes().departing, 1)
    node.handle({ type: 'tick' }, 100)
    assert.equal(node.sizes().departing, 0)
  })

  it('bounds its peer maps, dropping the oldest entry', () => {
    const node = startedNode({ bootstrap: () => ['boot'], config: { peerMapCap: 3 } })
    for (const peer of ['p1', 'p2', 'p3', 'p4']) {
      node.handle({ type: 'frame', topic: A, from: 'x', message: { type: 'forwardJoin', peer, ttl: 3 } }, 0)
      node.handle({ type: 'lookupDone', peer, found: false }, 0)
      node.handle({ type: 'draining', peer: `d-${peer}` }, 0)
    }
    assert.deepEqual(node.sizes(), { mentionedBy: 3, unreachable: 3, departing: 3 })
    assert.deepEqual(node.handle({ type: 'addressesNeeded', peer: 'p1' }, 0), [{ type: 'lookup', peer: 'p1', ask: ['boot'] }], 'p1 was dropped from both maps')
    assert.deepEqual(node.handle({ type: 'addressesNeeded', peer: 'p4' }, 0), [{ type: 'unreachable', peer: 'p4', until: 2000 }])
    assert.equal(node.isDeparting('d-p1', 0), false)
    assert.equal(node.isDeparting('d-p4', 0), true)
  })

  it('refuses a bad configuration with the key', () => {
    assert.throws(() => createOverlayNode({ self: 'me', topics: [A], networkSize: 4, seed: 1, config: { rejoinIntervalMs: 0 } }),
      (error: unknown) => error instanceof OverlayConfigError && error.key === 'rejoinIntervalMs')
    assert.throws(() => createOverlayNode({ self: 'me', topics: [A], networkSize: 4, seed: 1, config: { unreachableGrowth: 0.5 } }), OverlayConfigError)
  })
})
