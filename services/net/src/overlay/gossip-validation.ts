/**
 * Validate, then forward: the overlay driver's runner of the application's gossip validators.
 * A first receipt is handed to its topic's validator, asynchronously, with at most
 * `validationsInFlight` at once and each bounded by `validationTimeoutMs`; the verdict goes
 * back to the node, which forwards and announces the message only on `accept`. Over the
 * bound, past the timeout, on a topic with no validator, or when the validator throws, the
 * message is ignored: not forwarded, nobody blamed.
 */
import type { TopicAction, Verdict } from '@pharos/protocol/overlay/index.ts'
import type { DriverContext } from './driver-context.ts'
import { ValidationTimeoutError } from './overlay-api.ts'
import type { GossipToValidate, GossipValidator } from './overlay-api.ts'

export class GossipValidation {
  private readonly context: DriverContext
  /** Validators by topic short name. */
  private readonly validators = new Map<string, GossipValidator>()
  /** Validations under way (asynchronous ones: a validator that answers at once is never in flight). */
  private validating = 0
  /** Their signals, aborted on stop. */
  private readonly validations = new Set<AbortController>()

  constructor (context: DriverContext, validators: Readonly<Record<string, GossipValidator>>) {
    this.context = context
    for (const [topic, validator] of Object.entries(validators)) this.validators.set(topic, validator)
  }

  /** Sets the validator of a topic (short name), replacing any; the function returned removes it again. */
  set (topic: string, validator: GossipValidator): () => void {
    this.validators.set(topic, validator)
    return () => { if (this.validators.get(topic) === validator) this.validators.delete(topic) }
  }

  /** The overlay is stopping: every validation under way is abandoned. */
  abortAll (reason: Error): void {
    for (const validation of this.validations) validation.abort(reason)
  }

  /**
   * Runs the topic's validator on a first receipt and feeds the verdict back. Bounded: at most
   * `validationsInFlight` at once, each `validationTimeoutMs`; over either, or with no
   * validator, or if it throws, the message is ignored (not forwarded, nobody penalised).
   */
  validate (action: Extract<TopicAction, { type: 'validate' }>): void {
    const { counters, init, log } = this.context
    const { messageId, topic } = action
    const verdict = (value: Verdict): void => {
      counters.validations[value]++
      this.context.handle({ type: 'validated', topic, messageId, verdict: value })
    }
    const short = this.context.shortName(topic)
    const validator = this.validators.get(short)
    if (validator === undefined) {
      counters.unvalidatedTopic++
      verdict('ignore')
      return
    }
    if (this.validating >= init.validationsInFlight) {
      counters.validationOverflows++
      verdict('ignore')
      return
    }
    const message: GossipToValidate = { topic: short, messageId, payload: action.payload, from: action.from, origin: action.origin }
    const controller = new AbortController()
    let judged: Verdict | Promise<Verdict>
    try {
      judged = validator(message, controller.signal)
    } catch (err) {
      counters.validationErrors++
      log.error('validator of %s failed - %e', short, err)
      verdict('ignore')
      return
    }
    // Judged at once (no I/O): no timer, no promise. The verdict is fed after the actions of
    // the current event, as an asynchronous one would be, never in the middle of them.
    if (typeof judged === 'string') {
      const value = judged
      queueMicrotask(() => { verdict(value) })
      return
    }
    this.validating++
    this.validations.add(controller)
    const timer = setTimeout(() => { controller.abort(new ValidationTimeoutError(init.validationTimeoutMs)) }, init.validationTimeoutMs)
    const aborted = new Promise<'aborted'>((resolve) => {
      controller.signal.addEventListener('abort', () => { resolve('aborted') }, { once: true })
    })
    Promise.race([judged, aborted]).then((result) => {
      if (result !== 'aborted') return result
      if (controller.signal.reason instanceof ValidationTimeoutError) counters.validationTimeouts++
      return 'ignore'
    }, (err: unknown) => {
      counters.validationErrors++
      log.error('validator of %s failed - %e', short, err)
      return 'ignore' as const
    }).then((result) => {
      clearTimeout(timer)
      this.validations.delete(controller)
      this.validating--
      verdict(result)
    }, () => {})
  }
}
