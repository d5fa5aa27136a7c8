/**
 * The patch to @libp2p/yamux (patches/@libp2p+yamux+8.0.3.patch,
 * docs/upstream.md): with `keepAliveOnlyWhenIdle`, a node pings only the connections that
 * brought it no frame since its last keep-alive. A worker's peers ping it every 30 s on their
 * own, so it need not ping them back. Real nodes on loopback.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, it } from 'node:test'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { tcp } from '@libp2p/tcp'
import type { Connection, Libp2p } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { waitFor } from '@pharos/testing/wait.ts'

/** The keep-alive interval of the node under test; its peer pings three times as often. */
const INTERVAL_MS = 150

async function node (listen: string[], keepAlive: { enableKeepAlive: boolean, keepAliveInterval?: number, keepAliveOnlyWhenIdle?: boolean }): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux(keepAlive)],
    connectionMonitor: { enabled: false }
  })
}

/** Pings this side of the connection has sent so far (yamux numbers them; internal). */
function pingsSent (connection: Connection): number {
  return (connection as unknown as { muxer: { nextPingID: number } }).muxer.nextPingID
}

describe('yamux keep-alive patch: ping only idle connections', () => {
  const nodes: Libp2p[] = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() })) })

  /** The connection `server` accepted from `peer`, once the server has it. */
  const accepted = async (server: Libp2p, peer: Libp2p): Promise<Connection> => {
    await peer.dial(server.getMultiaddrs()[0] ?? assert.fail('server has no address'))
    let connection: Connection | undefined
    await waitFor('the server to see the connection', () => (connection = server.getConnections(peer.peerId)[0]) !== undefined)
    return connection ?? assert.fail()
  }

  it('does not ping a connection whose peer keeps pinging it', async () => {
    const server = await node(['/ip4/127.0.0.1/tcp/0'], { enableKeepAlive: true, keepAliveInterval: INTERVAL_MS, keepAliveOnlyWhenIdle: true })
    const chatty = await node([], { enableKeepAlive: true, keepAliveInterval: INTERVAL_MS / 3 })
    nodes.push(server, chatty)
    const connection = await accepted(server, chatty)
    const first = pingsSent(connection)
    await sleep(INTERVAL_MS * 8)
    // yamux's initial ping (to learn the RTT) at most; stock yamux sends one per interval, ~8 more
    assert.ok(pingsSent(connection) - first <= 1, `server pinged ${pingsSent(connection) - first} times`)
  })

  it('still pings a connection that brings nothing', async () => {
    const server = await node(['/ip4/127.0.0.1/tcp/0'], { enableKeepAlive: true, keepAliveInterval: INTERVAL_MS, keepAliveOnlyWhenIdle: true })
    const silent = await node([], { enableKeepAlive: false })
    nodes.push(server, silent)
    const connection = await accepted(server, silent)
    const first = pingsSent(connection)
    await sleep(INTERVAL_MS * 8)
    // one per interval, as stock yamux (its own pong does not count as hearing from the peer)
    assert.ok(pingsSent(connection) - first >= 5, `server pinged ${pingsSent(connection) - first} times`)
    assert.equal(connection.status, 'open')
  })

  it('pings on every interval without the option, as stock yamux does', async () => {
    const server = await node(['/ip4/127.0.0.1/tcp/0'], { enableKeepAlive: true, keepAliveInterval: INTERVAL_MS })
    const chatty = await node([], { enableKeepAlive: true, keepAliveInterval: INTERVAL_MS / 3 })
    nodes.push(server, chatty)
    const connection = await accepted(server, chatty)
    const first = pingsSent(connection)
    await sleep(INTERVAL_MS * 8)
    assert.ok(pingsSent(connection) - first >= 5, `server pinged ${pingsSent(connection) - first} times`)
  })
})
