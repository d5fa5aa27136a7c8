import type { Logger } from '../logging/logger.ts'
import type { FleetMetricsHooks } from './fleet-metrics-hooks.ts'
import type { FleetKeys } from './keys.ts'
import type { FleetRedis } from './redis-connection.ts'

/** A gossip message carried between workers. */
export interface BridgeMessage {
  /** The overlay topic's short name. */
  topic: string
  messageId: string
  payload: Uint8Array
  /** The peer ID of the worker that published it. */
  origin: string
}

/**
 * Cross-worker delivery: a message accepted by one worker reaches the peers of every
 * other worker, which re-broadcast it on their own overlays (DESIGN.md §6).
 */
export interface GossipBridge {
  /** Sends a message to the other workers. Never throws; false if it was not sent. */
  publish: (topic: string, messageId: string, payload: Uint8Array) => Promise<boolean>
  /** Told of each message published by another worker (never this worker's own). */
  onMessage: (listener: (message: BridgeMessage) => void) => () => void
}

/**
 * Largest frame sent or accepted (guess: well above the overlay's message limit, far below
 * Redis's 512 MiB; a bigger frame is not one of ours).
 */
export const MAX_BRIDGE_FRAME_BYTES = 2 * 1024 * 1024
/** Longest topic, message ID or origin, in UTF-8 bytes (they are names and hashes). */
const MAX_FIELD_BYTES = 1024
const FRAME_VERSION = 1
/** Version byte and three 16-bit field lengths. */
const HEADER_BYTES = 1 + 3 * 2

/** The frame is not one this worker can read. */
export type BridgeFrameError = 'too-large' | 'truncated' | 'unknown-version' | 'field-too-long' | 'bad-utf8'

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The frame: version (1 byte, 1), then the lengths of topic, message ID and origin (16-bit
 * big-endian each), those three as UTF-8, then the payload to the end. Throws RangeError if
 * a field or the whole frame is over its limit.
 */
export function encodeBridgeFrame (message: BridgeMessage): Buffer {
  const fields = [message.topic, message.messageId, message.origin].map((field) => Buffer.from(field, 'utf8'))
  for (const field of fields) if (field.length > MAX_FIELD_BYTES) throw new RangeError(`bridge frame field of ${field.length} bytes is over ${MAX_FIELD_BYTES}`)
  const size = HEADER_BYTES + fields.reduce((sum, field) => sum + field.length, 0) + message.payload.length
  if (size > MAX_BRIDGE_FRAME_BYTES) throw new RangeError(`bridge frame of ${size} bytes is over ${MAX_BRIDGE_FRAME_BYTES}`)
  const frame = Buffer.allocUnsafe(size)
  frame.writeUInt8(FRAME_VERSION, 0)
  let offset = 1
  for (const field of fields) offset = frame.writeUInt16BE(field.length, offset)
  for (const field of fields) offset += field.copy(frame, offset)
  frame.set(message.payload, offset)
  return frame
}

/** Reads a frame; the payload is a copy (the buffer may belong to the Redis client). */
export function decodeBridgeFrame (frame: Uint8Array): { ok: true, message: BridgeMessage } | { ok: false, error: BridgeFrameError } {
  if (frame.length > MAX_BRIDGE_FRAME_BYTES) return { ok: false, error: 'too-large' }
  if (frame.length < HEADER_BYTES) return { ok: false, error: 'truncated' }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  if (view.getUint8(0) !== FRAME_VERSION) return { ok: false, error: 'unknown-version' }
  const lengths = [view.getUint16(1), view.getUint16(3), view.getUint16(5)]
  if (lengths.some((length) => length > MAX_FIELD_BYTES)) return { ok: false, error: 'field-too-long' }
  let offset = HEADER_BYTES
  const fields: string[] = []
  for (const length of lengths) {
    if (offset + length > frame.length) return { ok: false, error: 'truncated' }
    try {
      fields.push(strictUtf8.decode(frame.subarray(offset, offset + length)))
    } catch {
      return { ok: false, error: 'bad-utf8' }
    }
    offset += length
  }
  const [topic = '', messageId = '', origin = ''] = fields
  return { ok: true, message: { topic, messageId, origin, payload: new Uint8Array(frame.subarray(offset)) } }
}

export interface RedisGossipBridgeInit {
  redis: FleetRedis
  keys: FleetKeys
  workerId: string
  log: Logger
  metrics?: Pick<FleetMetricsHooks, 'bridgeMessages'>
}

/**
 * The bridge over Redis pub/sub: one channel, binary frames. Delivery is at most once and
 * only to workers subscribed at that moment; the overlay's own repair (IHAVE/GRAFT) and
 * sync cover the rest.
 */
export class RedisGossipBridge implements GossipBridge {
  private readonly init: RedisGossipBridgeInit
  private readonly log: Logger
  private readonly listeners = new Set<(message: BridgeMessage) => void>()
  private stopSubscription: (() => void) | undefined

  constructor (init: RedisGossipBridgeInit) {
    this.init = init
    this.log = init.log.child({ component: 'fleet-bridge' })
  }

  start (): void {
    this.stopSubscription ??= this.init.redis.subscribe(this.init.keys.bridge(), (frame) => { this.heard(frame) })
  }

  stop (): void {
    this.stopSubscription?.()
    this.stopSubscription = undefined
  }

  async publish (topic: string, messageId: string, payload: Uint8Array): Promise<boolean> {
    const { redis, keys, workerId, metrics } = this.init
    let frame: Buffer
    try {
      frame = encodeBridgeFrame({ topic, messageId, payload, origin: workerId })
    } catch (err) {
      metrics?.bridgeMessages.inc({ direction: 'dropped' })
      this.log.debug({ err, topic }, 'message too large for the gossip bridge; not bridged')
      return false
    }
    const sent = await redis.command('bridge', async (client) => await client.publish(keys.bridge(), frame))
    if (sent.ok) metrics?.bridgeMessages.inc({ direction: 'published' })
    return sent.ok
  }

  onMessage (listener: (message: BridgeMessage) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private heard (frame: Buffer): void {
    const decoded = decodeBridgeFrame(frame)
    if (!decoded.ok) {
      this.init.metrics?.bridgeMessages.inc({ direction: 'dropped' })
      this.log.debug({ error: decoded.error, bytes: frame.length }, 'malformed gossip bridge frame dropped')
      return
    }
    if (decoded.message.origin === this.init.workerId) return
    this.init.metrics?.bridgeMessages.inc({ direction: 'received' })
    for (const listener of this.listeners) {
      try {
        listener(decoded.message)
      } catch (err) {
        this.log.error({ err }, 'gossip bridge listener threw')
      }
    }
  }
}
