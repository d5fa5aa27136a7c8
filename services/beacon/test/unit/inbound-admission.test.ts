/**
 * Inbound admission without IO: who a connection counts against, fair pending slots and
 * whom a newcomer takes a slot from, and the handshake rate that follows the event loop.
 * Over real sockets and a real worker: admission-libp2p.test.ts.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { sourceKey, sourcePrefix } from '../../src/net/source-address.ts'
import { HandshakeGovernor, PendingUpgrade, PendingUpgrades, StallClock } from '../../src/p2p/inbound-admission.ts'
import type { AdmissionRefusal } from '../../src/p2p/inbound-admission.ts'

describe('source addresses', () => {
  it('a source is an IPv4 address or an IPv6 /64; its network an IPv4 /24 or an IPv6 /48', () => {
    assert.equal(sourceKey('198.51.100.7'), '198.51.100.7')
    assert.equal(sourcePrefix('198.51.100.7'), '198.51.100.0/24')
    assert.equal(sourcePrefix('::ffff:198.51.100.7'), '198.51.100.0/24', 'IPv4-mapped is the IPv4 network')
    assert.equal(sourcePrefix('2001:db8:1:2:aaaa::1'), '2001:db8:1::/48')
    assert.equal(sourcePrefix('2001:0db8:0001:ffff::1%eth0'), '2001:db8:1::/48', 'zero-padded, with a zone')
    assert.equal(sourcePrefix('2001:db8::1'), '2001:db8:0::/48')
    assert.notEqual(sourcePrefix('2001:db8:1::1'), sourcePrefix('2001:db8:2::1'))
    assert.equal(sourceKey('not an address'), 'not an address', 'anything else is its own source')
  })
})

/** A table of pending upgrades whose closes are recorded, with a clock the test moves. */
function slots (limits: { maxPending: number, maxPendingPerSource: number, maxPendingPerPrefix: number }) {
  const table = new PendingUpgrades(limits)
  const closed: Array<{ name: string, reason: AdmissionRefusal }> = []
  let now = 0
  /** A newcomer from `ip` asks for a slot; if admitted, it takes it (closing whom it evicts). */
  const connect = (name: string, ip: string): ReturnType<PendingUpgrades['admit']> & { upgrade?: PendingUpgrade } => {
    const decision = table.admit(sourceKey(ip), sourcePrefix(ip))
    if (!decision.admitted) return decision
    decision.evict?.close('evicted', decision.limit)
    const upgrade = new PendingUpgrade(sourceKey(ip), sourcePrefix(ip), now++, (reason) => {
      closed.push({ name, reason })
      table.remove(upgrade)
    })
    table.add(upgrade)
    return { ...decision, upgrade }
  }
  return { table, closed, connect }
}

