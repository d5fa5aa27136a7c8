/**
 * The one protobuf codec of Pharos: hand-written, no dependency, no I/O. The overlay frames
 * (overlay/wire.ts) and the driver frames (services/net driver-frames.ts) are both written with
 * it; each schema keeps its own rules (which fields exist, what is required, the bounds) and this
 * module only knows the wire format (https://protobuf.dev/programming-guides/encoding/).
 *
 * Encoding is two passes over one write function: the first sizes the message exactly (and
 * notes the length of every string and nested message), the second writes into one Uint8Array
 * of that size, so nothing grows or is copied (gossip encodes a frame per send, issue 18).
 *
 * ```ts
 * const bytes = encodeMessage((e, m) => { e.string(1, m.topic); e.message(2, writeBody, m.body) }, frame)
 * ```
 *
 * Decoding is a cursor, not a generator (a generator costs an object and a resumption per
 * field): `next()` reads a field's tag and value, and the caller reads `number`, `wireType`,
 * `value` or `bytes`. Broken input throws {@link ProtobufDecodeError}, whose `code` says why;
 * each schema turns it into its own result.
 *
 * ```ts
 * const r = new ProtobufReader(bytes)
 * while (r.next()) if (r.number === 1 && r.wireType === WIRE_TYPE.varint) count = r.value
 * ```
 */

/** The wire types this codec reads. 3 and 4 (groups) are deprecated and refused, as are 6 and 7. */
export const WIRE_TYPE = Object.freeze({ varint: 0, fixed64: 1, lengthDelimited: 2, fixed32: 5 })

// ---- encoding --------------------------------------------------------------------------------

/** Strings longer than this are written by TextEncoder.encodeInto (native); shorter ones by hand (no view to allocate). */
const NATIVE_UTF8_FROM = 64

const utf8Encoder = new TextEncoder()

/** A bug in a write function: the two passes of {@link encodeMessage} did not agree. */
export class ProtobufEncodeError extends Error {
  override readonly name = 'ProtobufEncodeError'
}

/**
 * What a write function writes fields with. Nothing is skipped: proto3's "zero is not written"
 * (implicit presence) is the schema's choice, so the caller leaves such fields out itself.
 */
export interface ProtobufEncoder {
  /** A varint field (wire type 0) holding a non-negative integer up to 2^53 - 1. */
  uint(field: number, value: number): void
  /** A bool field: a varint of 1 or 0. */
  bool(field: number, value: boolean): void
  /** A bytes field (wire type 2). */
  bytes(field: number, value: Uint8Array): void
  /** A string field (wire type 2), UTF-8 as TextEncoder writes it (a lone surrogate becomes U+FFFD). */
  string(field: number, value: string): void
  /** A nested message (wire type 2) whose fields `write` writes from `value`. */
  message<T>(field: number, write: ProtobufWrite<T>, value: T): void
}

/**
 * Writes the fields of one message from `value`. It is called twice per encode (size, then
 * write) and must write the same fields both times: a pure function of `value`.
 */
export type ProtobufWrite<T> = (encoder: ProtobufEncoder, value: T) => void

/** Bytes the varint of `value` takes (the same loop as the writer's, so they always agree). */
export function varintLength(value: number): number {
  if (!(value >= 0x80)) return 1
  if (value < 0x4000) return 2
  if (value < 0x200000) return 3
  let length = 1
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) length++
  return length
}

/** Bytes `value` takes in UTF-8, as TextEncoder encodes it (a lone surrogate takes 3, as U+FFFD). */
export function utf8Length(value: string): number {
  let length = value.length
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code < 0x80) continue
    if (code < 0x800) {
      length += 1
    } else if (code >= 0xd800 && code <= 0xdbff && isLowSurrogate(value.charCodeAt(i + 1))) {
      length += 2 // a surrogate pair: two UTF-16 units, four bytes
      i++
    } else {
      length += 2
    }
  }
  return length
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}

