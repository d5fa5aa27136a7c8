/**
 * The patch to @libp2p/noise (patches/@libp2p+noise+17.0.3.patch, docs/upstream.md, report
 * 3): what a connection keeps from its handshake for as long as it is held. The remote peer's
 * ID owns its bytes (stock, its multihash digest is a view into an 8 KiB slab of Node's
 * shared Buffer pool, which it keeps alive), and the encrypted stream keeps the handshake's
 * ciphers but not the peer's payload. Real nodes on loopback; a ping checks that the
 * connection still carries data both ways.
 */
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { Connection, Libp2p, PrivateKey } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'
import { createLibp2p } from 'libp2p'
import { waitFor } from '@pharos/testing/wait.ts'

async function node (privateKey: PrivateKey, listen: string[]): Promise<Libp2p<{ ping: Ping, identify: unknown }>> {
  return await createLibp2p({
    privateKey,
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    services: { ping: ping(), identify: identify() }
  })
}

/** The encrypted stream under a connection's muxer (libp2p keeps it as `muxer.maConn`). */
function encryptedStreamOf (connection: Connection): { handshake?: object } {
  const muxer = (connection as unknown as { muxer?: { maConn?: { handshake?: object } } }).muxer
  return muxer?.maConn ?? assert.fail('no encrypted stream under the connection\'s muxer')
}

describe('noise patch: a held connection keeps only what it needs of its handshake', () => {
  const nodes: Libp2p[] = []
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() }))
  })

  it('gives the remote peer ID bytes of its own, and keeps the ciphers but not the payload, on both sides', async () => {
    const server = await node(await generateKeyPair('Ed25519'), ['/ip4/127.0.0.1/tcp/0'])
    const client = await node(await generateKeyPair('Ed25519'), [])
    nodes.push(server, client)
    const address = server.getMultiaddrs()[0] ?? assert.fail('server has no address')
    const outbound = await client.dial(address)
    await waitFor('the server holds the connection', async () => server.getConnections(client.peerId).length === 1, 10_000)
    const inbound = server.getConnections(client.peerId)[0] ?? assert.fail('no inbound connection')

    for (const [connection, expected] of [[inbound, client.peerId], [outbound, server.peerId]] as const) {
      assert.equal(connection.remotePeer.equals(expected), true)
      assert.deepEqual(connection.remotePeer.publicKey?.raw, expected.publicKey?.raw, 'the ID keeps its public key')
      const multihash = connection.remotePeer.toMultihash()
      // Stock: the digest is a view into an 8 KiB Buffer pool slab, which the ID keeps alive.
      assert.ok(multihash.digest.buffer.byteLength <= multihash.bytes.byteLength, `the peer ID's digest is a view into a ${multihash.digest.buffer.byteLength}-byte buffer`)
      assert.deepEqual(Object.keys(encryptedStreamOf(connection).handshake ?? {}).sort(), ['decrypt', 'encrypt'], 'the encrypted stream keeps the handshake\'s payload')
    }
    // Both ciphers still work.
    assert.ok(await client.services.ping.ping(server.peerId) >= 0)
    assert.ok(await server.services.ping.ping(client.peerId) >= 0)
  })
})
