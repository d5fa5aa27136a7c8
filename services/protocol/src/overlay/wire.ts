/**
 * Protobuf codec for the two overlay protocols, on the shared hand-written codec (../protobuf.ts).
 * The driver adds and strips the varint length prefix (libp2p convention); a frame here is one
 * message. The protocol version lives in the protocol ID (`/<network>/hyparview/2.0.0`), so the
 * decoder is strict: unknown fields, repeated singular fields and missing required fields are
 * errors, not skipped. Decoding never throws: it returns `{ ok: false, code, detail }`, where the
 * `code` decides what the driver does about the peer and `detail` is only for logs.
 *
 * ```proto
 * // /<network>/hyparview/2.0.0 (1.0.0 had no BRIDGE priority)
 * message HyParViewFrame {
 *   string topic = 1;
 *   oneof message {
 *     Join join = 2;                   // {}
 *     ForwardJoin forward_join = 3;    // { string peer = 1; uint32 ttl = 2; }
 *     Neighbor neighbor = 4;           // { Priority priority = 1; }  HIGH = 1, LOW = 2, BRIDGE = 3
 *     NeighborReply neighbor_reply = 5; // { bool accepted = 1; }
 *     Disconnect disconnect = 6;       // { bool alive = 1; }
 *     Shuffle shuffle = 7;             // { string origin = 1; uint32 ttl = 2; repeated string peers = 3; }
 *     ShuffleReply shuffle_reply = 8;  // { repeated string peers = 1; }
 *   }
 * }
 * // /<network>/plumtree/2.0.0 (1.0.0 had no origins: one tree for every broadcast)
 * message PlumtreeFrame {
 *   string topic = 1;
 *   oneof message {
 *     Gossip gossip = 2;  // { string id = 1; uint32 round = 2; bytes payload = 3; string origin = 4; bool repaired = 5; }
 *     IHave ihave = 3;    // { repeated Entry entries = 1; }  Entry { string id = 1; uint32 round = 2; }
 *     Graft graft = 4;    // { optional string id = 1; optional string origin = 2; }  (at least one)
 *     Prune prune = 5;    // { repeated string origins = 1; }  (at least one)
 *   }
 * }
 * ```
 */
import {
  MAX_FRAME_BYTES,
  MAX_IHAVE_BATCH,
  MAX_MESSAGE_ID_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_PEER_KEY_BYTES,
  MAX_PRUNE_ORIGINS,
  MAX_ROUND,
  MAX_SHUFFLE_PEERS,
  MAX_TOPIC_BYTES,
  MAX_WALK_TTL
} from './constants.ts'
import { assertNever } from './messages.ts'
import type {
  DisconnectMessage,
  ForwardJoinMessage,
  GossipMessage,
  GraftMessage,
  HyParViewMessage,
  IHaveEntry,
  NeighborMessage,
  NeighborReplyMessage,
  OverlayProtocol,
  PeerKey,
  PlumtreeMessage,
  ShuffleMessage
} from './messages.ts'
import { encodeMessage, ProtobufDecodeError, ProtobufReader, UINT32_READER_OPTIONS, WIRE_TYPE } from '../protobuf.ts'
import type { ProtobufEncoder, ProtobufField, ProtobufReaderOptions } from '../protobuf.ts'

/**
 * Protocol versions; part of the libp2p protocol IDs. HyParView 2.0.0 added the BRIDGE priority,
 * which a 1.0.0 decoder refuses as malformed; Plumtree 2.0.0 names each broadcast's origin (one
 * tree per origin), what a PRUNE or GRAFT applies to, and whether a copy is a GRAFT's repair.
 * Old and new IDs never negotiate, so a 1.0.0 node fails protocol negotiation cleanly instead
 * of having its streams aborted mid-way.
 */
export const OVERLAY_PROTOCOL_VERSIONS: Readonly<Record<OverlayProtocol, string>> = Object.freeze({
  hyparview: '2.0.0',
  plumtree: '2.0.0'
})

