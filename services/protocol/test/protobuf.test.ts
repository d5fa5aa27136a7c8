/**
 * The shared protobuf codec: what it writes is the protobuf wire format (checked by hand-built
 * bytes and by TextEncoder for UTF-8), it allocates the exact size once, it reads back what it
 * wrote, it skips fields it is not asked about, and every kind of broken input is refused with
 * its own error code.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createRng, randomInt } from '../src/overlay/index.ts'
import {
  DEFAULT_READER_OPTIONS,
  encodeMessage,
  ProtobufDecodeError,
  ProtobufEncodeError,
  ProtobufReader,
  UINT32_READER_OPTIONS,
  utf8Length,
  varintLength,
  WIRE_TYPE
} from '../src/protobuf.ts'
import type { ProtobufDecodeErrorCode, ProtobufEncoder, ProtobufReaderOptions } from '../src/protobuf.ts'

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

function bytes(hexString: string): Uint8Array {
  return new Uint8Array(Buffer.from(hexString.replace(/\s+/g, ''), 'hex'))
}

interface ReadField { number: number, wireType: number, value: number, bytes: string }

/** Every field of a message, as plain data. */
function readAll(input: Uint8Array, options: ProtobufReaderOptions = DEFAULT_READER_OPTIONS): ReadField[] {
  const out: ReadField[] = []
  for (const field = new ProtobufReader(input, options); field.next();) {
    out.push({ number: field.number, wireType: field.wireType, value: field.value, bytes: hex(field.bytes) })
  }
  return out
}

/** The code of the ProtobufDecodeError reading `input` throws. */
function refusal(input: Uint8Array, options: ProtobufReaderOptions = DEFAULT_READER_OPTIONS): ProtobufDecodeErrorCode {
  try {
    readAll(input, options)
  } catch (error) {
    assert.ok(error instanceof ProtobufDecodeError, `expected a ProtobufDecodeError, got ${String(error)}`)
    return error.code
  }
  return assert.fail(`${hex(input)} was read without an error`)
}

/** The varints at the edges of each length, and the largest exact integer. */
const VARINTS = [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455, 268_435_456, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35, 2 ** 49, Number.MAX_SAFE_INTEGER]

describe('protobuf: encoding', () => {
  it('writes varints as LEB128, in as many bytes as varintLength says', () => {
    assert.equal(hex(encodeMessage((e) => { e.uint(1, 0) }, undefined)), '0800')
    assert.equal(hex(encodeMessage((e) => { e.uint(1, 150) }, undefined)), '089601')
    assert.equal(hex(encodeMessage((e) => { e.uint(1, 2 ** 32 - 1) }, undefined)), '08ffffffff0f')
    assert.equal(hex(encodeMessage((e) => { e.uint(1, Number.MAX_SAFE_INTEGER) }, undefined)), '08ffffffffffffff0f')
    // A field number that needs a two-byte tag.
    assert.equal(hex(encodeMessage((e) => { e.uint(16, 1) }, undefined)), '800101')
    for (const value of VARINTS) {
      const encoded = encodeMessage((e) => { e.uint(1, value) }, undefined)
      assert.equal(encoded.length, 1 + varintLength(value), `varint ${value}`)
    }
  })

  it('writes every field kind as the protobuf encoding guide shows it', () => {
    const encoded = encodeMessage((e) => {
      e.bool(1, true)
      e.bool(2, false) // written: leaving false out is the schema's choice
      e.string(3, 'testing')
      e.bytes(4, Uint8Array.of(0xde, 0xad))
      e.bytes(5, new Uint8Array(0))
      e.message(6, (inner) => { inner.uint(1, 150) }, undefined)
      e.message(7, () => {}, undefined)
    }, undefined)
    assert.equal(hex(encoded), '0801 1000 1a0774657374696e67 2202dead 2a00 3203089601 3a00'.replace(/ /g, ''))
  })

  it('allocates the exact size once: the result is the whole of its buffer', () => {
    const encoded = encodeMessage((e) => {
      e.string(1, 'ž'.repeat(100))
      e.message(2, (inner) => { for (let i = 0; i < 50; i++) inner.message(1, (entry) => { entry.string(1, `id-${i}`); entry.uint(2, i * 1000) }, undefined) }, undefined)
      e.bytes(3, new Uint8Array(300))
    }, undefined)
    assert.equal(encoded.byteOffset, 0)
    assert.equal(encoded.buffer.byteLength, encoded.length)
  })

  it('writes strings byte for byte as TextEncoder does, by hand and natively, and utf8Length agrees', () => {
    const samples = ['', 'a', 'x'.repeat(63), 'x'.repeat(64), 'x'.repeat(300), 'ž'.repeat(63), 'ž'.repeat(64), 'ž', '€', '😀', 'a😀b', '\uD800', '\uDC00', '\uD800x', 'x\uDBFF', '\uDC00\uD800', '\uD83D\uDE00\uD83D', '\u07ff\u0800\uffff']
    const rng = createRng(0x22)
    // Random strings of UTF-16 units from every range, lone surrogates included, short and long.
    for (let i = 0; i < 2_000; i++) {
      const units = Array.from({ length: randomInt(rng, 140) }, () => {
        const range = randomInt(rng, 5)
        if (range === 0) return randomInt(rng, 0x80)
        if (range === 1) return 0x80 + randomInt(rng, 0x780)
        if (range === 2) return 0xd800 + randomInt(rng, 0x800)
        return 0x800 + randomInt(rng, 0x10000 - 0x800)
      })
      samples.push(String.fromCharCode(...units))
    }
    const encoder = new TextEncoder()
    for (const value of samples) {
      const expected = encoder.encode(value)
      assert.equal(utf8Length(value), expected.length, JSON.stringify(value))
      const encoded = encodeMessage((e) => { e.string(1, value) }, undefined)
      const field = new ProtobufReader(encoded)
      assert.ok(field.next())
      assert.equal(hex(field.bytes), hex(expected), JSON.stringify(value))
    }
  })

  it('refuses a write function that writes different fields when it is called again', () => {
    let calls = 0
    const impure = (e: ProtobufEncoder): void => {
      calls++
      e.string(1, calls === 1 ? 'a' : 'abc')
    }
    assert.throws(() => encodeMessage(impure, undefined), ProtobufEncodeError)
    let nested = 0
    assert.throws(() => encodeMessage((e) => { e.message(1, (inner) => { nested++; inner.uint(1, nested === 1 ? 1 : 1000) }, undefined) }, undefined), ProtobufEncodeError)
  })
})