describe('fair pending slots', () => {
  it('a source gets at most its share; a newcomer from another source is admitted meanwhile', () => {
    const { connect } = slots({ maxPending: 10, maxPendingPerSource: 2, maxPendingPerPrefix: 10 })
    assert.equal(connect('a1', '10.0.0.1').admitted, true)
    assert.equal(connect('a2', '10.0.0.1').admitted, true)
    assert.deepEqual(connect('a3', '10.0.0.1'), { admitted: false, reason: 'source-cap', limit: 'maxPendingPerSource' })
    assert.equal(connect('b1', '10.0.0.2').admitted, true)
  })

  it('a full network gives a newcomer the oldest slot of its heaviest source; the heaviest source itself is refused', () => {
    const { connect, closed } = slots({ maxPending: 100, maxPendingPerSource: 5, maxPendingPerPrefix: 4 })
    connect('a1', '10.0.0.1')
    connect('b1', '10.0.0.2')
    connect('a2', '10.0.0.1')
    connect('a3', '10.0.0.1')
    const honest = connect('h1', '10.0.0.9')
    assert.equal(honest.admitted, true)
    assert.deepEqual(closed, [{ name: 'a1', reason: 'evicted' }], 'the heaviest source (three slots) lost its oldest')
    assert.deepEqual(connect('a4', '10.0.0.1'), { admitted: false, reason: 'source-cap', limit: 'maxPendingPerPrefix' }, 'still the heaviest: no slot to take')
  })

  it('when every slot is held, the heaviest network\'s heaviest source loses its oldest, and a newcomer as heavy is refused', () => {
    const { connect, closed, table } = slots({ maxPending: 6, maxPendingPerSource: 6, maxPendingPerPrefix: 6 })
    connect('x1', '192.0.2.1') // network 192.0.2.0/24: x holds 1, y holds 3
    connect('y1', '192.0.2.2')
    connect('y2', '192.0.2.2')
    connect('z1', '198.51.100.1') // network 198.51.100.0/24: z holds 2
    connect('y3', '192.0.2.2')
    connect('z2', '198.51.100.1')
    assert.equal(table.size, 6)
    assert.equal(connect('h1', '203.0.113.5').admitted, true, 'a newcomer from a network holding nothing')
    assert.deepEqual(closed.map((c) => c.name), ['y1'], 'y, the heaviest source of the heaviest network, lost its oldest')
    // Now 192.0.2.0/24 holds 3 (x1, y2, y3) and 198.51.100.0/24 holds 2: z, whose network is
    // lighter, takes a slot; then both networks hold 3 and nobody of either gains by taking one.
    assert.equal(connect('z3', '198.51.100.1').admitted, true)
    assert.deepEqual(closed.map((c) => c.name), ['y1', 'y2'])
    assert.deepEqual(connect('z4', '198.51.100.1'), { admitted: false, reason: 'pending-cap', limit: 'maxPending' })
    assert.equal(table.held({ prefix: '198.51.100.0/24' }), 3)
  })

  it('within the heaviest network, a lighter source takes the heaviest one\'s slot', () => {
    const { connect, closed } = slots({ maxPending: 4, maxPendingPerSource: 4, maxPendingPerPrefix: 4 })
    for (const name of ['a1', 'a2', 'a3', 'a4']) connect(name, '10.1.1.1')
    assert.equal(connect('b1', '10.1.1.2').admitted, true)
    assert.deepEqual(closed.map((c) => c.name), ['a1'])
  })

  it('a freed slot is free once, and the table ends empty', () => {
    const { connect, table } = slots({ maxPending: 2, maxPendingPerSource: 2, maxPendingPerPrefix: 2 })
    const first = connect('a1', '10.0.0.1').upgrade ?? assert.fail()
    table.remove(first)
    table.remove(first)
    assert.equal(table.size, 0)
    assert.equal(table.held({ source: '10.0.0.1' }), 0)
    assert.equal(table.held({ prefix: '10.0.0.0/24' }), 0)
  })
})

describe('progress of an upgrade', () => {
  const header = new TextEncoder().encode('/multistream/1.0.0\n')
  it('the first multistream-select message is complete once its varint length of bytes followed it', () => {
    const upgrade = new PendingUpgrade('s', 'p', 0, () => {})
    upgrade.received(Uint8Array.of(header.length, ...header.subarray(0, 5)))
    assert.equal(upgrade.firstMessage, false)
    upgrade.received(header.subarray(5))
    assert.equal(upgrade.firstMessage, true)
    assert.equal(upgrade.bytes, header.length + 1)
  })

  it('a two-byte length prefix split over chunks is followed too', () => {
    const upgrade = new PendingUpgrade('s', 'p', 0, () => {})
    upgrade.received(Uint8Array.of(0x80 | 2))
    upgrade.received(Uint8Array.of(1))
    upgrade.received(new Uint8Array(129))
    assert.equal(upgrade.firstMessage, false, '130 bytes announced, 129 came')
    upgrade.received(new Uint8Array(1))
    assert.equal(upgrade.firstMessage, true)
  })

  it('a length prefix longer than any first message\'s never completes it', () => {
    const upgrade = new PendingUpgrade('s', 'p', 0, () => {})
    upgrade.received(new Uint8Array(64).fill(0xff))
    assert.equal(upgrade.firstMessage, false)
  })
})

