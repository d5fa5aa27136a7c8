/**
 * The benchmark's baseline: a bare js-libp2p 3.3 node (TCP and WebSocket listeners, Noise,
 * Yamux, identify and ping, every other setting stock except the limits that would refuse
 * the benchmark's connections). Prints nothing; tells its parent its addresses over IPC.
 */
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { createLibp2p } from 'libp2p'

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'] },
  transports: [tcp(), webSockets()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: { maxConnections: 100_000, inboundConnectionThreshold: 100_000, maxIncomingPendingConnections: 256 },
  services: { identify: identify(), ping: ping() }
})
process.send?.({ type: 'ready', multiaddrs: node.getMultiaddrs().map((addr) => addr.toString()) })
process.on('disconnect', () => { process.exit(0) })