/** The first pass: adds up the size, and notes each string's and nested message's length in order. */
class Sizer implements ProtobufEncoder {
  size = 0
  readonly lengths: number[] = []

  uint(field: number, value: number): void {
    this.size += varintLength(field * 8) + varintLength(value)
  }

  bool(field: number): void {
    this.size += varintLength(field * 8) + 1
  }

  bytes(field: number, value: Uint8Array): void {
    this.size += varintLength(field * 8 + 2) + varintLength(value.length) + value.length
  }

  string(field: number, value: string): void {
    const length = utf8Length(value)
    this.lengths.push(length)
    this.size += varintLength(field * 8 + 2) + varintLength(length) + length
  }

  message<T>(field: number, write: ProtobufWrite<T>, value: T): void {
    // The message's slot is taken before its fields', in the order the writer meets them.
    const slot = this.lengths.length
    this.lengths.push(0)
    const start = this.size
    write(this, value)
    const length = this.size - start
    this.lengths[slot] = length
    this.size += varintLength(field * 8 + 2) + varintLength(length)
  }
}

/** The second pass: writes into a buffer of exactly the size the first pass found. */
class Writer implements ProtobufEncoder {
  readonly #buf: Uint8Array
  readonly #lengths: readonly number[]
  #pos = 0
  #nextLength = 0

  constructor(size: number, lengths: readonly number[]) {
    this.#buf = new Uint8Array(size)
    this.#lengths = lengths
  }

  #varint(value: number): void {
    const buf = this.#buf
    let v = value
    while (v >= 0x80) {
      buf[this.#pos++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    buf[this.#pos++] = v
  }

  #length(): number {
    const length = this.#lengths[this.#nextLength++]
    if (length === undefined) throw new ProtobufEncodeError('the write function wrote more strings or messages than it did when sized')
    return length
  }

  uint(field: number, value: number): void {
    this.#varint(field * 8)
    this.#varint(value)
  }

  bool(field: number, value: boolean): void {
    this.#varint(field * 8)
    this.#buf[this.#pos++] = value ? 1 : 0
  }

  bytes(field: number, value: Uint8Array): void {
    this.#varint(field * 8 + 2)
    this.#varint(value.length)
    this.#buf.set(value, this.#pos)
    this.#pos += value.length
  }

