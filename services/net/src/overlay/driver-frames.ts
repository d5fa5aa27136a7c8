/**
 * The two small driver-level messages the overlay driver adds around the protocol frames
 * of services/protocol: the stream preamble (accepted, or refused with a reason) and the
 * peer-address lookup. Minimal protobuf on the shared codec (services/protocol/src/protobuf.ts);
 * decoders never throw on wire input.
 *
 *   message Preamble      { bool accepted = 1; string reason = 2; }
 *   message AddrRequest   { repeated string peers = 1; }
 *   message AddrResponse  { repeated AddrRecord records = 1; }
 *   message AddrRecord    { string peer = 1; repeated bytes addrs = 2; }
 *   message DrainNotice   { repeated AddrRecord siblings = 1; }
 */
import { encodeMessage, ProtobufDecodeError, ProtobufReader, WIRE_TYPE } from '@pharos/protocol/protobuf.ts'
import type { ProtobufEncoder, ProtobufReaderOptions } from '@pharos/protocol/protobuf.ts'

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

const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * The bounds these frames were always read with, kept so a peer sees no change: varints of up
 * to 7 bytes, only varint and length-delimited fields, and a field numbered 0 read like any
 * other (the preamble ignores it; the lookups refuse every field but theirs).
 */
const DRIVER_READER_OPTIONS: Readonly<ProtobufReaderOptions> = Object.freeze({
  maxVarintBytes: 7,
  maxVarintBits: 53,
  fixedWidthFields: false,
  allowFieldNumberZero: true
})

/** Reads a frame with `read`; undefined when it is not valid protobuf of varint/bytes fields. */
function decodeWith<T> (bytes: Uint8Array, read: (reader: ProtobufReader) => T | undefined): T | undefined {
  try {
    return read(new ProtobufReader(bytes, DRIVER_READER_OPTIONS))
  } catch (error) {
    if (error instanceof ProtobufDecodeError) return undefined
    throw error
  }
}

function text (value: Uint8Array): string | undefined {
  if (value.length > MAX_STRING_BYTES) return undefined
  try {
    return decoder.decode(value)
  } catch {
    return undefined
  }
}

function writePreamble (e: ProtobufEncoder, preamble: Preamble): void {
  e.bool(1, preamble.accepted)
  if (!preamble.accepted) e.string(2, preamble.reason)
}

export function encodePreamble (preamble: Preamble): Uint8Array {
  return encodeMessage(writePreamble, preamble)
}

export function decodePreamble (bytes: Uint8Array): Preamble | undefined {
  return decodeWith(bytes, (field) => {
    let accepted = false
    let reason = ''
    while (field.next()) {
      if (field.number === 1 && field.wireType === WIRE_TYPE.varint) accepted = field.value === 1
      else if (field.number === 2 && field.wireType === WIRE_TYPE.lengthDelimited) reason = text(field.bytes) ?? ''
    }
    return accepted ? { accepted: true } : { accepted: false, reason: reason === '' ? 'unspecified' : reason }
  })
}

function writeAddrRequest (e: ProtobufEncoder, peers: readonly string[]): void {
  for (let i = 0; i < peers.length && i < MAX_LOOKUP_PEERS; i++) e.string(1, peers[i] as string)
}

export function encodeAddrRequest (peers: readonly string[]): Uint8Array {
  return encodeMessage(writeAddrRequest, peers)
}

export function decodeAddrRequest (bytes: Uint8Array): string[] | undefined {
  return decodeWith(bytes, (field) => {
    const peers: string[] = []
    while (field.next()) {
      if (field.number !== 1 || field.wireType !== WIRE_TYPE.lengthDelimited) return undefined
      const peer = text(field.bytes)
      if (peer === undefined || peers.length >= MAX_LOOKUP_PEERS) return undefined
      peers.push(peer)
    }
    return peers
  })
}

function writeAddrResponse (e: ProtobufEncoder, records: readonly AddrRecord[]): void {
  for (let i = 0; i < records.length && i < MAX_LOOKUP_PEERS; i++) e.message(1, writeAddrRecord, records[i] as AddrRecord)
}

function writeAddrRecord (e: ProtobufEncoder, record: AddrRecord): void {
  e.string(1, record.peer)
  for (let i = 0; i < record.addrs.length && i < MAX_ADDRS_PER_PEER; i++) e.bytes(2, record.addrs[i] as Uint8Array)
}

export function encodeAddrResponse (records: readonly AddrRecord[]): Uint8Array {
  return encodeMessage(writeAddrResponse, records)
}

export function decodeAddrResponse (bytes: Uint8Array): AddrRecord[] | undefined {
  return decodeWith(bytes, (field) => {
    const records: AddrRecord[] = []
    while (field.next()) {
      if (field.number !== 1 || field.wireType !== WIRE_TYPE.lengthDelimited || records.length >= MAX_LOOKUP_PEERS) return undefined
      let peer: string | undefined
      const addrs: Uint8Array[] = []
      for (const part = new ProtobufReader(field.bytes, DRIVER_READER_OPTIONS); part.next();) {
        if (part.number === 1 && part.wireType === WIRE_TYPE.lengthDelimited) peer = text(part.bytes)
        else if (part.number === 2 && part.wireType === WIRE_TYPE.lengthDelimited && part.bytes.length <= MAX_ADDR_BYTES && addrs.length < MAX_ADDRS_PER_PEER) addrs.push(part.bytes.slice())
        else return undefined
      }
      if (peer === undefined) return undefined
      records.push({ peer, addrs })
    }
    return records
  })
}

/**
 * A draining worker's notice to a peer: the sibling workers to move to, with their
 * addresses, in the order the peer should try them. The same shape as an AddrResponse
 * (and the same bounds), so it shares its codec.
 */
export const encodeDrainNotice: (siblings: readonly AddrRecord[]) => Uint8Array = encodeAddrResponse
export const decodeDrainNotice: (bytes: Uint8Array) => AddrRecord[] | undefined = decodeAddrResponse
