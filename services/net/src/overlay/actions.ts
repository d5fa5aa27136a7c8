/**
 * Carrying out what the IO-free overlay node asks for (STYLE.md rule 2): each action goes to
 * the driver part that owns it. The driver wires the parts once (overlay-driver.ts).
 */
import type { OverlayNodeAction, OverlayNodeEvent } from '@pharos/protocol/overlay/index.ts'
import type { DriverContext } from './driver-context.ts'
import type { GossipValidation } from './gossip-validation.ts'
import type { OutboundLinks } from './links.ts'
import type { NeighbourRules } from './neighbour-rules.ts'
import type { Delivery, DriverCounters } from './overlay-api.ts'

export interface ActionTargets {
  links: Pick<OutboundLinks, 'send' | 'link' | 'maybeRelease' | 'closePeer'>
  validation: Pick<GossipValidation, 'validate'>
  rules: Pick<NeighbourRules, 'penalize'>
  counters: Pick<DriverCounters, 'framesRejected'>
  log: DriverContext['log']
  /** Feeds `event` back to the node after `after` ms. */
  schedule: (after: number, event: OverlayNodeEvent) => void
  /** A first receipt the topic's validator accepted, for the application. */
  deliver: (delivery: Delivery) => void
  /** The short name (`content`) of a wire topic name. */
  shortName: (topic: string) => string
}

export function carryOut (actions: readonly OverlayNodeAction[], targets: ActionTargets): void {
  const { links, validation, rules, counters, log } = targets
  for (const action of actions) {
    switch (action.type) {
      case 'send': links.send(action.topic, action.to, action.message); break
      case 'connect': links.link(action.peer, 'hyparview'); break
      case 'disconnect': links.maybeRelease(action.peer); break
      case 'timer': targets.schedule(action.after, { type: 'timer', topic: action.topic, timer: action.timer }); break
      case 'validate': validation.validate(action); break
      case 'rejected': rules.penalize(action.from, 'invalid-payload'); break
      case 'unknownTopic': counters.framesRejected['unknown-topic']++; break
      case 'rejoin': log('rejoining %s through %s: its active view stayed empty', action.topic, action.contact); break
      // Asked for by the driver itself, inline (links.ts, connect): nothing to do here.
      case 'lookup': case 'unreachable': break
      case 'dropLinks': links.closePeer(action.peer, new Error('peer is draining')); break
      case 'deliver':
        targets.deliver({ topic: targets.shortName(action.topic), messageId: action.messageId, payload: action.payload, from: action.from, round: action.round })
        break
      case 'neighborUp': break
      case 'neighborDown': links.maybeRelease(action.peer); break
      default: {
        const unhandled: never = action
        throw new TypeError(`unhandled overlay action ${JSON.stringify(unhandled)}`)
      }
    }
  }
}
