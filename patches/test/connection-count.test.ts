/**
 * The patch to libp2p's connection manager (patches/libp2p+3.3.11.patch, docs/upstream.md):
 * accepting a connection counts the open connections in O(1) instead of listing them all,
 * twice, per inbound connection. Real nodes on loopback.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { tcp } from '@libp2p/tcp'
import type { Connection, Libp2p } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { waitFor } from '@pharos/testing/wait.ts'

interface CountingManager {
  getConnections: (peer?: unknown) => Connection[]
  getConnectionCount: () => number
}

async function bareNode (listen: string[], maxConnections = 100): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    connectionManager: { maxConnections, inboundConnectionThreshold: 1000 }
  })
}

/** The node's connection manager (internal: libp2p does not expose its components' types). */
function managerOf (node: Libp2p): CountingManager {
  return (node as unknown as { components: { connectionManager: CountingManager } }).components.connectionManager
}

describe('libp2p connection manager patch: O(1) connection count', () => {
  let server: Libp2p
  const dialers: Libp2p[] = []
  before(async () => { server = await bareNode(['/ip4/127.0.0.1/tcp/0'], 12) })
  after(async () => { await Promise.all([server, ...dialers].map(async (node) => { await node.stop() })) })

  it('accepts connections without listing every connection, and keeps the count right as they open and close', async () => {
    const manager = managerOf(server)
    let fullListings = 0
    const listAll = manager.getConnections.bind(manager)
    manager.getConnections = (peer?: unknown) => {
      if (peer === undefined) fullListings++
      return listAll(peer)
    }
    for (let i = 0; i < 10; i++) {
      const dialer = await bareNode([])
      dialers.push(dialer)
      await dialer.dial(server.getMultiaddrs()[0] ?? assert.fail('server has no address'))
    }
    // waits on the real list, not on getConnectionCount, so that on stock libp2p (which has no
    // count) the test fails on the listings it makes, not on the missing method
    await waitFor('10 connections at the server', () => listAll().length === 10)
    assert.equal(fullListings, 0, 'stock libp2p lists every connection twice per inbound connection (accept check and pruner)')
    assert.equal(manager.getConnectionCount(), 10)

    // a second connection from a peer already connected counts too
    await dialers[0]?.dial(server.getMultiaddrs()[0] ?? assert.fail(), { force: true })
    await waitFor('11 connections', () => manager.getConnectionCount() === 11)

    await Promise.all(dialers.slice(0, 4).map(async (dialer) => { await dialer.hangUp(server.peerId) }))
    await waitFor('6 connections after 4 peers hang up', () => manager.getConnectionCount() === 6)
    assert.equal(listAll().length, 6)
  })

  it('still refuses inbound connections over maxConnections', async () => {
    const manager = managerOf(server)
    // 6 held; the limit is 12
    const extra: Libp2p[] = []
    for (let i = 0; i < 8; i++) extra.push(await bareNode([]))
    dialers.push(...extra)
    const results = await Promise.allSettled(extra.map(async (node) => await node.dial(server.getMultiaddrs()[0] ?? assert.fail())))
    await waitFor('the server to settle at its limit', () => manager.getConnectionCount() <= 12 && results.length === 8)
    assert.equal(results.filter((result) => result.status === 'fulfilled').length >= 6, true)
    await waitFor('at most 12 held', () => manager.getConnectionCount() === 12, 10_000, () => `held ${manager.getConnectionCount()}`)
  })
})
