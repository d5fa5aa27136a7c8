/**
 * The driver frames must not move when their codec does: these bytes and decode outcomes were
 * captured from the hand-written codec driver-frames.ts had before the shared protobuf module
 * (services/protocol/src/protobuf.ts) replaced it. Every encoder output must be byte-identical,
 * and every decoder must give the same answer on a seeded corpus of valid and broken frames.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { createRng, randomInt } from '@pharos/protocol/overlay/index.ts'
import {
  decodeAddrRequest,
  decodeAddrResponse,
  decodeDrainNotice,
  decodePreamble,
  encodeAddrRequest,
  encodeAddrResponse,
  encodeDrainNotice,
  encodePreamble
} from '../src/overlay/driver-frames.ts'
import type { AddrRecord, Preamble } from '../src/overlay/driver-frames.ts'

const pattern = (length: number, seed: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff)

const preambles: Preamble[] = [{ accepted: true }, { accepted: false, reason: 'banned' }, { accepted: false, reason: '' }, { accepted: false, reason: 'přetížen' }]
const addrRequests: string[][] = [[], ['12D3KooWa'], ['a', 'ž', ''], Array.from({ length: 40 }, (_, i) => `12D3KooWpeer${i}`)]
const addrRecords: AddrRecord[][] = [
  [],
  [{ peer: '12D3KooWa', addrs: [] }],
  [{ peer: '12D3KooWa', addrs: [pattern(8, 3), pattern(200, 4)] }, { peer: 'ž', addrs: [new Uint8Array(0)] }],
  [{ peer: 'many', addrs: Array.from({ length: 10 }, (_, i) => pattern(20, i)) }], // over MAX_ADDRS_PER_PEER
  Array.from({ length: 40 }, (_, i) => ({ peer: `12D3KooWpeer${i}`, addrs: [pattern(18, i)] })) // over MAX_LOOKUP_PEERS
]

/** Short outputs as hex; long ones as their SHA-256 and length. */
function show(bytes: Uint8Array): string {
  return bytes.length > 400 ? `sha256:${createHash('sha256').update(bytes).digest('hex')}:${bytes.length}` : Buffer.from(bytes).toString('hex')
}

// Captured from the codec before the change (commit ba38566).
const GOLDEN_PREAMBLE = ['0801', '0800120662616e6e6564', '08001200', '0800120b70c5996574c3adc5be656e']
const GOLDEN_ADDR_REQUEST = ['', '0a09313244334b6f6f5761', '0a01610a02c5be0a00', 'sha256:fec74a73331d979dfac7e9e66b31e862ab4036ce0f71bc89212efedb36dba1e0:502']
const GOLDEN_ADDR_RESPONSE = [
  '',
  '0a0b0a09313244334b6f6f5761',
  '0ae0010a09313244334b6f6f57611208032241607f9ebddc12c80104234261809fbeddfc1b3a597897b6d5f4133251708faecdec0b2a496887a6c5e4032241607f9ebddcfb1a39587796b5d4f31231506f8eadcceb0a29486786a5c4e30221405f7e9dbcdbfa1938577695b4d3f211304f6e8daccbea0928476685a4c3e201203f5e7d9cbbdaf91837567594b3d2f1102f4e6d8cabcae90827466584a3c2e1001f3e5d7c9bbad9f81736557493b2d1f00f2e4d6c8baac9e80726456483a2c1e0ff1e3d5c7b9ab9d8f71635547392b1d0ef0e2d4c6b8aa9c8e70625446382a1c0dffe1d0a060a02c5be1200',
  '0ab6010a046d616e791214001f3e5d7c9bbad9f81736557493b2d1f00f2e4d121401203f5e7d9cbbdaf91837567594b3d2f1102f4e12140221405f7e9dbcdbfa1938577695b4d3f211304f1214032241607f9ebddcfb1a39587796b5d4f3123150121404234261809fbeddfc1b3a597897b6d5f413325112140524436281a0bfdefd1c3b5a7998b7d6f514335212140625446382a1c0dffe1d3c5b7a99b8d7f615345312140726456483a2c1e0ff1e3d5c7b9ab9d8f7163554',
  'sha256:f53687dada90ef2d56f5d4d359f376d6d28ae08cd81b06118649525884def4dc:1206'
]

describe('driver frames golden bytes: the encoders write what the old codec wrote', () => {
  it('preambles', () => {
    assert.deepEqual(preambles.map((preamble) => show(encodePreamble(preamble))), GOLDEN_PREAMBLE)
  })

  it('address requests', () => {
    assert.deepEqual(addrRequests.map((peers) => show(encodeAddrRequest(peers))), GOLDEN_ADDR_REQUEST)
  })

  it('address responses and drain notices', () => {
    assert.deepEqual(addrRecords.map((records) => show(encodeAddrResponse(records))), GOLDEN_ADDR_RESPONSE)
    assert.deepEqual(addrRecords.map((records) => show(encodeDrainNotice(records))), GOLDEN_ADDR_RESPONSE)
  })
})

/** A decode result as text, byte arrays as hex, so results can be compared by digest. */
function describeResult(result: unknown): string {
  return JSON.stringify(result, (_key, value: unknown) => value instanceof Uint8Array ? `0x${Buffer.from(value).toString('hex')}` : value) ?? 'undefined'
}

describe('driver frames golden decoding: the decoders answer what the old codec answered', () => {
  it('the same answer for every frame of a seeded corpus', () => {
    const frames = [
      ...preambles.map((preamble) => encodePreamble(preamble)),
      ...addrRequests.map((peers) => encodeAddrRequest(peers)),
      ...addrRecords.map((records) => encodeAddrResponse(records)),
      // hand-built: an unknown varint field, a field number 0 and a six-byte varint
      Uint8Array.of(0x08, 0x01, 0x18, 0x05), Uint8Array.of(0x00, 0x01, 0x08, 0x01), Uint8Array.of(0x08, 0x81, 0x80, 0x80, 0x80, 0x80, 0x01)
    ]
    const rng = createRng(0x22f4a3e)
    const digest = createHash('sha256')
    let accepted = 0
    for (let i = 0; i < 12_000; i++) {
      const base = frames[randomInt(rng, frames.length)] as Uint8Array
      let input = base
      switch (randomInt(rng, 5)) {
        case 0: break
        case 1: input = base.slice(0, randomInt(rng, base.length + 1)); break
        case 2: input = Uint8Array.from({ length: randomInt(rng, 32) }, () => randomInt(rng, 256)); break
        case 3: input = base.slice(); if (input.length > 0) input[randomInt(rng, input.length)] = [0x00, 0x80, 0xff, randomInt(rng, 256)][randomInt(rng, 4)] as number; break
        default: input = base.slice(); if (input.length > 0) input[randomInt(rng, input.length)] = (randomInt(rng, 4) << 3) | randomInt(rng, 8)
      }
      for (const result of [decodePreamble(input), decodeAddrRequest(input), decodeAddrResponse(input), decodeDrainNotice(input)]) {
        digest.update(describeResult(result)).update('\n')
        if (result !== undefined) accepted++
      }
    }
    assert.ok(accepted > 5_000, `only ${accepted} results decoded`)
    assert.equal(digest.digest('hex'), '979093385e6808feab478ab10caf65587b487d3ab6fe3a3521a302754bfe1d0c')
  })
})