  string(field: number, value: string): void {
    const length = this.#length()
    this.#varint(field * 8 + 2)
    this.#varint(length)
    if (length === value.length) {
      // All ASCII (any other character takes more than one byte): one byte per character.
      const buf = this.#buf
      const start = this.#pos
      for (let i = 0; i < length; i++) buf[start + i] = value.charCodeAt(i)
      this.#pos = start + length
      return
    }
    if (value.length >= NATIVE_UTF8_FROM) {
      const { written } = utf8Encoder.encodeInto(value, this.#buf.subarray(this.#pos, this.#pos + length))
      if (written !== length) throw new ProtobufEncodeError(`a string sized at ${length} bytes took ${written}`)
      this.#pos += length
      return
    }
    const buf = this.#buf
    let pos = this.#pos
    for (let i = 0; i < value.length; i++) {
      let code = value.charCodeAt(i)
      if (code < 0x80) {
        buf[pos++] = code
        continue
      }
      if (code < 0x800) {
        buf[pos++] = 0xc0 | (code >> 6)
        buf[pos++] = 0x80 | (code & 0x3f)
        continue
      }
      if (code >= 0xd800 && code <= 0xdfff) {
        const low = value.charCodeAt(i + 1)
        if (code <= 0xdbff && isLowSurrogate(low)) {
          const point = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
          buf[pos++] = 0xf0 | (point >> 18)
          buf[pos++] = 0x80 | ((point >> 12) & 0x3f)
          buf[pos++] = 0x80 | ((point >> 6) & 0x3f)
          buf[pos++] = 0x80 | (point & 0x3f)
          i++
          continue
        }
        code = 0xfffd // a lone surrogate, as TextEncoder writes it
      }
      buf[pos++] = 0xe0 | (code >> 12)
      buf[pos++] = 0x80 | ((code >> 6) & 0x3f)
      buf[pos++] = 0x80 | (code & 0x3f)
    }
    if (pos - this.#pos !== length) throw new ProtobufEncodeError(`a string sized at ${length} bytes took ${pos - this.#pos}`)
    this.#pos = pos
  }

  message<T>(field: number, write: ProtobufWrite<T>, value: T): void {
    const length = this.#length()
    this.#varint(field * 8 + 2)
    this.#varint(length)
    const end = this.#pos + length
    write(this, value)
    if (this.#pos !== end) throw new ProtobufEncodeError(`field ${field}: a message sized at ${length} bytes took ${length + this.#pos - end}`)
  }

  finish(): Uint8Array {
    if (this.#pos !== this.#buf.length) throw new ProtobufEncodeError(`a message sized at ${this.#buf.length} bytes took ${this.#pos}`)
    return this.#buf
  }
}

/** Encodes one message: `write` writes its fields from `value` (see {@link ProtobufWrite}). */
export function encodeMessage<T>(write: ProtobufWrite<T>, value: T): Uint8Array {
  const sizer = new Sizer()
  write(sizer, value)
  const writer = new Writer(sizer.size, sizer.lengths)
  write(writer, value)
  return writer.finish()
}

// ---- decoding --------------------------------------------------------------------------------

/**
 * Why bytes are not protobuf:
 * - `truncated-varint`: the input ends inside a varint;
 * - `varint-too-long`: a varint runs past `maxVarintBytes`;
 * - `varint-too-large`: a varint's value is over `maxVarintBits`;
 * - `truncated-field`: a length-delimited or fixed-width value runs past the end;
 * - `field-number-zero`: a tag names field 0, which protobuf reserves;
 * - `unsupported-wire-type`: wire type 3, 4, 6 or 7, or 1 or 5 where fixed-width fields are off.
 */
export type ProtobufDecodeErrorCode =
  | 'truncated-varint'
  | 'varint-too-long'
  | 'varint-too-large'
  | 'truncated-field'
  | 'field-number-zero'
  | 'unsupported-wire-type'

/** Bytes that are not protobuf. Thrown by {@link ProtobufReader}; `code` says why, the message is for logs. */
export class ProtobufDecodeError extends Error {
  override readonly name = 'ProtobufDecodeError'
  readonly code: ProtobufDecodeErrorCode

  constructor(code: ProtobufDecodeErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

/** How strict a {@link ProtobufReader} is; each schema picks what its fields need. */
export interface ProtobufReaderOptions {
  /** The longest varint (tags, lengths, values). At least 1. @default 10 (a uint64) */
  readonly maxVarintBytes: number
  /** The largest varint value, in bits, 7 to 53. @default 53 (the largest exact integer a number holds) */
  readonly maxVarintBits: number
  /** Read fixed64 and fixed32 fields (wire types 1 and 5); off, they are `unsupported-wire-type`. @default true */
  readonly fixedWidthFields: boolean
  /** Read a tag of field 0 as a field instead of refusing it. Only for a schema that always did. @default false */
  readonly allowFieldNumberZero: boolean
}

export const DEFAULT_READER_OPTIONS: Readonly<ProtobufReaderOptions> = Object.freeze({
  maxVarintBytes: 10,
  maxVarintBits: 53,
  fixedWidthFields: true,
  allowFieldNumberZero: false
})

/** The fields of a schema whose varints are all 32-bit (tags, lengths, uint32, bool, enum): at most 5 bytes. */
export const UINT32_READER_OPTIONS: Readonly<ProtobufReaderOptions> = Object.freeze({
  ...DEFAULT_READER_OPTIONS,
  maxVarintBytes: 5,
  maxVarintBits: 32
})

/** One field as a reader holds it after `next()`. */
export interface ProtobufField {
  /** The field number (≥ 1 unless `allowFieldNumberZero`). */
  readonly number: number
  /** The wire type: 0, 1, 2 or 5 (see {@link WIRE_TYPE}). */
  readonly wireType: number
  /** The value of a varint field (wire type 0); 0 otherwise. */
  readonly value: number
  /**
   * The value of a length-delimited field, or the 8 or 4 little-endian bytes of a fixed-width
   * one; empty for a varint. A view into the input, valid as long as the input is: copy what you keep.
   */
  readonly bytes: Uint8Array
}

const EMPTY: Uint8Array = new Uint8Array(0)

/**
 * Reads the fields of one message in order. Unknown fields need no skipping: `next()` reads
 * every field's value, and the caller ignores what it does not know. A nested message is read
 * with a reader of its own over `bytes`.
 */
export class ProtobufReader implements ProtobufField {
  readonly #buf: Uint8Array
  readonly #options: Readonly<ProtobufReaderOptions>
  #pos = 0
  #number = 0
  #wireType = 0
  #value = 0
  #bytes = EMPTY

  constructor(bytes: Uint8Array, options: Readonly<ProtobufReaderOptions> = DEFAULT_READER_OPTIONS) {
    this.#buf = bytes
    this.#options = options
  }

  get number(): number { return this.#number }
  get wireType(): number { return this.#wireType }
  get value(): number { return this.#value }
  get bytes(): Uint8Array { return this.#bytes }

  /** Reads the next field; false at the end of the message. Throws {@link ProtobufDecodeError}. */
  next(): boolean {
    const buf = this.#buf
    if (this.#pos >= buf.length) return false
    const key = this.#varint()
    const number = Math.floor(key / 8)
    const wireType = key % 8
    if (number === 0 && !this.#options.allowFieldNumberZero) throw new ProtobufDecodeError('field-number-zero', 'field number 0')
    this.#number = number
    this.#wireType = wireType
    switch (wireType) {
      case WIRE_TYPE.varint:
        this.#value = this.#varint()
        this.#bytes = EMPTY
        return true
      case WIRE_TYPE.lengthDelimited: {
        const length = this.#varint()
        if (length > buf.length - this.#pos) throw new ProtobufDecodeError('truncated-field', 'truncated length-delimited field')
        this.#value = 0
        this.#bytes = buf.subarray(this.#pos, this.#pos + length)
        this.#pos += length
        return true
      }
      case WIRE_TYPE.fixed64:
      case WIRE_TYPE.fixed32: {
        if (!this.#options.fixedWidthFields) break
        const width = wireType === WIRE_TYPE.fixed64 ? 8 : 4
        if (width > buf.length - this.#pos) throw new ProtobufDecodeError('truncated-field', `truncated fixed${width * 8} field`)
        this.#value = 0
        this.#bytes = buf.subarray(this.#pos, this.#pos + width)
        this.#pos += width
        return true
      }
    }
    throw new ProtobufDecodeError('unsupported-wire-type', `unsupported wire type ${wireType} for field ${number}`)
  }

  #varint(): number {
    const buf = this.#buf
    let pos = this.#pos
    const first = buf[pos]
    if (first !== undefined && first < 0x80) {
      this.#pos = pos + 1
      return first
    }
    const maxBytes = this.#options.maxVarintBytes
    let value = 0
    let scale = 1
    for (let i = 0; i < maxBytes; i++) {
      const byte = buf[pos++]
      if (byte === undefined) throw new ProtobufDecodeError('truncated-varint', 'truncated varint')
      // Multiplication, not shifts: bitwise operators would cut the value to 32 bits.
      value += (byte & 0x7f) * scale
      if ((byte & 0x80) === 0) {
        if (value > 2 ** this.#options.maxVarintBits - 1) throw new ProtobufDecodeError('varint-too-large', `varint exceeds ${this.#options.maxVarintBits} bits`)
        this.#pos = pos
        return value
      }
      scale *= 0x80
    }
    throw new ProtobufDecodeError('varint-too-long', `varint longer than ${maxBytes} bytes`)
  }
}
