/**
 * The CPU-per-accept baseline: a bare js-libp2p node (TCP, Noise, Yamux, nothing else; no
 * identify, no ping, no metrics, stock settings except the limits that would refuse the
 * bench's connections). It loads the same node_modules as the worker, so the patches of
 * patches/ apply to it too. Tells its parent its TCP multiaddr over IPC.
 */
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: { maxConnections: 100_000, inboundConnectionThreshold: 100_000, maxIncomingPendingConnections: 256 }
})
process.send?.({ type: 'ready', multiaddrs: node.getMultiaddrs().map((addr) => addr.toString()) })
process.on('disconnect', () => { process.exit(0) })
// A clean exit, so that node --cpu-prof writes its profile.
process.on('SIGTERM', () => { process.exit(0) })
