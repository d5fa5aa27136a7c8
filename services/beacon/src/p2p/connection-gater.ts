import type { ConnectionGater, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { RelayReservationPolicy, ReservationDecision } from './relay-reservation-policy.ts'

export interface GaterEvents {
  /** A connection refused because the remote identity is not ed25519. */
  onNonEd25519?: (direction: 'inbound' | 'outbound') => void
  onReservation?: (decision: ReservationDecision) => void
  /** A connection or dial refused because the peer is banned. */
  onBanned?: (direction: 'inbound' | 'outbound' | 'dial') => void
  /** An inbound connection of a non-member refused: non-members held all the connections they may (`refuseNonMembers`). */
  onNotRegistered?: () => void
}

/** Whether a peer is banned; synchronous, from memory (BanList.isBanned). */
export type IsBanned = (peer: PeerId) => boolean

/** Whether an address may not be dialled (DialPolicy.denyDialMultiaddr); it counts its own refusals. */
export type DenyDial = (addr: Multiaddr) => Promise<boolean>

/** What the gater decides with; everything but the reservation policy is optional. */
export interface BeaconGaterOptions {
  /** Decides relay reservations (registered accounts, slots per account). */
  policy: RelayReservationPolicy
  events?: GaterEvents
  /** @default nobody is banned */
  isBanned?: IsBanned
  /** Checked before every dial (dial-policy.ts). @default every address may be dialled */
  denyDial?: DenyDial
  /**
   * Whose addresses the peer store may keep: members (registered accounts and fleet
   * workers). Anyone else's listen addresses from identify are dropped as they arrive, so a
   * peer that merely connects puts nothing in the peer store, and the overlay's address
   * lookups can never hand its claimed addresses to a member. @default everyone's
   */
  keepAddressesOf?: (peer: PeerId) => boolean
  /**
   * Whether inbound connections of non-members (not `keepAddressesOf`) are refused now, once
   * Noise names them: non-members may hold only a share of the worker's connections, so a
   * flood of fresh identities cannot take the places of the network's members. @default never
   */
  refuseNonMembers?: () => boolean
}

/**
 * Pharos accepts only ed25519 identities: accounts, entry authors and workers are all
 * ed25519 keys, so an RSA or secp256k1 peer can never be a member and is refused as soon as
 * Noise reveals its key, before any stream is opened. Banned peers are refused at the same
 * point, and never dialled; so are non-members once they hold their share (`refuseNonMembers`). Every address is checked before it is dialled (`denyDial`,
 * dial-policy.ts): no socket is opened to one the policy refuses. Only members' addresses
 * enter the peer store (`keepAddressesOf`, libp2p's `filterMultiaddrForPeer`).
 */
export function beaconConnectionGater ({ policy, events = {}, isBanned = () => false, denyDial, keepAddressesOf, refuseNonMembers }: BeaconGaterOptions): ConnectionGater {
  const notEd25519 = (peer: PeerId, direction: 'inbound' | 'outbound'): boolean => {
    if (peer.type === 'Ed25519') return false
    events.onNonEd25519?.(direction)
    return true
  }
  const banned = (peer: PeerId, direction: 'inbound' | 'outbound' | 'dial'): boolean => {
    if (!isBanned(peer)) return false
    events.onBanned?.(direction)
    return true
  }
  const shedNonMember = (peer: PeerId): boolean => {
    if (keepAddressesOf === undefined || refuseNonMembers === undefined || keepAddressesOf(peer) || !refuseNonMembers()) return false
    events.onNotRegistered?.()
    return true
  }
  return {
    denyDialPeer: (peer) => banned(peer, 'dial'),
    ...(denyDial === undefined ? {} : { denyDialMultiaddr: denyDial }),
    ...(keepAddressesOf === undefined ? {} : { filterMultiaddrForPeer: (peer: PeerId) => keepAddressesOf(peer) }),
    denyInboundEncryptedConnection: (peer) => notEd25519(peer, 'inbound') || banned(peer, 'inbound') || shedNonMember(peer),
    denyOutboundEncryptedConnection: (peer) => notEd25519(peer, 'outbound') || banned(peer, 'outbound'),
    denyInboundRelayReservation: async (peer) => {
      const decision = await policy.decide(peer)
      events.onReservation?.(decision)
      return !decision.allowed
    }
  }
}
