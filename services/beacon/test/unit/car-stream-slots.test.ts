import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CarStreamSlots } from '../../src/http/car-stream-slots.ts'
import { sourceKey as clientKey } from '../../src/net/source-address.ts'

/** Who a CAR stream counts against, and the slot arithmetic (the HTTP side is gateway-car-limits.test.ts). */
describe('CAR stream slots', () => {
  it('counts an IPv4 client by address and an IPv6 client by its /64', () => {
    assert.equal(clientKey('203.0.113.7'), '203.0.113.7')
    assert.equal(clientKey('::ffff:203.0.113.7'), '203.0.113.7', 'IPv4-mapped is the IPv4 client')
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
    assert.equal(clientKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64', 'every address of a /64 is one client')
    assert.equal(clientKey('2001:0db8:0001:0002::1%eth0'), '2001:db8:1:2::/64', 'zero-padded, with a zone')
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64')
    assert.equal(clientKey('::1'), '0:0:0:0::/64')
    assert.equal(clientKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64', 'an embedded IPv4 tail is in the low half')
    assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'))
  })

  it('refuses past either cap, names the client\'s own cap first, and frees a slot once', () => {
    const slots = new CarStreamSlots({ maxStreams: 2, maxStreamsPerClient: 1 })
    const a = slots.acquire('a')
    assert.ok(!('key' in a))
    assert.deepEqual(slots.acquire('a'), { key: 'gatewayCarMaxStreamsPerIp', limit: 1 })
    const b = slots.acquire('b')
    assert.ok(!('key' in b))
    assert.deepEqual(slots.acquire('c'), { key: 'gatewayCarMaxStreams', limit: 2 })
    assert.deepEqual(slots.acquire('a'), { key: 'gatewayCarMaxStreamsPerIp', limit: 1 }, 'a client at its cap is told so even when the worker is full')
    a.release()
    a.release() // a second release (error and close both firing) frees nothing more
    assert.equal(slots.open, 1)
    assert.ok(!('key' in slots.acquire('c')))
    assert.deepEqual(slots.acquire('d'), { key: 'gatewayCarMaxStreams', limit: 2 })
  })
})
