/** Shared set-up for the overlay handler tests. */
import { createTopic } from '../src/overlay/index.ts'
import type { Action, Message, PeerKey, Rng, Topic, TopicConfig } from '../src/overlay/index.ts'

/**
 * An RNG that always returns 0: every random choice takes the first candidate (in view order)
 * and a random delay is its minimum, so a test can state the exact actions it expects.
 */
export const firstChoice: Rng = { nextUint32: () => 0 }

export interface TestTopicOptions {
  /** @default 4 (active capacity 3, passive 18) */
  networkSize?: number
  config?: TopicConfig
}

/** A started topic for peer `me` whose random choices are all "the first one". */
export function startedTopic(options: TestTopicOptions = {}): Topic {
  const topic = createTopic({ self: 'me', networkSize: options.networkSize ?? 4, rng: firstChoice, config: options.config })
  topic.start(0)
  return topic
}

/** Feeds one received message and returns the actions. */
export function receive(topic: Topic, from: PeerKey, message: Message, now = 0): Action[] {
  return topic.handle({ type: 'message', from, message }, now)
}

/** Makes each peer an active neighbour (it asks with high priority, we accept). */
export function befriend(topic: Topic, ...peers: PeerKey[]): void {
  for (const peer of peers) receive(topic, peer, { type: 'neighbor', priority: 'high' })
}

/** Puts each peer in the passive view: a FORWARDJOIN at TTL = PRWL passes by (needs two active peers). */
export function rememberPassive(topic: Topic, via: PeerKey, ...peers: PeerKey[]): void {
  for (const peer of peers) receive(topic, via, { type: 'forwardJoin', peer, ttl: 3 })
}

export function send(to: PeerKey, message: Message): Action {
  return { type: 'send', to, message }
}
