/**
 * The admission bench's libp2p clients: a minimal js-libp2p node (TCP bound to one source
 * address, Noise, Yamux, optionally ping; no listener, no identify, no connection monitor),
 * as the swarm generator's light connections are (loadtest/swarm/light-child.ts), and the
 * wire bytes of multistream-select the pending-slot attack sends by hand.
 */
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { ping } from '@libp2p/ping'
import type { Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { TCPOptions } from '@libp2p/tcp'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'

/**
 * @libp2p/tcp spreads `dialOpts` into `net.connect` (tcp.js `_connect`), so a
 * `localAddress` binds the source even though its type lists only socket options.
 */
function boundTo (source: string): TCPOptions['dialOpts'] {
  return { localAddress: source } as TCPOptions['dialOpts']
}

/** How long a bench client waits for a dial (the worker's own upgrade timeout is 10 s). */
export const CLIENT_DIAL_TIMEOUT_MS = 10_000

/** A node that can only dial, from `source`, with `privateKey` (a fresh Ed25519 key if none). */
export async function dialOnlyNode (source: string, privateKey?: PrivateKey): Promise<Libp2p> {
  return await createLibp2p({
    privateKey: privateKey ?? await generateKeyPair('Ed25519'),
    addresses: { listen: [] },
    transports: [tcp({ dialOpts: boundTo(source) })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    connectionManager: { dialTimeout: CLIENT_DIAL_TIMEOUT_MS, addressDialTimeout: CLIENT_DIAL_TIMEOUT_MS },
    services: {}
  })
}

/** The same, with the ping protocol, for the canary and the honest peer. */
export async function pingingNode (source: string, privateKey: PrivateKey): Promise<Libp2p<{ ping: Ping }>> {
  return await createLibp2p({
    privateKey,
    addresses: { listen: [] },
    transports: [tcp({ dialOpts: boundTo(source) })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    connectionManager: { dialTimeout: CLIENT_DIAL_TIMEOUT_MS, addressDialTimeout: CLIENT_DIAL_TIMEOUT_MS },
    services: { ping: ping() }
  })
}

/** multistream-select's first message: the varint-prefixed protocol line "/multistream/1.0.0\n". */
export function multistreamHeader (): Buffer {
  return lengthPrefixed('/multistream/1.0.0\n')
}

/** A multistream-select proposal, e.g. "/noise\n", varint-prefixed (every line here is < 128 bytes). */
export function lengthPrefixed (line: string): Buffer {
  const body = Buffer.from(line)
  if (body.length >= 128) throw new RangeError('a one-byte varint prefix holds < 128 bytes')
  return Buffer.concat([Buffer.from([body.length]), body])
}

/** The closed-set reason for a failed dial: the error's name (and code). */
export function reasonOf (err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' ? `${err.name}:${code}` : err.name
  }
  return 'unknown'
}
