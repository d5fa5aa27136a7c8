/**
 * The overlay core's public surface: what a libp2p driver (services/beacon, services/peer)
 * and the simulator use. See docs/overlay.md.
 *
 * ```ts
 * const topic = createTopic({ self: peerId.toString(), networkSize: accounts, rng: createRng(seed) })
 * run(topic.start(now))
 * run(topic.handle({ type: 'join', contact: beacon }, now))
 * run(topic.handle({ type: 'message', from, message: decoded.value.message }, now))
 * run(topic.broadcast(cid, bytes, now))
 * ```
 */
export { createOverlayNode, DEFAULT_OVERLAY_NODE_CONFIG, OverlayNode } from './overlay-node.ts'
export type { OverlayNodeAction, OverlayNodeConfig, OverlayNodeCounters, OverlayNodeEvent, OverlayNodeOptions, TopicAction } from './overlay-node.ts'
export { createTopic, Topic } from './topic.ts'
export type { TopicConfig, TopicCounters, TopicOptions, TopicSnapshot } from './topic.ts'
export { activeViewCapacity, DEFAULT_HYPARVIEW_CONFIG } from './hyparview.ts'
export type { HyParViewConfig, HyParViewSnapshot, HyParViewStats } from './hyparview.ts'
export { DEFAULT_PLUMTREE_CONFIG } from './plumtree.ts'
export type { PlumtreeConfig, PlumtreeSnapshot, PlumtreeStats } from './plumtree.ts'
export { isHyParViewMessage, MESSAGE_TYPES, protocolOf, SHARED_TREE } from './messages.ts'
export type {
  Action,
  DisconnectMessage,
  ForwardJoinMessage,
  GossipMessage,
  GraftMessage,
  HyParViewMessage,
  IHaveEntry,
  IHaveMessage,
  JoinMessage,
  Message,
  MessageId,
  MessageType,
  NeighborMessage,
  NeighborReplyMessage,
  OverlayProtocol,
  PeerKey,
  PlumtreeMessage,
  Priority,
  PruneMessage,
  ShuffleMessage,
  ShuffleReplyMessage,
  Timer,
  TopicEvent,
  Verdict
} from './messages.ts'
export {
  decodeHyParView,
  decodePlumtree,
  DEFAULT_WIRE_LIMITS,
  encodeHyParView,
  encodePlumtree,
  OVERLAY_PROTOCOL_VERSIONS,
  overlayProtocolId
} from './wire.ts'
export type { DecodeResult, HyParViewFrame, PlumtreeFrame, WireErrorCode, WireLimits } from './wire.ts'
export { createRng, deriveSeed, pickRandom, randomFloat, randomInt, sampleRandom } from './rng.ts'
export type { Rng } from './rng.ts'
export { OverlayConfigError, PayloadTooLargeError, SelfContactError, TopicNotStartedError, UnknownTopicError } from './errors.ts'
