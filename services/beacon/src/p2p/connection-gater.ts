import type { ConnectionGater, PeerId } from '@libp2p/interface'
import type { RelayReservationPolicy, ReservationDecision } from './relay-reservation-policy.ts'

export interface GaterEvents {
  /** A connection refused because the remote identity is not ed25519. */
  onNonEd25519?: (direction: 'inbound' | 'outbound') => void
  onReservation?: (decision: ReservationDecision) => void
}

/**
 * Pharos accepts only ed25519 identities: accounts, entry authors and workers are all
 * ed25519 keys, so an RSA or secp256k1 peer can never be a member and is refused as soon as
 * Noise reveals its key, before any stream is opened.
 */
export function beaconConnectionGater (policy: RelayReservationPolicy, events: GaterEvents = {}): ConnectionGater {
  const notEd25519 = (peer: PeerId, direction: 'inbound' | 'outbound'): boolean => {
    if (peer.type === 'Ed25519') return false
    events.onNonEd25519?.(direction)
    return true
  }
  return {
    denyInboundEncryptedConnection: (peer) => notEd25519(peer, 'inbound'),
    denyOutboundEncryptedConnection: (peer) => notEd25519(peer, 'outbound'),
    denyInboundRelayReservation: (peer) => {
      const decision = policy.decide(peer)
      events.onReservation?.(decision)
      return !decision.allowed
    }
  }
}
