/**
 * Multiaddr helpers (p2p/multiaddr-parts.ts). flattenComponentValues is checked by what it is
 * for, the heap an address held with a connection keeps: libp2p appends `/p2p/<peer id>` to
 * every connection's remote address, and js-multiformats builds a peer ID's base58 string
 * one character at a time (a chain of V8 cons strings).
 */
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { flattenComponentValues, transportOf } from '../../src/p2p/multiaddr-parts.ts'

/** A full garbage collection, from a context made after --expose-gc is set. */
const collectGarbage = ((): () => void => {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
})()

const ADDRESSES = 2000

/** Heap bytes per address that `make` builds and keeps, after `then` ran on each. */
function heapPerAddress (make: () => Multiaddr[], then: (addr: Multiaddr) => void): number {
  collectGarbage()
  const before = process.memoryUsage().heapUsed
  const kept = make()
  for (const addr of kept) then(addr)
  collectGarbage()
  const after = process.memoryUsage().heapUsed
  assert.equal(kept.length, ADDRESSES)
  return (after - before) / ADDRESSES
}

describe('multiaddr parts', () => {
  it('flattens the peer ID string of a connection\'s remote address: well under the ~1.9 KiB kept per address stock', async () => {
    const ids = await Promise.all(Array.from({ length: ADDRESSES }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    const make = (): Multiaddr[] => ids.map((id) => multiaddr('/ip4/127.1.2.3/tcp/40000').encapsulate(`/p2p/${id}`))
    // Warm both paths first, so neither measurement carries code compiled on its first use.
    for (const addr of make().slice(0, 100)) flattenComponentValues(addr)
    const stock = heapPerAddress(make, () => {})
    const flattened = heapPerAddress(make, flattenComponentValues)
    // Measured on Node 22: ~1,900 bytes stock, ~700 flattened (a 52-character peer ID is
    // ~40 cons strings of 32 bytes, or one flat string of ~70).
    assert.ok(stock > 1400, `stock keeps ${stock} bytes per address: the cons strings this is for are gone`)
    // Against the same run's stock figure, not an absolute one: what else the process
    // allocates meanwhile moves both by some hundred bytes.
    assert.ok(flattened < stock * 0.7, `${flattened} bytes kept per address flattened, against ${stock} stock`)
    const sample = make()[0] ?? assert.fail('no address')
    flattenComponentValues(sample)
    assert.equal(sample.toString(), `/ip4/127.1.2.3/tcp/40000/p2p/${ids[0]}`, 'the address is unchanged')
  })

  it('names the transport of an address', () => {
    assert.equal(transportOf(multiaddr('/ip4/127.0.0.1/tcp/1/ws')), 'ws')
    assert.equal(transportOf(multiaddr('/ip4/127.0.0.1/tcp/1')), 'tcp')
  })
})
