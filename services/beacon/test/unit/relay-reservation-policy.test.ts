import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Connection, PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { LocalRelaySlots } from '../../src/fleet/relay-slots.ts'
import { RelayReservationPolicy } from '../../src/p2p/relay-reservation-policy.ts'
import type { RelayReservationLimits } from '../../src/p2p/relay-reservation-policy.ts'

const newPeer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))

/** A fake view of the node: which peers hold reservations, and from where each is connected. */
function view (connectedFrom: Map<PeerId, string>, reserved: PeerId[]) {
  const addrOf = (peer: PeerId): Multiaddr => multiaddr(`/ip4/${connectedFrom.get(peer) ?? '0.0.0.0'}/tcp/4001`)
  return {
    reservations: () => reserved.map((peer): [PeerId, { addr: Multiaddr }] => [peer, { addr: addrOf(peer) }]),
    connections: (peer: PeerId) => connectedFrom.has(peer) ? [{ remoteAddr: addrOf(peer) } as unknown as Connection] : []
  }
}

const limits: RelayReservationLimits = { maxReservations: 3, maxReservationsPerIp: 2, maxReservationsPerPeer: 2, reservationTtlMs: 1000 }

/** A policy on in-process slots (the Redis ones are tested in fleet-redis.test.ts); everyone registered unless told. */
function policyFor (now: () => number, options: { registered?: (peer: PeerId) => boolean, slotsPerAccount?: number } = {}): RelayReservationPolicy {
  const policy = new RelayReservationPolicy({ limits, isRegistered: options.registered ?? (() => true), now })
  policy.useSlots(new LocalRelaySlots({ workerId: 'self', slotsPerAccount: options.slotsPerAccount ?? 1, reservationTtlMs: limits.reservationTtlMs }))
  return policy
}

describe('relay reservation policy', () => {
  it('caps reservations per IP, but lets a holder renew', async () => {
    const [a, b, c] = [await newPeer(), await newPeer(), await newPeer()]
    const policy = policyFor(() => 0)
    policy.attach(view(new Map([[a, '10.0.0.1'], [b, '10.0.0.1'], [c, '10.0.0.1']]), [a, b]))
    assert.deepEqual(await policy.decide(c), { allowed: false, reason: 'per-ip' })
    assert.deepEqual(await policy.decide(a), { allowed: true, renewal: true }, 'renewal of a held reservation')
  })

  it('caps reservations globally', async () => {
    const peers = [await newPeer(), await newPeer(), await newPeer(), await newPeer()]
    const policy = policyFor(() => 0)
    policy.attach(view(new Map(peers.map((peer, i) => [peer, `10.0.0.${i}`])), peers.slice(0, 3)))
    assert.deepEqual(await policy.decide(peers[3] as PeerId), { allowed: false, reason: 'global' })
  })

  it('bounds requests per peer within one TTL, and forgets them after it', async () => {
    const peer = await newPeer()
    let now = 0
    const policy = policyFor(() => now)
    policy.attach(view(new Map([[peer, '10.0.0.9']]), []))
    assert.deepEqual(await policy.decide(peer), { allowed: true, renewal: false })
    now = 500
    assert.deepEqual(await policy.decide(peer), { allowed: true, renewal: true }, 'the second request reuses the slot the first took')
    now = 900
    assert.deepEqual(await policy.decide(peer), { allowed: false, reason: 'per-peer' })
    now = 1001
    assert.equal((await policy.decide(peer)).allowed, true, 'the first request has aged out of the window')
  })

  it('refuses a peer reached only through a relay', async () => {
    const peer = await newPeer()
    const policy = policyFor(() => 0)
    policy.attach(view(new Map(), []))
    assert.deepEqual(await policy.decide(peer), { allowed: false, reason: 'no-direct-connection' })
  })

  it('gives unregistered peers nothing, and nothing at all with zero slots per account', async () => {
    const [member, stranger] = [await newPeer(), await newPeer()]
    const policy = policyFor(() => 0, { registered: (peer) => peer.equals(member) })
    policy.attach(view(new Map([[member, '10.0.0.1'], [stranger, '10.0.0.2']]), []))
    assert.deepEqual(await policy.decide(stranger), { allowed: false, reason: 'not-registered' })
    assert.equal((await policy.decide(member)).allowed, true)
    const closed = policyFor(() => 0, { slotsPerAccount: 0 })
    closed.attach(view(new Map([[member, '10.0.0.1']]), []))
    assert.deepEqual(await closed.decide(member), { allowed: false, reason: 'account-slots' })
  })

  it('refuses everything while draining, and gives back slots whose reservation is gone', async () => {
    const [a, b] = [await newPeer(), await newPeer()]
    const reserved: PeerId[] = []
    const policy = new RelayReservationPolicy({ limits, isRegistered: () => true, now: () => 0 })
    const slots = new LocalRelaySlots({ workerId: 'self', slotsPerAccount: 1, reservationTtlMs: limits.reservationTtlMs })
    assert.deepEqual(await policy.decide(a), { allowed: false, reason: 'not-ready' }, 'no decision before the node and the slots are attached')
    policy.useSlots(slots)
    policy.attach(view(new Map([[a, '10.0.0.1'], [b, '10.0.0.2']]), reserved))
    assert.equal((await policy.decide(a)).allowed, true)
    assert.equal((await policy.decide(b)).allowed, true)
    reserved.push(a) // the relay server stored a's reservation; b's voucher was never sent
    assert.equal(await policy.reconcile(), 1)
    assert.deepEqual([...slots.held().keys()], [a.toString()])
    policy.startDraining()
    assert.deepEqual(await policy.decide(a), { allowed: false, reason: 'draining' })
  })
})
