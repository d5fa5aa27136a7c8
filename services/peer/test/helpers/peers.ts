import assert from 'node:assert/strict'
import { createPharosPeer } from '../../src/pharos-peer.ts'
import type { PharosPeer, PharosPeerInit } from '../../src/pharos-peer.ts'
import { generateKey } from '../../src/keys.ts'

/** A started SDK peer listening on loopback TCP, so other peers can use it as their bootstrap. */
export async function startPeer (init: Partial<PharosPeerInit> = {}): Promise<PharosPeer> {
  const peer = await createPharosPeer({
    privateKey: init.privateKey ?? await generateKey(),
    bootstrap: [],
    listen: ['/ip4/127.0.0.1/tcp/0'],
    ...init
  })
  await peer.start()
  return peer
}

/** The peer's loopback TCP address, with /p2p/. */
export function addressOf (peer: PharosPeer): string {
  const addr = peer.libp2p.getMultiaddrs().find((candidate) => candidate.toString().startsWith('/ip4/127.0.0.1/tcp/'))
  return addr?.toString() ?? assert.fail('peer has no loopback TCP address')
}

/** Polls `condition` every 25 ms; fails naming `what` after `timeoutMs`. */
export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
