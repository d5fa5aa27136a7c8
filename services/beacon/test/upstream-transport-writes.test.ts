/**
 * The patches to @libp2p/tcp and @libp2p/websockets (docs/upstream.md): all that a
 * connection sends in one tick leaves in one socket write. Stock, each chunk of each frame
 * was its own write(2) (Noise sends a frame as its length prefix and its ciphertext), and on
 * WebSocket its own message. Real nodes on loopback; the worker's side sends, as the
 * listener does in production.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { setImmediate as nextLoop } from 'node:timers/promises'
import { afterEach, describe, it } from 'node:test'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import type { Libp2p, Stream } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { waitFor } from './helpers/wait.ts'

const PROTOCOL = '/pharos-test/sink/1.0.0'
const FRAMES = 10

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
})
