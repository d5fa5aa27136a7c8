/**
 * How an app's peer uses a Pharos worker as bootstrap and relay, with plain js-libp2p:
 *
 *   npm run example:bootstrap-and-relay -- <worker multiaddr> <admin url> <admin token>
 *   e.g. … /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW… http://127.0.0.1:8080 "$(cat data/admin-token)"
 *   PEER_KEY=<base64 protobuf ed25519 key> npm run example:bootstrap-and-relay -- <worker multiaddr>
 *
 * The peer dials the worker (bootstrap), takes a relay reservation on it, and prints the
 * /p2p-circuit address other peers can reach it on even behind NAT. Then it exits. Workers
 * give reservations to registered accounts only: either the example generates a key and
 * registers it through the admin API (`POST /v1/accounts`, as an app's operator does once
 * per user), or PEER_KEY is a key whose peer ID is registered already.
 */
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPair, privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const [beacon, adminUrl, adminToken] = process.argv.slice(2)
if (beacon === undefined || (process.env.PEER_KEY === undefined && (adminUrl === undefined || adminToken === undefined))) {
  console.error([
    'usage: bootstrap-and-relay.ts <worker multiaddr with /p2p/<peer id>> <admin url> <admin token>',
    '   or: PEER_KEY=<base64 protobuf ed25519 key, registered> bootstrap-and-relay.ts <worker multiaddr>',
    'A worker gives relay reservations to registered accounts only: with the admin URL and token the',
    'example registers a fresh key (POST /v1/accounts); PEER_KEY must be a key registered already.'
  ].join('\n'))
  process.exit(2)
}

const privateKey = process.env.PEER_KEY === undefined
  ? await generateKeyPair('Ed25519')
  : privateKeyFromProtobuf(Buffer.from(process.env.PEER_KEY, 'base64'))
if (process.env.PEER_KEY === undefined) {
  const response = await fetch(`${adminUrl}/v1/accounts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ peerId: peerIdFromPrivateKey(privateKey).toString(), label: 'relay example' })
  })
  if (!response.ok) throw new Error(`registering the example's key: HTTP ${response.status} ${await response.text()}`)
}

const peer = await createLibp2p({
  privateKey,
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
