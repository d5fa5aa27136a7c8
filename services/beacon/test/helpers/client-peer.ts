import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import type { Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'

export type ClientPeer = Libp2p<{ identify: unknown, ping: Ping }>

export interface ClientPeerOptions {
  /** Listen addresses; none means the peer cannot be dialled directly. */
  listen?: string[]
  privateKey?: PrivateKey
}

/** A plain js-libp2p peer, as a network's app would run: TCP, WS, relay client, Noise, Yamux. */
export async function createClientPeer (options: ClientPeerOptions = {}): Promise<ClientPeer> {
  return await createLibp2p({
    ...(options.privateKey === undefined ? {} : { privateKey: options.privateKey }),
    addresses: { listen: options.listen ?? [] },
    transports: [tcp(), webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    services: { identify: identify(), ping: ping() }
  })
}