/** The libp2p protocol ID of an overlay protocol in a network namespace, e.g. `/pharos/hyparview/2.0.0`. */
export function overlayProtocolId(network: string, protocol: OverlayProtocol): string {
  return `/${network}/${protocol}/${OVERLAY_PROTOCOL_VERSIONS[protocol]}`
}

/** Bounds the decoder enforces. Defaults in constants.ts. */
export interface WireLimits {
  /** @default 1114112 (MAX_FRAME_BYTES) */
  maxFrameBytes: number
  /** @default 1048576 (MAX_PAYLOAD_BYTES) */
  maxPayloadBytes: number
  /** @default 128 (MAX_PEER_KEY_BYTES) */
  maxPeerKeyBytes: number
  /** @default 256 (MAX_TOPIC_BYTES) */
  maxTopicBytes: number
  /** @default 128 (MAX_MESSAGE_ID_BYTES) */
  maxMessageIdBytes: number
  /** Peers in a SHUFFLE or SHUFFLEREPLY. @default 32 (MAX_SHUFFLE_PEERS) */
  maxShufflePeers: number
  /** Entries in one IHAVE. @default 1024 (MAX_IHAVE_BATCH) */
  maxIHaveEntries: number
  /** Origins in one PRUNE. @default 1024 (MAX_PRUNE_ORIGINS) */
  maxPruneOrigins: number
  /** Walk TTLs above this are clamped to it. @default 16 (MAX_WALK_TTL) */
  maxTtl: number
  /** Rounds above this are clamped to it. @default 1024 (MAX_ROUND) */
  maxRound: number
}

export const DEFAULT_WIRE_LIMITS: Readonly<WireLimits> = Object.freeze({
  maxFrameBytes: MAX_FRAME_BYTES,
  maxPayloadBytes: MAX_PAYLOAD_BYTES,
  maxPeerKeyBytes: MAX_PEER_KEY_BYTES,
  maxTopicBytes: MAX_TOPIC_BYTES,
  maxMessageIdBytes: MAX_MESSAGE_ID_BYTES,
  maxShufflePeers: MAX_SHUFFLE_PEERS,
  maxIHaveEntries: MAX_IHAVE_BATCH,
  maxPruneOrigins: MAX_PRUNE_ORIGINS,
  maxTtl: MAX_WALK_TTL,
  maxRound: MAX_ROUND
})

/**
 * Why a frame was refused:
 * - `malformed`: not valid protobuf for the schema (truncated, wrong wire type, bad UTF-8, bad enum,
 *   a singular field twice, two variants of the oneof);
 * - `oversized`: the frame, the payload, a peer key, a topic or a message ID is over its limit;
 * - `too-many`: a list (shuffle peers, IHAVE entries, PRUNE origins) is over its limit;
 * - `unknown-field`: a field number this version does not define;
 * - `missing-field`: a required field is absent or empty.
 */
export type WireErrorCode = 'malformed' | 'oversized' | 'too-many' | 'unknown-field' | 'missing-field'

export type DecodeResult<T> =
  | { readonly ok: true, readonly value: T }
  | { readonly ok: false, readonly code: WireErrorCode, readonly detail: string }

/** One HyParView message of a topic. */
export interface HyParViewFrame {
  readonly topic: string
  readonly message: HyParViewMessage
}

/** One Plumtree message of a topic. */
export interface PlumtreeFrame {
  readonly topic: string
  readonly message: PlumtreeMessage
}

// ---- encoding --------------------------------------------------------------------------------

const PRIORITY_CODE = { high: 1, low: 2, bridge: 3 } as const

/** Proto3 implicit presence: a zero uint32 and a false bool are not written. */
function writeUint(e: ProtobufEncoder, field: number, value: number): void {
  if (value !== 0) e.uint(field, value)
}

