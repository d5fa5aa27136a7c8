/**
 * The protobuf codec: every message round-trips, the schema is pinned by golden bytes, every
 * bound is enforced with its error code, and no input makes the decoder throw.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  createRng,
  decodeHyParView,
  decodePlumtree,
  DEFAULT_WIRE_LIMITS,
  encodeHyParView,
  encodePlumtree,
  overlayProtocolId,
  protocolOf,
  randomInt
} from '../src/overlay/index.ts'
import type { DecodeResult, HyParViewMessage, PlumtreeMessage, WireErrorCode } from '../src/overlay/index.ts'

const hyparviewMessages: HyParViewMessage[] = [
  { type: 'join' },
  { type: 'forwardJoin', peer: '12D3KooWSoeYKbpkb5UoL2T5eiomWRHdxR9cPC4tk11gKU89fFwT', ttl: 3 },
  { type: 'forwardJoin', peer: 'p', ttl: 0 },
  { type: 'neighbor', priority: 'high' },
  { type: 'neighbor', priority: 'low' },
  { type: 'neighbor', priority: 'bridge' },
  { type: 'neighborReply', accepted: true },
  { type: 'neighborReply', accepted: false },
  { type: 'disconnect', alive: true },
  { type: 'disconnect', alive: false },
  { type: 'shuffle', origin: 'o', ttl: 4, peers: ['a', 'b', 'ž'] },
  { type: 'shuffle', origin: 'o', ttl: 0, peers: [] },
  { type: 'shuffleReply', peers: ['a'] },
  { type: 'shuffleReply', peers: [] }
]

const plumtreeMessages: PlumtreeMessage[] = [
  { type: 'gossip', id: 'bafyid', round: 7, origin: '12D3KooW', payload: new Uint8Array([0, 1, 255]) },
  { type: 'gossip', id: 'x', round: 0, origin: 'o', payload: new Uint8Array(0) },
  { type: 'gossip', id: 'x', round: 2, origin: 'o', payload: new Uint8Array(1), repaired: true },
  { type: 'ihave', entries: [{ id: 'a', round: 1 }, { id: 'b', round: 300 }] },
  { type: 'ihave', entries: [] },
  { type: 'graft', id: 'a', origin: null },
  { type: 'graft', id: null, origin: 'o' },
  { type: 'graft', id: 'a', origin: 'o' },
  { type: 'prune', origins: ['o'] },
  { type: 'prune', origins: ['o', 'p'] }
]

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

function bytes(hexString: string): Uint8Array {
  return new Uint8Array(Buffer.from(hexString.replace(/\s+/g, ''), 'hex'))
}

function failure<T>(result: DecodeResult<T>): WireErrorCode {
  assert.equal(result.ok, false, `expected a decode error, got ${JSON.stringify(result)}`)
  return result.ok ? 'malformed' : result.code
}

/** Hand-built protobuf: a length-delimited field. */
function ld(field: number, body: Uint8Array | string): Uint8Array {
  const content = typeof body === 'string' ? new TextEncoder().encode(body) : body
  return concat(varint(field * 8 + 2), varint(content.length), content)
}

function vi(field: number, value: number): Uint8Array {
  return concat(varint(field * 8), varint(value))
}

