/**
 * How an app's peer uses a Pharos worker as bootstrap and relay, with plain js-libp2p:
 *
 *   PEER_KEY=<base64 protobuf ed25519 key> node services/peer/examples/bootstrap-and-relay.ts /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…
 *
 * The peer dials the worker (bootstrap), takes a relay reservation on it, and prints the
 * /p2p-circuit address other peers can reach it on even behind NAT. Then it exits. Workers
 * give reservations to registered accounts only: PEER_KEY is the peer's key, whose peer ID
 * an operator registered (`POST /v1/accounts`).
 */
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const beacon = process.argv[2]
if (beacon === undefined) {
  console.error('usage: bootstrap-and-relay.ts <beacon multiaddr with /p2p/<peer id>>')
  process.exit(2)
}

const peer = await createLibp2p({
  ...(process.env.PEER_KEY === undefined ? {} : { privateKey: privateKeyFromProtobuf(Buffer.from(process.env.PEER_KEY, 'base64')) }),
  // Listening on /p2p-circuit asks the transport for a reservation on a connected relay.
  addresses: { listen: ['/p2p-circuit'] },
  transports: [tcp(), webSockets(), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
})

const reserved = new Promise<string>((resolve, reject) => {
  const timer = setTimeout(() => { reject(new Error('no relay reservation within 15 s')) }, 15_000)
  peer.addEventListener('self:peer:update', () => {
    const circuit = peer.getMultiaddrs().find((addr) => addr.toString().includes('/p2p-circuit'))
    if (circuit !== undefined) {
      clearTimeout(timer)
      resolve(circuit.toString())
    }
  })
})
// Bootstrap: dial the beacon. Identify tells us it is a relay, and the reservation follows.
await peer.dial(multiaddr(beacon))
const relayed = await reserved
console.log(JSON.stringify({ peerId: peer.peerId.toString(), relayed }))
await peer.stop()
