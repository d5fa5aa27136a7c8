import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Connection, PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { RelayReservationPolicy } from '../src/p2p/relay-reservation-policy.ts'

const newPeer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))

/** A fake view of the node: which peers hold reservations, and from where each is connected. */
function view (connectedFrom: Map<PeerId, string>, reserved: PeerId[]) {
  const addrOf = (peer: PeerId): Multiaddr => multiaddr(`/ip4/${connectedFrom.get(peer) ?? '0.0.0.0'}/tcp/4001`)
  return {
    reservations: () => reserved.map((peer): [PeerId, { addr: Multiaddr }] => [peer, { addr: addrOf(peer) }]),
    connections: (peer: PeerId) => connectedFrom.has(peer) ? [{ remoteAddr: addrOf(peer) } as unknown as Connection] : []
  }
}

const limits = { maxReservations: 3, maxReservationsPerIp: 2, maxReservationsPerPeer: 2, reservationTtlMs: 1000 }

describe('relay reservation policy', () => {
  it('caps reservations per IP, but lets a holder renew', async () => {
    const [a, b, c] = [await newPeer(), await newPeer(), await newPeer()]
    const policy = new RelayReservationPolicy(limits, () => 0)
    policy.attach(view(new Map([[a, '10.0.0.1'], [b, '10.0.0.1'], [c, '10.0.0.1']]), [a, b]))
    assert.deepEqual(policy.decide(c), { allowed: false, reason: 'per-ip' })
    assert.deepEqual(policy.decide(a), { allowed: true }, 'renewal of a held reservation')
  })

  it('caps reservations globally', async () => {
    const peers = [await newPeer(), await newPeer(), await newPeer(), await newPeer()]
    const policy = new RelayReservationPolicy(limits, () => 0)
    policy.attach(view(new Map(peers.map((peer, i) => [peer, `10.0.0.${i}`])), peers.slice(0, 3)))
    assert.deepEqual(policy.decide(peers[3] as PeerId), { allowed: false, reason: 'global' })
  })

  it('bounds requests per peer within one TTL, and forgets them after it', async () => {
    const peer = await newPeer()
    let now = 0
    const policy = new RelayReservationPolicy(limits, () => now)
    policy.attach(view(new Map([[peer, '10.0.0.9']]), []))
    assert.equal(policy.decide(peer).allowed, true)
    now = 500
    assert.equal(policy.decide(peer).allowed, true)
    now = 900
    assert.deepEqual(policy.decide(peer), { allowed: false, reason: 'per-peer' })
    now = 1001
    assert.equal(policy.decide(peer).allowed, true, 'the first request has aged out of the window')
  })

  it('refuses a peer reached only through a relay', async () => {
    const peer = await newPeer()
    const policy = new RelayReservationPolicy(limits, () => 0)
    policy.attach(view(new Map(), []))
    assert.deepEqual(policy.decide(peer), { allowed: false, reason: 'no-direct-connection' })
  })
})