describe('protobuf: reading', () => {
  it('reads back every field it wrote, nested messages with readers of their own', () => {
    const payload = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff)
    const encoded = encodeMessage((e) => {
      for (const value of VARINTS) e.uint(1, value)
      e.bool(2, true)
      e.string(3, 'žluťoučký 🐎')
      e.bytes(4, payload)
      e.message(5, (inner) => {
        inner.string(1, 'entry')
        inner.message(2, (deepest) => { deepest.uint(7, 42) }, undefined)
      }, undefined)
    }, undefined)
    const fields = readAll(encoded)
    assert.deepEqual(fields.filter((f) => f.number === 1).map((f) => f.value), VARINTS)
    assert.deepEqual(fields.find((f) => f.number === 2), { number: 2, wireType: WIRE_TYPE.varint, value: 1, bytes: '' })
    assert.equal(Buffer.from(bytes(fields.find((f) => f.number === 3)?.bytes ?? '')).toString('utf8'), 'žluťoučký 🐎')
    assert.equal(fields.find((f) => f.number === 4)?.bytes, hex(payload))
    const nested = readAll(bytes(fields.find((f) => f.number === 5)?.bytes ?? ''))
    assert.deepEqual(nested.map((f) => f.number), [1, 2])
    assert.deepEqual(readAll(bytes(nested[1]?.bytes ?? '')), [{ number: 7, wireType: WIRE_TYPE.varint, value: 42, bytes: '' }])
  })

  it('skips the fields a caller does not ask about, of every wire type', () => {
    // field 1 varint, field 9 fixed64, field 2 bytes, field 10 fixed32, field 11 varint, field 3 varint
    const input = bytes('0805 49 0102030405060708 1203616263 55 0a0b0c0d 58ffffffff0f 1807')
    const wanted = new Map<number, number | string>()
    for (const field = new ProtobufReader(input); field.next();) {
      if (field.number === 1 || field.number === 3) wanted.set(field.number, field.value)
      else if (field.number === 2) wanted.set(2, Buffer.from(field.bytes).toString('utf8'))
    }
    assert.deepEqual([...wanted], [[1, 5], [2, 'abc'], [3, 7]])
    assert.deepEqual(readAll(input).filter((f) => f.wireType === WIRE_TYPE.fixed64 || f.wireType === WIRE_TYPE.fixed32), [
      { number: 9, wireType: WIRE_TYPE.fixed64, value: 0, bytes: '0102030405060708' },
      { number: 10, wireType: WIRE_TYPE.fixed32, value: 0, bytes: '0a0b0c0d' }
    ])
  })

  it('reads only its own view of a larger buffer', () => {
    const whole = bytes('0801 0802 0803')
    assert.deepEqual(readAll(whole.subarray(2, 4)).map((f) => f.value), [2])
    // a length that fits the buffer but not the view
    assert.equal(refusal(bytes('0a05 6162 636465').subarray(0, 4)), 'truncated-field')
  })

  it('reads an empty message as no fields', () => {
    assert.deepEqual(readAll(new Uint8Array(0)), [])
  })
})