function varint(value: number): Uint8Array {
  const out: number[] = []
  let v = value
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
  return new Uint8Array(out)
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const topic = ld(1, '/pharos/content')

describe('wire: round trips', () => {
  it('every HyParView message decodes to what was encoded', () => {
    for (const message of hyparviewMessages) {
      const decoded = decodeHyParView(encodeHyParView({ topic: '/pharos/content', message }))
      assert.deepEqual(decoded, { ok: true, value: { topic: '/pharos/content', message } })
    }
  })

  it('every Plumtree message decodes to what was encoded', () => {
    for (const message of plumtreeMessages) {
      const decoded = decodePlumtree(encodePlumtree({ topic: '/pharos/content', message }))
      assert.deepEqual(decoded, { ok: true, value: { topic: '/pharos/content', message } })
    }
  })

  it('messages are routed to the protocol that carries them', () => {
    assert.deepEqual(hyparviewMessages.map(protocolOf), hyparviewMessages.map(() => 'hyparview'))
    assert.deepEqual(plumtreeMessages.map(protocolOf), plumtreeMessages.map(() => 'plumtree'))
    assert.equal(overlayProtocolId('pharos', 'plumtree'), '/pharos/plumtree/2.0.0', '2.0.0: origins on the wire')
    // 2.0.0: NEIGHBOR's BRIDGE priority, which a 1.0.0 decoder refuses; the two IDs never negotiate.
    assert.equal(overlayProtocolId('pharos', 'hyparview'), '/pharos/hyparview/2.0.0')
  })

  it('the schema is pinned: golden bytes', () => {
    assert.equal(hex(encodeHyParView({ topic: 't', message: { type: 'join' } })), '0a0174' + '1200')
    assert.equal(hex(encodeHyParView({ topic: 't', message: { type: 'forwardJoin', peer: 'p', ttl: 3 } })), '0a0174' + '1a05' + '0a0170' + '1003')
    assert.equal(hex(encodeHyParView({ topic: 't', message: { type: 'neighbor', priority: 'low' } })), '0a0174' + '2202' + '0802')
    assert.equal(hex(encodeHyParView({ topic: 't', message: { type: 'neighbor', priority: 'bridge' } })), '0a0174' + '2202' + '0803')
    assert.equal(hex(encodeHyParView({ topic: 't', message: { type: 'shuffle', origin: 'o', ttl: 4, peers: ['a'] } })), '0a0174' + '3a08' + '0a016f' + '1004' + '1a0161')
    assert.equal(hex(encodePlumtree({ topic: 't', message: { type: 'gossip', id: 'i', round: 2, origin: 'o', payload: new Uint8Array([9]) } })), '0a0174' + '120b' + '0a0169' + '1002' + '1a0109' + '22016f')
    assert.equal(hex(encodePlumtree({ topic: 't', message: { type: 'ihave', entries: [{ id: 'i', round: 1 }] } })), '0a0174' + '1a07' + '0a05' + '0a0169' + '1001')
    assert.equal(hex(encodePlumtree({ topic: 't', message: { type: 'graft', id: 'i', origin: 'o' } })), '0a0174' + '2206' + '0a0169' + '12016f')
    assert.equal(hex(encodePlumtree({ topic: 't', message: { type: 'prune', origins: ['o', 'p'] } })), '0a0174' + '2a06' + '0a016f' + '0a0170')
  })

  it('the decoded payload is a copy: the driver may reuse its buffer', () => {
    const frame = encodePlumtree({ topic: 't', message: { type: 'gossip', id: 'i', round: 1, origin: 'o', payload: new Uint8Array([5, 6]) } })
    const decoded = decodePlumtree(frame)
    frame.fill(0)
    assert.ok(decoded.ok && decoded.value.message.type === 'gossip')
    assert.deepEqual(decoded.value.message.payload, new Uint8Array([5, 6]))
  })
})

describe('wire: bounds', () => {
  it('TTLs are clamped to maxTtl', () => {
    const forwardJoin = decodeHyParView(concat(topic, ld(3, concat(ld(1, 'p'), vi(2, 1_000_000)))))
    assert.deepEqual(forwardJoin, { ok: true, value: { topic: '/pharos/content', message: { type: 'forwardJoin', peer: 'p', ttl: DEFAULT_WIRE_LIMITS.maxTtl } } })
    const shuffle = decodeHyParView(concat(topic, ld(7, concat(ld(1, 'o'), vi(2, 99)))), { ...DEFAULT_WIRE_LIMITS, maxTtl: 6 })
    assert.ok(shuffle.ok && shuffle.value.message.type === 'shuffle' && shuffle.value.message.ttl === 6)
  })

  it('rounds are clamped to maxRound', () => {
    const gossip = decodePlumtree(concat(topic, ld(2, concat(ld(1, 'i'), vi(2, 5_000_000), ld(4, 'o')))))
    assert.ok(gossip.ok && gossip.value.message.type === 'gossip' && gossip.value.message.round === DEFAULT_WIRE_LIMITS.maxRound)
    const ihave = decodePlumtree(concat(topic, ld(3, ld(1, concat(ld(1, 'i'), vi(2, 99_999))))))
    assert.ok(ihave.ok && ihave.value.message.type === 'ihave' && ihave.value.message.entries[0]?.round === DEFAULT_WIRE_LIMITS.maxRound)
  })

  it('too many shuffle peers, IHAVE entries or PRUNE origins: too-many', () => {
    const limits = { ...DEFAULT_WIRE_LIMITS, maxShufflePeers: 2, maxIHaveEntries: 2, maxPruneOrigins: 2 }
    const peers = ['a', 'b', 'c']
    assert.equal(decodeHyParView(encodeHyParView({ topic: 't', message: { type: 'shuffle', origin: 'o', ttl: 1, peers: peers.slice(0, 2) } }), limits).ok, true)
    assert.equal(failure(decodeHyParView(encodeHyParView({ topic: 't', message: { type: 'shuffle', origin: 'o', ttl: 1, peers } }), limits)), 'too-many')
    assert.equal(failure(decodeHyParView(encodeHyParView({ topic: 't', message: { type: 'shuffleReply', peers } }), limits)), 'too-many')
    const entries = peers.map((id) => ({ id, round: 1 }))
    assert.equal(failure(decodePlumtree(encodePlumtree({ topic: 't', message: { type: 'ihave', entries } }), limits)), 'too-many')
    assert.equal(decodePlumtree(encodePlumtree({ topic: 't', message: { type: 'prune', origins: peers.slice(0, 2) } }), limits).ok, true)
    assert.equal(failure(decodePlumtree(encodePlumtree({ topic: 't', message: { type: 'prune', origins: peers } }), limits)), 'too-many')
  })

  it('an oversized frame, payload, peer key, topic or message ID: oversized', () => {
    const gossip = encodePlumtree({ topic: 't', message: { type: 'gossip', id: 'i', round: 1, origin: 'o', payload: new Uint8Array(100) } })
    assert.equal(failure(decodePlumtree(gossip, { ...DEFAULT_WIRE_LIMITS, maxFrameBytes: 50 })), 'oversized')
    assert.equal(failure(decodePlumtree(gossip, { ...DEFAULT_WIRE_LIMITS, maxPayloadBytes: 99 })), 'oversized')
    assert.equal(decodePlumtree(gossip, { ...DEFAULT_WIRE_LIMITS, maxPayloadBytes: 100 }).ok, true)
    const longKey = 'k'.repeat(DEFAULT_WIRE_LIMITS.maxPeerKeyBytes + 1)
    assert.equal(failure(decodeHyParView(encodeHyParView({ topic: 't', message: { type: 'forwardJoin', peer: longKey, ttl: 1 } }))), 'oversized')
    assert.equal(failure(decodeHyParView(encodeHyParView({ topic: 't', message: { type: 'shuffleReply', peers: [longKey] } }))), 'oversized')
    assert.equal(failure(decodeHyParView(encodeHyParView({ topic: 't'.repeat(DEFAULT_WIRE_LIMITS.maxTopicBytes + 1), message: { type: 'join' } }))), 'oversized')
    assert.equal(failure(decodePlumtree(encodePlumtree({ topic: 't', message: { type: 'graft', id: 'i'.repeat(DEFAULT_WIRE_LIMITS.maxMessageIdBytes + 1), origin: null } }))), 'oversized')
    assert.equal(failure(decodePlumtree(encodePlumtree({ topic: 't', message: { type: 'gossip', id: 'i', round: 1, origin: longKey, payload: new Uint8Array(1) } }))), 'oversized')
    assert.equal(failure(decodePlumtree(encodePlumtree({ topic: 't', message: { type: 'prune', origins: [longKey] } }))), 'oversized')
  })
})

describe('wire: refused frames', () => {
  const cases: Array<[string, WireErrorCode, () => DecodeResult<unknown>]> = [
    ['an empty frame', 'missing-field', () => decodeHyParView(new Uint8Array(0))],
    ['a frame without a message', 'missing-field', () => decodeHyParView(topic)],
    ['a frame without a topic', 'missing-field', () => decodeHyParView(ld(2, ''))],
    ['an empty topic', 'missing-field', () => decodeHyParView(concat(ld(1, ''), ld(2, '')))],
    ['a FORWARDJOIN without a peer', 'missing-field', () => decodeHyParView(concat(topic, ld(3, vi(2, 1))))],
    ['a NEIGHBOR without a priority', 'missing-field', () => decodeHyParView(concat(topic, ld(4, '')))],
    ['a SHUFFLE without an origin', 'missing-field', () => decodeHyParView(concat(topic, ld(7, vi(2, 1))))],
    ['an empty peer in a SHUFFLEREPLY', 'missing-field', () => decodeHyParView(concat(topic, ld(8, ld(1, ''))))],
    ['a GOSSIP without an ID', 'missing-field', () => decodePlumtree(concat(topic, ld(2, concat(vi(2, 1), ld(4, 'o')))))],
    ['a GOSSIP without an origin', 'missing-field', () => decodePlumtree(concat(topic, ld(2, concat(ld(1, 'i'), vi(2, 1)))))],
    ['a GRAFT with neither an ID nor an origin', 'missing-field', () => decodePlumtree(concat(topic, ld(4, '')))],
    ['a PRUNE naming no origin', 'missing-field', () => decodePlumtree(concat(topic, ld(5, '')))],
    ['a PRUNE with an empty origin', 'missing-field', () => decodePlumtree(concat(topic, ld(5, ld(1, ''))))],
    ['an IHAVE entry without an ID', 'missing-field', () => decodePlumtree(concat(topic, ld(3, ld(1, vi(2, 1)))))],
    ['a GRAFT with an empty ID', 'missing-field', () => decodePlumtree(concat(topic, ld(4, ld(1, ''))))],
    ['an unknown message variant', 'unknown-field', () => decodeHyParView(concat(topic, ld(9, '')))],
    ['an unknown Plumtree variant', 'unknown-field', () => decodePlumtree(concat(topic, ld(6, '')))],
    ['an unknown field inside FORWARDJOIN', 'unknown-field', () => decodeHyParView(concat(topic, ld(3, concat(ld(1, 'p'), vi(3, 1)))))],
    ['a field inside JOIN', 'unknown-field', () => decodeHyParView(concat(topic, ld(2, vi(1, 1))))],
    ['an unknown field inside PRUNE', 'unknown-field', () => decodePlumtree(concat(topic, ld(5, concat(ld(1, 'o'), vi(2, 1)))))],
    ['an unknown field inside GOSSIP', 'unknown-field', () => decodePlumtree(concat(topic, ld(2, concat(ld(1, 'i'), ld(4, 'o'), vi(6, 1)))))],
    ['an unknown field inside an IHAVE entry', 'unknown-field', () => decodePlumtree(concat(topic, ld(3, ld(1, concat(ld(1, 'i'), vi(7, 1))))))],
    ['two message variants', 'malformed', () => decodeHyParView(concat(topic, ld(2, ''), ld(2, '')))],
    ['the topic twice', 'malformed', () => decodeHyParView(concat(topic, topic, ld(2, '')))],
    ['a singular field twice', 'malformed', () => decodeHyParView(concat(topic, ld(3, concat(ld(1, 'p'), ld(1, 'q')))))],
    ['a topic sent as a varint', 'malformed', () => decodeHyParView(concat(vi(1, 5), ld(2, '')))],
    ['a variant sent as a varint', 'malformed', () => decodeHyParView(concat(topic, vi(2, 1)))],
    ['a TTL sent as bytes', 'malformed', () => decodeHyParView(concat(topic, ld(3, concat(ld(1, 'p'), ld(2, 'x')))))],
    ['a bool of 2', 'malformed', () => decodeHyParView(concat(topic, ld(5, vi(1, 2))))],
    ['an unknown priority', 'malformed', () => decodeHyParView(concat(topic, ld(4, vi(1, 4))))],
    ['invalid UTF-8 in a peer key', 'malformed', () => decodeHyParView(concat(topic, ld(3, ld(1, new Uint8Array([0xff, 0xfe])))))],
    ['a truncated varint', 'malformed', () => decodeHyParView(new Uint8Array([0x0a, 0x80]))],
    ['a truncated length-delimited field', 'malformed', () => decodeHyParView(new Uint8Array([0x0a, 0x05, 0x74]))],
    ['a varint over 32 bits', 'malformed', () => decodeHyParView(concat(topic, ld(3, concat(ld(1, 'p'), new Uint8Array([0x10, 0xff, 0xff, 0xff, 0xff, 0x1f])))))],
    ['a 64-bit fixed field', 'malformed', () => decodeHyParView(concat(topic, bytes('09 0000000000000000')))],
    ['a 32-bit fixed field', 'malformed', () => decodePlumtree(concat(topic, bytes('0d 00000000')))],
    ['field number 0', 'malformed', () => decodePlumtree(concat(bytes('0200'), topic))]
  ]
  for (const [name, code, decode] of cases) {
    it(`${name}: ${code}`, () => {
      assert.equal(failure(decode()), code)
    })
  }
})

describe('wire: fuzz', () => {
  const decoders = [decodeHyParView, decodePlumtree] as const
  const valid = [
    ...hyparviewMessages.map((message) => encodeHyParView({ topic: '/pharos/content', message })),
    ...plumtreeMessages.map((message) => encodePlumtree({ topic: '/pharos/content', message }))
  ]

  /** Decoding must return a result, and an accepted frame must survive a re-encode unchanged. */
  function check(input: Uint8Array): void {
    for (const decode of decoders) {
      let result: DecodeResult<unknown>
      try {
        result = decode(input, { ...DEFAULT_WIRE_LIMITS, maxShufflePeers: 4, maxIHaveEntries: 4, maxPruneOrigins: 4 })
      } catch (error) {
        assert.fail(`decoder threw on ${hex(input)}: ${String(error)}`)
      }
      if (!result.ok) {
        assert.ok(['malformed', 'oversized', 'too-many', 'unknown-field', 'missing-field'].includes(result.code))
        continue
      }
      if (decode === decodeHyParView) {
        const again = decodeHyParView(encodeHyParView(result.value as Parameters<typeof encodeHyParView>[0]))
        assert.deepEqual(again, result)
      } else {
        const again = decodePlumtree(encodePlumtree(result.value as Parameters<typeof encodePlumtree>[0]))
        assert.deepEqual(again, result)
      }
    }
  }

  it('random bytes never make a decoder throw', () => {
    const rng = createRng(0xf022)
    for (let i = 0; i < 20_000; i++) {
      const input = new Uint8Array(randomInt(rng, 48))
      for (let j = 0; j < input.length; j++) input[j] = randomInt(rng, 256)
      check(input)
    }
  })

  it('mutated valid frames never make a decoder throw', () => {
    const rng = createRng(0xf023)
    let accepted = 0
    for (let i = 0; i < 20_000; i++) {
      const base = valid[randomInt(rng, valid.length)] as Uint8Array
      const input = base.slice(0, base.length - randomInt(rng, 3))
      for (let flips = 1 + randomInt(rng, 3); flips > 0 && input.length > 0; flips--) input[randomInt(rng, input.length)] = randomInt(rng, 256)
      check(input)
      if (decodeHyParView(input).ok || decodePlumtree(input).ok) accepted++
    }
    // The mutations must reach the decoders' deeper paths, not only fail at the first byte.
    assert.ok(accepted > 500, `only ${accepted} mutated frames decoded`)
  })
})
