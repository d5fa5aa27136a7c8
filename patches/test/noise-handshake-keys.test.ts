/**
 * The patch to @libp2p/noise (patches/@libp2p+noise+17.0.3.patch,
 * docs/upstream.md): a Noise instance signs its static key with the identity key once, not
 * in every handshake, and its Diffie-Hellmans use the X25519 private keys it generated as
 * they are, not imported again from DER each time. Real nodes on loopback; each handshake
 * is checked by both sides, so the reused signature and the shared secrets are verified
 * too: a wrong one fails the dial. Its HKDF is node:crypto's, checked against the pure-JS one
 * by a handshake with a node that uses @libp2p/noise's pureJsCrypto.
 */
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { afterEach, describe, it } from 'node:test'
import { noise, pureJsCrypto } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { tcp } from '@libp2p/tcp'
import { echo, lpStream } from '@libp2p/utils'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'

async function node (privateKey: PrivateKey, listen: string[], noiseInit: Parameters<typeof noise>[0] = {}): Promise<Libp2p> {
  return await createLibp2p({
    privateKey,
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise(noiseInit)],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false }
  })
}

describe('noise patch: a handshake reuses its static key signature and key objects', () => {
  const nodes: Libp2p[] = []
  const createPrivateKey = crypto.createPrivateKey
  const hkdfSync = crypto.hkdfSync
  afterEach(async () => {
    crypto.createPrivateKey = createPrivateKey
    crypto.hkdfSync = hkdfSync
    await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() }))
  })

  it('signs the static key once over three inbound handshakes and imports no X25519 key', async () => {
    const serverKey = await generateKeyPair('Ed25519')
    const sign = serverKey.sign.bind(serverKey)
    let signatures = 0
    serverKey.sign = (data) => { signatures++; return sign(data) }
    const server = await node(serverKey, ['/ip4/127.0.0.1/tcp/0'])
    nodes.push(server)
    const address = server.getMultiaddrs()[0] ?? assert.fail('server has no address')

    // X25519 private keys come in as PKCS#8 DER; the identity keys' signing imports JWK.
    let x25519Imports = 0
    crypto.createPrivateKey = ((key: Parameters<typeof createPrivateKey>[0]) => {
      if (typeof key === 'object' && 'format' in key && key.format === 'der') x25519Imports++
      return createPrivateKey(key)
    }) as typeof createPrivateKey

    for (let i = 0; i < 3; i++) {
      const client = await node(await generateKeyPair('Ed25519'), [])
      nodes.push(client)
      const connection = await client.dial(address)
      assert.equal(connection.remotePeer.toString(), server.peerId.toString(), 'the client verified the server\'s signature')
      assert.equal(connection.status, 'open')
    }
    // stock: one signature and three DER imports per handshake on each side
    assert.equal(signatures, 1)
    assert.equal(x25519Imports, 0)
  })

  it('derives its keys with node:crypto\'s HKDF, which agrees with the pure-JS one', async () => {
    let nodeHkdfs = 0
    crypto.hkdfSync = ((...args: Parameters<typeof hkdfSync>) => { nodeHkdfs++; return hkdfSync(...args) }) as typeof hkdfSync
    const server = await node(await generateKeyPair('Ed25519'), ['/ip4/127.0.0.1/tcp/0'])
    nodes.push(server)
    await server.handle('/pharos-test/echo/1', (stream) => { void echo(stream) })
    const address = server.getMultiaddrs()[0] ?? assert.fail('server has no address')
    // the client derives every key with @noble/hashes' HKDF: a handshake succeeds only if both agree
    const client = await node(await generateKeyPair('Ed25519'), [], { crypto: pureJsCrypto })
    nodes.push(client)
    const connection = await client.dial(address)
    assert.equal(connection.status, 'open')
    const stream = lpStream(await connection.newStream('/pharos-test/echo/1'))
    await stream.write(Uint8Array.of(1, 2, 3))
    assert.deepEqual([...(await stream.read()).subarray()], [1, 2, 3], 'encrypted traffic flows both ways')
    // stock: every HKDF of the handshake is @noble/hashes' (none through node:crypto)
    assert.ok(nodeHkdfs >= 3, `node:crypto HKDFs in the server's handshake: ${nodeHkdfs}`)
  })
})