describe('protobuf: broken input', () => {
  const cases: Array<[string, string, ProtobufDecodeErrorCode, ProtobufReaderOptions?]> = [
    ['a tag cut inside its varint', '80', 'truncated-varint'],
    ['a value cut inside its varint', '08ff', 'truncated-varint'],
    ['a length cut inside its varint', '0a80', 'truncated-varint'],
    ['a varint of 11 bytes', '08 80808080808080808080 01', 'varint-too-long'],
    ['a varint of 10 bytes over 2^53', '08 ffffffffffffffffff01', 'varint-too-large'],
    ['a varint of exactly 2^53', '08 80808080808080 10', 'varint-too-large'],
    ['a tag over 2^53', 'ffffffffffffffffff01 00', 'varint-too-large'],
    ['a length past the end', '0a05 61626364', 'truncated-field'],
    ['a length far past the end', '0a ffffffff0f 61', 'truncated-field'],
    ['a fixed64 cut short', '09 01020304050607', 'truncated-field'],
    ['a fixed32 cut short', '0d 010203', 'truncated-field'],
    ['field number 0', '0001', 'field-number-zero'],
    ['field number 0, length-delimited', '0200', 'field-number-zero'],
    ['wire type 3 (start group)', '0b', 'unsupported-wire-type'],
    ['wire type 4 (end group)', '0c', 'unsupported-wire-type'],
    ['wire type 6', '0e00', 'unsupported-wire-type'],
    ['wire type 7', '0f00', 'unsupported-wire-type'],
    ['32-bit: a varint of 6 bytes', '08 808080808001', 'varint-too-long', UINT32_READER_OPTIONS],
    ['32-bit: a varint of 2^32', '08 8080808010', 'varint-too-large', UINT32_READER_OPTIONS],
    ['32-bit: a tag of 6 bytes', '808080808001 00', 'varint-too-long', UINT32_READER_OPTIONS],
    ['32-bit: a length of 2^32', '0a 8080808010', 'varint-too-large', UINT32_READER_OPTIONS],
    ['fixed-width fields off: wire type 1', '0901020304050607 08', 'unsupported-wire-type', { ...DEFAULT_READER_OPTIONS, fixedWidthFields: false }],
    ['fixed-width fields off: wire type 5', '0d01020304', 'unsupported-wire-type', { ...DEFAULT_READER_OPTIONS, fixedWidthFields: false }]
  ]
  for (const [name, input, code, options] of cases) {
    it(`${name}: ${code}`, () => {
      assert.equal(refusal(bytes(input), options), code)
    })
  }

  it('a broken field after good ones still fails the message', () => {
    assert.equal(refusal(bytes('0801 1203616263 1a05 6162')), 'truncated-field')
  })

  it('accepts the largest values its bounds allow', () => {
    assert.deepEqual(readAll(bytes('08 ffffffffffffff0f')).map((f) => f.value), [Number.MAX_SAFE_INTEGER])
    // ten bytes are allowed when the value fits
    assert.deepEqual(readAll(bytes('08 81808080808080808000')).map((f) => f.value), [1])
    assert.deepEqual(readAll(bytes('08 ffffffff0f'), UINT32_READER_OPTIONS).map((f) => f.value), [2 ** 32 - 1])
  })

  it('reads a field numbered 0 only where a schema asks for it', () => {
    assert.deepEqual(readAll(bytes('0001 0801'), { ...DEFAULT_READER_OPTIONS, allowFieldNumberZero: true }).map((f) => [f.number, f.value]), [[0, 1], [1, 1]])
  })

  it('random bytes are either read or refused with a ProtobufDecodeError, never anything else', () => {
    const rng = createRng(0x22b)
    let read = 0
    for (let i = 0; i < 20_000; i++) {
      const input = Uint8Array.from({ length: randomInt(rng, 24) }, () => randomInt(rng, 256))
      for (const options of [DEFAULT_READER_OPTIONS, UINT32_READER_OPTIONS]) {
        try {
          readAll(input, options)
          read++
        } catch (error) {
          assert.ok(error instanceof ProtobufDecodeError, `${hex(input)}: ${String(error)}`)
        }
      }
    }
    assert.ok(read > 1_000, `only ${read} inputs read`)
  })
})