function writeBool(e: ProtobufEncoder, field: number, value: boolean): void {
  if (value) e.bool(field, true)
}

function writeNothing(): void {}

function writeStrings(e: ProtobufEncoder, strings: readonly string[]): void {
  for (const value of strings) e.string(1, value)
}

function writeHyParViewFrame(e: ProtobufEncoder, frame: HyParViewFrame): void {
  e.string(1, frame.topic)
  const m = frame.message
  switch (m.type) {
    case 'join': e.message(2, writeNothing, m); break
    case 'forwardJoin': e.message(3, writeForwardJoin, m); break
    case 'neighbor': e.message(4, writeNeighbor, m); break
    case 'neighborReply': e.message(5, writeNeighborReply, m); break
    case 'disconnect': e.message(6, writeDisconnect, m); break
    case 'shuffle': e.message(7, writeShuffle, m); break
    case 'shuffleReply': e.message(8, writeStrings, m.peers); break
    default: assertNever(m)
  }
}

function writeForwardJoin(e: ProtobufEncoder, m: ForwardJoinMessage): void {
  e.string(1, m.peer)
  writeUint(e, 2, m.ttl)
}

function writeNeighbor(e: ProtobufEncoder, m: NeighborMessage): void {
  writeUint(e, 1, PRIORITY_CODE[m.priority])
}

function writeNeighborReply(e: ProtobufEncoder, m: NeighborReplyMessage): void {
  writeBool(e, 1, m.accepted)
}

function writeDisconnect(e: ProtobufEncoder, m: DisconnectMessage): void {
  writeBool(e, 1, m.alive)
}

function writeShuffle(e: ProtobufEncoder, m: ShuffleMessage): void {
  e.string(1, m.origin)
  writeUint(e, 2, m.ttl)
  for (const peer of m.peers) e.string(3, peer)
}

/** Encodes one HyParView message of `topic`. Field values are trusted (they come from our state machine). */
export function encodeHyParView(frame: HyParViewFrame): Uint8Array {
  return encodeMessage(writeHyParViewFrame, frame)
}

function writePlumtreeFrame(e: ProtobufEncoder, frame: PlumtreeFrame): void {
  e.string(1, frame.topic)
  const m = frame.message
  switch (m.type) {
    case 'gossip': e.message(2, writeGossip, m); break
    case 'ihave': e.message(3, writeIHave, m.entries); break
    case 'graft': e.message(4, writeGraft, m); break
    case 'prune': e.message(5, writeStrings, m.origins); break
    default: assertNever(m)
  }
}

function writeGossip(e: ProtobufEncoder, m: GossipMessage): void {
  e.string(1, m.id)
  writeUint(e, 2, m.round)
  if (m.payload.length > 0) e.bytes(3, m.payload)
  e.string(4, m.origin)
  if (m.repaired === true) e.bool(5, true)
}

function writeIHave(e: ProtobufEncoder, entries: readonly IHaveEntry[]): void {
  for (const entry of entries) e.message(1, writeIHaveEntry, entry)
}

function writeIHaveEntry(e: ProtobufEncoder, entry: IHaveEntry): void {
  e.string(1, entry.id)
  writeUint(e, 2, entry.round)
}

function writeGraft(e: ProtobufEncoder, m: GraftMessage): void {
  if (m.id !== null) e.string(1, m.id)
  if (m.origin !== null) e.string(2, m.origin)
}

/** Encodes one Plumtree message of `topic`. */
export function encodePlumtree(frame: PlumtreeFrame): Uint8Array {
  return encodeMessage(writePlumtreeFrame, frame)
}

// ---- decoding --------------------------------------------------------------------------------

/** Thrown inside the decoder only; every public entry point turns it into a result. */
class WireFailure {
  readonly code: WireErrorCode
  readonly detail: string

  constructor(code: WireErrorCode, detail: string) {
    this.code = code
    this.detail = detail
  }
}

