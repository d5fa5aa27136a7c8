/**
 * The patch to main-event (patches/main-event+1.0.5.patch, docs/upstream.md): a function
 * listener added with no options goes to the native EventTarget as it is, with no wrapper
 * and no abort closure; every other kind keeps the stock path. libp2p's connections,
 * encrypters and muxers add about fifteen such listeners per connection and hold them for
 * the connection's life. The rest of the test checks that the listeners behave as stock:
 * called once per event, not twice when added twice, removed, `once`, `signal` and
 * `handleEvent` listeners as before. One on a real libp2p connection too.
 */
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { afterEach, describe, it } from 'node:test'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { tcp } from '@libp2p/tcp'
import type { Libp2p } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { TypedEventEmitter } from 'main-event'

describe('main-event patch: a plain listener is registered without a wrapper', () => {
  const nodes: Libp2p[] = []
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() }))
  })

  it('hands a function listener with no options to the native EventTarget itself, and it behaves as stock', () => {
    const target = new TypedEventEmitter<{ tick: CustomEvent<number> }>()
    const calls: string[] = []
    const plain = (event: CustomEvent<number>): void => { calls.push(`plain ${event.detail}`) }
    target.addEventListener('tick', plain)
    target.addEventListener('tick', plain)
    // Stock: the native EventTarget holds a wrapper closure for every listener.
    assert.deepEqual(getEventListeners(target, 'tick'), [plain], 'a wrapper was registered in the listener\'s place')
    assert.equal(target.listenerCount('tick'), 1, 'added twice, held once')

    const controller = new AbortController()
    target.addEventListener('tick', () => { calls.push('once') }, { once: true })
    target.addEventListener('tick', () => { calls.push('signal') }, { signal: controller.signal })
    target.addEventListener('tick', { handleEvent: () => { calls.push('object') } })
    target.safeDispatchEvent('tick', { detail: 1 })
    controller.abort()
    target.safeDispatchEvent('tick', { detail: 2 })
    target.removeEventListener('tick', plain)
    target.safeDispatchEvent('tick', { detail: 3 })
    assert.deepEqual(calls, ['plain 1', 'once', 'signal', 'object', 'plain 2', 'object', 'object'])
    assert.equal(target.listenerCount('tick'), 1)
    assert.equal(getEventListeners(target, 'tick').length, 1)
  })

  it('leaves no wrapper on a real connection\'s transport connection', async () => {
    const make = async (listen: string[]): Promise<Libp2p> => await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      addresses: { listen },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionMonitor: { enabled: false }
    })
    const server = await make(['/ip4/127.0.0.1/tcp/0'])
    const client = await make([])
    nodes.push(server, client)
    const connection = await client.dial(server.getMultiaddrs()[0] ?? assert.fail('server has no address'))
    const maConn = (connection as unknown as { maConn?: EventTarget }).maConn ?? assert.fail('no maConn on the connection')
    // libp2p's own 'close' listeners on it (the muxer's, the connection's): plain functions.
    const closeListeners = getEventListeners(maConn, 'close')
    assert.ok(closeListeners.length >= 2)
    for (const listener of closeListeners) assert.notEqual(listener.name, 'wrapper', 'a wrapper closure stands in for a listener')
  })
})