describe('stall clock', () => {
  it('sums how late a periodic timer fired, past a small tolerance, and says when a tick was late', () => {
    const clock = new StallClock(250)
    assert.equal(clock.tick(0), false)
    assert.equal(clock.tick(260), false, '10 ms late is on time')
    assert.equal(clock.tick(2510), true, 'the loop was held for two seconds')
    assert.equal(clock.stalledMs, 2000)
    assert.equal(clock.tick(2760), false)
    assert.equal(clock.stalledMs, 2000)
  })
})

describe('handshake governor', () => {
  const limits = { loopDelayTargetMs: 50, maxHandshakesPerSecond: 200, minHandshakesPerSecond: 10 }

  it('admits a second\'s worth at once (a failed-over worker\'s peers arrive together), then at its rate', () => {
    const governor = new HandshakeGovernor(limits)
    let admitted = 0
    for (let i = 0; i < 500; i++) if (governor.tryAdmit(0)) admitted++
    assert.equal(admitted, 200)
    assert.equal(governor.tryAdmit(4), false, 'less than one token refilled in 4 ms')
    assert.equal(governor.tryAdmit(10), true, 'two tokens after 10 ms at 200/s')
  })

  it('keeps a bucket of its own for members\' sources, at the same rate, that strangers cannot empty', () => {
    const governor = new HandshakeGovernor(limits)
    for (let i = 0; i < 500; i++) governor.tryAdmit(0)
    assert.equal(governor.tryAdmit(0), false, 'the common bucket is empty')
    let members = 0
    for (let i = 0; i < 500; i++) if (governor.tryAdmit(0, 'member')) members++
    assert.equal(members, 200, 'a second\'s worth for members too')
    governor.onLoopDelay(80, 0)
    assert.equal(governor.tryAdmit(5, 'member'), false, 'half a token in 5 ms at the halved rate (100/s)')
    assert.equal(governor.tryAdmit(10, 'member'), true, 'one in 10 ms')
    assert.equal(governor.tryAdmit(10, 'any'), true, 'the common bucket refilled meanwhile, on its own')
  })

  it('halves the rate while the loop lags (once per interval) down to the floor, and grows it back while it keeps up', () => {
    const governor = new HandshakeGovernor(limits)
    governor.onLoopDelay(80, 0)
    assert.equal(governor.rate, 100)
    governor.onLoopDelay(500, 50)
    assert.equal(governor.rate, 100, 'one step per interval, however many late samples')
    governor.onLoopDelay(1, 100)
    assert.equal(governor.rate, 50, 'the stall between two steps is not missed: the next step sees the worst sample since the last')
    for (let t = 200; t <= 1000; t += 100) governor.onLoopDelay(80, t)
    assert.equal(governor.rate, 10, 'never below the floor')
    governor.onLoopDelay(5, 1100)
    assert.equal(governor.rate, 20, 'plus a twentieth of the ceiling per interval')
    for (let t = 1200; t <= 5000; t += 100) governor.onLoopDelay(5, t)
    assert.equal(governor.rate, 200, 'never above the ceiling')
  })

  it('sheds at the lowered rate: a lagging loop admits fewer handshakes in the same second', () => {
    const count = (lagging: boolean): number => {
      const governor = new HandshakeGovernor(limits)
      let admitted = 0
      for (let t = 0; t < 1000; t += 5) {
        if (t % 100 === 0) governor.onLoopDelay(lagging ? 200 : 1, t)
        if (governor.tryAdmit(t)) admitted++
      }
      return admitted
    }
    const keepingUp = count(false)
    const lagging = count(true)
    assert.equal(keepingUp, 200, 'one asked every 5 ms, every one admitted')
    assert.ok(lagging < keepingUp / 2, `lagging: ${lagging} admitted`)
  })
})