function fail(code: WireErrorCode, detail: string): never {
  throw new WireFailure(code, detail)
}

/**
 * Every varint in this schema (tags, lengths, uint32, bool, enum) fits in 32 bits, and only
 * varint and length-delimited fields exist: anything else is malformed.
 */
const WIRE_READER_OPTIONS: Readonly<ProtobufReaderOptions> = Object.freeze({ ...UINT32_READER_OPTIONS, fixedWidthFields: false })

/** Reads the fields of one message; broken protobuf throws ProtobufDecodeError, which decodeFrame reports as malformed. */
function fields(bytes: Uint8Array): ProtobufReader {
  return new ProtobufReader(bytes, WIRE_READER_OPTIONS)
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const EMPTY = new Uint8Array(0)
const WIRE_VARINT = WIRE_TYPE.varint
const WIRE_LEN = WIRE_TYPE.lengthDelimited

/** Tracks singular fields so a repeated one is refused. */
class Seen {
  readonly #numbers = new Set<number>()
  once(field: ProtobufField, context: string): void {
    if (this.#numbers.has(field.number)) fail('malformed', `${context}: field ${field.number} repeated`)
    this.#numbers.add(field.number)
  }
}

function expectWire(field: ProtobufField, wireType: number, context: string): void {
  if (field.wireType !== wireType) fail('malformed', `${context}: field ${field.number} has wire type ${field.wireType}`)
}

function unknown(field: ProtobufField, context: string): never {
  return fail('unknown-field', `${context}: unknown field ${field.number}`)
}

function text(field: ProtobufField, max: number, context: string): string {
  expectWire(field, WIRE_LEN, context)
  if (field.bytes.length > max) fail('oversized', `${context}: ${field.bytes.length} bytes > ${max}`)
  try {
    return utf8Decoder.decode(field.bytes)
  } catch {
    return fail('malformed', `${context}: invalid UTF-8`)
  }
}

function required(value: string, context: string): string {
  if (value.length === 0) fail('missing-field', `${context} is required`)
  return value
}

function uint(field: ProtobufField, context: string): number {
  expectWire(field, WIRE_VARINT, context)
  return field.value
}

function bool(field: ProtobufField, context: string): boolean {
  expectWire(field, WIRE_VARINT, context)
  if (field.value > 1) fail('malformed', `${context}: bool value ${field.value}`)
  return field.value === 1
}

function emptyMessage(bytes: Uint8Array, context: string): void {
  for (const field = fields(bytes); field.next();) unknown(field, context)
}

/**
 * Decodes a frame: the topic (field 1) and exactly one variant of the oneof (fields 2 to
 * `lastVariant`), whose number and bytes go to `variant`.
 */
function decodeFrame<T>(bytes: Uint8Array, limits: Readonly<WireLimits>, protocol: string, lastVariant: number,
  variant: (number: number, body: Uint8Array) => T): DecodeResult<{ topic: string, message: T }> {
  try {
    if (bytes.length > limits.maxFrameBytes) fail('oversized', `${protocol} frame of ${bytes.length} bytes > ${limits.maxFrameBytes}`)
    let topic = ''
    let message: T | undefined
    const seen = new Seen()
    for (const field = fields(bytes); field.next();) {
      if (field.number === 1) {
        seen.once(field, protocol)
        topic = text(field, limits.maxTopicBytes, `${protocol}.topic`)
        continue
      }
      if (field.number > lastVariant) unknown(field, protocol)
      expectWire(field, WIRE_LEN, protocol)
      if (message !== undefined) fail('malformed', `${protocol}: more than one message variant`)
      message = variant(field.number, field.bytes)
    }
    required(topic, `${protocol}.topic`)
    if (message === undefined) return { ok: false, code: 'missing-field', detail: `${protocol}: no message variant` }
    return { ok: true, value: { topic, message } }
  } catch (error) {
    if (error instanceof WireFailure) return { ok: false, code: error.code, detail: error.detail }
    if (error instanceof ProtobufDecodeError) return { ok: false, code: 'malformed', detail: error.message }
    throw error
  }
}

function peerList(field: ProtobufField, peers: PeerKey[], limits: Readonly<WireLimits>, context: string): void {
  const peer = required(text(field, limits.maxPeerKeyBytes, context), context)
  if (peers.length >= limits.maxShufflePeers) fail('too-many', `${context}: more than ${limits.maxShufflePeers} peers`)
  peers.push(peer)
}

/** Decodes a HyParView frame, enforcing `limits` (TTLs are clamped to `limits.maxTtl`). */
export function decodeHyParView(bytes: Uint8Array, limits: Readonly<WireLimits> = DEFAULT_WIRE_LIMITS): DecodeResult<HyParViewFrame> {
  return decodeFrame<HyParViewMessage>(bytes, limits, 'hyparview', 8, (number, body) => {
    switch (number) {
      case 2:
        emptyMessage(body, 'join')
        return { type: 'join' }
      case 3: {
        let peer = ''
        let ttl = 0
        const seen = new Seen()
        for (const f = fields(body); f.next();) {
          seen.once(f, 'forwardJoin')
          if (f.number === 1) peer = text(f, limits.maxPeerKeyBytes, 'forwardJoin.peer')
          else if (f.number === 2) ttl = uint(f, 'forwardJoin.ttl')
          else unknown(f, 'forwardJoin')
        }
        return { type: 'forwardJoin', peer: required(peer, 'forwardJoin.peer'), ttl: Math.min(ttl, limits.maxTtl) }
      }
      case 4: {
        let code = 0
        const seen = new Seen()
        for (const f = fields(body); f.next();) {
          seen.once(f, 'neighbor')
          if (f.number === 1) code = uint(f, 'neighbor.priority')
          else unknown(f, 'neighbor')
        }
        if (code === 0) fail('missing-field', 'neighbor.priority is required')
        if (code === PRIORITY_CODE.high) return { type: 'neighbor', priority: 'high' }
        if (code === PRIORITY_CODE.low) return { type: 'neighbor', priority: 'low' }
        if (code === PRIORITY_CODE.bridge) return { type: 'neighbor', priority: 'bridge' }
        return fail('malformed', `neighbor.priority ${code} is not a priority`)
      }
      case 5:
      case 6: {
        const name = number === 5 ? 'neighborReply' : 'disconnect'
        let flag = false
        const seen = new Seen()
        for (const f = fields(body); f.next();) {
          seen.once(f, name)
          if (f.number === 1) flag = bool(f, name)
          else unknown(f, name)
        }
        return number === 5 ? { type: 'neighborReply', accepted: flag } : { type: 'disconnect', alive: flag }
      }
      case 7: {
        let origin = ''
        let ttl = 0
        const peers: PeerKey[] = []
        const seen = new Seen()
        for (const f = fields(body); f.next();) {
          if (f.number === 3) {
            peerList(f, peers, limits, 'shuffle.peers')
            continue
          }
          seen.once(f, 'shuffle')
          if (f.number === 1) origin = text(f, limits.maxPeerKeyBytes, 'shuffle.origin')
          else if (f.number === 2) ttl = uint(f, 'shuffle.ttl')
          else unknown(f, 'shuffle')
        }
        return { type: 'shuffle', origin: required(origin, 'shuffle.origin'), ttl: Math.min(ttl, limits.maxTtl), peers }
      }
      case 8: {
        const peers: PeerKey[] = []
        for (const f = fields(body); f.next();) {
          if (f.number === 1) peerList(f, peers, limits, 'shuffleReply.peers')
          else unknown(f, 'shuffleReply')
        }
        return { type: 'shuffleReply', peers }
      }
      default:
        return fail('unknown-field', `hyparview: unknown field ${number}`)
    }
  })
}

/** Decodes a Plumtree frame, enforcing `limits` (rounds are clamped to `limits.maxRound`). */
export function decodePlumtree(bytes: Uint8Array, limits: Readonly<WireLimits> = DEFAULT_WIRE_LIMITS): DecodeResult<PlumtreeFrame> {
  return decodeFrame<PlumtreeMessage>(bytes, limits, 'plumtree', 5, (number, body) => {
    switch (number) {
      case 2: {
        let id = ''
        let round = 0
        let payload = EMPTY
        let origin = ''
        let repaired = false
        const seen = new Seen()
        for (const f = fields(body); f.next();) {
          seen.once(f, 'gossip')
          if (f.number === 1) id = text(f, limits.maxMessageIdBytes, 'gossip.id')
          else if (f.number === 2) round = uint(f, 'gossip.round')
          else if (f.number === 3) {
            expectWire(f, WIRE_LEN, 'gossip.payload')
            if (f.bytes.length > limits.maxPayloadBytes) fail('oversized', `gossip.payload of ${f.bytes.length} bytes > ${limits.maxPayloadBytes}`)
            // A copy: the driver may reuse the frame's buffer once we return.
            payload = f.bytes.slice()
          } else if (f.number === 4) origin = text(f, limits.maxPeerKeyBytes, 'gossip.origin')
          else if (f.number === 5) repaired = bool(f, 'gossip.repaired')
          else unknown(f, 'gossip')
        }
        const message = { type: 'gossip', id: required(id, 'gossip.id'), round: Math.min(round, limits.maxRound), origin: required(origin, 'gossip.origin'), payload } as const
        return repaired ? { ...message, repaired } : message
      }
      case 3: {
        const entries: IHaveEntry[] = []
        for (const f = fields(body); f.next();) {
          if (f.number !== 1) unknown(f, 'ihave')
          expectWire(f, WIRE_LEN, 'ihave.entries')
          if (entries.length >= limits.maxIHaveEntries) fail('too-many', `ihave: more than ${limits.maxIHaveEntries} entries`)
          let id = ''
          let round = 0
          const seen = new Seen()
          for (const e = fields(f.bytes); e.next();) {
            seen.once(e, 'ihave.entry')
            if (e.number === 1) id = text(e, limits.maxMessageIdBytes, 'ihave.entry.id')
            else if (e.number === 2) round = uint(e, 'ihave.entry.round')
            else unknown(e, 'ihave.entry')
          }
          entries.push({ id: required(id, 'ihave.entry.id'), round: Math.min(round, limits.maxRound) })
        }
        return { type: 'ihave', entries }
      }
      case 4: {
        let id: string | null = null
        let origin: string | null = null
        const seen = new Seen()
        for (const f = fields(body); f.next();) {
          seen.once(f, 'graft')
          if (f.number === 1) id = required(text(f, limits.maxMessageIdBytes, 'graft.id'), 'graft.id')
          else if (f.number === 2) origin = required(text(f, limits.maxPeerKeyBytes, 'graft.origin'), 'graft.origin')
          else unknown(f, 'graft')
        }
        if (id === null && origin === null) fail('missing-field', 'graft: needs an id or an origin')
        return { type: 'graft', id, origin }
      }
      case 5: {
        const origins: PeerKey[] = []
        for (const f = fields(body); f.next();) {
          if (f.number !== 1) unknown(f, 'prune')
          const origin = required(text(f, limits.maxPeerKeyBytes, 'prune.origins'), 'prune.origins')
          if (origins.length >= limits.maxPruneOrigins) fail('too-many', `prune: more than ${limits.maxPruneOrigins} origins`)
          origins.push(origin)
        }
        if (origins.length === 0) fail('missing-field', 'prune: needs at least one origin')
        return { type: 'prune', origins }
      }
      default:
        return fail('unknown-field', `plumtree: unknown field ${number}`)
    }
  })
}
