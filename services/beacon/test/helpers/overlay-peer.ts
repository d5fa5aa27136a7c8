import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import type { Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { overlay } from '@pharos/net/overlay/overlay-driver.ts'
import type { GossipValidator, OverlayDriver, OverlayInit } from '@pharos/net/overlay/overlay-driver.ts'

export type OverlayPeer = Libp2p<{ identify: unknown, ping: Ping, overlay: OverlayDriver }>

/** Forwards everything: for tests of the overlay itself, where payloads are opaque. */
export const acceptAll: GossipValidator = () => 'accept'

/**
 * A js-libp2p peer running the overlay driver, listening on loopback TCP so others can dial
 * it (`listen: []`: dial out only, as an app peer is by default). Unless `validators` is
 * given, every topic forwards whatever it receives (`acceptAll`).
 */
export async function createOverlayPeer (init: Omit<OverlayInit, 'topics'> & { topics?: readonly string[], listen?: string[] }, privateKey?: PrivateKey): Promise<OverlayPeer> {
  const { listen = ['/ip4/127.0.0.1/tcp/0'], topics = ['content', 'sync', 'keyexchange'], ...rest } = init
  const overlayInit = { validators: Object.fromEntries(topics.map((topic) => [topic, acceptAll])), ...rest, topics }
  return await createLibp2p({
    ...(privateKey === undefined ? {} : { privateKey }),
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { inboundConnectionThreshold: 1000 },
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping(),
      overlay: overlay(overlayInit)
    }
  })
}
