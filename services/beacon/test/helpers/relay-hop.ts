import { lpStream } from '@libp2p/utils'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { varintFields } from './protobuf.ts'

export const HOP = '/libp2p/circuit/relay/0.2.0/hop'
/** circuit relay v2 HopMessage.Status values (circuit-v2 spec). */
export const STATUS_OK = 100
export const STATUS_PERMISSION_DENIED = 202

/**
 * Sends one RESERVE on the relay hop protocol to `relay`, as a relay client would, and
 * returns the status the relay answered (HopMessage.status).
 */
export async function requestReservation (peer: Libp2p, relay: Multiaddr): Promise<number | undefined> {
  const stream = await peer.dialProtocol(relay, HOP)
  const lp = lpStream(stream)
  await lp.write(Uint8Array.of(0x08, 0x00)) // HopMessage { type: RESERVE }
  const reply = varintFields((await lp.read()).subarray())
  await stream.close().catch(() => {})
  return reply.get(5) // HopMessage.status
}
