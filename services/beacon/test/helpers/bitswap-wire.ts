import type { Libp2p, PeerId } from '@libp2p/interface'
import { varint } from 'multiformats'
import type { CID } from 'multiformats/cid'
import { encodeMessage } from '@pharos/protocol/protobuf.ts'
import type { ProtobufEncoder } from '@pharos/protocol/protobuf.ts'

/** Bitswap 1.2.0, the protocol @helia/bitswap speaks and serves. */
export const BITSWAP_PROTOCOL = '/ipfs/bitswap/1.2.0'

function writeWantlist (e: ProtobufEncoder, want: { cids: readonly CID[], wantType: 'block' | 'have' }): void {
  e.message(1, (wantlist) => {
    for (const cid of want.cids) {
      wantlist.message(1, (entry) => {
        entry.bytes(1, cid.bytes)
        entry.uint(2, 1) // priority = 1
        if (want.wantType === 'have') entry.uint(4, 1)
      }, undefined)
    }
  }, undefined)
}

/**
 * A Bitswap message holding only a want list (message.proto: BitswapMessage.wantlist =
 * Wantlist { entries: WantlistEntry { cid = 1, priority = 2, wantType = 4 } }), encoded with
 * the shared protobuf codec so a test drives the wire exactly.
 */
export function wantlistMessage (cids: readonly CID[], wantType: 'block' | 'have' = 'block'): Uint8Array {
  return encodeMessage(writeWantlist, { cids, wantType })
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
  const framed = new Uint8Array(varint.encodingLength(message.length) + message.length)
  varint.encodeTo(message.length, framed)
  framed.set(message, framed.length - message.length)
  stream.send(framed)
  await stream.close({ signal })
}
