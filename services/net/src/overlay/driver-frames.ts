/**
 * The two small driver-level messages the overlay driver adds around the protocol frames
 * of services/protocol: the stream preamble (accepted, or refused with a reason) and the
 * peer-address lookup. Minimal protobuf, hand-written; decoders never throw on wire input.
 *
 *   message Preamble      { bool accepted = 1; string reason = 2; }
 *   message AddrRequest   { repeated string peers = 1; }
 *   message AddrResponse  { repeated AddrRecord records = 1; }
 *   message AddrRecord    { string peer = 1; repeated bytes addrs = 2; }
 *   message DrainNotice   { repeated AddrRecord siblings = 1; }
 */

/** `misbehaving`: the peer was dropped for a bad message ID or a send queue over its bound, and is kept out for a minute. */
export type RefusalReason = 'not-registered' | 'banned' | 'draining' | 'overloaded' | 'misbehaving'

export type Preamble = { accepted: true } | { accepted: false, reason: string }

export interface AddrRecord {
  peer: string
  addrs: Uint8Array[]
}

/** Bounds of a lookup, so neither side can be made to do unbounded work. */
export const MAX_LOOKUP_PEERS = 32
export const MAX_ADDRS_PER_PEER = 8
const MAX_STRING_BYTES = 256
const MAX_ADDR_BYTES = 256

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

class Writer {
  private readonly parts: number[] = []

  varint (value: number): this {
    let v = value
    while (v >= 0x80) {
      this.parts.push((v & 0x7f) | 0x80)
      v = Math.floor(v / 128)
    }
    this.parts.push(v)
    return this
  }

  bytes (field: number, data: Uint8Array): this {
    this.varint(field * 8 + 2).varint(data.length)
    for (const byte of data) this.parts.push(byte)
    return this
  }

  string (field: number, value: string): this {
    return this.bytes(field, encoder.encode(value))
  }

  bool (field: number, value: boolean): this {
    return this.varint(field * 8).varint(value ? 1 : 0)
  }

  finish (): Uint8Array {
    return Uint8Array.from(this.parts)
  }
}

type Field = { field: number, wire: 0, value: number } | { field: number, wire: 2, value: Uint8Array }

/** Splits a message into fields; undefined when it is not valid protobuf of varint/bytes fields. */
function fields (bytes: Uint8Array): Field[] | undefined {
  const out: Field[] = []
  let offset = 0
  const varint = (): number | undefined => {
    let value = 0
    for (let shift = 0; shift < 49; shift += 7) {
      const byte = bytes[offset++]
      if (byte === undefined) return undefined
      value += (byte & 0x7f) * 2 ** shift
      if ((byte & 0x80) === 0) return value
    }
    return undefined
  }
  while (offset < bytes.length) {
    const tag = varint()
    if (tag === undefined) return undefined
    const field = Math.floor(tag / 8)
    const wire = tag & 7
    if (wire === 0) {
      const value = varint()
      if (value === undefined) return undefined
      out.push({ field, wire, value })
    } else if (wire === 2) {
      const length = varint()
      if (length === undefined || offset + length > bytes.length) return undefined
      out.push({ field, wire, value: bytes.subarray(offset, offset + length) })
      offset += length
    } else {
      return undefined
    }
  }
  return out
}

function text (value: Uint8Array): string | undefined {
  if (value.length > MAX_STRING_BYTES) return undefined
  try {
    return decoder.decode(value)
  } catch {
    return undefined
  }
}

export function encodePreamble (preamble: Preamble): Uint8Array {
  const writer = new Writer().bool(1, preamble.accepted)
  if (!preamble.accepted) writer.string(2, preamble.reason)
  return writer.finish()
}

export function decodePreamble (bytes: Uint8Array): Preamble | undefined {
  const parsed = fields(bytes)
  if (parsed === undefined) return undefined
  let accepted = false
  let reason = ''
  for (const field of parsed) {
    if (field.field === 1 && field.wire === 0) accepted = field.value === 1
    else if (field.field === 2 && field.wire === 2) reason = text(field.value) ?? ''
  }
  return accepted ? { accepted: true } : { accepted: false, reason: reason === '' ? 'unspecified' : reason }
}

export function encodeAddrRequest (peers: readonly string[]): Uint8Array {
  const writer = new Writer()
  for (const peer of peers.slice(0, MAX_LOOKUP_PEERS)) writer.string(1, peer)
  return writer.finish()
}

export function decodeAddrRequest (bytes: Uint8Array): string[] | undefined {
  const parsed = fields(bytes)
  if (parsed === undefined) return undefined
  const peers: string[] = []
  for (const field of parsed) {
    if (field.field !== 1 || field.wire !== 2) return undefined
    const peer = text(field.value)
    if (peer === undefined || peers.length >= MAX_LOOKUP_PEERS) return undefined
    peers.push(peer)
  }
  return peers
}

export function encodeAddrResponse (records: readonly AddrRecord[]): Uint8Array {
  const writer = new Writer()
  for (const record of records.slice(0, MAX_LOOKUP_PEERS)) {
    const inner = new Writer().string(1, record.peer)
    for (const addr of record.addrs.slice(0, MAX_ADDRS_PER_PEER)) inner.bytes(2, addr)
    writer.bytes(1, inner.finish())
  }
  return writer.finish()
}

export function decodeAddrResponse (bytes: Uint8Array): AddrRecord[] | undefined {
  const parsed = fields(bytes)
  if (parsed === undefined) return undefined
  const records: AddrRecord[] = []
  for (const field of parsed) {
    if (field.field !== 1 || field.wire !== 2 || records.length >= MAX_LOOKUP_PEERS) return undefined
    const inner = fields(field.value)
    if (inner === undefined) return undefined
    let peer: string | undefined
    const addrs: Uint8Array[] = []
    for (const part of inner) {
      if (part.field === 1 && part.wire === 2) peer = text(part.value)
      else if (part.field === 2 && part.wire === 2 && part.value.length <= MAX_ADDR_BYTES && addrs.length < MAX_ADDRS_PER_PEER) addrs.push(part.value.slice())
      else return undefined
    }
    if (peer === undefined) return undefined
    records.push({ peer, addrs })
  }
  return records
}

/**
 * A draining worker's notice to a peer: the sibling workers to move to, with their
 * addresses, in the order the peer should try them. The same shape as an AddrResponse
 * (and the same bounds), so it shares its codec.
 */
export const encodeDrainNotice: (siblings: readonly AddrRecord[]) => Uint8Array = encodeAddrResponse
export const decodeDrainNotice: (bytes: Uint8Array) => AddrRecord[] | undefined = decodeAddrResponse
