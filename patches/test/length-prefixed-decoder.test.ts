/**
 * The patch to @libp2p/utils' LengthPrefixedDecoder (patches/@libp2p+utils+7.4.1.patch,
 * docs/upstream.md): it no longer asks its length decoder to read an empty buffer — which
 * throws a RangeError, caught as "need more data" — after every chunk that ends on a frame
 * boundary. Noise decrypts every message of every connection through this decoder.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Noise's framing: a 2-byte big-endian length, as @libp2p/noise's uint16BEDecode reads it. */
function uint16Frame (payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(2 + payload.byteLength)
  frame[0] = payload.byteLength >> 8
  frame[1] = payload.byteLength & 0xff
  frame.set(payload, 2)
  return frame
}

function countingDecoder (): { decoder: LengthPrefixedDecoder, emptyReads: () => number, throws: () => number } {
  let emptyReads = 0
  let throws = 0
  const decoder = new LengthPrefixedDecoder({
    encodingLength: () => 2,
    lengthDecoder: (data: Uint8ArrayList | Uint8Array) => {
      if (data.byteLength === 0) emptyReads++
      if (data.byteLength < 2) { throws++; throw new RangeError('Could not decode int16BE') }
      return (data instanceof Uint8Array ? data[0] ?? 0 : data.get(0)) * 256 + (data instanceof Uint8Array ? data[1] ?? 0 : data.get(1))
    }
  })
  return { decoder, emptyReads: () => emptyReads, throws: () => throws }
}

describe('@libp2p/utils LengthPrefixedDecoder patch', () => {
  it('decodes whole frames without reading a length from an empty buffer (no exception per message)', () => {
    const { decoder, emptyReads, throws } = countingDecoder()
    const payloads = Array.from({ length: 100 }, (_, i) => new Uint8Array(i + 1).fill(i))
    const decoded: Uint8Array[] = []
    for (const payload of payloads) for (const frame of decoder.decode(uint16Frame(payload))) decoded.push(frame.subarray())
    assert.deepEqual(decoded, payloads)
    assert.equal(emptyReads(), 0, 'stock: one empty read, and one RangeError, per frame')
    assert.equal(throws(), 0)
  })

  it('still waits for more data on a partial length or a partial frame, and decodes several frames per chunk', () => {
    const { decoder } = countingDecoder()
    const a = uint16Frame(new Uint8Array([1, 2, 3]))
    const b = uint16Frame(new Uint8Array([4, 5]))
    const stream = new Uint8Array([...a, ...b, ...a])
    const decoded: number[][] = []
    // one byte, then the rest of a's length and part of its body, then everything else
    for (const chunk of [stream.subarray(0, 1), stream.subarray(1, 4), stream.subarray(4)]) {
      for (const frame of decoder.decode(chunk)) decoded.push([...frame.subarray()])
    }
    assert.deepEqual(decoded, [[1, 2, 3], [4, 5], [1, 2, 3]])
  })
})
