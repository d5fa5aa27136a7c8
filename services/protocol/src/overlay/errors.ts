/**
 * Programmer errors of the overlay core. Wire input never throws: the codec returns
 * `{ ok: false, code }` results (see wire.ts) and the state machines ignore what they cannot use.
 */

/** A configuration value is out of range. Names the key, the value and what is allowed. */
export class OverlayConfigError extends Error {
  override readonly name = 'OverlayConfigError'
  readonly key: string
  readonly value: unknown

  constructor(key: string, value: unknown, allowed: string) {
    super(`overlay config ${key}=${String(value)} is invalid: ${allowed}`)
    this.key = key
    this.value = value
  }
}

/** Throws {@link OverlayConfigError} unless `value` is an integer ≥ `min`. */
export function requireInteger(key: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new OverlayConfigError(key, value, `an integer ≥ ${min}`)
  }
}

/** An event or broadcast was handed to a topic before `start(now)`. */
export class TopicNotStartedError extends Error {
  override readonly name = 'TopicNotStartedError'

  constructor() {
    super('topic.start(now) must be called before handle() or broadcast()')
  }
}

/** The application tried to broadcast a payload larger than the configured maximum. */
export class PayloadTooLargeError extends Error {
  override readonly name = 'PayloadTooLargeError'
  readonly size: number
  readonly limit: number

  constructor(size: number, limit: number) {
    super(`payload of ${size} bytes exceeds the ${limit}-byte limit`)
    this.size = size
    this.limit = limit
  }
}

/** A topic was asked to join through itself. */
export class SelfContactError extends Error {
  override readonly name = 'SelfContactError'

  constructor() {
    super('a topic cannot join through itself')
  }
}

/** An event or broadcast named a topic the node is not in (a programmer error; frames are routed, not thrown). */
export class UnknownTopicError extends Error {
  override readonly name = 'UnknownTopicError'
  readonly topic: string

  constructor(topic: string) {
    super(`not a topic of this node: ${topic}`)
    this.topic = topic
  }
}
