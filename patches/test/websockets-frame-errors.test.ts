/**
 * The patch to @libp2p/websockets (patches/@libp2p+websockets+10.1.21.patch, docs/upstream.md,
 * report 2, for private disclosure): `ws` reports a malformed frame as an 'error' event on the
 * server-side WebSocket, and the stock listener has no listener for it, so the error is an
 * uncaught exception: one frame from anyone who can open a WebSocket, before any libp2p
 * handshake, kills the process. A bare js-libp2p node on loopback, the frame sent from a raw
 * socket: this test is the reproduction attached to the report.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { noise } from '@libp2p/noise'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { Registry } from 'prom-client'

/** WebSocket close code 1002, "protocol error" (RFC 6455 section 7.4.1). */
const CLOSE_PROTOCOL_ERROR = 1002

async function wsNode (listen: string[], registry?: Registry): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen },
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    ...(registry === undefined ? {} : { metrics: prometheusMetrics({ registry, collectDefaultMetrics: false }) })
  })
}

/**
 * Opens a WebSocket to `port` by hand, sends `frame` once the upgrade is answered, and
 * returns the close code of the first frame the server sends back.
 */
async function sendRawFrame (port: number, frame: Uint8Array): Promise<number> {
  const socket = net.connect(port, '127.0.0.1')
  try {
    await once(socket, 'connect')
    socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    const [response] = await once(socket, 'data') as [Buffer]
    assert.match(response.toString('latin1'), /^HTTP\/1\.1 101 /, 'the listener accepted the WebSocket upgrade')
    socket.write(frame)
    const [reply] = await once(socket, 'data') as [Buffer]
    assert.equal(reply[0], 0x88, 'the server answered with a close frame')
    return reply.readUInt16BE(2)
  } finally {
    socket.destroy()
  }
}

describe('websockets patch: a malformed frame is that connection\'s error, not the process\'s', () => {
  const registry = new Registry()
  let listener: Libp2p
  let address: Multiaddr
  const peers: Libp2p[] = []
  before(async () => {
    listener = await wsNode(['/ip4/127.0.0.1/tcp/0/ws'], registry)
    address = listener.getMultiaddrs()[0] ?? assert.fail('the listener has no address')
  })
  after(async () => { await Promise.all([listener, ...peers].map(async (node) => { await node.stop() })) })

  it('closes the WebSocket with 1002, counts the error and keeps accepting', async () => {
    const uncaught: Error[] = []
    const onUncaught = (err: Error): void => { uncaught.push(err) }
    process.on('uncaughtException', onUncaught)
    let closeCode: number
    try {
      const port = Number(address.getComponents().find((component) => component.name === 'tcp')?.value)
      // FIN, reserved opcode 0x3, masked, empty payload: six bytes, no libp2p handshake needed
      closeCode = await sendRawFrame(port, Uint8Array.from([0x83, 0x80, 0, 0, 0, 0]))
    } finally {
      process.off('uncaughtException', onUncaught)
    }
    // ws emits the 'error' in the same call that sent the close frame read above
    assert.deepEqual(uncaught.map((err) => (err as Error & { code?: string }).code), [], 'stock: WS_ERR_INVALID_OPCODE is uncaught and kills the process')
    assert.equal(closeCode, CLOSE_PROTOCOL_ERROR)

    const errors = await registry.getSingleMetric('libp2p_websockets_listener_errors_total')?.get()
    const counted = errors?.values.find((value) => String(value.labels.address).endsWith(' websocket_protocol'))
    assert.equal(counted?.value, 1, 'the protocol error is counted on the listener')

    const peer = await wsNode([])
    peers.push(peer)
    const connection = await peer.dial(address)
    assert.equal(connection.status, 'open', 'the listener still accepts WebSocket peers')
  })
})
