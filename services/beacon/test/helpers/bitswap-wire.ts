import type { Libp2p, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** Bitswap 1.2.0, the protocol @helia/bitswap speaks and serves. */
export const BITSWAP_PROTOCOL = '/ipfs/bitswap/1.2.0'

function varint (value: number): number[] {
  const bytes: number[] = []
  while (value >= 0x80) {
    bytes.push((value & 0x7f) | 0x80)
    value = Math.floor(value / 128)
  }
  bytes.push(value)
  return bytes
}

function field (number: number, bytes: Uint8Array | number[]): number[] {
  return [...varint(number * 8 + 2), ...varint(bytes.length), ...bytes]
}

/**
 * A Bitswap message holding only a want list (message.proto: BitswapMessage.wantlist =
 * Wantlist { entries: WantlistEntry { cid = 1, priority = 2, wantType = 4 } }), encoded by
 * hand so a test drives the wire exactly.
 */
export function wantlistMessage (cids: readonly CID[], wantType: 'block' | 'have' = 'block'): Uint8Array {
  const entries = cids.flatMap((cid) => field(1, [
    ...field(1, cid.bytes),
    ...[2 * 8, 1], // priority = 1
    ...(wantType === 'have' ? [4 * 8, 1] : [])
  ]))
  return new Uint8Array(field(1, entries))
}

/**
 * A peer that speaks Bitswap but never reads what it is sent: every Bitswap stream opened to
 * it is paused at once (yamux then sends no window updates, so the sender's window closes
 * after 256 KiB), while it keeps wanting blocks.
 */
export async function neverRead (node: Libp2p): Promise<void> {
  await node.handle(BITSWAP_PROTOCOL, (stream) => { stream.pause() }, { runOnLimitedConnection: true })
}

/** Sends one want list to `server` (length-prefixed) on a stream of its own, as Bitswap does per message. */
export async function sendWants (node: Libp2p, server: PeerId, cids: readonly CID[], signal?: AbortSignal): Promise<void> {
  const stream = await node.dialProtocol(server, BITSWAP_PROTOCOL, { signal })
  const message = wantlistMessage(cids)
  stream.send(new Uint8Array([...varint(message.length), ...message]))
  await stream.close({ signal })
}
