/**
 * The patches to @libp2p/tcp and @libp2p/websockets (docs/upstream.md): all that a
 * connection sends in one tick leaves in one socket write. Stock, each chunk of each frame
 * was its own write(2) (Noise sends a frame as its length prefix and its ciphertext), and on
 * WebSocket its own message. Real nodes on loopback; the worker's side sends, as the
 * listener does in production. Joined WebSocket messages stay within one Noise frame, so a
 * listener's maxPayload that takes a stock peer's messages takes a patched peer's too.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { setImmediate as nextLoop } from 'node:timers/promises'
import { afterEach, describe, it } from 'node:test'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import type { Libp2p, Stream } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { waitFor } from '@pharos/testing/wait.ts'

const PROTOCOL = '/pharos-test/sink/1.0.0'
const FRAMES = 10
/** The largest message a stock peer sends over WebSocket: one Noise frame's ciphertext (65535 bytes), plus, joined, its 2-byte length prefix. */
const NOISE_FRAME_BYTES = 2 + 65535

async function node (listen: string[]): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ enableKeepAlive: false })],
    connectionMonitor: { enabled: false }
  })
}

/** Socket writes (each one write or writev system call) made while `act` runs and its tick ends. */
async function socketWritesDuring (act: () => void): Promise<number> {
  const prototype = net.Socket.prototype as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>
  const { _write: write, _writev: writev } = prototype
  let writes = 0
  prototype._write = function (this: unknown, ...args: unknown[]) { writes++; return write.apply(this, args) }
  prototype._writev = function (this: unknown, ...args: unknown[]) { writes++; return writev.apply(this, args) }
  try {
    act()
    await nextLoop()
  } finally {
    prototype._write = write
    prototype._writev = writev
  }
  return writes
}

describe('transport patches: one socket write per connection per tick', () => {
  const nodes: Libp2p[] = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() })) })

  for (const transport of ['tcp', 'ws'] as const) {
    it(`sends ${FRAMES} frames written in one tick in one write, over ${transport}`, async () => {
      const worker = await node(['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'])
      const peer = await node([])
      nodes.push(worker, peer)
      let received = 0
      await peer.handle(PROTOCOL, (stream) => {
        stream.addEventListener('message', (event) => { received += event.data.byteLength })
      })
      const address = worker.getMultiaddrs().find((addr) => addr.toString().includes('/ws') === (transport === 'ws')) ?? assert.fail(`worker has no ${transport} address`)
      await peer.dial(address)
      await waitFor('the worker to see the connection', () => worker.getConnections(peer.peerId).length > 0)
      const connection = worker.getConnections(peer.peerId)[0] ?? assert.fail()
      const stream: Stream = await connection.newStream(PROTOCOL)
      assert.equal(stream.status, 'open')

      const writes = await socketWritesDuring(() => {
        for (let i = 0; i < FRAMES; i++) stream.send(new Uint8Array(100).fill(i))
      })
      // stock: two writes per frame over TCP (length prefix, ciphertext), two messages per frame over WebSocket
      assert.ok(writes <= 2, `${writes} socket writes for ${FRAMES} frames`)
      await waitFor('the peer to receive every byte', () => received === FRAMES * 100)
    })
  }

  it('sends what queued up behind backpressure in messages of at most one Noise frame', async () => {
    // A listener that takes exactly a stock peer's largest message, and a sender that pauses
    // for backpressure after every 64 KiB it hands its WebSocket: all that queues meanwhile
    // (a yamux window, 256 KiB) reaches sendData at once when the socket drains.
    const listener = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0/ws'] },
      transports: [webSockets({ maxPayload: NOISE_FRAME_BYTES })],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux({ enableKeepAlive: false })],
      connectionMonitor: { enabled: false }
    })
    const sender = await createLibp2p({
      transports: [webSockets({ maxBufferedAmount: 64 * 1024 })],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux({ enableKeepAlive: false })],
      connectionMonitor: { enabled: false }
    })
    nodes.push(listener, sender)
    let received = 0
    await listener.handle(PROTOCOL, (stream) => {
      stream.addEventListener('message', (event) => { received += event.data.byteLength })
    })
    const connection = await sender.dial(listener.getMultiaddrs()[0] ?? assert.fail('listener has no address'))
    const stream = await connection.newStream(PROTOCOL)
    const total = 2 * 1024 * 1024
    for (let sent = 0; sent < total && stream.status === 'open'; sent += 64 * 1024) {
      if (!stream.send(new Uint8Array(64 * 1024))) await Promise.race([once(stream, 'drain'), once(stream, 'close')])
    }
    // with every queued chunk joined into one message, the listener closed the connection
    // with 1009 (message too big) once the first backlog went out
    await waitFor('the listener to receive every byte', () => received === total || connection.status !== 'open', 20_000)
    assert.equal(connection.status, 'open', 'the listener closed the connection')
    assert.equal(received, total)
  })
})
